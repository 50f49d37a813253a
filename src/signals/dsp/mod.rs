//! Filters and spectra. Butterworth design and SOS filtering are hand-written: the Rust
//! filter crates either lack SOS design for all four band types (`biquad`, `iir_filters`)
//! or pull a second ndarray version (`sci-rs`, ndarray 0.16 vs ort's 0.17). Every routine
//! follows scipy.signal's algorithm so that tests/reference/signals_reference.py can hold
//! it to scipy's numbers.

pub mod butter;
pub mod resample;
pub mod sosfilt;
pub mod welch;

pub use butter::{BandType, DesignError, butter_sos, notch_sos};
pub use resample::resample_poly;
pub use sosfilt::{SosFilter, sosfilt, sosfilt_zi, sosfiltfilt};
pub use welch::{
    Detrend, Spectrum, Welch, WelchConfig, WelchError, band_power, differential_entropy, welch,
};

/// One second-order section: [b0, b1, b2, a0, a1, a2] with a0 = 1, as scipy's `sos` rows.
pub type Section = [f64; 6];
