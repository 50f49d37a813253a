//! Welch power spectral density and band power, following scipy.signal.welch
//! (window "hann" periodic, one-sided, scaling "density", average "mean") and
//! scipy.integrate.trapezoid.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detrend {
    None,
    /// Subtract each segment's mean (scipy's default).
    Constant,
    /// Subtract each segment's least-squares line.
    Linear,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchConfig {
    /// Samples per segment; shortened to the signal's length when longer (as scipy).
    pub nperseg: usize,
    /// Overlapping samples between segments; None = nperseg / 2.
    pub noverlap: Option<usize>,
    pub detrend: Detrend,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// Frequencies, Hz: k * fs / nperseg for k = 0..=nperseg/2.
    pub freqs: Vec<f64>,
    /// Power spectral density, unit^2/Hz.
    pub psd: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WelchError {
    #[error("the signal is empty")]
    Empty,
    #[error("noverlap ({noverlap}) must be smaller than nperseg ({nperseg})")]
    Overlap { noverlap: usize, nperseg: usize },
    #[error("sample rate must be positive and finite, got {0}")]
    SampleRate(f64),
}

/// Reusable Welch estimator: the window and the FFT plan are built once per segment
/// length (the live EEG path computes one spectrum per channel per hop).
pub struct Welch {
    nperseg: usize,
    step: usize,
    detrend: Detrend,
    window: Vec<f64>,
    scale: f64,
    /// Real-input FFT: half the work of a complex FFT of the same length.
    fft: Arc<dyn RealToComplex<f64>>,
    /// For an even segment length, the same transform with only the kept bins finished.
    first_bins: Option<FirstBins>,
    fs: f64,
    /// Bins computed and returned: all nperseg/2 + 1, or fewer after `up_to`.
    kept_bins: usize,
}

/// Work buffers for one segment's FFT, reused across segments and channels.
pub struct SegmentBuffers {
    input: Vec<f64>,
    output: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Welch {
    pub fn new(config: WelchConfig, fs: f64, signal_len: usize) -> Result<Self, WelchError> {
        if signal_len == 0 {
            return Err(WelchError::Empty);
        }
        if !(fs.is_finite() && fs > 0.0) {
            return Err(WelchError::SampleRate(fs));
        }
        let nperseg = config.nperseg.min(signal_len).max(1);
        let noverlap = config.noverlap.unwrap_or(nperseg / 2);
        if noverlap >= nperseg {
            return Err(WelchError::Overlap { noverlap, nperseg });
        }
        // Periodic Hann, scipy.signal.get_window("hann", n).
        let window: Vec<f64> = (0..nperseg)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / nperseg as f64).cos())
            .collect();
        let scale = 1.0 / (fs * window.iter().map(|w| w * w).sum::<f64>());
        Ok(Self {
            nperseg,
            step: nperseg - noverlap,
            detrend: config.detrend,
            window,
            scale,
            fft: RealFftPlanner::new().plan_fft_forward(nperseg),
            first_bins: nperseg.is_multiple_of(2).then(|| FirstBins::new(nperseg)),
            fs,
            kept_bins: nperseg / 2 + 1,
        })
    }

    /// Computes and returns only the bins at or below `hz` (at least bin 0). The values of
    /// those bins are unchanged; a feature that needs 1-52 Hz of a 1 kHz signal then skips
    /// the squaring, scaling and storing of the other nine tenths of the spectrum.
    pub fn up_to(mut self, hz: f64) -> Self {
        let bins = self.nperseg / 2 + 1;
        // The same expression as the returned frequencies, so the cut agrees with them.
        self.kept_bins = (0..bins)
            .take_while(|&k| k == 0 || self.frequency(k) <= hz)
            .count();
        self
    }

    fn frequency(&self, k: usize) -> f64 {
        k as f64 * self.fs / self.nperseg as f64
    }

    /// The highest frequency of the full one-sided spectrum (Nyquist, or just under it for
    /// an odd segment length), Hz, whether or not `up_to` cut the returned bins.
    pub fn top_frequency(&self) -> f64 {
        self.frequency(self.nperseg / 2)
    }

    /// Samples per segment.
    pub fn segment_len(&self) -> usize {
        self.nperseg
    }

    /// Samples between the starts of consecutive segments.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Bins each segment power and spectrum holds.
    pub fn bins(&self) -> usize {
        self.kept_bins
    }

    /// Segments in a signal of `len` samples.
    pub fn segments(&self, len: usize) -> usize {
        if len >= self.nperseg {
            (len - self.nperseg) / self.step + 1
        } else {
            0
        }
    }

    pub fn buffers(&self) -> SegmentBuffers {
        let scratch = self.fft.get_scratch_len().max(
            self.first_bins
                .as_ref()
                .map_or(0, |f| f.fft.get_outofplace_scratch_len()),
        );
        SegmentBuffers {
            input: self.fft.make_input_vec(),
            output: self.fft.make_output_vec(),
            scratch: vec![Complex::default(); scratch],
        }
    }

    /// The real FFT of `input` into `output`, of which the first `kept_bins` are valid
    /// (all of them when no `FirstBins` applies). `input` is used as scratch.
    fn transform(
        &self,
        input: &mut [f64],
        output: &mut [Complex<f64>],
        scratch: &mut [Complex<f64>],
    ) {
        match &self.first_bins {
            Some(first) if self.kept_bins <= first.twiddles.len() + 1 => {
                first.transform(input, output, scratch, self.kept_bins)
            }
            _ => self
                .fft
                .process_with_scratch(input, output, scratch)
                .expect("buffers sized by the plan"),
        }
    }

    /// scipy.signal.welch of `x` (every segment, NaN/Inf ones included, as scipy does).
    pub fn spectrum(&self, x: &[f64]) -> Spectrum {
        let segments = self.segments(x.len());
        let mut buffers = self.buffers();
        let mut psd = vec![0.0; self.kept_bins];
        let mut power = vec![0.0; self.kept_bins];
        for s in 0..segments {
            let seg = &x[s * self.step..s * self.step + self.nperseg];
            self.segment_power(seg, false, &mut buffers, &mut power);
            for (p, q) in psd.iter_mut().zip(&power) {
                *p += q;
            }
        }
        self.finish(psd, segments)
    }

    /// |FFT|^2 of one detrended, Hann-windowed segment of `segment_len()` samples, unscaled,
    /// into `power` (`bins()` values). With `skip_non_finite`, a segment holding a NaN/Inf
    /// sample is not transformed and false is returned. Summing these over segments and
    /// passing the sum to `finish` gives exactly `spectrum`'s result, which is how a stream
    /// reuses the segments that consecutive windows share.
    pub fn segment_power(
        &self,
        seg: &[f64],
        skip_non_finite: bool,
        buffers: &mut SegmentBuffers,
        power: &mut [f64],
    ) -> bool {
        debug_assert_eq!(seg.len(), self.nperseg);
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            return unsafe { self.segment_power_avx2(seg, skip_non_finite, buffers, power) };
        }
        self.segment_power_impl(seg, skip_non_finite, buffers, power)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn segment_power_avx2(
        &self,
        seg: &[f64],
        skip_non_finite: bool,
        buffers: &mut SegmentBuffers,
        power: &mut [f64],
    ) -> bool {
        self.segment_power_impl(seg, skip_non_finite, buffers, power)
    }

    #[inline(always)]
    fn segment_power_impl(
        &self,
        seg: &[f64],
        skip_non_finite: bool,
        buffers: &mut SegmentBuffers,
        power: &mut [f64],
    ) -> bool {
        let n = self.nperseg;
        let SegmentBuffers {
            input,
            output,
            scratch,
        } = buffers;
        if self.detrend == Detrend::Constant && n >= 4 {
            // One pass for the window product and the segment sum. Subtracting the mean
            // before a periodic Hann window changes only bins 0 and 1 of the FFT, since
            // FFT(w) is n/2 at bin 0, -n/4 at bins 1 and n-1 and 0 elsewhere; so the
            // mean is taken off there afterwards instead of from every sample.
            let whole = n - n % 8;
            let lanes = window_and_sum(&mut input[..whole], &seg[..whole], &self.window[..whole]);
            let mut sum: f64 = lanes.iter().sum();
            for i in whole..n {
                input[i] = seg[i] * self.window[i];
                sum += seg[i];
            }
            let mean = sum / n as f64;
            // The mean is NaN/Inf exactly when a sample is: a free finiteness check.
            if skip_non_finite && !mean.is_finite() {
                return false;
            }
            self.transform(input, output, scratch);
            output[0].re -= mean * n as f64 / 2.0;
            output[1].re += mean * n as f64 / 4.0;
        } else {
            let (intercept, slope) = fit_trend(seg, self.detrend);
            let finite = match self.detrend {
                Detrend::None => super::lane_sum(seg).is_finite(),
                _ => intercept.is_finite() && slope.is_finite(),
            };
            if skip_non_finite && !finite {
                return false;
            }
            for (i, ((b, v), w)) in input.iter_mut().zip(seg).zip(&self.window).enumerate() {
                *b = (v - (intercept + slope * i as f64)) * w;
            }
            self.transform(input, output, scratch);
        }
        for (p, c) in power.iter_mut().zip(output.iter()) {
            *p = c.norm_sqr();
        }
        true
    }

    /// The spectrum from the sum of `count` segment powers (`bins()` values): scipy's
    /// density scaling, the mean over segments, and the one-sided doubling.
    pub fn finish(&self, mut psd: Vec<f64>, count: usize) -> Spectrum {
        let n = self.nperseg;
        let count = count.max(1) as f64;
        for (k, p) in psd.iter_mut().enumerate() {
            *p *= self.scale / count;
            // One-sided: double everything but DC and (for even n) Nyquist.
            let nyquist = n.is_multiple_of(2) && k == n / 2;
            if k != 0 && !nyquist {
                *p *= 2.0;
            }
        }
        let freqs = (0..psd.len()).map(|k| self.frequency(k)).collect();
        Spectrum { freqs, psd }
    }
}

