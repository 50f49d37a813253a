//! One stream's analysis: chunks in (sample-major, any size), feature windows out. The
//! encoder for the stream's kind runs on each window's context, so results depend only on
//! the samples, never on how they were chunked, and memory stays bounded by the context.
//!
//! Contexts: EEG uses the window itself; ECG/PPG look back 10 s (enough beats for RR
//! intervals); EDA 60 s (the 0.05 Hz tonic/phasic split needs it); respiration 30 s.
//! Peripheral streams analyse their first channel; every channel gets quality.

use super::cardiac;
use super::dsp::lane_sum;
use super::eda;
use super::eeg::{Band, EegConfig, EegConfigError, EegEncoder, eeg_affect_estimate};
use super::features::{
    CardiacWindow, EdaWindow, FeatureWindow, Features, RespirationWindow, Scr, SignalKind,
    StreamWarning, WarningKind,
};
use super::peaks::fill_non_finite;
use super::quality::{ChannelQuality, QualityThresholds, assess};
use super::respiration;
use super::window::{Window, WindowError, Windower};

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub label: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub id: String,
    pub kind: SignalKind,
    pub rate_hz: f64,
    pub channels: Vec<ChannelSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    pub window_s: f64,
    pub hop_s: f64,
    pub bands: Vec<Band>,
    pub line_hz: f64,
    /// Seconds at the start of a stream used as the heart-rate baseline; 0 = none.
    pub baseline_s: f64,
    /// What a stream may cost; the server sets it from its `[limits]`.
    pub budget: SignalBudget,
}

/// What one stream may make the analyzer hold, checked before allocating: a client's
/// declared rate, channels, window and gaps size the buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalBudget {
    pub max_rate_hz: f64,
    pub max_channels: usize,
    /// Values (samples x channels) held for the window and look-back.
    pub max_values_held: u64,
    /// Values (samples x channels) filled with NaN for one gap.
    pub max_gap_fill_values: u64,
    /// Longest stream id, channel label or unit, bytes.
    pub max_name_bytes: usize,
    /// Feature windows one request (or one chunk of a session) may produce: a hop of one
    /// sample on a long recording would otherwise compute and answer one window per sample.
    pub max_windows_per_request: u64,
}

impl Default for SignalBudget {
    /// Serves a 256-channel amplifier at 2 kHz (and EDA's 60 s look-back at that size):
    /// 32 M values held is 256 MB per stream.
    fn default() -> Self {
        Self {
            max_rate_hz: 100_000.0,
            max_channels: 1024,
            max_values_held: 32_000_000,
            max_gap_fill_values: 32_000_000,
            max_name_bytes: 256,
            max_windows_per_request: 10_000,
        }
    }
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            window_s: 4.0,
            hop_s: 1.0,
            bands: Band::defaults(),
            line_hz: 50.0,
            baseline_s: 0.0,
            budget: SignalBudget::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StreamError {
    #[error("stream {id:?}: sample rate must be positive and finite, got {rate}")]
    Rate { id: String, rate: f64 },
    #[error("stream {id:?} has no channels")]
    NoChannels { id: String },
    #[error("stream {id:?}: {what}; the limit is the config key {key} = {limit}")]
    OverBudget {
        id: String,
        what: String,
        key: &'static str,
        limit: String,
    },
    #[error(
        "window {window_s} s and hop {hop_s} s must be positive and give at least one sample, and fewer than 1e9, at {rate} Hz"
    )]
    Window {
        window_s: f64,
        hop_s: f64,
        rate: f64,
    },
    #[error("mains frequency must be 50 or 60 Hz, got {0}")]
    LineFrequency(f64),
    #[error("stream {id:?}: {source}")]
    Eeg { id: String, source: EegConfigError },
    #[error(
        "stream {id:?}: chunk of {values} values is not a whole number of {channels}-channel samples"
    )]
    Ragged {
        id: String,
        values: usize,
        channels: usize,
    },
    #[error("stream {id:?}: {timestamps} timestamps for {samples} samples")]
    TimestampCount {
        id: String,
        timestamps: usize,
        samples: usize,
    },
    #[error(
        "stream {id:?}: timestamps must be finite and strictly increasing; sample {index} goes from {before} to {after}"
    )]
    NonMonotonic {
        id: String,
        index: usize,
        before: f64,
        after: f64,
    },
    #[error("stream {id:?}: first_timestamp must be finite, got {0}", .value)]
    Timestamp { id: String, value: f64 },
    /// Unreachable: shapes are checked before windowing; kept as an error, not a panic.
    #[error(transparent)]
    Windowing(#[from] WindowError),
    #[error(
        "stream {id:?}: a gap of {samples} samples ({seconds:.1} s) is longer than the 600 s that are filled; start a new stream"
    )]
    GapTooLong {
        id: String,
        samples: u64,
        seconds: f64,
    },
}

