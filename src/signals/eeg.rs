//! The EEG encoder: per window, Welch band powers (absolute, relative) and differential
//! entropy per channel, frontal alpha asymmetry, the beta/alpha arousal and
//! beta/(alpha+theta) engagement indices, channel quality, and an interpretable
//! valence/arousal estimate.

use std::collections::VecDeque;

use serde::Serialize;

use super::dsp::{
    Detrend, SegmentBuffers, Spectrum, Welch, WelchConfig, WelchError, band_power,
    differential_entropy,
};
use super::quality::{ChannelQuality, QualityThresholds, assess};

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Band {
    pub name: String,
    pub low_hz: f64,
    pub high_hz: f64,
}

impl Band {
    pub fn new(name: &str, low_hz: f64, high_hz: f64) -> Self {
        Self {
            name: name.to_string(),
            low_hz,
            high_hz,
        }
    }

    /// delta 1-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz.
    pub fn defaults() -> Vec<Band> {
        vec![
            Band::new("delta", 1.0, 4.0),
            Band::new("theta", 4.0, 8.0),
            Band::new("alpha", 8.0, 13.0),
            Band::new("beta", 13.0, 30.0),
            Band::new("gamma", 30.0, 45.0),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandPower {
    pub channel: String,
    pub band: String,
    /// Integrated Welch PSD over the band, unit^2 (uV^2 for EEG).
    pub absolute: f64,
    /// absolute / power over the span of all bands (1-45 Hz by default), `[0,1]`; None
    /// when that power is 0.
    pub relative: Option<f64>,
    /// 0.5 * ln(2*pi*e*absolute), nats; None when absolute is 0 (no finite entropy).
    pub differential_entropy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asymmetry {
    /// "F4-F3": right minus left.
    pub pair: String,
    /// ln(alpha right) - ln(alpha left). Alpha power is inversely related to cortical
    /// activity, so > 0 means relatively more left-frontal activity (approach motivation,
    /// Davidson 1992; Coan & Allen 2004).
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct EegFeatures {
    pub band_powers: Vec<BandPower>,
    pub asymmetry: Vec<Asymmetry>,
    /// beta / alpha, mean over usable channels; None without usable channels or without
    /// bands named "alpha" and "beta".
    pub arousal_index: Option<f64>,
    /// beta / (alpha + theta), mean over usable channels (Pope et al. 1995).
    pub engagement_index: Option<f64>,
}

/// Valence/arousal with how much to trust it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectEstimate {
    /// `[-1,1]`.
    pub valence: f64,
    /// `[0,1]`.
    pub arousal: f64,
    /// `[0,1]`; 0 = no usable evidence.
    pub reliability: f64,
    pub method: String,
}

/// The documented EEG valence/arousal model, version 1 (no training, every step readable):
/// - valence = tanh(2 * mean frontal alpha asymmetry over the available pairs): an FAA of
///   +0.25 (a typical between-state difference) maps to +0.46;
/// - arousal = logistic(ln(beta/alpha index)) = index / (1 + index): 0.5 when beta and alpha
///   power are equal, rising with relative beta;
/// - reliability = usable-channel fraction, halved when no asymmetry pair was usable (then
///   valence is 0 and carries no information).
pub const EEG_VA_METHOD: &str = "eeg-faa-beta-alpha-v1";

pub fn eeg_affect_estimate(features: &EegFeatures, quality: &[ChannelQuality]) -> AffectEstimate {
    let usable = quality.iter().filter(|q| q.usable).count() as f64 / quality.len().max(1) as f64;
    let Some(index) = features.arousal_index else {
        return AffectEstimate {
            valence: 0.0,
            arousal: 0.5,
            reliability: 0.0,
            method: EEG_VA_METHOD.to_string(),
        };
    };
    let (valence, pair_factor) = if features.asymmetry.is_empty() {
        (0.0, 0.5)
    } else {
        let faa = features.asymmetry.iter().map(|a| a.value).sum::<f64>()
            / features.asymmetry.len() as f64;
        ((2.0 * faa).tanh(), 1.0)
    };
    AffectEstimate {
        valence,
        arousal: index / (1.0 + index),
        reliability: usable * pair_factor,
        method: EEG_VA_METHOD.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EegConfig {
    pub bands: Vec<Band>,
    /// Mains frequency, Hz (50 or 60).
    pub line_hz: f64,
    /// Welch segment length, s (shortened to the window).
    pub segment_s: f64,
    pub thresholds: QualityThresholds,
}

impl Default for EegConfig {
    fn default() -> Self {
        Self {
            bands: Band::defaults(),
            line_hz: 50.0,
            segment_s: 2.0,
            thresholds: QualityThresholds::EEG_MICROVOLTS,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EegConfigError {
    #[error(
        "band {name:?}: edges must satisfy 0 <= low < high <= Nyquist ({nyquist} Hz), got {low}-{high} Hz"
    )]
    Band {
        name: String,
        low: f64,
        high: f64,
        nyquist: f64,
    },
    #[error("at least one EEG band is needed")]
    NoBands,
    #[error(transparent)]
    Welch(#[from] WelchError),
}

/// Frontal pairs for asymmetry, (right, left), located by 10-20/10-10 label.
const ASYMMETRY_PAIRS: [(&str, &str); 2] = [("F4", "F3"), ("F8", "F7")];

/// Reduces a recording's channel label to its 10-20 name: "EEG F3-REF" -> "F3",
/// "Fp1." -> "FP1".
pub fn ten_twenty_name(label: &str) -> String {
    let upper = label.trim().to_ascii_uppercase();
    let upper = upper
        .strip_prefix("EEG")
        .map(str::trim_start)
        .unwrap_or(&upper);
    let head = upper.split(['-', ' ', ':']).next().unwrap_or("");
    head.trim_end_matches('.').to_string()
}

pub struct EegEncoder {
    labels: Vec<String>,
    config: EegConfig,
    welch: Welch,
    /// (pair name, right index, left index).
    pairs: Vec<(String, usize, usize)>,
    span: (f64, f64),
    /// Segment powers of the stream's recent windows (`encode_stream`).
    cache: SegmentCache,
}

/// The Welch segment powers of recent windows, per channel, by the stream index of each
/// segment's first sample. With 4 s windows, 2 s segments at 50% overlap and a 1 s hop,
/// two of a window's three segments were already in the previous window: each segment is
/// transformed once instead of three times. Samples never change once received, so a
/// power keyed by its stream position stays valid; entries before the current window are
/// dropped, so memory stays bounded.
#[derive(Default)]
struct SegmentCache {
    /// (first sample, per channel: the power, or None for a segment holding NaN/Inf),
    /// in increasing order of first sample.
    segments: VecDeque<(u64, Vec<Option<Vec<f64>>>)>,
    /// Segments transformed so far (all channels count as one), for tests of the reuse.
    transformed: u64,
}

impl EegEncoder {
    pub fn new(
        labels: Vec<String>,
        fs: f64,
        window_len: usize,
        config: EegConfig,
    ) -> Result<Self, EegConfigError> {
        if config.bands.is_empty() {
            return Err(EegConfigError::NoBands);
        }
        let nyquist = fs / 2.0;
        for b in &config.bands {
            if !(b.low_hz >= 0.0 && b.low_hz < b.high_hz && b.high_hz <= nyquist) {
                return Err(EegConfigError::Band {
                    name: b.name.clone(),
                    low: b.low_hz,
                    high: b.high_hz,
                    nyquist,
                });
            }
        }
        let nperseg = ((config.segment_s * fs).round() as usize).max(1);
        let highest_band = config
            .bands
            .iter()
            .map(|b| b.high_hz)
            .fold(f64::NEG_INFINITY, f64::max);
        // Only the bins the bands and the mains check read are computed.
        let welch = Welch::new(
            WelchConfig {
                nperseg,
                noverlap: None,
                detrend: Detrend::Constant,
            },
            fs,
            window_len,
        )?
        .up_to(highest_band.max(config.line_hz + LINE_HALF_WIDTH_HZ));
        let names: Vec<String> = labels.iter().map(|l| ten_twenty_name(l)).collect();
        let find = |n: &str| names.iter().position(|x| x == n);
        let pairs = ASYMMETRY_PAIRS
            .iter()
            .filter_map(|(r, l)| Some((format!("{r}-{l}"), find(r)?, find(l)?)))
            .collect();
        let span = (
            config
                .bands
                .iter()
                .map(|b| b.low_hz)
                .fold(f64::INFINITY, f64::min),
            config
                .bands
                .iter()
                .map(|b| b.high_hz)
                .fold(f64::NEG_INFINITY, f64::max),
        );
        Ok(Self {
            labels,
            config,
            welch,
            pairs,
            span,
            cache: SegmentCache::default(),
        })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn bands(&self) -> &[Band] {
        &self.config.bands
    }

    /// Features of one window (channel-major samples). Channels that are not usable are
    /// reported in quality and left out of every feature.
    pub fn encode(&self, window: &[Vec<f64>]) -> (Vec<ChannelQuality>, EegFeatures) {
        let mut fresh = SegmentCache::default();
        self.encode_with(window, 0, &mut fresh)
    }

    /// `encode` for a window of a stream whose first sample is the stream's sample
    /// `first_sample`: Welch segments already transformed for an earlier window of the same
    /// stream are reused. The result equals `encode`'s, bit for bit.
    pub fn encode_stream(
        &mut self,
        window: &[Vec<f64>],
        first_sample: u64,
    ) -> (Vec<ChannelQuality>, EegFeatures) {
        let mut cache = std::mem::take(&mut self.cache);
        let encoded = self.encode_with(window, first_sample, &mut cache);
        self.cache = cache;
        encoded
    }

    /// Lines the cache up with this window's segments: entries before the window or off
    /// its segment grid are dropped, and an empty entry is made for each segment not yet
    /// transformed. Returns (cache position, offset in the window) of those new segments.
    fn align_cache(
        &self,
        channels: usize,
        len: usize,
        first_sample: u64,
        cache: &mut SegmentCache,
    ) -> Vec<(usize, usize)> {
        // A cache from another channel layout (never the case within one stream) is reset.
        if cache
            .segments
            .front()
            .is_some_and(|(_, powers)| powers.len() != channels)
        {
            cache.segments.clear();
        }
        let mut missing = Vec::new();
        let mut at = 0;
        for s in 0..self.welch.segments(len) {
            let offset = s * self.welch.step();
            let start = first_sample + offset as u64;
            while cache.segments.get(at).is_some_and(|(k, _)| *k < start) {
                cache.segments.remove(at);
            }
            if cache.segments.get(at).is_none_or(|(k, _)| *k != start) {
                cache.segments.insert(at, (start, vec![None; channels]));
                cache.transformed += 1;
                missing.push((at, offset));
            }
            at += 1;
        }
        cache.segments.truncate(at);
        missing
    }

    /// One channel's spectrum over the segments that hold no NaN/Inf sample (None when
    /// none does), transforming only the `missing` segments.
    fn channel_spectrum(
        &self,
        channel: usize,
        x: &[f64],
        missing: &[(usize, usize)],
        cache: &mut SegmentCache,
        buffers: &mut SegmentBuffers,
    ) -> Option<Spectrum> {
        let welch = &self.welch;
        for &(at, offset) in missing {
            let mut power = vec![0.0; welch.bins()];
            let seg = &x[offset..offset + welch.segment_len()];
            cache.segments[at].1[channel] = welch
                .segment_power(seg, true, buffers, &mut power)
                .then_some(power);
        }
        let mut psd = vec![0.0; welch.bins()];
        let mut used = 0;
        for (_, powers) in cache.segments.iter() {
            if let Some(power) = &powers[channel] {
                used += 1;
                for (p, q) in psd.iter_mut().zip(power) {
                    *p += q;
                }
            }
        }
        (used > 0).then(|| welch.finish(psd, used))
    }

    fn encode_with(
        &self,
        window: &[Vec<f64>],
        first_sample: u64,
        cache: &mut SegmentCache,
    ) -> (Vec<ChannelQuality>, EegFeatures) {
        let mut quality = Vec::with_capacity(window.len());
        let mut features = EegFeatures::default();
        let len = window.first().map_or(0, Vec::len);
        let missing = self.align_cache(window.len(), len, first_sample, cache);
        let mut buffers = self.welch.buffers();
        // Per channel: the band powers when usable. Quality and the new segments are
        // computed channel by channel, while that channel's samples are in cache.
        let mut powers: Vec<Option<Vec<f64>>> = Vec::with_capacity(window.len());
        for (channel, (label, x)) in self.labels.iter().zip(window).enumerate() {
            let mut q = assess(label, x, self.config.thresholds);
            let spectrum = self.channel_spectrum(channel, x, &missing, cache, &mut buffers);
            let Some(spectrum) = spectrum else {
                q.usable = false;
                quality.push(q);
                powers.push(None);
                continue;
            };
            let total = band_power(&spectrum, self.span.0, self.span.1);
            q.line_noise_ratio = line_noise_ratio(
                &spectrum,
                self.welch.top_frequency(),
                self.config.line_hz,
                total,
            );
            let band_values: Vec<f64> = self
                .config
                .bands
                .iter()
                .map(|b| band_power(&spectrum, b.low_hz, b.high_hz))
                .collect();
            if q.usable {
                for (b, &absolute) in self.config.bands.iter().zip(&band_values) {
                    features.band_powers.push(BandPower {
                        channel: label.clone(),
                        band: b.name.clone(),
                        absolute,
                        relative: (total > 0.0).then(|| absolute / total),
                        differential_entropy: (absolute > 0.0)
                            .then(|| differential_entropy(absolute)),
                    });
                }
                powers.push(Some(band_values));
            } else {
                powers.push(None);
            }
            quality.push(q);
        }
        let band = |name: &str| self.config.bands.iter().position(|b| b.name == name);
        if let Some(alpha) = band("alpha") {
            for (pair, right, left) in &self.pairs {
                if let (Some(r), Some(l)) = (&powers[*right], &powers[*left])
                    && r[alpha] > 0.0
                    && l[alpha] > 0.0
                {
                    features.asymmetry.push(Asymmetry {
                        pair: pair.clone(),
                        value: r[alpha].ln() - l[alpha].ln(),
                    });
                }
            }
            if let Some(beta) = band("beta") {
                let usable: Vec<&Vec<f64>> =
                    powers.iter().flatten().filter(|p| p[alpha] > 0.0).collect();
                if !usable.is_empty() {
                    let n = usable.len() as f64;
                    features.arousal_index =
                        Some(usable.iter().map(|p| p[beta] / p[alpha]).sum::<f64>() / n);
                    if let Some(theta) = band("theta") {
                        features.engagement_index = Some(
                            usable
                                .iter()
                                .map(|p| p[beta] / (p[alpha] + p[theta]))
                                .sum::<f64>()
                                / n,
                        );
                    }
                }
            }
        }
        (quality, features)
    }

    /// The classifier's input: ln band power per (channel, band) in channel order, then the
    /// asymmetry pairs; None when a channel or pair is missing (unusable) in this window.
    pub fn feature_vector(&self, features: &EegFeatures) -> Option<Vec<f64>> {
        let expected = self.labels.len() * self.config.bands.len();
        if features.band_powers.len() != expected || features.asymmetry.len() != self.pairs.len() {
            return None;
        }
        let mut v: Vec<f64> = features
            .band_powers
            .iter()
            .map(|b| b.absolute.max(1e-30).ln())
            .collect();
        v.extend(features.asymmetry.iter().map(|a| a.value));
        Some(v)
    }

    /// Names of the feature vector's entries.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .labels
            .iter()
            .flat_map(|l| {
                self.config
                    .bands
                    .iter()
                    .map(move |b| format!("ln_{}_{}", b.name, l))
            })
            .collect();
        names.extend(self.pairs.iter().map(|(p, _, _)| format!("faa_{p}")));
        names
    }
}

/// The mains band is line_hz +- this, Hz.
const LINE_HALF_WIDTH_HZ: f64 = 2.0;

/// Power within LINE_HALF_WIDTH_HZ of the mains over `total`; None when the mains band
/// does not fit under `top_hz`, the spectrum's highest frequency, or there is no power.
fn line_noise_ratio(spectrum: &Spectrum, top_hz: f64, line_hz: f64, total: f64) -> Option<f64> {
    if line_hz + LINE_HALF_WIDTH_HZ > top_hz || total <= 0.0 {
        return None;
    }
    Some(
        band_power(
            spectrum,
            line_hz - LINE_HALF_WIDTH_HZ,
            line_hz + LINE_HALF_WIDTH_HZ,
        ) / total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(fs: f64, n: usize, hz: f64, amplitude: f64, phase: f64) -> Vec<f64> {
        (0..n)
            .map(|i| amplitude * (2.0 * PI * hz * i as f64 / fs + phase).sin())
            .collect()
    }

    fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    #[test]
    fn labels_reduce_to_ten_twenty_names() {
        assert_eq!(ten_twenty_name("EEG F3-REF"), "F3");
        assert_eq!(ten_twenty_name("Fp1."), "FP1");
        assert_eq!(ten_twenty_name("f4"), "F4");
    }

    #[test]
    fn alpha_dominant_channels_give_alpha_power_and_asymmetry() {
        let fs = 256.0;
        let n = 1024;
        // F3 has twice the alpha amplitude of F4 -> 4x power -> FAA = ln(1/4).
        let beta = sine(fs, n, 20.0, 5.0, 0.3);
        let f3 = add(&sine(fs, n, 10.0, 20.0, 0.0), &beta);
        let f4 = add(&sine(fs, n, 10.0, 10.0, 1.0), &beta);
        let enc =
            EegEncoder::new(vec!["F3".into(), "F4".into()], fs, n, EegConfig::default()).unwrap();
        let (quality, features) = enc.encode(&[f3, f4]);
        assert!(quality.iter().all(|q| q.usable));
        assert_eq!(features.band_powers.len(), 10);
        let alpha_f3 = features
            .band_powers
            .iter()
            .find(|b| b.channel == "F3" && b.band == "alpha")
            .unwrap();
        assert!(
            (alpha_f3.absolute - 200.0).abs() / 200.0 < 0.05,
            "{alpha_f3:?}"
        );
        assert!(alpha_f3.relative.unwrap() > 0.85);
        assert_eq!(features.asymmetry.len(), 1);
        assert!(
            (features.asymmetry[0].value - 0.25f64.ln()).abs() < 0.05,
            "{:?}",
            features.asymmetry
        );
        let estimate = eeg_affect_estimate(&features, &quality);
        assert!(
            estimate.valence < -0.5 && estimate.reliability == 1.0,
            "{estimate:?}"
        );
        assert_eq!(
            enc.feature_vector(&features).unwrap().len(),
            enc.feature_names().len()
        );
    }

    #[test]
    fn a_dropout_is_excluded_not_spread() {
        let fs = 256.0;
        let n = 1024;
        let clean = add(&sine(fs, n, 10.0, 20.0, 0.0), &sine(fs, n, 20.0, 5.0, 0.0));
        let mut holed = clean.clone();
        for v in &mut holed[0..100] {
            *v = f64::NAN;
        }
        let enc = EegEncoder::new(vec!["Cz".into()], fs, n, EegConfig::default()).unwrap();
        let (q, f) = enc.encode(&[holed]);
        assert_eq!(q[0].non_finite_samples, 100);
        let (_, reference) = enc.encode(&[clean]);
        let a = f.band_powers[2].absolute;
        let b = reference.band_powers[2].absolute;
        assert!(a.is_finite() && (a - b).abs() / b < 0.05, "{a} vs {b}");
    }

    #[test]
    fn stream_windows_reuse_segments_and_equal_isolated_windows_bit_for_bit() {
        let fs = 250.0;
        let len = 1000;
        // 10 s on two channels with a dropout, so some cached segments are NaN ones.
        let total = 2500;
        let mut a = add(
            &sine(fs, total, 10.0, 20.0, 0.0),
            &sine(fs, total, 22.0, 5.0, 0.4),
        );
        for v in &mut a[1210..1260] {
            *v = f64::NAN;
        }
        let b: Vec<f64> = (0..total)
            .map(|i| ((i * 7919) % 613) as f64 / 10.0 + 3.0 * (i as f64 * 0.31).sin())
            .collect();
        // Hops aligned with the 250-sample segment step (reuse), and not (no reuse).
        for hop in [250, 500, 333] {
            let mut streaming = EegEncoder::new(
                vec!["F3".into(), "F4".into()],
                fs,
                len,
                EegConfig::default(),
            )
            .unwrap();
            let mut start = 0;
            while start + len <= total {
                let window = [
                    a[start..start + len].to_vec(),
                    b[start..start + len].to_vec(),
                ];
                let isolated = streaming.encode(&window);
                let streamed = streaming.encode_stream(&window, start as u64);
                assert_eq!(
                    format!("{isolated:?}"),
                    format!("{streamed:?}"),
                    "hop {hop}, window at {start}"
                );
                assert!(streaming.cache.segments.len() <= 3);
                start += hop;
            }
            // Windows of 1000 samples hold 3 segments of 500 (2 s) at a 250 step. At a hop
            // of 250 each later window brings 1 new segment; at 500, 2; at 333 none line up.
            let windows = (total - len) / hop + 1;
            let expected = match hop {
                250 => 3 + (windows - 1),
                500 => 3 + 2 * (windows - 1),
                _ => 3 * windows,
            };
            assert_eq!(streaming.cache.transformed, expected as u64, "hop {hop}");
        }
    }

    #[test]
    fn a_spectrum_cut_at_a_frequency_is_a_prefix_of_the_full_one() {
        let fs = 1000.0;
        let x = add(
            &sine(fs, 4000, 10.0, 20.0, 0.0),
            &sine(fs, 4000, 50.0, 3.0, 0.2),
        );
        let config = WelchConfig {
            nperseg: 2000,
            noverlap: None,
            detrend: Detrend::Constant,
        };
        let full = Welch::new(config, fs, x.len()).unwrap();
        let whole = full.spectrum(&x);
        let cut = Welch::new(config, fs, x.len()).unwrap().up_to(52.0);
        let part = cut.spectrum(&x);
        // Bins 0..=104 are 0..=52 Hz at 0.5 Hz.
        assert_eq!(part.freqs.len(), 105);
        assert_eq!(part.freqs[..], whole.freqs[..105]);
        assert_eq!(part.psd[..], whole.psd[..105]);
        assert_eq!(cut.top_frequency(), 500.0);
    }

    #[test]
    fn bad_bands_are_rejected() {
        let config = EegConfig {
            bands: vec![Band::new("x", 30.0, 10.0)],
            ..EegConfig::default()
        };
        assert!(matches!(
            EegEncoder::new(vec!["Cz".into()], 256.0, 512, config),
            Err(EegConfigError::Band { .. })
        ));
    }
}
