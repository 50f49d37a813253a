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
pub use sosfilt::{
    SosFilter, SosFilterBank, sosfilt, sosfilt_zi, sosfiltfilt, sosfiltfilt_channels,
};
pub use welch::{
    Detrend, SegmentBuffers, Spectrum, Welch, WelchConfig, WelchError, band_power,
    differential_entropy, welch,
};

/// One second-order section: [b0, b1, b2, a0, a1, a2] with a0 = 1, as scipy's `sos` rows.
pub type Section = [f64; 6];

/// Sum with eight independent accumulators. A plain `iter().sum()` is one dependent chain of
/// additions (latency-bound, and the compiler may not reorder floating-point adds); eight
/// lanes let it run the adds in parallel and in SIMD. The result differs from sequential
/// summation only by rounding (and is usually closer to numpy's pairwise sum).
#[inline(always)]
pub fn lane_sum(x: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// (sum, minimum, maximum) in one pass with eight lanes, for per-window loops that need
/// all three. Min and max are meaningful only when the sum is finite (no NaN/Inf sample).
#[inline(always)]
pub fn lane_sum_min_max(x: &[f64]) -> (f64, f64, f64) {
    let mut sums = [0.0; 8];
    let mut lo = [f64::INFINITY; 8];
    let mut hi = [f64::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..8 {
            sums[j] += chunk[j];
            lo[j] = if chunk[j] < lo[j] { chunk[j] } else { lo[j] };
            hi[j] = if chunk[j] > hi[j] { chunk[j] } else { hi[j] };
        }
    }
    let sum = sums.iter().sum::<f64>() + tail.iter().sum::<f64>();
    let mut min = lo.into_iter().fold(f64::INFINITY, f64::min);
    let mut max = hi.into_iter().fold(f64::NEG_INFINITY, f64::max);
    for &v in tail {
        min = min.min(v);
        max = max.max(v);
    }
    (sum, min, max)
}

/// Whether this CPU has AVX2 and FMA, checked once. The hot per-sample loops (Welch
/// windowing, channel quality) are compiled twice, for the baseline x86-64 and for AVX2,
/// and this picks one at run time, so the binary still runs on any x86-64.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    })
}

/// Whether this CPU has AVX-512F, checked once (the filter bank's eight f64 lanes fill one
/// register).
#[cfg(target_arch = "x86_64")]
pub fn has_avx512f() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}