/// realfft's even-length real FFT (a complex FFT of half the length, then a pass that
/// untangles the even and odd samples' spectra) with that pass done for the first bins
/// only. The live EEG path keeps 1-52 Hz of a 1 kHz signal: 105 of 1001 bins, and the full
/// pass was 16% of an EEG window's time (`perf`), for bins that are thrown away.
/// Hand-written because realfft has no partial form; the arithmetic is realfft 3.5's, term
/// for term (same twiddles, same operations), so the kept bins are bit for bit its
/// output, which a unit test checks.
struct FirstBins {
    fft: Arc<dyn rustfft::Fft<f64>>,
    /// realfft's twiddles: exp(-2 pi i k / n) / 2 for k = 1..n/4 (rounded up).
    twiddles: Vec<Complex<f64>>,
}

impl FirstBins {
    fn new(n: usize) -> Self {
        let count = if n.is_multiple_of(4) {
            n / 4
        } else {
            n / 4 + 1
        };
        let twiddles = (1..count)
            .map(|k| {
                let angle = -2f64 * std::f64::consts::PI / n as f64 * k as f64;
                Complex::new(angle.cos(), angle.sin()) * 0.5
            })
            .collect();
        let fft = rustfft::FftPlanner::new().plan_fft_forward(n / 2);
        Self { fft, twiddles }
    }

