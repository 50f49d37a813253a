//! AnalyzeSignals: proto requests to stream analyzers and back. A request is a complete
//! recording: every stream is analysed from its first chunk and flushed at the end.

use std::collections::HashMap;

use tonic::Status;

use crate::proto;
use crate::signals::eeg::Band;
use crate::signals::stream::{
    AnalysisConfig, ChannelSpec, Chunk, FeatureWindow, Features, SignalKind, StreamAnalyzer,
    StreamSpec, StreamWarning, WarningKind,
};

/// Samples accepted in one request (all streams): 64 channels x 1 kHz x 10 min.
pub const MAX_SAMPLES_PER_REQUEST: usize = 64 * 1000 * 600;

pub fn kind(k: i32, stream_id: &str) -> Result<SignalKind, Status> {
    use proto::SignalKind as P;
    match P::try_from(k) {
        Ok(P::Eeg) => Ok(SignalKind::Eeg),
        Ok(P::Eda) => Ok(SignalKind::Eda),
        Ok(P::Ecg) => Ok(SignalKind::Ecg),
        Ok(P::Ppg) => Ok(SignalKind::Ppg),
        Ok(P::Respiration) => Ok(SignalKind::Respiration),
        Ok(P::Other) => Ok(SignalKind::Other),
        Ok(P::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "stream {stream_id:?}: kind must be one of EEG, EDA, ECG, PPG, RESPIRATION, OTHER (got {k})"
        ))),
    }
}

fn proto_kind(k: SignalKind) -> proto::SignalKind {
    match k {
        SignalKind::Eeg => proto::SignalKind::Eeg,
        SignalKind::Eda => proto::SignalKind::Eda,
        SignalKind::Ecg => proto::SignalKind::Ecg,
        SignalKind::Ppg => proto::SignalKind::Ppg,
        SignalKind::Respiration => proto::SignalKind::Respiration,
        SignalKind::Other => proto::SignalKind::Other,
    }
}

pub fn analysis_config(c: Option<&proto::SignalConfig>) -> Result<AnalysisConfig, Status> {
    let mut config = AnalysisConfig::default();
    let Some(c) = c else { return Ok(config) };
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(Status::invalid_argument(format!(
                "config.{name} must be a non-negative number of seconds, got {v}"
            )))
        }
    };
    if positive("window_s", c.window_s)? > 0.0 {
        config.window_s = c.window_s;
    }
    if positive("hop_s", c.hop_s)? > 0.0 {
        config.hop_s = c.hop_s;
    }
    config.baseline_s = positive("baseline_s", c.baseline_s)?;
    if c.line_frequency_hz != 0.0 {
        config.line_hz = c.line_frequency_hz;
    }
    if !c.eeg_bands.is_empty() {
        if c.eeg_bands.len() > 32 {
            return Err(Status::invalid_argument(format!(
                "config.eeg_bands: at most 32 bands, got {}",
                c.eeg_bands.len()
            )));
        }
        config.bands = c
            .eeg_bands
            .iter()
            .map(|b| {
                if b.name.trim().is_empty() {
                    return Err(Status::invalid_argument(
                        "config.eeg_bands: every band needs a name",
                    ));
                }
                Ok(Band::new(&b.name, b.low_hz, b.high_hz))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(config)
}

/// A stream's analyzer from its description.
fn analyzer(s: &proto::StreamInfo, config: &AnalysisConfig) -> Result<StreamAnalyzer, Status> {
    let spec = StreamSpec {
        id: s.stream_id.clone(),
        kind: kind(s.kind, &s.stream_id)?,
        rate_hz: s.nominal_rate_hz,
        channels: s
            .channels
            .iter()
            .map(|c| ChannelSpec {
                label: c.label.clone(),
                unit: c.unit.clone(),
            })
            .collect(),
    };
    StreamAnalyzer::new(spec, config).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The analyzers of a request's or a session's streams, by id, flushed in the order the
/// streams were described.
pub struct Analyzers {
    by_id: HashMap<String, StreamAnalyzer>,
    order: Vec<String>,
    /// The request field that describes the streams, for error messages.
    field: &'static str,
}

/// What one accepted chunk gave.
pub struct Pushed {
    pub windows: Vec<FeatureWindow>,
    pub warnings: Vec<StreamWarning>,
    /// Samples per channel in the chunk.
    pub samples: u64,
}

impl Analyzers {
    pub fn new(
        streams: &[proto::StreamInfo],
        config: &AnalysisConfig,
        field: &'static str,
    ) -> Result<Self, Status> {
        let mut by_id = HashMap::new();
        let mut order = Vec::new();
        for s in streams {
            if s.stream_id.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "{field}: every stream needs a stream_id"
                )));
            }
            if by_id
                .insert(s.stream_id.clone(), analyzer(s, config)?)
                .is_some()
            {
                return Err(Status::invalid_argument(format!(
                    "{field}: stream_id {:?} is described twice",
                    s.stream_id
                )));
            }
            order.push(s.stream_id.clone());
        }
        Ok(Self {
            by_id,
            order,
            field,
        })
    }

    /// Validates a chunk and pushes it to its stream; a rejected chunk changes nothing.
    /// The error names the problem; the caller says where the chunk was.
    pub fn push(&mut self, c: &proto::SignalChunk) -> Result<Pushed, String> {
        let field = self.field;
        let analyzer = self.by_id.get_mut(&c.stream_id).ok_or_else(|| {
            format!(
                "unknown stream_id {:?}; describe it in {field}",
                c.stream_id
            )
        })?;
        let samples: Vec<f64> = c.samples.iter().map(|&v| v as f64).collect();
        let (windows, warnings) = analyzer
            .push(Chunk {
                first_timestamp: c.first_timestamp,
                samples: &samples,
                timestamps: &c.timestamps,
                first_sample_index: (c.first_sample_index > 0).then_some(c.first_sample_index),
            })
            .map_err(|e| e.to_string())?;
        Ok(Pushed {
            windows,
            warnings,
            samples: (c.samples.len() / analyzer.spec().channels.len().max(1)) as u64,
        })
    }

    /// Every stream's last (possibly shorter) window, in description order.
    pub fn finish(&mut self) -> Vec<FeatureWindow> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.get_mut(id).and_then(|a| a.finish()))
            .collect()
    }
}