/// A block of consecutive samples.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Time of the first sample, s, client clock.
    pub first_timestamp: f64,
    /// Sample-major interleaved values.
    pub samples: &'a [f64],
    /// Optional per-sample times (empty when absent).
    pub timestamps: &'a [f64],
    /// Index of the first sample since the stream began, when the client tracks it.
    pub first_sample_index: Option<u64>,
}

enum Encoder {
    Eeg(Box<EegEncoder>),
    Peripheral,
}

pub struct StreamAnalyzer {
    spec: StreamSpec,
    windower: Windower,
    window_len: usize,
    /// Samples by which the reported window lags the newest sample.
    delay: usize,
    encoder: Encoder,
    line_hz: f64,
    budget: SignalBudget,
    /// Time of sample 0, s, client clock; set by the first chunk.
    origin: Option<f64>,
    /// Time of the last sample received.
    last_time: Option<f64>,
    received: u64,
    /// The first chunk's first_sample_index.
    index_base: u64,
    /// End of the last reported region, samples.
    reported_until: u64,
    usable: Vec<bool>,
    baseline: Baseline,
}

struct Baseline {
    end_sample: u64,
    last_counted_beat: Option<u64>,
    rate_sum: f64,
    rate_count: usize,
}

const MAX_GAP_S: f64 = 600.0;