    /// Bins 0..kept (kept <= twiddles + 1) of the real FFT of `input` into `output`.
    fn transform(
        &self,
        input: &mut [f64],
        output: &mut [Complex<f64>],
        scratch: &mut [Complex<f64>],
        kept: usize,
    ) {
        let half = input.len() / 2;
        // SAFETY: Complex<f64> is #[repr(C)] { re: f64, im: f64 } with f64's alignment, so
        // 2 * half f64s are half complex values (realfft reads its input the same way).
        let pairs = unsafe {
            std::slice::from_raw_parts_mut(input.as_mut_ptr().cast::<Complex<f64>>(), half)
        };
        self.fft
            .process_outofplace_with_scratch(pairs, &mut output[..half], scratch);
        // kept <= half / 2, so every bin read below (half - k > half / 2) is one not yet
        // written.
        for k in 1..kept {
            let (out, out_rev) = (output[k], output[half - k]);
            let twiddle = self.twiddles[k - 1];
            let sum = out + out_rev;
            let diff = out - out_rev;
            let twiddled_re_sum = sum * twiddle.re;
            let twiddled_im_sum = sum * twiddle.im;
            let twiddled_re_diff = diff * twiddle.re;
            let twiddled_im_diff = diff * twiddle.im;
            let half_sum_re = 0.5 * sum.re;
            let half_diff_im = 0.5 * diff.im;
            let output_twiddled_real = twiddled_re_sum.im + twiddled_im_diff.re;
            let output_twiddled_im = twiddled_im_sum.im - twiddled_re_diff.re;
            output[k] = Complex::new(
                half_sum_re + output_twiddled_real,
                half_diff_im + output_twiddled_im,
            );
        }
        let first = output[0];
        output[0] = Complex::new(first.re + first.im, 0.0);
    }
}

