//! Per-channel signal quality over one window: flat line, clipping at the rails, amplitude
//! artefacts, NaN/Inf samples, and (for EEG) mains interference.

use serde::Serialize;

use super::dsp::{lane_sum, lane_sum_min_max};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelQuality {
    pub channel: String,
    /// Standard deviation of the finite samples below `flat_std` (a disconnected or
    /// saturated electrode).
    pub flat: bool,
    /// Fraction of finite samples in runs of 3 or more equal values at the window's
    /// maximum or minimum (the amplifier's rails), `[0,1]`; None without finite samples.
    pub clipped_fraction: Option<f64>,
    /// Power within 2 Hz of the mains frequency over power 1-45 Hz (EEG only; None when
    /// not computed). Can exceed 1.
    pub line_noise_ratio: Option<f64>,
    /// Fraction of finite samples further than the artefact threshold from the window's
    /// median (estimated from at most ~1000 evenly spaced samples), `[0,1]`; None when the
    /// kind has no amplitude threshold (not EEG) or there are no finite samples.
    pub artifact_fraction: Option<f64>,
    /// NaN/Inf samples, excluded from every feature.
    pub non_finite_samples: u32,
    /// False when this channel's features should not be trusted.
    pub usable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityThresholds {
    /// Standard deviation (channel unit) under which a channel is flat.
    pub flat_std: f64,
    /// Distance from the median (channel unit) beyond which a sample is an artefact;
    /// None disables the check.
    pub artifact_amplitude: Option<f64>,
}

impl QualityThresholds {
    /// EEG in microvolts: flat under 0.5 uV SD; artefact beyond 150 uV (blinks and
    /// movement; typical scalp EEG stays within +-100 uV).
    pub const EEG_MICROVOLTS: Self = Self {
        flat_std: 0.5,
        artifact_amplitude: Some(150.0),
    };
    /// Other signals: only an exactly constant channel is flat; no amplitude check.
    pub const PERIPHERAL: Self = Self {
        flat_std: 1e-9,
        artifact_amplitude: None,
    };
}

const MIN_CLIP_RUN: usize = 3;
const MAX_CLIPPED: f64 = 0.05;
const MAX_ARTIFACT: f64 = 0.25;
const MAX_NON_FINITE: f64 = 0.5;

pub fn assess(channel: &str, x: &[f64], thresholds: QualityThresholds) -> ChannelQuality {
    // This runs per channel per window on the live path: a sum, a min/max pass, a small
    // median selection and one fused pass, each over eight independent lanes.
    let (total, all_min, all_max) = lane_sum_min_max(x);
    // The sum is NaN/Inf exactly when some sample is: the common case needs no check.
    let non_finite = if total.is_finite() {
        0
    } else {
        x.iter().filter(|v| !v.is_finite()).count()
    };
    let finite: std::borrow::Cow<[f64]> = if non_finite == 0 {
        std::borrow::Cow::Borrowed(x)
    } else {
        std::borrow::Cow::Owned(x.iter().copied().filter(|v| v.is_finite()).collect())
    };
    let mut quality = ChannelQuality {
        channel: channel.to_string(),
        flat: true,
        clipped_fraction: None,
        line_noise_ratio: None,
        artifact_fraction: None,
        non_finite_samples: non_finite.min(u32::MAX as usize) as u32,
        usable: false,
    };
    if finite.is_empty() {
        return quality;
    }
    let n = finite.len() as f64;
    let mean = if non_finite == 0 {
        total
    } else {
        lane_sum(&finite)
    } / n;
    let (min, max) = if non_finite == 0 {
        (all_min, all_max)
    } else {
        let (_, min, max) = lane_sum_min_max(&finite);
        (min, max)
    };
    // The median of at most ~1000 evenly spaced samples: as good a centre for the artefact
    // threshold as the full median, at a quarter of the cost for 4 s at 1 kHz.
    // Every sample lies within max - min of the median, so a window whose whole range is
    // within the threshold has no artefact and needs no median (most clean EEG windows).
    let artifact_limit = thresholds
        .artifact_amplitude
        .filter(|&limit| max - min > limit);
    let median = artifact_limit.map(|_| {
        let stride = finite.len().div_ceil(1024);
        let mut scratch: Vec<f64> = finite.iter().step_by(stride).copied().collect();
        let mid = scratch.len() / 2;
        *scratch.select_nth_unstable_by(mid, f64::total_cmp).1
    });
    let limit = artifact_limit.unwrap_or(f64::INFINITY);
    let centre = median.unwrap_or(0.0);
    let (squares, at_rails, artifacts) =
        spread_rails_artifacts(&finite, mean, (min, max), centre, limit);
    // Runs of MIN_CLIP_RUN equal samples at a rail need that many rail samples: most
    // windows have one maximum and one minimum, and skip the run scan.
    let mut clipped = 0usize;
    if at_rails >= MIN_CLIP_RUN {
        let mut run = 0usize;
        let mut previous = f64::NAN;
        for &v in finite.iter() {
            let at_rail = v == max || v == min;
            if at_rail && v == previous {
                run += 1;
            } else {
                if run >= MIN_CLIP_RUN {
                    clipped += run;
                }
                run = usize::from(at_rail);
            }
            previous = v;
        }
        if run >= MIN_CLIP_RUN {
            clipped += run;
        }
    }
    quality.flat = (squares / n).sqrt() < thresholds.flat_std;
    // A flat channel sits "at its rails" everywhere; that is reported as flat, not clipped.
    quality.clipped_fraction = Some(if max > min { clipped as f64 / n } else { 0.0 });
    if thresholds.artifact_amplitude.is_some() {
        quality.artifact_fraction = Some(artifacts as f64 / n);
    }
    quality.usable = !quality.flat
        && quality.clipped_fraction.is_some_and(|f| f < MAX_CLIPPED)
        && quality.artifact_fraction.is_none_or(|f| f < MAX_ARTIFACT)
        && (non_finite as f64) < MAX_NON_FINITE * x.len() as f64;
    quality
}

/// One pass over a channel: the sum of squared deviations from `mean`, how many samples
/// sit at the rails (`min` or `max`), and how many are further than `limit` from `centre`;
/// eight lanes, as the window's other passes.
#[inline(always)]
fn spread_rails_artifacts(
    x: &[f64],
    mean: f64,
    (min, max): (f64, f64),
    centre: f64,
    limit: f64,
) -> (f64, usize, usize) {
    #[cfg(target_arch = "x86_64")]
    if super::dsp::has_avx2() {
        // SAFETY: the CPU has AVX2 (checked at run time just above).
        return unsafe { spread_rails_artifacts_avx2(x, mean, (min, max), centre, limit) };
    }
    let mut squares = [0.0; 8];
    let mut at_rails = 0usize;
    let mut artifacts = 0usize;
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..8 {
            let v = chunk[j];
            squares[j] += (v - mean) * (v - mean);
            at_rails += usize::from(v == max || v == min);
            artifacts += usize::from((v - centre).abs() > limit);
        }
    }
    finish_spread(
        squares,
        at_rails,
        artifacts,
        tail,
        mean,
        (min, max),
        centre,
        limit,
    )
}