pub fn analyze(
    request: proto::AnalyzeSignalsRequest,
) -> Result<proto::AnalyzeSignalsResponse, Status> {
    let config = analysis_config(request.config.as_ref())?;
    if request.streams.is_empty() {
        return Err(Status::invalid_argument(
            "streams: describe at least one stream",
        ));
    }
    let total: usize = request.chunks.iter().map(|c| c.samples.len()).sum();
    if total > MAX_SAMPLES_PER_REQUEST {
        return Err(Status::invalid_argument(format!(
            "{total} samples in one request; the limit is {MAX_SAMPLES_PER_REQUEST}: split the recording or stream it through a session"
        )));
    }
    let mut analyzers = Analyzers::new(&request.streams, &config, "streams")?;
    let mut windows = Vec::new();
    let mut warnings = Vec::new();
    for (seq, c) in request.chunks.iter().enumerate() {
        let pushed = analyzers
            .push(c)
            .map_err(|e| Status::invalid_argument(format!("chunks[{seq}]: {e}")))?;
        windows.extend(pushed.windows);
        warnings.extend(
            pushed
                .warnings
                .into_iter()
                .map(|w| warning(w, seq as u64 + 1)),
        );
    }
    windows.extend(analyzers.finish());
    Ok(proto::AnalyzeSignalsResponse {
        windows: windows.iter().map(feature_window).collect(),
        warnings,
    })
}

pub fn warning(w: StreamWarning, client_seq: u64) -> proto::Warning {
    let kind = match w.kind {
        WarningKind::SampleGap => proto::WarningKind::SampleGap,
        WarningKind::SampleOverlap => proto::WarningKind::SampleOverlap,
        WarningKind::NonFinite => proto::WarningKind::NonFinite,
        WarningKind::Quality => proto::WarningKind::Quality,
        WarningKind::Clock => proto::WarningKind::Clock,
    };
    proto::Warning {
        kind: kind as i32,
        message: w.message,
        stream_id: w.stream_id,
        timestamp: w.timestamp,
        client_seq,
    }
}

pub fn feature_window(w: &FeatureWindow) -> proto::FeatureWindow {
    use proto::feature_window::Features as P;
    let features = match &w.features {
        Features::Eeg(f) => Some(P::Eeg(proto::EegFeatures {
            band_powers: f
                .band_powers
                .iter()
                .map(|b| proto::BandPower {
                    channel: b.channel.clone(),
                    band: b.band.clone(),
                    absolute: b.absolute,
                    relative: b.relative,
                    differential_entropy: b.differential_entropy,
                })
                .collect(),
            asymmetry: f
                .asymmetry
                .iter()
                .map(|a| proto::Asymmetry {
                    pair: a.pair.clone(),
                    value: a.value,
                })
                .collect(),
            arousal_index: f.arousal_index.unwrap_or(0.0),
            engagement_index: f.engagement_index.unwrap_or(0.0),
        })),
        Features::Eda(e) => Some(P::Eda(proto::EdaFeatures {
            tonic_mean: e.tonic_mean,
            responses: e
                .responses
                .iter()
                .map(|s| proto::Scr {
                    onset_time: s.onset_time,
                    peak_time: s.peak_time,
                    amplitude: s.amplitude,
                    rise_time_s: s.rise_time_s,
                })
                .collect(),
            scr_rate_per_min: e.scr_rate_per_min,
        })),
        Features::Cardiac(c) => Some(P::Cardiac(proto::CardiacFeatures {
            beat_times: c.beat_times.clone(),
            heart_rate_bpm: c.heart_rate_bpm.unwrap_or(0.0),
            heart_rate_change_bpm: c.heart_rate_change_bpm.unwrap_or(0.0),
            rmssd_ms: c.hrv.map_or(0.0, |h| h.rmssd_ms),
            sdnn_ms: c.hrv.map_or(0.0, |h| h.sdnn_ms),
            pnn50: c.hrv.map_or(0.0, |h| h.pnn50),
        })),
        Features::Respiration(r) => Some(P::Respiration(proto::RespirationFeatures {
            rate_per_min: r.rate_per_min.unwrap_or(0.0),
        })),
        Features::None => None,
    };
    proto::FeatureWindow {
        stream_id: w.stream_id.clone(),
        kind: proto_kind(w.kind) as i32,
        start_time: w.start_time,
        end_time: w.end_time,
        quality: w
            .quality
            .iter()
            .map(|q| proto::ChannelQuality {
                channel: q.channel.clone(),
                flat: q.flat,
                clipped_fraction: q.clipped_fraction,
                line_noise_ratio: q.line_noise_ratio,
                artifact_fraction: q.artifact_fraction,
                non_finite_samples: q.non_finite_samples,
                usable: q.usable,
            })
            .collect(),
        features,
        estimate: w.estimate.as_ref().map(|e| proto::AffectEstimate {
            valence: e.valence as f32,
            arousal: e.arousal as f32,
            reliability: e.reliability as f32,
            method: e.method.clone(),
        }),
    }
}