/// `dst = samples * window` and the samples' sums in eight lanes (lane j takes samples
/// j, j + 8, ...); lengths are multiples of 8.
#[inline(always)]
fn window_and_sum(dst: &mut [f64], samples: &[f64], window: &[f64]) -> [f64; 8] {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        // SAFETY: the CPU has AVX2 (checked at run time just above).
        return unsafe { window_and_sum_avx2(dst, samples, window) };
    }
    let mut lanes = [0.0; 8];
    for ((dst, v), w) in dst
        .chunks_exact_mut(8)
        .zip(samples.chunks_exact(8))
        .zip(window.chunks_exact(8))
    {
        for j in 0..8 {
            dst[j] = v[j] * w[j];
            lanes[j] += v[j];
        }
    }
    lanes
}

/// `window_and_sum` in AVX2 registers, written out because the compiler kept the loop
/// scalar (`perf annotate`: one `vmulsd`, `vaddsd` and store per sample). The same
/// products and the same lane sums, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn window_and_sum_avx2(dst: &mut [f64], samples: &[f64], window: &[f64]) -> [f64; 8] {
    use std::arch::x86_64::*;
    let mut sums = [_mm256_setzero_pd(); 2];
    for ((dst, v), w) in dst
        .chunks_exact_mut(8)
        .zip(samples.chunks_exact(8))
        .zip(window.chunks_exact(8))
    {
        for (half, sum) in sums.iter_mut().enumerate() {
            // SAFETY: each chunk holds 8 values; this reads or writes 4 of them, unaligned.
            unsafe {
                let x = _mm256_loadu_pd(v.as_ptr().add(4 * half));
                let product = _mm256_mul_pd(x, _mm256_loadu_pd(w.as_ptr().add(4 * half)));
                _mm256_storeu_pd(dst.as_mut_ptr().add(4 * half), product);
                *sum = _mm256_add_pd(*sum, x);
            }
        }
    }
    let mut lanes = [0.0; 8];
    // SAFETY: lanes holds 8 values: two unaligned stores of 4.
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), sums[0]);
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), sums[1]);
    }
    lanes
}

/// (intercept, slope) to subtract from a segment.
#[inline(always)]
fn fit_trend(seg: &[f64], detrend: Detrend) -> (f64, f64) {
    let n = seg.len() as f64;
    match detrend {
        Detrend::None => (0.0, 0.0),
        Detrend::Constant => (super::lane_sum(seg) / n, 0.0),
        Detrend::Linear => {
            if seg.len() < 2 {
                return (seg.iter().sum::<f64>() / n, 0.0);
            }
            let mean_i = (n - 1.0) / 2.0;
            let mean_v = seg.iter().sum::<f64>() / n;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (i, v) in seg.iter().enumerate() {
                let di = i as f64 - mean_i;
                sxy += di * (v - mean_v);
                sxx += di * di;
            }
            let slope = sxy / sxx;
            (mean_v - slope * mean_i, slope)
        }
    }
}

