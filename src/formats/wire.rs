//! Domain results as the `affect.v1` messages that clients receive and recordings store.
//!
//! The same message is the wire format and the recording format, so a recording replays
//! exactly what was sent. A value the domain holds as `None` stays unset: it is never
//! written as 0.

use crate::explain::grounding::Verdict;
use crate::explain::{Explanation, Timings};
use crate::proto;
use crate::signals::features::{FeatureWindow, Features, SignalKind, StreamWarning, WarningKind};
use crate::vision::blendshapes::NAMES as BLENDSHAPE_NAMES;
use crate::vision::dynamics::{EpisodeEnd, ExpressionEvent};
use crate::vision::expression::{Expression, LABELS as EXPRESSION_LABELS};
use crate::vision::{FaceResult, FrameResult};

/// The most likely label of a distribution (None when it is empty).
pub fn most_likely(labels: &[proto::LabelProbability]) -> Option<&str> {
    labels
        .iter()
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map(|l| l.label.as_str())
}

/// A distribution over the expression labels.
pub fn distribution(p: &[f32; 7]) -> Vec<proto::LabelProbability> {
    EXPRESSION_LABELS
        .iter()
        .zip(p)
        .map(|(label, probability)| proto::LabelProbability {
            label: (*label).into(),
            probability: *probability,
        })
        .collect()
}

fn expression(e: &Expression) -> proto::Expression {
    proto::Expression {
        fer: e.fer.as_ref().map(distribution).unwrap_or_default(),
        au_prototypes: e
            .au_prototypes
            .as_ref()
            .map(distribution)
            .unwrap_or_default(),
        combined: distribution(&e.combined),
        valence: e.valence,
        arousal: e.arousal,
        au_prototypes_corrected: e.au_prototypes_corrected,
    }
}

