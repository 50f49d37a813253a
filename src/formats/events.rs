//! Expression episodes (`affect.v1.ExpressionEvent`) as JSON lines, as a CSV table, and in
//! plain words. `affectd analyze` writes them for videos, and the session export and
//! `affectd sessions analyze` for sessions.
//!
//! | column | meaning |
//! |---|---|
//! | `source` | the file (analyze) or the session id (export) |
//! | `face_id` | the tracked face |
//! | `onset`, `apex`, `offset` | s: from the video's start (analyze) or the client clock (sessions) |
//! | `duration_s` | offset - onset, s |
//! | `end` | `returned`, `face_lost`, `stream_ended` or `max_episode_s` |
//! | `micro_candidate` | 1: shorter than 0.5 s with every AU's peak slight: a micro-expression candidate, never a detection |
//! | `peak_motion` | largest pose-compensated landmark motion, inter-ocular distances; empty without landmarks |
//! | `action_units` | the AUs involved, highest peak first, `;`-separated |
//! | `AU01_peak`.. | each AU's peak baseline-corrected intensity, `[0,5]`; empty when it was not involved |
//! | `apex_angry`..`apex_neutral` | the combined expression distribution at the apex |
//! | `dynamics` | the AUs' dynamics in words, as a prompt states them |

use serde_json::{Value, json};

use crate::proto;
use crate::vision::action_units::TABLE as AU_TABLE;
use crate::vision::dynamics::describe_au;
use crate::vision::expression::LABELS;

pub fn kind_name(e: &proto::ExpressionEvent) -> &'static str {
    match e.kind() {
        proto::expression_event::Kind::Started => "started",
        proto::expression_event::Kind::Ended => "ended",
        proto::expression_event::Kind::Unspecified => "unspecified",
    }
}

pub fn end_name(e: &proto::ExpressionEvent) -> Option<&'static str> {
    match e.end() {
        proto::EpisodeEnd::Unspecified => None,
        proto::EpisodeEnd::Returned => Some("returned"),
        proto::EpisodeEnd::FaceLost => Some("face_lost"),
        proto::EpisodeEnd::StreamEnded => Some("stream_ended"),
        proto::EpisodeEnd::MaxDuration => Some("max_episode_s"),
    }
}

/// The AUs' dynamics in plain words with numbers, e.g. "AU12 rose from 0.40 to 3.10 in
/// 380 ms, held 1.20 s".
pub fn describe(e: &proto::ExpressionEvent) -> String {
    e.action_units
        .iter()
        .map(|au| {
            describe_au(
                au.number,
                au.start_intensity,
                au.peak_intensity,
                au.peak_time - e.onset,
                au.held_s,
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn apex_map(e: &proto::ExpressionEvent) -> Option<Value> {
    (!e.apex_expression.is_empty()).then(|| {
        Value::Object(
            e.apex_expression
                .iter()
                .map(|lp| (lp.label.clone(), json!(lp.probability)))
                .collect(),
        )
    })
}

/// One event as a JSON object (`"record": "expression_event"`).
pub fn event_json(source: &str, e: &proto::ExpressionEvent) -> Value {
    json!({
        "source": source,
        "record": "expression_event",
        "kind": kind_name(e),
        "face_id": e.face_id,
        "onset": e.onset,
        "apex": e.apex,
        "offset": e.offset,
        "duration_s": e.duration_s,
        "end": end_name(e),
        "micro_candidate": e.micro_candidate,
        "peak_motion": e.peak_motion,
        "action_units": e.action_units.iter().map(|au| json!({
            "au": au.name,
            "start_intensity": au.start_intensity,
            "peak_intensity": au.peak_intensity,
            "peak_time": au.peak_time,
            "held_s": au.held_s,
        })).collect::<Vec<_>>(),
        "apex_expression": apex_map(e),
        "dynamics": describe(e),
    })
}

/// The events table's header.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "source",
        "face_id",
        "onset",
        "apex",
        "offset",
        "duration_s",
        "end",
        "micro_candidate",
        "peak_motion",
        "action_units",
    ]
    .map(String::from)
    .to_vec();
    h.extend(AU_TABLE.iter().map(|(n, _, _)| format!("AU{n:02}_peak")));
    h.extend(LABELS.iter().map(|l| format!("apex_{l}")));
    h.push("dynamics".into());
    h
}

/// One ended episode's row.
pub fn row(source: &str, e: &proto::ExpressionEvent) -> Vec<String> {
    let mut row = vec![
        source.to_owned(),
        e.face_id.to_string(),
        format!("{:.6}", e.onset),
        format!("{:.6}", e.apex),
        e.offset.map_or(String::new(), |v| format!("{v:.6}")),
        e.duration_s.map_or(String::new(), |v| format!("{v:.6}")),
        end_name(e).unwrap_or("").to_owned(),
        u8::from(e.micro_candidate).to_string(),
        e.peak_motion.map_or(String::new(), |v| format!("{v:.4}")),
        e.action_units
            .iter()
            .map(|au| au.name.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    ];
    row.extend(AU_TABLE.iter().map(|(n, _, _)| {
        e.action_units
            .iter()
            .find(|au| au.number == *n)
            .map_or(String::new(), |au| format!("{:.3}", au.peak_intensity))
    }));
    row.extend(LABELS.iter().map(|l| {
        e.apex_expression
            .iter()
            .find(|lp| lp.label == *l)
            .map_or(String::new(), |lp| format!("{:.4}", lp.probability))
    }));
    row.push(describe(e));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_reads_in_words_and_fills_its_row() {
        let e = proto::ExpressionEvent {
            kind: proto::expression_event::Kind::Ended.into(),
            face_id: 2,
            onset: 10.0,
            apex: 10.38,
            offset: Some(11.7),
            duration_s: Some(1.7),
            action_units: vec![proto::EpisodeActionUnit {
                number: 12,
                name: "AU12".into(),
                start_intensity: 0.4,
                peak_intensity: 3.1,
                peak_time: 10.38,
                held_s: 1.2,
            }],
            end: proto::EpisodeEnd::Returned.into(),
            ..Default::default()
        };
        assert_eq!(
            describe(&e),
            "AU12 rose from 0.40 to 3.10 in 380 ms, held 1.20 s"
        );
        let (h, r) = (header(), row("clip.mp4", &e));
        assert_eq!(h.len(), r.len());
        let cell = |name: &str| r[h.iter().position(|c| c == name).unwrap()].clone();
        assert_eq!(cell("AU12_peak"), "3.100");
        assert_eq!(cell("AU04_peak"), "");
        assert_eq!(cell("end"), "returned");
        assert_eq!(cell("peak_motion"), "");
        assert_eq!(cell("apex_happy"), "");
        assert_eq!(event_json("clip.mp4", &e)["kind"], "ended");
    }
}
