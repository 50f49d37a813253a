//! Physiological signals. This version holds the DSP core (Butterworth design in
//! second-order sections, causal streaming and zero-phase filtering), checked against
//! scipy.signal; readers, feature encoders and the AnalyzeSignals RPC are not built yet.

pub mod dsp;