impl StreamAnalyzer {
    pub fn new(spec: StreamSpec, config: &AnalysisConfig) -> Result<Self, StreamError> {
        let rate = spec.rate_hz;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(StreamError::Rate {
                id: spec.id.clone(),
                rate,
            });
        }
        if spec.channels.is_empty() {
            return Err(StreamError::NoChannels {
                id: spec.id.clone(),
            });
        }
        if config.line_hz != 50.0 && config.line_hz != 60.0 {
            return Err(StreamError::LineFrequency(config.line_hz));
        }
        let budget = &config.budget;
        let over = |what: String, key: &'static str, limit: String| StreamError::OverBudget {
            id: spec.id.clone(),
            what,
            key,
            limit,
        };
        if rate > budget.max_rate_hz {
            return Err(over(
                format!("a sample rate of {rate} Hz"),
                "limits.max_sample_rate_hz",
                budget.max_rate_hz.to_string(),
            ));
        }
        let longest = std::iter::once(spec.id.len())
            .chain(
                spec.channels
                    .iter()
                    .flat_map(|c| [c.label.len(), c.unit.len()]),
            )
            .max()
            .unwrap_or(0);
        if longest > budget.max_name_bytes {
            return Err(over(
                format!("a stream id, channel label or unit of {longest} bytes"),
                "limits.max_name_bytes",
                budget.max_name_bytes.to_string(),
            ));
        }
        let channels = spec.channels.len();
        if channels > budget.max_channels {
            return Err(over(
                format!("{channels} channels"),
                "limits.max_channels_per_stream",
                budget.max_channels.to_string(),
            ));
        }
        // In floating point, before any size is cast: a client's numbers size the buffers.
        let held_samples =
            (config.window_s * rate + spec.kind.delay_s() * rate).max(spec.kind.context_s() * rate);
        let held = held_samples * channels as f64;
        // A NaN window passes here and is refused by the window check below, before any
        // buffer is sized.
        if held > budget.max_values_held as f64 {
            return Err(over(
                format!(
                    "holding {held_samples:.0} samples x {channels} channels (window {} s, look-back {} s at {rate} Hz)",
                    config.window_s,
                    spec.kind.context_s()
                ),
                "limits.max_values_held_per_stream",
                budget.max_values_held.to_string(),
            ));
        }
        let window_len = (config.window_s * rate).round();
        let hop = (config.hop_s * rate).round();
        if !(config.window_s > 0.0
            && config.hop_s > 0.0
            && window_len >= 1.0
            && hop >= 1.0
            && window_len < 1e9
            && hop < 1e9)
        {
            return Err(StreamError::Window {
                window_s: config.window_s,
                hop_s: config.hop_s,
                rate,
            });
        }
        let (window_len, hop) = (window_len as usize, hop as usize);
        let delay = (spec.kind.delay_s() * rate).round() as usize;
        let context = (window_len + delay).max((spec.kind.context_s() * rate).round() as usize);
        let encoder = match spec.kind {
            SignalKind::Eeg => Encoder::Eeg(Box::new(
                EegEncoder::new(
                    spec.channels.iter().map(|c| c.label.clone()).collect(),
                    rate,
                    window_len,
                    EegConfig {
                        bands: config.bands.clone(),
                        line_hz: config.line_hz,
                        ..EegConfig::default()
                    },
                )
                .map_err(|source| StreamError::Eeg {
                    id: spec.id.clone(),
                    source,
                })?,
            )),
            _ => Encoder::Peripheral,
        };
        Ok(Self {
            windower: Windower::with_context(spec.channels.len(), window_len, hop, context)?,
            usable: vec![true; spec.channels.len()],
            baseline: Baseline {
                end_sample: (config.baseline_s.max(0.0) * rate).round() as u64,
                last_counted_beat: None,
                rate_sum: 0.0,
                rate_count: 0,
            },
            spec,
            window_len,
            delay,
            encoder,
            line_hz: config.line_hz,
            budget: config.budget.clone(),
            origin: None,
            last_time: None,
            received: 0,
            index_base: 0,
            reported_until: 0,
        })
    }

    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    /// The EEG encoder, for building classifier feature vectors.
    pub fn eeg_encoder(&self) -> Option<&EegEncoder> {
        match &self.encoder {
            Encoder::Eeg(e) => Some(e),
            Encoder::Peripheral => None,
        }
    }

    fn time_of(&self, sample: u64) -> f64 {
        self.origin.unwrap_or(0.0) + sample as f64 / self.spec.rate_hz
    }

    /// Validates and appends a chunk; returns the windows it completes and any warnings.
    /// A rejected chunk leaves the stream as it was.
    /// About how many windows `values` more values (samples x channels) complete.
    pub fn windows_for(&self, values: usize) -> u64 {
        let samples = (values / self.spec.channels.len().max(1)) as u64;
        samples / self.windower.hop() as u64 + 1
    }

    pub fn push(
        &mut self,
        chunk: Chunk<'_>,
    ) -> Result<(Vec<FeatureWindow>, Vec<StreamWarning>), StreamError> {
        let id = &self.spec.id;
        let channels = self.spec.channels.len();
        if !chunk.samples.len().is_multiple_of(channels) {
            return Err(StreamError::Ragged {
                id: id.clone(),
                values: chunk.samples.len(),
                channels,
            });
        }
        let count = chunk.samples.len() / channels;
        if !chunk.timestamps.is_empty() && chunk.timestamps.len() != count {
            return Err(StreamError::TimestampCount {
                id: id.clone(),
                timestamps: chunk.timestamps.len(),
                samples: count,
            });
        }
        for (index, pair) in chunk.timestamps.windows(2).enumerate() {
            if !(pair[0].is_finite() && pair[1].is_finite() && pair[1] > pair[0]) {
                return Err(StreamError::NonMonotonic {
                    id: id.clone(),
                    index: index + 1,
                    before: pair[0],
                    after: pair[1],
                });
            }
        }
        let first_time = chunk
            .timestamps
            .first()
            .copied()
            .unwrap_or(chunk.first_timestamp);
        if !first_time.is_finite() {
            return Err(StreamError::Timestamp {
                id: id.clone(),
                value: first_time,
            });
        }
        let mut warnings = Vec::new();
        let mut samples = chunk.samples;
        let mut fill = 0u64;
        // Sample indices count from the first chunk's index.
        let relative_index = chunk
            .first_sample_index
            .filter(|_| self.origin.is_some())
            .map(|i| i.saturating_sub(self.index_base));
        if let Some(index) = relative_index {
            if index > self.received {
                let gap = index - self.received;
                let seconds = gap as f64 / self.spec.rate_hz;
                if seconds > MAX_GAP_S {
                    return Err(StreamError::GapTooLong {
                        id: id.clone(),
                        samples: gap,
                        seconds,
                    });
                }
                let values = gap.saturating_mul(channels as u64);
                if values > self.budget.max_gap_fill_values {
                    return Err(StreamError::OverBudget {
                        id: id.clone(),
                        what: format!(
                            "a gap of {gap} samples x {channels} channels ({seconds:.3} s) to fill"
                        ),
                        key: "limits.max_gap_fill_values",
                        limit: self.budget.max_gap_fill_values.to_string(),
                    });
                }
                fill = gap;
                warnings.push(self.warning(
                    WarningKind::SampleGap,
                    format!("{gap} samples ({seconds:.3} s) missing before sample {index}; filled with NaN, excluded from features"),
                    self.time_of(self.received),
                ));
            } else if index < self.received {
                let overlap = ((self.received - index) as usize).min(count);
                samples = &samples[overlap * channels..];
                warnings.push(self.warning(
                    WarningKind::SampleOverlap,
                    format!("{overlap} samples from sample {index} were already received; dropped"),
                    self.time_of(index),
                ));
            }
        }
        if self.origin.is_none() {
            self.origin = Some(first_time);
            self.index_base = chunk.first_sample_index.unwrap_or(0);
        } else if let Some(last) = self.last_time
            && first_time <= last
            && chunk.first_sample_index.is_none()
        {
            warnings.push(self.warning(
                WarningKind::Clock,
                format!("chunk starts at {first_time:.6} s, not after the previous sample at {last:.6} s; timestamps are taken from the sample count"),
                first_time,
            ));
        }
        // The sum is NaN/Inf exactly when a value is: the common case is one SIMD pass.
        let non_finite = if lane_sum(samples).is_finite() {
            0
        } else {
            samples.iter().filter(|v| !v.is_finite()).count()
        };
        if non_finite > 0 {
            warnings.push(self.warning(
                WarningKind::NonFinite,
                format!("{non_finite} NaN/Inf values in a chunk; excluded from features"),
                first_time,
            ));
        }

        // Checked before any window is computed.
        let hop = self.windower.hop();
        let ahead = self.windows_for(fill as usize * channels + samples.len());
        if ahead > self.budget.max_windows_per_request {
            return Err(StreamError::OverBudget {
                id: id.clone(),
                what: format!("about {ahead} feature windows from one chunk (hop {hop} samples)"),
                key: "limits.max_windows_per_request",
                limit: self.budget.max_windows_per_request.to_string(),
            });
        }
        let mut windows = Vec::new();
        // Each window is encoded as it completes (the windower is taken out of `self` for
        // that), so only one window's copy of the samples exists at a time.
        let mut windower = std::mem::replace(&mut self.windower, Windower::placeholder());
        let mut pushed = Ok(());
        if fill > 0 {
            // Sized by the client's sample index: bounded by limits.max_gap_fill_values
            // above, and allocated fallibly (many concurrent gaps must not abort).
            let mut gap = Vec::new();
            gap.try_reserve_exact(fill as usize * channels)
                .map_err(|e| WindowError::Alloc(e.to_string()))?;
            gap.resize(fill as usize * channels, f64::NAN);
            pushed = windower.push_each(&gap, |w| windows.push(self.encode(w, &mut warnings)));
            self.received += fill;
        }
        if pushed.is_ok() {
            pushed = windower.push_each(samples, |w| windows.push(self.encode(w, &mut warnings)));
        }
        self.windower = windower;
        pushed?;
        self.received += (samples.len() / channels) as u64;
        self.last_time = Some(
            chunk
                .timestamps
                .last()
                .copied()
                .unwrap_or(first_time + (count.max(1) - 1) as f64 / self.spec.rate_hz),
        );
        Ok((windows, warnings))
    }

    fn warning(&self, kind: WarningKind, message: String, timestamp: f64) -> StreamWarning {
        StreamWarning {
            kind,
            message: format!("stream {:?}: {message}", self.spec.id),
            stream_id: self.spec.id.clone(),
            timestamp,
        }
    }

    /// Ends the stream: the samples after the last reported window (the delayed tail and
    /// any partial window) are reported as one last, shorter window. Used at the end of a
    /// file; a live stream that simply stops loses nothing it had reported.
    pub fn finish(&mut self) -> Option<FeatureWindow> {
        let (context_start, channels) = self.windower.held_samples();
        let region_start = self.reported_until.max(context_start);
        let region_end = context_start + channels[0].len() as u64;
        if region_end <= region_start || self.origin.is_none() {
            return None;
        }
        let mut ignored = Vec::new();
        let window = Window {
            start: region_start,
            context_start,
            channels,
        };
        Some(self.encode_region(window, region_start, region_end, &mut ignored))
    }

    fn encode(&mut self, window: Window, warnings: &mut Vec<StreamWarning>) -> FeatureWindow {
        // The reported region [region_start, region_end) lags the window by `delay`.
        // A window shorter than the delay (EDA's 4 s) reports an empty region at the
        // stream's start, not a wrapped one (found by the session-protocol fuzzer).
        let window_end = window.start + self.window_len as u64;
        let region_end = window_end.saturating_sub(self.delay as u64);
        let region_start = window
            .start
            .saturating_sub(self.delay as u64)
            .min(region_end);
        self.encode_region(window, region_start, region_end, warnings)
    }

    fn encode_region(
        &mut self,
        window: Window,
        region_start: u64,
        region_end: u64,
        warnings: &mut Vec<StreamWarning>,
    ) -> FeatureWindow {
        self.reported_until = self.reported_until.max(region_end);
        let start_time = self.time_of(region_start);
        let end_time = self.time_of(region_end);
        let region = (
            (region_start - window.context_start) as usize,
            (region_end - window.context_start) as usize,
        );
        let (quality, features, estimate) = match &mut self.encoder {
            Encoder::Eeg(encoder) => {
                // EEG windows carry no look-back, so the region is the whole window except
                // at the end of a file.
                let (quality, features) = if region == (0, window.channels[0].len()) {
                    encoder.encode_stream(&window.channels, region_start)
                } else {
                    let own: Vec<Vec<f64>> = window
                        .channels
                        .iter()
                        .map(|c| c[region.0..region.1].to_vec())
                        .collect();
                    encoder.encode_stream(&own, region_start)
                };
                let estimate = eeg_affect_estimate(&features, &quality);
                (quality, Features::Eeg(features), Some(estimate))
            }
            Encoder::Peripheral => {
                let quality: Vec<ChannelQuality> = self
                    .spec
                    .channels
                    .iter()
                    .zip(&window.channels)
                    .map(|(c, x)| {
                        assess(
                            &c.label,
                            &x[region.0..region.1],
                            QualityThresholds::PERIPHERAL,
                        )
                    })
                    .collect();
                let features = if quality[0].usable && region.1 > region.0 {
                    self.peripheral(&window, region)
                } else {
                    Features::None
                };
                (quality, features, None)
            }
        };
        for (k, q) in quality.iter().enumerate() {
            if self.usable[k] && !q.usable {
                warnings.push(self.warning(
                    WarningKind::Quality,
                    format!(
                        "channel {:?} became unusable (flat {}, clipped {}, artefacts {}, {} NaN/Inf)",
                        q.channel,
                        q.flat,
                        percent(q.clipped_fraction),
                        percent(q.artifact_fraction),
                        q.non_finite_samples
                    ),
                    start_time,
                ));
            }
            self.usable[k] = q.usable;
        }
        FeatureWindow {
            stream_id: self.spec.id.clone(),
            kind: self.spec.kind,
            start_time,
            end_time,
            quality,
            features,
            estimate,
        }
    }

    /// Features of a peripheral stream from its first channel's context; `region` is the
    /// reported window's [start, end) inside the context.
    fn peripheral(&mut self, window: &Window, region: (usize, usize)) -> Features {
        let fs = self.spec.rate_hz;
        let raw = &window.channels[0];
        let mut x = raw.clone();
        fill_non_finite(&mut x);
        let in_window = |i: usize| i >= region.0 && i < region.1 && raw[i].is_finite();
        let (origin, context_start) = (self.origin.unwrap_or(0.0), window.context_start);
        let time = move |i: usize| origin + (context_start + i as u64) as f64 / fs;
        match self.spec.kind {
            SignalKind::Ecg | SignalKind::Ppg => {
                let beats = if self.spec.kind == SignalKind::Ecg {
                    cardiac::ecg_clean(&x, fs, self.line_hz).map(|c| cardiac::ecg_r_peaks(&c, fs))
                } else {
                    cardiac::ppg_clean(&x, fs).map(|c| cardiac::ppg_peaks(&c, fs))
                };
                let Ok(beats) = beats else {
                    return Features::None;
                };
                let beats: Vec<usize> = beats.into_iter().filter(|&b| raw[b].is_finite()).collect();
                // Rates of the window's beats that have a predecessor in the context.
                let mut times = Vec::new();
                let mut rates = Vec::new();
                for (k, &b) in beats.iter().enumerate() {
                    if !in_window(b) {
                        continue;
                    }
                    times.push(time(b));
                    if k > 0 {
                        rates.push(60.0 * fs / (b - beats[k - 1]) as f64);
                        let absolute = window.context_start + b as u64;
                        if absolute < self.baseline.end_sample
                            && self.baseline.last_counted_beat.is_none_or(|l| absolute > l)
                        {
                            self.baseline.rate_sum += 60.0 * fs / (b - beats[k - 1]) as f64;
                            self.baseline.rate_count += 1;
                            self.baseline.last_counted_beat = Some(absolute);
                        }
                    }
                }
                let heart_rate_bpm =
                    (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
                let region_end = window.context_start + region.1 as u64;
                let baseline_done = self.baseline.end_sample > 0
                    && region_end >= self.baseline.end_sample
                    && self.baseline.rate_count > 0;
                let heart_rate_change_bpm = heart_rate_bpm
                    .filter(|_| baseline_done)
                    .map(|hr| hr - self.baseline.rate_sum / self.baseline.rate_count as f64);
                let hrv = if self.spec.kind == SignalKind::Ecg {
                    // The window's beats plus the one before, for its first RR interval.
                    let first = beats.iter().position(|&b| in_window(b));
                    first.and_then(|f| {
                        let from = f.saturating_sub(1);
                        let t: Vec<f64> = beats[from..]
                            .iter()
                            .filter(|&&b| raw[b].is_finite())
                            .map(|&b| time(b))
                            .collect();
                        cardiac::heart_rate(&t).filter(|_| t.len() >= 3)
                    })
                } else {
                    None
                };
                Features::Cardiac(CardiacWindow {
                    beat_times: times,
                    heart_rate_bpm,
                    heart_rate_change_bpm,
                    hrv,
                })
            }
            SignalKind::Eda => {
                let Ok(cleaned) = eda::eda_clean(&x, fs) else {
                    return Features::None;
                };
                let Ok(parts) = eda::eda_decompose(&cleaned, fs) else {
                    return Features::None;
                };
                let tonic = &parts.tonic[region.0..region.1];
                let responses: Vec<Scr> = eda::scr_peaks(&parts.phasic, fs)
                    .into_iter()
                    .filter(|s| in_window(s.peak) && raw[s.onset].is_finite())
                    .map(|s| Scr {
                        onset_time: time(s.onset),
                        peak_time: time(s.peak),
                        amplitude: s.amplitude,
                        rise_time_s: s.rise_time_s,
                    })
                    .collect();
                let window_min = (region.1 - region.0) as f64 / fs / 60.0;
                Features::Eda(EdaWindow {
                    tonic_mean: tonic.iter().sum::<f64>() / tonic.len().max(1) as f64,
                    scr_rate_per_min: responses.len() as f64 / window_min,
                    responses,
                })
            }
            SignalKind::Respiration => {
                let Ok(cleaned) = respiration::rsp_clean(&x, fs) else {
                    return Features::None;
                };
                let times: Vec<f64> = respiration::breath_peaks(&cleaned)
                    .into_iter()
                    .filter(|&p| raw[p].is_finite())
                    .map(time)
                    .collect();
                Features::Respiration(RespirationWindow {
                    rate_per_min: respiration::breathing_rate(&times),
                })
            }
            SignalKind::Eeg | SignalKind::Other => Features::None,
        }
    }
}