/// scipy.signal.welch(x, fs, window="hann", nperseg, noverlap, detrend).
pub fn welch(x: &[f64], fs: f64, config: WelchConfig) -> Result<Spectrum, WelchError> {
    Ok(Welch::new(config, fs, x.len())?.spectrum(x))
}

/// Power in [low, high] Hz, unit^2: the trapezoid integral of the PSD, read as a
/// piecewise-linear function of frequency, from exactly `low` to exactly `high`.
///
/// Where both edges fall on bins this is scipy's
/// `trapezoid(psd[(f >= low) & (f <= high)], f[mask])`. Where an edge falls between two
/// bins, the PSD is interpolated linearly at the edge and the trapezoid is cut there. So a
/// grid shifted by a hair (a sample rate of 256.016 Hz instead of 256 puts bins at 7.9995
/// and 12.9992 Hz instead of 8 and 13) moves the result by a hair too, instead of dropping
/// a whole trapezoid at each edge, which moved alpha power by a third. Adjacent bands add up
/// to the band that spans them.
pub fn band_power(spectrum: &Spectrum, low: f64, high: f64) -> f64 {
    let (f, p) = (&spectrum.freqs, &spectrum.psd);
    let n = f.len();
    // NaN edges fail `low < high` too.
    if n < 2 || low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
        return 0.0;
    }
    let (low, high) = (low.max(f[0]), high.min(f[n - 1]));
    if low >= high {
        return 0.0;
    }
    // The PSD at x, linear between the bins around it (f is increasing).
    let at = |x: f64| -> f64 {
        let i = f.partition_point(|v| *v < x).min(n - 1);
        if f[i] == x || i == 0 {
            return p[i];
        }
        let t = (x - f[i - 1]) / (f[i] - f[i - 1]);
        p[i - 1] + t * (p[i] - p[i - 1])
    };
    // Bins strictly inside the band, between the two interpolated edge points.
    let inside = f.partition_point(|v| *v <= low)..f.partition_point(|v| *v < high);
    let points = std::iter::once((low, at(low)))
        .chain(inside.map(|i| (f[i], p[i])))
        .chain(std::iter::once((high, at(high))));
    let mut total = 0.0;
    let mut previous: Option<(f64, f64)> = None;
    for (x, y) in points {
        if let Some((x0, y0)) = previous {
            total += (x - x0) * (y0 + y) / 2.0;
        }
        previous = Some((x, y));
    }
    total
}

