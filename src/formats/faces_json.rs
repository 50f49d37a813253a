//! A frame's faces as one JSON object (`affectd analyze --format jsonl`, one line per
//! frame). Keys are OpenFace's names where OpenFace has the quantity; a stage that did not
//! run leaves its key out.

use serde_json::{Map, Value, json};

use crate::vision::blendshapes::NAMES;
use crate::vision::expression::LABELS;
use crate::vision::{FaceResult, FrameResult};

fn au_column(number: u32, suffix: &str) -> String {
    format!("AU{number:02}_{suffix}")
}

pub fn face_json(face: &FaceResult) -> Value {
    let d = &face.detection;
    let mut obj = Map::new();
    obj.insert("face_id".into(), json!(face.face_id));
    obj.insert("confidence".into(), json!(d.score));
    obj.insert("tracked".into(), json!(face.tracked));
    obj.insert(
        "box".into(),
        json!({"x": d.x, "y": d.y, "width": d.width, "height": d.height}),
    );
    obj.insert("keypoints".into(), json!(d.keypoints));
    if let Some(mesh) = &face.mesh {
        obj.insert("presence".into(), json!(mesh.presence));
        obj.insert("landmarks".into(), json!(mesh.points));
    }
    if let Some(p) = &face.head_pose {
        obj.insert(
            "head_pose".into(),
            json!({"yaw_deg": p.yaw, "pitch_deg": p.pitch, "roll_deg": p.roll}),
        );
    }
    if let Some(b) = &face.blendshapes {
        let map: Map<String, Value> = NAMES
            .iter()
            .zip(b)
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        obj.insert("blendshapes".into(), Value::Object(map));
    }
    if !face.action_units.is_empty() {
        let mut map = Map::new();
        for au in &face.action_units {
            map.insert(au_column(au.number, "r"), json!(au.intensity));
            map.insert(au_column(au.number, "c"), json!(u8::from(au.present)));
        }
        obj.insert("action_units".into(), Value::Object(map));
        if let Some(method) = &face.au_baseline_method {
            let mut corrected = Map::new();
            for au in &face.action_units {
                if let (Some(b), Some(c)) = (au.baseline, au.corrected) {
                    corrected.insert(au_column(au.number, "baseline"), json!(b));
                    corrected.insert(au_column(au.number, "r"), json!(c));
                    corrected.insert(
                        au_column(au.number, "c"),
                        json!(u8::from(
                            c >= crate::vision::action_units::PRESENCE_THRESHOLD
                        )),
                    );
                }
            }
            obj.insert(
                "action_units_corrected".into(),
                json!({"method": method.as_ref(), "values": corrected}),
            );
        }
    }
    if let Some(e) = &face.expression {
        let dist = |p: &[f32; 7]| -> Value {
            Value::Object(
                LABELS
                    .iter()
                    .zip(p)
                    .map(|(l, v)| ((*l).to_owned(), json!(v)))
                    .collect(),
            )
        };
        obj.insert(
            "expression".into(),
            json!({
                "fer": e.fer.as_ref().map(dist),
                "au_prototypes": e.au_prototypes.as_ref().map(dist),
                "combined": dist(&e.combined),
                "valence": e.valence,
                "arousal": e.arousal,
                "au_prototypes_corrected": e.au_prototypes_corrected,
            }),
        );
    }
    Value::Object(obj)
}

pub fn frame_json(source: &str, frame: u64, timestamp: f64, result: &FrameResult) -> Value {
    json!({
        "source": source,
        "frame": frame,
        "timestamp": timestamp,
        "width": result.width,
        "height": result.height,
        "faces": result.faces.iter().map(face_json).collect::<Vec<_>>(),
        "timings_ms": result.timings.iter().map(|(s, ms)| ((*s).to_owned(), json!(ms))).collect::<Map<String, Value>>(),
    })
}
