//! Filters and spectra. Butterworth design and SOS filtering are hand-written: the Rust
//! filter crates either lack SOS design for all four band types (`biquad`, `iir_filters`)
//! or pull a second ndarray version (`sci-rs`, ndarray 0.16 vs ort's 0.17). Every routine
//! follows scipy.signal's algorithm so that tests/reference/signals_reference.py can hold
//! it to scipy's numbers.

pub mod butter;
pub mod resample;
pub mod sosfilt;
pub mod welch;

/// The hot per-sample loops (Welch windowing, channel quality, the filter bank) are
/// compiled for these feature sets too and pick one at run time.
#[cfg(target_arch = "x86_64")]
pub use crate::cpu::{has_avx2, has_avx512f};

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
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked at run time just above).
        return unsafe { lane_sum_min_max_avx2(x) };
    }
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
    finish_sum_min_max(sums, lo, hi, tail)
}

/// The lanes' sum, minimum and maximum, then the tail's samples.
#[inline(always)]
fn finish_sum_min_max(sums: [f64; 8], lo: [f64; 8], hi: [f64; 8], tail: &[f64]) -> (f64, f64, f64) {
    let sum = sums.iter().sum::<f64>() + tail.iter().sum::<f64>();
    let mut min = lo.into_iter().fold(f64::INFINITY, f64::min);
    let mut max = hi.into_iter().fold(f64::NEG_INFINITY, f64::max);
    for &v in tail {
        min = min.min(v);
        max = max.max(v);
    }
    (sum, min, max)
}

/// `lane_sum_min_max`'s lanes in AVX2 registers, written out because the compiler kept the
/// eight sums in scalar adds (seen in `perf annotate`: 20% of the EEG window went to
/// channel quality). Lane j takes samples j, j + 8, ... exactly as the plain loop, and
/// `_mm256_min_pd(v, lo)` is `v < lo ? v : lo` as there, so the result is the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lane_sum_min_max_avx2(x: &[f64]) -> (f64, f64, f64) {
    use std::arch::x86_64::*;
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    let (mut sum_a, mut sum_b) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let (mut lo_a, mut lo_b) = (_mm256_set1_pd(f64::INFINITY), _mm256_set1_pd(f64::INFINITY));
    let (mut hi_a, mut hi_b) = (
        _mm256_set1_pd(f64::NEG_INFINITY),
        _mm256_set1_pd(f64::NEG_INFINITY),
    );
    for chunk in chunks {
        // SAFETY: a chunk holds 8 samples: two unaligned loads of 4.
        let (a, b) = unsafe {
            (
                _mm256_loadu_pd(chunk.as_ptr()),
                _mm256_loadu_pd(chunk.as_ptr().add(4)),
            )
        };
        sum_a = _mm256_add_pd(sum_a, a);
        sum_b = _mm256_add_pd(sum_b, b);
        lo_a = _mm256_min_pd(a, lo_a);
        lo_b = _mm256_min_pd(b, lo_b);
        hi_a = _mm256_max_pd(a, hi_a);
        hi_b = _mm256_max_pd(b, hi_b);
    }
    let lanes = |a: __m256d, b: __m256d| {
        let mut out = [0.0; 8];
        // SAFETY: out holds 8 values: two unaligned stores of 4.
        unsafe {
            _mm256_storeu_pd(out.as_mut_ptr(), a);
            _mm256_storeu_pd(out.as_mut_ptr().add(4), b);
        }
        out
    };
    finish_sum_min_max(
        lanes(sum_a, sum_b),
        lanes(lo_a, lo_b),
        lanes(hi_a, hi_b),
        tail,
    )
}