/// Differential entropy of a Gaussian with the band's power as variance:
/// 0.5 * ln(2 * pi * e * power), nats (Duan et al. 2013, the SEED features).
pub fn differential_entropy(power: f64) -> f64 {
    0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * power).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_windowing_equals_the_plain_loop() {
        if !crate::signals::dsp::has_avx2() {
            return;
        }
        let samples: Vec<f64> = (0..2000)
            .map(|i| ((i * 7919) % 997) as f64 / 7.0 - 60.0)
            .collect();
        let window: Vec<f64> = (0..2000).map(|i| (i as f64 * 0.01).sin()).collect();
        let (mut fast, mut plain) = (vec![0.0; 2000], vec![0.0; 2000]);
        // SAFETY: the CPU has AVX2 (checked above).
        let fast_sums = unsafe { window_and_sum_avx2(&mut fast, &samples, &window) };
        let mut plain_sums = [0.0; 8];
        for i in 0..2000 {
            plain[i] = samples[i] * window[i];
            plain_sums[i % 8] += samples[i];
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&plain));
        assert_eq!(bits(&fast_sums), bits(&plain_sums));
    }

    #[test]
    fn the_first_bins_are_realffts_bins_bit_for_bit() {
        // Even lengths with n % 4 == 0 and == 2, detrends that take both FFT call sites,
        // and cuts at, below and past the partial pass's reach (n / 4 bins).
        for n in [6, 250, 256, 1000, 2000] {
            let x: Vec<f64> = (0..3 * n)
                .map(|i| ((i * 7919) % 997) as f64 / 10.0 + (i as f64 * 0.37).sin() * 20.0)
                .collect();
            for detrend in [Detrend::Constant, Detrend::Linear, Detrend::None] {
                let config = WelchConfig {
                    nperseg: n,
                    noverlap: None,
                    detrend,
                };
                let full = Welch::new(config, 1000.0, x.len()).unwrap().spectrum(&x);
                for hz in [0.0, 30.0, 52.0, 250.0, 260.0, 400.0] {
                    let welch = Welch::new(config, 1000.0, x.len()).unwrap().up_to(hz);
                    let cut = welch.spectrum(&x);
                    assert!(cut.psd.len() <= full.psd.len());
                    let same = cut
                        .psd
                        .iter()
                        .zip(&full.psd)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "n {n}, {detrend:?}, up to {hz} Hz ({} bins)",
                        cut.psd.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_sine_peaks_at_its_frequency_with_its_power() {
        let fs = 256.0;
        let x: Vec<f64> = (0..4096)
            .map(|i| 2.0 * (2.0 * std::f64::consts::PI * 10.0 * i as f64 / fs).sin())
            .collect();
        let s = welch(
            &x,
            fs,
            WelchConfig {
                nperseg: 512,
                noverlap: None,
                detrend: Detrend::Constant,
            },
        )
        .unwrap();
        let peak = (0..s.psd.len())
            .max_by(|&a, &b| s.psd[a].total_cmp(&s.psd[b]))
            .unwrap();
        assert_eq!(s.freqs[peak], 10.0);
        // A sine of amplitude 2 has power 2.
        let p = band_power(&s, 8.0, 12.0);
        assert!((p - 2.0).abs() < 0.05, "{p}");
    }

    #[test]
    fn rejects_bad_input() {
        let c = WelchConfig {
            nperseg: 8,
            noverlap: Some(8),
            detrend: Detrend::None,
        };
        assert_eq!(
            welch(&[1.0; 16], 10.0, c).unwrap_err(),
            WelchError::Overlap {
                noverlap: 8,
                nperseg: 8
            }
        );
        assert_eq!(
            welch(
                &[],
                10.0,
                WelchConfig {
                    noverlap: None,
                    ..c
                }
            )
            .unwrap_err(),
            WelchError::Empty
        );
    }

    #[test]
    fn band_power_is_continuous_when_the_grid_shifts() {
        // A PSD on a 0.5 Hz grid, and the same PSD on a grid stretched by 256.016/256.
        let psd: Vec<f64> = (0..100)
            .map(|i| 1.0 + (i as f64 * 0.3).sin().abs())
            .collect();
        let grid = |scale: f64| Spectrum {
            freqs: (0..100).map(|i| i as f64 * 0.5 * scale).collect(),
            psd: psd.clone(),
        };
        let exact = grid(1.0);
        let shifted = grid(256.016 / 256.0);
        for (low, high) in [
            (1.0, 4.0),
            (4.0, 8.0),
            (8.0, 13.0),
            (13.0, 30.0),
            (30.0, 45.0),
        ] {
            let a = band_power(&exact, low, high);
            let b = band_power(&shifted, low, high);
            assert!((a - b).abs() / a < 1e-3, "{low}-{high} Hz: {a} vs {b}");
        }
        // On the grid, it is the trapezoid over the bins in [low, high], as scipy's.
        let by_hand: f64 = (16..26).map(|i| 0.5 * (psd[i] + psd[i + 1]) / 2.0).sum();
        assert!((band_power(&exact, 8.0, 13.0) - by_hand).abs() < 1e-12);
        // Adjacent bands add up to the band that spans them, also off the grid.
        let sum = band_power(&shifted, 8.0, 10.3) + band_power(&shifted, 10.3, 13.0);
        assert!((sum - band_power(&shifted, 8.0, 13.0)).abs() < 1e-12);
        // A band narrower than a bin still has the power under it.
        assert!((band_power(&exact, 10.1, 10.2) - 0.1 * psd[20]).abs() < 0.1 * 0.2);
    }
}