/// A fraction as a percentage for messages; "n/a" when it was not computed.
fn percent(fraction: Option<f64>) -> String {
    fraction.map_or("n/a".into(), |f| format!("{:.1}%", 100.0 * f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eeg(rate_hz: f64) -> StreamSpec {
        StreamSpec {
            id: "eeg".into(),
            kind: SignalKind::Eeg,
            rate_hz,
            channels: vec![ChannelSpec {
                label: "F3".into(),
                unit: "uV".into(),
            }],
        }
    }

    /// Found by the session-protocol fuzzer: windows shorter than the kind's delay (EDA's
    /// 4 s, ECG's 1 s) made the reported region's end wrap below zero.
    #[test]
    fn windows_shorter_than_the_delay_are_analysed_without_wrapping() {
        for (kind, rate) in [(SignalKind::Eda, 4.0), (SignalKind::Ecg, 128.0)] {
            let spec = StreamSpec {
                kind,
                rate_hz: rate,
                ..eeg(rate)
            };
            let config = AnalysisConfig {
                window_s: 1.0 / rate,
                hop_s: 1.0 / rate,
                ..AnalysisConfig::default()
            };
            let mut analyzer = StreamAnalyzer::new(spec, &config).unwrap();
            let samples = vec![1.0; (rate * 12.0) as usize];
            let (windows, _) = analyzer
                .push(Chunk {
                    first_timestamp: 0.0,
                    samples: &samples,
                    timestamps: &[],
                    first_sample_index: None,
                })
                .unwrap();
            assert!(!windows.is_empty());
            for w in &windows {
                assert!(w.end_time >= w.start_time, "{kind:?}: {w:?}");
            }
        }
    }

    /// Found by the session-protocol fuzzer: a hop of 1e300 s became usize::MAX samples,
    /// and the window arithmetic overflowed. Hops, like windows, are bounded.
    #[test]
    fn an_enormous_hop_is_refused_not_overflowed() {
        for hop_s in [1e300, 1e12, f64::INFINITY] {
            let config = AnalysisConfig {
                hop_s,
                ..AnalysisConfig::default()
            };
            let refused = StreamAnalyzer::new(eeg(128.0), &config).err();
            assert!(
                matches!(refused, Some(StreamError::Window { .. })),
                "hop {hop_s}: {refused:?}"
            );
        }
        // The largest accepted hop still makes windows without overflow.
        let config = AnalysisConfig {
            window_s: 1.0,
            hop_s: 1e9 / 128.0 - 1.0,
            ..AnalysisConfig::default()
        };
        let mut analyzer = StreamAnalyzer::new(eeg(128.0), &config).unwrap();
        let samples = vec![1.0; 1280];
        for i in 0..3 {
            analyzer
                .push(Chunk {
                    first_timestamp: i as f64 * 10.0,
                    samples: &samples,
                    timestamps: &[],
                    first_sample_index: None,
                })
                .unwrap();
        }
    }
}