/// The lanes' squares summed in lane order, then the tail's samples.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_spread(
    squares: [f64; 8],
    mut at_rails: usize,
    mut artifacts: usize,
    tail: &[f64],
    mean: f64,
    (min, max): (f64, f64),
    centre: f64,
    limit: f64,
) -> (f64, usize, usize) {
    let mut squares: f64 = squares.iter().sum();
    for &v in tail {
        squares += (v - mean) * (v - mean);
        at_rails += usize::from(v == max || v == min);
        artifacts += usize::from((v - centre).abs() > limit);
    }
    (squares, at_rails, artifacts)
}

/// `spread_rails_artifacts` in AVX2 registers, written out because the compiler counted
/// the comparisons through mask bits and a software popcount (`perf annotate`). Lane j
/// takes samples j, j + 8, ... as the plain loop, with the same subtraction, product and
/// sum, so the squares are the same; the counts are exact either way. Comparisons are
/// ordered (a NaN compares false), as Rust's `==` and `>`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn spread_rails_artifacts_avx2(
    x: &[f64],
    mean: f64,
    (min, max): (f64, f64),
    centre: f64,
    limit: f64,
) -> (f64, usize, usize) {
    use std::arch::x86_64::*;
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    let (mean_v, min_v, max_v) = (
        _mm256_set1_pd(mean),
        _mm256_set1_pd(min),
        _mm256_set1_pd(max),
    );
    let (centre_v, limit_v) = (_mm256_set1_pd(centre), _mm256_set1_pd(limit));
    let magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
    let mut squares = [_mm256_setzero_pd(); 2];
    // Comparison masks are all ones (-1) where true: subtracting them counts.
    let mut rails = [_mm256_setzero_si256(); 2];
    let mut artifacts = [_mm256_setzero_si256(); 2];
    for chunk in chunks {
        for half in 0..2 {
            // SAFETY: a chunk holds 8 samples; this loads 4 of them, unaligned.
            let v = unsafe { _mm256_loadu_pd(chunk.as_ptr().add(4 * half)) };
            let d = _mm256_sub_pd(v, mean_v);
            squares[half] = _mm256_add_pd(squares[half], _mm256_mul_pd(d, d));
            let at_rail = _mm256_or_pd(
                _mm256_cmp_pd::<_CMP_EQ_OQ>(v, max_v),
                _mm256_cmp_pd::<_CMP_EQ_OQ>(v, min_v),
            );
            rails[half] = _mm256_sub_epi64(rails[half], _mm256_castpd_si256(at_rail));
            let far = _mm256_cmp_pd::<_CMP_GT_OQ>(
                _mm256_and_pd(_mm256_sub_pd(v, centre_v), magnitude),
                limit_v,
            );
            artifacts[half] = _mm256_sub_epi64(artifacts[half], _mm256_castpd_si256(far));
        }
    }
    let mut square_lanes = [0.0; 8];
    let (mut rail_lanes, mut artifact_lanes) = ([0i64; 8], [0i64; 8]);
    // SAFETY: each array holds 8 values: two unaligned stores of 4.
    unsafe {
        for half in 0..2 {
            _mm256_storeu_pd(square_lanes.as_mut_ptr().add(4 * half), squares[half]);
            _mm256_storeu_si256(rail_lanes.as_mut_ptr().add(4 * half).cast(), rails[half]);
            _mm256_storeu_si256(
                artifact_lanes.as_mut_ptr().add(4 * half).cast(),
                artifacts[half],
            );
        }
    }
    let count = |lanes: [i64; 8]| lanes.iter().sum::<i64>() as usize;
    finish_spread(
        square_lanes,
        count(rail_lanes),
        count(artifact_lanes),
        tail,
        mean,
        (min, max),
        centre,
        limit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_passes_equal_the_plain_loops() {
        if !crate::signals::dsp::has_avx2() {
            return;
        }
        // Rails hit several times, artefacts past the limit, and a tail of 5 samples.
        let mut x = noise(4005, 80.0);
        x[17] = 500.0;
        x[18] = 500.0;
        x[900] = -300.0;
        let (sum, min, max) = crate::signals::dsp::lane_sum_min_max(&x);
        let plain_sum = {
            let mut lanes = [0.0; 8];
            let chunks = x.chunks_exact(8);
            let tail: f64 = chunks.remainder().iter().sum();
            for c in chunks {
                for j in 0..8 {
                    lanes[j] += c[j];
                }
            }
            lanes.iter().sum::<f64>() + tail
        };
        assert_eq!(sum.to_bits(), plain_sum.to_bits());
        assert_eq!((min, max), (-300.0, 500.0));
        let mean = sum / x.len() as f64;
        for limit in [150.0, f64::INFINITY] {
            // SAFETY: the CPU has AVX2 (checked above).
            let fast = unsafe { spread_rails_artifacts_avx2(&x, mean, (min, max), 1.5, limit) };
            let mut squares = [0.0; 8];
            let (mut rails, mut artifacts) = (0, 0);
            let chunks = x.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for j in 0..8 {
                    squares[j] += (c[j] - mean) * (c[j] - mean);
                    rails += usize::from(c[j] == max || c[j] == min);
                    artifacts += usize::from((c[j] - 1.5).abs() > limit);
                }
            }
            let plain = finish_spread(
                squares,
                rails,
                artifacts,
                tail,
                mean,
                (min, max),
                1.5,
                limit,
            );
            assert_eq!(fast.0.to_bits(), plain.0.to_bits(), "limit {limit}");
            assert_eq!((fast.1, fast.2), (plain.1, plain.2), "limit {limit}");
            assert_eq!(fast.1, 3);
        }
    }

    fn noise(n: usize, amplitude: f64) -> Vec<f64> {
        (0..n)
            .map(|i| amplitude * ((i * 7919 % 101) as f64 / 50.0 - 1.0))
            .collect()
    }

    #[test]
    fn a_clean_channel_is_usable() {
        let q = assess("Cz", &noise(1000, 20.0), QualityThresholds::EEG_MICROVOLTS);
        assert!(q.usable && !q.flat);
        assert_eq!(q.clipped_fraction, Some(0.0));
        assert_eq!(q.artifact_fraction, Some(0.0));
    }

    #[test]
    fn flat_clipped_artifact_and_nan_channels_are_flagged() {
        let t = QualityThresholds::EEG_MICROVOLTS;
        assert!(assess("Cz", &[3.0; 500], t).flat);
        let mut clipped = noise(1000, 20.0);
        for v in &mut clipped[100..200] {
            *v = 20.0;
        }
        let q = assess("Cz", &clipped, t);
        assert!(q.clipped_fraction.unwrap() >= 0.1 && !q.usable, "{q:?}");
        let mut blink = noise(1000, 20.0);
        for v in &mut blink[0..300] {
            *v += 400.0;
        }
        let q = assess("Fp1", &blink, t);
        assert!(q.artifact_fraction.unwrap() > 0.25 && !q.usable, "{q:?}");
        let mut dropout = noise(1000, 20.0);
        for v in &mut dropout[0..600] {
            *v = f64::NAN;
        }
        let q = assess("Cz", &dropout, t);
        assert_eq!(q.non_finite_samples, 600);
        assert!(!q.usable);
        let all_nan = assess("Cz", &[f64::NAN; 10], t);
        assert!(all_nan.flat && !all_nan.usable);
    }
}
