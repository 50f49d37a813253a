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

/// A recorded face as the domain holds it (what prompts and marks read); values the
/// recording left unset stay None.
pub fn face(f: &proto::Face) -> crate::vision::FaceResult {
    use crate::vision::action_units::ActionUnit;
    use crate::vision::detector::Detection;
    use crate::vision::expression::{Expression, LABELS};
    use crate::vision::mesh::{HeadPose, Mesh};
    let b = f.r#box.unwrap_or_default();
    let mut keypoints = [[0.0f32; 2]; 5];
    for (k, p) in keypoints.iter_mut().zip(&f.keypoints) {
        *k = [p.x, p.y];
    }
    let distribution = |p: &[proto::LabelProbability]| -> Option<[f32; 7]> {
        (!p.is_empty()).then(|| {
            let mut out = [0.0f32; 7];
            for (o, label) in out.iter_mut().zip(LABELS) {
                *o = p
                    .iter()
                    .find(|lp| lp.label == label)
                    .map_or(0.0, |lp| lp.probability);
            }
            out
        })
    };
    let blendshapes = (f.blendshapes.len() == crate::vision::blendshapes::NAMES.len()).then(|| {
        let mut out = [0.0f32; 52];
        for (o, name) in out.iter_mut().zip(crate::vision::blendshapes::NAMES) {
            *o = f
                .blendshapes
                .iter()
                .find(|b| b.name == name)
                .map_or(0.0, |b| b.score);
        }
        out
    });
    crate::vision::FaceResult {
        face_id: f.face_id,
        detection: Detection {
            score: f.detection_score,
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
            keypoints,
        },
        tracked: f.tracked,
        mesh: (!f.landmarks.is_empty()).then(|| Mesh {
            points: f.landmarks.iter().map(|p| [p.x, p.y, p.z]).collect(),
            presence: f.presence_score.unwrap_or(1.0),
        }),
        head_pose: f.head_pose.map(|p| HeadPose {
            yaw: p.yaw_deg,
            pitch: p.pitch_deg,
            roll: p.roll_deg,
        }),
        blendshapes,
        action_units: f
            .action_units
            .iter()
            .map(|a| ActionUnit {
                number: a.number,
                intensity: a.intensity,
                present: a.present,
                baseline: a.baseline,
                corrected: a.corrected_intensity,
            })
            .collect(),
        au_baseline_method: (!f.au_baseline_method.is_empty())
            .then(|| f.au_baseline_method.as_str().into()),
        expression: f.expression.as_ref().and_then(|e| {
            Some(Expression {
                fer: distribution(&e.fer),
                au_prototypes: distribution(&e.au_prototypes),
                au_prototypes_corrected: e.au_prototypes_corrected,
                combined: distribution(&e.combined)?,
                valence: e.valence,
                arousal: e.arousal,
            })
        }),
        neutral_points: None,
    }
}

/// A recorded expression episode (an ENDED event) as the domain holds it.
pub fn episode(e: &proto::ExpressionEvent) -> crate::vision::dynamics::Episode {
    use crate::vision::dynamics::{Episode, EpisodeAu, EpisodeEnd};
    let apex = crate::vision::expression::LABELS.map(|label| {
        e.apex_expression
            .iter()
            .find(|lp| lp.label == label)
            .map(|lp| lp.probability)
    });
    Episode {
        face_id: e.face_id,
        onset: e.onset,
        apex: e.apex,
        offset: e.offset,
        action_units: e
            .action_units
            .iter()
            .map(|a| EpisodeAu {
                number: a.number,
                start_intensity: a.start_intensity,
                peak_intensity: a.peak_intensity,
                peak_time: a.peak_time,
                held_s: a.held_s,
            })
            .collect(),
        apex_expression: apex
            .iter()
            .all(Option::is_some)
            .then(|| apex.map(|p| p.unwrap_or(0.0))),
        peak_motion: e.peak_motion,
        micro_candidate: e.micro_candidate,
        end: match e.end() {
            proto::EpisodeEnd::Unspecified => None,
            proto::EpisodeEnd::Returned => Some(EpisodeEnd::Returned),
            proto::EpisodeEnd::FaceLost => Some(EpisodeEnd::FaceLost),
            proto::EpisodeEnd::StreamEnded => Some(EpisodeEnd::StreamEnded),
            proto::EpisodeEnd::MaxDuration => Some(EpisodeEnd::MaxDuration),
        },
    }
}

/// The physiological cues of recorded windows (the latest of each stream), as
/// `prompt::PhysioCues::from_windows` reads live ones.
pub fn physio_cues(windows: &[proto::FeatureWindow]) -> crate::prompt::PhysioCues {
    use proto::feature_window::Features as F;
    let mut cues = crate::prompt::PhysioCues::default();
    for w in windows {
        match &w.features {
            Some(F::Eeg(f)) => cues.add_eeg(
                &f.asymmetry.iter().map(|a| a.value).collect::<Vec<_>>(),
                f.arousal_index,
            ),
            Some(F::Eda(e)) => cues.add_eda(
                &e.responses.iter().map(|s| s.amplitude).collect::<Vec<_>>(),
                e.scr_rate_per_min,
            ),
            Some(F::Cardiac(c)) => cues.add_cardiac(c.heart_rate_bpm, c.heart_rate_change_bpm),
            Some(F::Respiration(r)) => cues.add_respiration(r.rate_per_min),
            None => {}
        }
    }
    cues
}