/// One face.
pub fn face(f: &FaceResult) -> proto::Face {
    let d = &f.detection;
    proto::Face {
        face_id: f.face_id,
        detection_score: d.score,
        r#box: Some(proto::BoundingBox {
            x: d.x,
            y: d.y,
            width: d.width,
            height: d.height,
        }),
        keypoints: d
            .keypoints
            .iter()
            .map(|p| proto::Point2 { x: p[0], y: p[1] })
            .collect(),
        landmarks: f
            .mesh
            .as_ref()
            .map(|m| {
                m.points
                    .iter()
                    .map(|p| proto::Point3 {
                        x: p[0],
                        y: p[1],
                        z: p[2],
                    })
                    .collect()
            })
            .unwrap_or_default(),
        presence_score: f.mesh.as_ref().map(|m| m.presence),
        head_pose: f.head_pose.map(|p| proto::HeadPose {
            yaw_deg: p.yaw,
            pitch_deg: p.pitch,
            roll_deg: p.roll,
        }),
        blendshapes: f
            .blendshapes
            .as_ref()
            .map(|b| {
                BLENDSHAPE_NAMES
                    .iter()
                    .zip(b)
                    .map(|(name, score)| proto::Blendshape {
                        name: (*name).into(),
                        score: *score,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        action_units: f
            .action_units
            .iter()
            .map(|u| proto::ActionUnit {
                number: u.number,
                name: format!("AU{:02}", u.number),
                intensity: u.intensity,
                present: u.present,
                baseline: u.baseline,
                corrected_intensity: u.corrected,
                corrected_present: u.corrected_present(),
            })
            .collect(),
        expression: f.expression.as_ref().map(expression),
        tracked: f.tracked,
        au_baseline_method: f
            .au_baseline_method
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// An expression episode's event.
pub fn expression_event(event: &ExpressionEvent) -> proto::ExpressionEvent {
    let (kind, e) = match event {
        ExpressionEvent::Started(e) => (proto::expression_event::Kind::Started, e),
        ExpressionEvent::Ended(e) => (proto::expression_event::Kind::Ended, e),
    };
    proto::ExpressionEvent {
        kind: kind.into(),
        face_id: e.face_id,
        onset: e.onset,
        apex: e.apex,
        offset: e.offset,
        duration_s: e.duration_s(),
        action_units: e
            .action_units
            .iter()
            .map(|au| proto::EpisodeActionUnit {
                number: au.number,
                name: format!("AU{:02}", au.number),
                start_intensity: au.start_intensity,
                peak_intensity: au.peak_intensity,
                peak_time: au.peak_time,
                held_s: au.held_s,
            })
            .collect(),
        apex_expression: e
            .apex_expression
            .as_ref()
            .map(distribution)
            .unwrap_or_default(),
        peak_motion: e.peak_motion,
        micro_candidate: e.micro_candidate,
        end: match e.end {
            None => proto::EpisodeEnd::Unspecified,
            Some(EpisodeEnd::Returned) => proto::EpisodeEnd::Returned,
            Some(EpisodeEnd::FaceLost) => proto::EpisodeEnd::FaceLost,
            Some(EpisodeEnd::StreamEnded) => proto::EpisodeEnd::StreamEnded,
            Some(EpisodeEnd::MaxDuration) => proto::EpisodeEnd::MaxDuration,
        }
        .into(),
    }
}

/// Stage timings.
pub fn timings(result: &FrameResult) -> Vec<proto::StageTiming> {
    result
        .timings
        .iter()
        .map(|(stage, ms)| proto::StageTiming {
            stage: (*stage).into(),
            ms: *ms,
        })
        .collect()
}

/// A session frame's faces.
pub fn face_frame(client_seq: u64, timestamp: f64, result: &FrameResult) -> proto::FaceFrameResult {
    proto::FaceFrameResult {
        client_seq,
        timestamp,
        faces: result.faces.iter().map(face).collect(),
        timings: timings(result),
    }
}

pub fn signal_kind(k: SignalKind) -> proto::SignalKind {
    match k {
        SignalKind::Eeg => proto::SignalKind::Eeg,
        SignalKind::Eda => proto::SignalKind::Eda,
        SignalKind::Ecg => proto::SignalKind::Ecg,
        SignalKind::Ppg => proto::SignalKind::Ppg,
        SignalKind::Respiration => proto::SignalKind::Respiration,
        SignalKind::Other => proto::SignalKind::Other,
    }
}

/// A signal warning; `client_seq` (sessions) or `chunk_index` (AnalyzeSignals) says which
/// chunk it is about.
pub fn signal_warning(
    w: &StreamWarning,
    client_seq: Option<u64>,
    chunk_index: Option<u32>,
) -> proto::SignalWarning {
    let kind = match w.kind {
        WarningKind::SampleGap => proto::SignalWarningKind::SampleGap,
        WarningKind::SampleOverlap => proto::SignalWarningKind::SampleOverlap,
        WarningKind::NonFinite => proto::SignalWarningKind::NonFinite,
        WarningKind::Quality => proto::SignalWarningKind::Quality,
        WarningKind::Clock => proto::SignalWarningKind::Clock,
    };
    proto::SignalWarning {
        kind: kind as i32,
        message: w.message.clone(),
        stream_id: w.stream_id.clone(),
        timestamp: Some(w.timestamp),
        client_seq,
        chunk_index,
    }
}

/// One feature window.
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
            arousal_index: f.arousal_index,
            engagement_index: f.engagement_index,
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
            heart_rate_bpm: c.heart_rate_bpm,
            heart_rate_change_bpm: c.heart_rate_change_bpm,
            rmssd_ms: c.hrv.map(|h| h.rmssd_ms),
            sdnn_ms: c.hrv.map(|h| h.sdnn_ms),
            pnn50: c.hrv.map(|h| h.pnn50),
        })),
        Features::Respiration(r) => Some(P::Respiration(proto::RespirationFeatures {
            rate_per_min: r.rate_per_min,
        })),
        Features::None => None,
    };
    proto::FeatureWindow {
        stream_id: w.stream_id.clone(),
        kind: signal_kind(w.kind) as i32,
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

fn explain_timings(t: &Timings) -> proto::ExplainTimings {
    proto::ExplainTimings {
        time_to_first_token_ms: t.time_to_first_token_ms,
        prompt_tokens: t.prompt_tokens,
        generated_tokens: t.generated_tokens,
        prompt_tokens_per_s: t.prompt_tokens_per_s,
        generation_tokens_per_s: t.generation_tokens_per_s,
        total_ms: t.total_ms,
    }
}

/// An explanation's outcome.
pub fn explanation(e: &Explanation) -> proto::ExplainResult {
    let distribution = |p: &[f32]| -> Vec<proto::LabelProbability> {
        e.labels
            .iter()
            .zip(p)
            .map(|(label, probability)| proto::LabelProbability {
                label: label.clone(),
                probability: *probability,
            })
            .collect()
    };
    proto::ExplainResult {
        parsed: e.parsed,
        judgements: e
            .judgements
            .iter()
            .map(|f| {
                let j = &f.judgement;
                proto::Judgement {
                    face_id: j.face_id,
                    label: j.label.clone(),
                    confidence: j.confidence,
                    valence: j.valence,
                    arousal: j.arousal,
                    rationale: j.rationale.clone(),
                    label_probabilities: distribution(&f.label_probabilities),
                    citations: f
                        .citations
                        .iter()
                        .map(|c| proto::Citation {
                            key: c.key.clone(),
                            direction: c.direction.clone(),
                            value: c.value,
                            verdict: match c.verdict {
                                Verdict::Supported => proto::CitationVerdict::Supported,
                                Verdict::Unsupported => proto::CitationVerdict::Unsupported,
                                Verdict::Contradicted => proto::CitationVerdict::Contradicted,
                            } as i32,
                            note: c.note.clone(),
                        })
                        .collect(),
                    grounding: f.grounding,
                    combined_label: f.combined.as_ref().map_or(String::new(), |c| c.0.clone()),
                    combined_probabilities: f
                        .combined
                        .as_ref()
                        .map_or(Vec::new(), |c| distribution(&c.1)),
                    label_probability_method: f.label_probability_method.clone(),
                }
            })
            .collect(),
        raw_text: e.raw_text.clone(),
        parse_error: e.parse_error.clone(),
        repair_attempts: e.repair_attempts,
        template_id: e.template_id.clone(),
        backend: e.backend.clone(),
        model: e.model.clone(),
        timings: Some(explain_timings(&e.timings)),
        image_included: e.image_included,
        stages: e.stages.as_ref().map(|s| proto::Stages {
            scene: s.scene.clone(),
            body: s.body.clone(),
            others: s.others.clone(),
            cues: s.cues.clone(),
            check: s.check.clone(),
        }),
        constrained: e.constrained,
        combination_method: e.combination_method.clone(),
    }
}

/// A session's configuration, as its recording stores it.
pub fn session_config(c: &crate::session::SessionConfig) -> proto::SessionConfig {
    let f = &c.frame;
    proto::SessionConfig {
        session_id: c.session_id.clone().unwrap_or_default(),
        participant: c.participant.clone(),
        streams: c
            .streams
            .iter()
            .map(|s| proto::StreamInfo {
                stream_id: s.id.clone(),
                kind: signal_kind(s.kind) as i32,
                nominal_rate_hz: s.rate_hz,
                channels: s
                    .channels
                    .iter()
                    .map(|ch| proto::ChannelInfo {
                        label: ch.label.clone(),
                        unit: ch.unit.clone(),
                    })
                    .collect(),
            })
            .collect(),
        frame_options: Some(proto::FrameOptions {
            detector_max_side: f.detector_max_side.unwrap_or(0),
            min_face_score: f.min_face_score.unwrap_or(0.0),
            max_faces: f.max_faces,
            skip_landmarks: f.skip_landmarks,
            skip_blendshapes: f.skip_blendshapes,
            skip_expression: f.skip_expression,
            return_marked_image: f.return_marked_image,
            marks: f.marks.map(|m| proto::MarkOptions {
                boxes: m.boxes,
                landmarks: m.landmarks,
                au_tags: m.au_tags,
                face_ids: m.face_ids,
                motion: m.motion,
            }),
            marked_image_format: match f.marked_image_encoding {
                crate::vision::marks::Encoding::Png => proto::ImageFormat::Png,
                crate::vision::marks::Encoding::Jpeg => proto::ImageFormat::Jpeg,
            } as i32,
        }),
        signal_config: Some(proto::SignalConfig {
            window_s: c.analysis.window_s,
            hop_s: c.analysis.hop_s,
            eeg_bands: c
                .analysis
                .bands
                .iter()
                .map(|b| proto::Band {
                    name: b.name.clone(),
                    low_hz: b.low_hz,
                    high_hz: b.high_hz,
                })
                .collect(),
            line_frequency_hz: c.analysis.line_hz,
            baseline_s: c.analysis.baseline_s,
        }),
        no_record: !c.record,
        metadata: c.metadata.clone().into_iter().collect(),
        detect_every_n_frames: c.detect_every.unwrap_or(0),
    }
}

/// A fusion modality.
pub fn modality(m: crate::fusion::Modality) -> proto::Modality {
    use crate::fusion::Modality as M;
    match m {
        M::Face => proto::Modality::Face,
        M::Eeg => proto::Modality::Eeg,
        M::Cardiac => proto::Modality::Cardiac,
        M::Eda => proto::Modality::Eda,
        M::Respiration => proto::Modality::Respiration,
    }
}

/// A fused estimate.
pub fn fused_estimate(e: &crate::fusion::FusedEstimate) -> proto::FusedEstimate {
    proto::FusedEstimate {
        start_time: e.start_time,
        end_time: e.end_time,
        valence: e.valence,
        arousal: e.arousal,
        labels: e
            .label_names
            .iter()
            .zip(&e.labels)
            .map(|(label, p)| proto::LabelProbability {
                label: label.clone(),
                probability: *p as f32,
            })
            .collect(),
        contributions: e
            .contributions
            .iter()
            .map(|c| proto::ModalityContribution {
                modality: modality(c.modality) as i32,
                weight: c.weight,
                reliability: c.reliability,
                valence: c.valence,
                arousal: c.arousal,
            })
            .collect(),
        method: e.method.clone(),
    }
}

/// A calibration's figures.
pub fn calibration(model: &crate::fusion::calibrate::FusionModel) -> proto::CalibrateResponse {
    let cv = &model.cross_validation;
    proto::CalibrateResponse {
        classes: cv.classes.clone(),
        hops: cv.hops as u64,
        folds: cv.folds as u32,
        balanced_accuracy: cv.balanced_accuracy,
        chance_level: cv.chance_level,
        chance_95th_percentile: cv.chance_95th_percentile,
        features: model.lda.feature_names.clone(),
        method: model.method(),
    }
}
