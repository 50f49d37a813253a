//! Physiological signals: the DSP core (Butterworth SOS design, causal streaming and
//! zero-phase filtering, notch, resampling, Welch PSD and band power) checked against
//! scipy.signal; NeuroKit2 ports for ECG, PPG, EDA and respiration; the EEG encoder; and
//! chunk-size independent windowing for streams.

pub mod analyzers;
pub mod cardiac;
pub mod classifier;
pub mod dsp;
pub mod eda;
pub mod eeg;
pub mod features;
pub mod peaks;
pub mod quality;
pub mod readers;
pub mod respiration;
pub mod stream;
pub mod window;

pub use stream::SignalBudget;
