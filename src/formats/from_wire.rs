//! Wire requests -> domain types: what a client (or a recording, which stores the same
//! messages) states, read into the core's types. Values out of range pass through for the
//! core to refuse, except where the wire cannot express the domain value (an unknown enum
//! number, a negative duration); those are refused here with a message naming the field.
//! The gRPC server and the offline analysis of recorded sessions both read through here.

use crate::proto;
use crate::session::SessionConfig;
use crate::signals::analyzers::SignalChunk;
use crate::signals::eeg::Band;
use crate::signals::features::SignalKind;
use crate::signals::stream::{AnalysisConfig, ChannelSpec, StreamSpec};
use crate::vision::FrameSettings;
use crate::vision::marks::{Encoding, Layers};

/// Frame options: 0 means the server's default, as the contract says.
pub fn frame_settings(options: Option<&proto::FrameOptions>) -> FrameSettings {
    let Some(o) = options else {
        return FrameSettings::default();
    };
    FrameSettings {
        detector_max_side: (o.detector_max_side != 0).then_some(o.detector_max_side),
        min_face_score: (o.min_face_score != 0.0).then_some(o.min_face_score),
        max_faces: o.max_faces,
        skip_landmarks: o.skip_landmarks,
        skip_blendshapes: o.skip_blendshapes,
        skip_expression: o.skip_expression,
        marks: o.marks.as_ref().map(|m| Layers {
            boxes: m.boxes,
            face_ids: m.face_ids,
            landmarks: m.landmarks,
            au_tags: m.au_tags,
            motion: m.motion,
        }),
        return_marked_image: o.return_marked_image,
        marked_image_encoding: if o.marked_image_format == proto::ImageFormat::Jpeg as i32 {
            Encoding::Jpeg
        } else {
            Encoding::Png
        },
    }
}

pub fn signal_kind(k: i32, stream_id: &str) -> Result<SignalKind, String> {
    use proto::SignalKind as P;
    match P::try_from(k) {
        Ok(P::Eeg) => Ok(SignalKind::Eeg),
        Ok(P::Eda) => Ok(SignalKind::Eda),
        Ok(P::Ecg) => Ok(SignalKind::Ecg),
        Ok(P::Ppg) => Ok(SignalKind::Ppg),
        Ok(P::Respiration) => Ok(SignalKind::Respiration),
        Ok(P::Other) => Ok(SignalKind::Other),
        Ok(P::Unspecified) | Err(_) => Err(format!(
            "stream {stream_id:?}: kind must be one of EEG, EDA, ECG, PPG, RESPIRATION, OTHER (got {k})"
        )),
    }
}

pub fn stream_spec(s: &proto::StreamInfo) -> Result<StreamSpec, String> {
    Ok(StreamSpec {
        id: s.stream_id.clone(),
        kind: signal_kind(s.kind, &s.stream_id)?,
        rate_hz: s.nominal_rate_hz,
        channels: s
            .channels
            .iter()
            .map(|c| ChannelSpec {
                label: c.label.clone(),
                unit: c.unit.clone(),
            })
            .collect(),
    })
}

pub fn stream_specs(streams: &[proto::StreamInfo]) -> Result<Vec<StreamSpec>, String> {
    streams.iter().map(stream_spec).collect()
}

/// Signal options over the defaults; zero fields keep the default.
pub fn analysis_config(c: Option<&proto::SignalConfig>) -> Result<AnalysisConfig, String> {
    let mut config = AnalysisConfig::default();
    let Some(c) = c else { return Ok(config) };
    let seconds = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!(
                "config.{name} must be a non-negative number of seconds, got {v}"
            ))
        }
    };
    if seconds("window_s", c.window_s)? > 0.0 {
        config.window_s = c.window_s;
    }
    if seconds("hop_s", c.hop_s)? > 0.0 {
        config.hop_s = c.hop_s;
    }
    config.baseline_s = seconds("baseline_s", c.baseline_s)?;
    if c.line_frequency_hz != 0.0 {
        config.line_hz = c.line_frequency_hz;
    }
    if !c.eeg_bands.is_empty() {
        if c.eeg_bands.len() > 32 {
            return Err(format!(
                "config.eeg_bands: at most 32 bands, got {}",
                c.eeg_bands.len()
            ));
        }
        config.bands = c
            .eeg_bands
            .iter()
            .map(|b| {
                if b.name.trim().is_empty() {
                    return Err("config.eeg_bands: every band needs a name".to_string());
                }
                Ok(Band::new(&b.name, b.low_hz, b.high_hz))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(config)
}

pub fn signal_chunk(c: proto::SignalChunk) -> SignalChunk {
    SignalChunk {
        stream_id: c.stream_id,
        first_timestamp: c.first_timestamp,
        samples: c.samples,
        timestamps: c.timestamps,
        first_sample_index: c.first_sample_index,
    }
}

pub fn session_config(c: proto::SessionConfig) -> Result<SessionConfig, String> {
    Ok(SessionConfig {
        session_id: (!c.session_id.is_empty()).then_some(c.session_id),
        participant: c.participant,
        streams: stream_specs(&c.streams)?,
        analysis: analysis_config(c.signal_config.as_ref())?,
        frame: frame_settings(c.frame_options.as_ref()),
        detect_every: (c.detect_every_n_frames != 0).then_some(c.detect_every_n_frames),
        record: !c.no_record,
        metadata: c.metadata.into_iter().collect(),
    })
}

/// A recorded fused estimate.
pub fn fused_estimate(e: &proto::FusedEstimate) -> crate::fusion::FusedEstimate {
    use crate::fusion::{Contribution, FusedEstimate, Modality};
    let modality = |m: i32| match proto::Modality::try_from(m) {
        Ok(proto::Modality::Face) => Some(Modality::Face),
        Ok(proto::Modality::Eeg) => Some(Modality::Eeg),
        Ok(proto::Modality::Cardiac) => Some(Modality::Cardiac),
        Ok(proto::Modality::Eda) => Some(Modality::Eda),
        Ok(proto::Modality::Respiration) => Some(Modality::Respiration),
        Ok(proto::Modality::Unspecified) | Err(_) => None,
    };
    FusedEstimate {
        start_time: e.start_time,
        end_time: e.end_time,
        valence: e.valence,
        arousal: e.arousal,
        labels: e.labels.iter().map(|l| l.probability as f64).collect(),
        label_names: e.labels.iter().map(|l| l.label.clone()).collect(),
        contributions: e
            .contributions
            .iter()
            .filter_map(|c| {
                Some(Contribution {
                    modality: modality(c.modality)?,
                    weight: c.weight,
                    reliability: c.reliability,
                    valence: c.valence,
                    arousal: c.arousal,
                })
            })
            .collect(),
        method: e.method.clone(),
    }
}
