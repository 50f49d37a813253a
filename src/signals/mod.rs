//! Physiological signals. This version holds the DSP core (Butterworth design in
//! second-order sections, causal streaming and zero-phase filtering, notch, resampling,
//! Welch PSD and band power), checked against scipy.signal, and the chunk-size independent
//! windowing that the stream encoders will use. Readers, feature encoders and the
//! AnalyzeSignals RPC are not built yet.

pub mod dsp;
pub mod window;
