//! Plain-data views of a frame's results: JSON (one object per frame) and CSV rows with
//! OpenFace's column names, so existing OpenFace/py-feat analysis scripts can read them.

use serde_json::{Map, Value, json};

use super::action_units::TABLE;
use super::blendshapes::NAMES;
use super::expression::LABELS;
use super::mesh::LANDMARK_COUNT;
use super::pipeline::{FaceResult, FrameResult};

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

/// OpenFace-style header: source, frame, timestamp, face_id, confidence, box, landmarks
/// (x_i, y_i, z_i in pixels), pose_Rx/Ry/Rz (radians: pitch, yaw, roll, as OpenFace),
/// AUxx_r, AUxx_c, expression probabilities (combined), valence, arousal.
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "source",
        "frame",
        "timestamp",
        "face_id",
        "confidence",
        "success",
        "tracked",
    ]
    .map(String::from)
    .to_vec();
    h.extend(["face_x", "face_y", "face_width", "face_height"].map(String::from));
    for axis in ["x", "y", "z"] {
        h.extend((0..LANDMARK_COUNT).map(|i| format!("{axis}_{i}")));
    }
    h.extend(["pose_Rx", "pose_Ry", "pose_Rz"].map(String::from));
    h.extend(TABLE.iter().map(|(n, _, _)| au_column(*n, "r")));
    h.extend(TABLE.iter().map(|(n, _, _)| au_column(*n, "c")));
    h.extend(LABELS.iter().map(|l| (*l).to_owned()));
    h.extend(["valence", "arousal"].map(String::from));
    h
}

/// One CSV row per face; empty cells where a stage did not run.
pub fn csv_rows(
    source: &str,
    frame: u64,
    timestamp: f64,
    result: &FrameResult,
) -> Vec<Vec<String>> {
    let blank = |n: usize| std::iter::repeat_n(String::new(), n);
    result
        .faces
        .iter()
        .map(|face| {
            let d = &face.detection;
            let mut row = vec![
                source.to_owned(),
                frame.to_string(),
                format!("{timestamp:.6}"),
                face.face_id.to_string(),
                format!("{:.4}", d.score),
                u8::from(face.mesh.as_ref().is_none_or(|m| m.presence >= 0.5)).to_string(),
                u8::from(face.tracked).to_string(),
            ];
            row.extend([d.x, d.y, d.width, d.height].map(|v| format!("{v:.2}")));
            match &face.mesh {
                Some(mesh) => {
                    for axis in 0..3 {
                        row.extend(mesh.points.iter().map(|p| format!("{:.2}", p[axis])));
                    }
                }
                None => row.extend(blank(3 * LANDMARK_COUNT)),
            }
            match &face.head_pose {
                Some(p) => row
                    .extend([p.pitch, p.yaw, p.roll].map(|deg| format!("{:.4}", deg.to_radians()))),
                None => row.extend(blank(3)),
            }
            if face.action_units.is_empty() {
                row.extend(blank(2 * TABLE.len()));
            } else {
                row.extend(
                    face.action_units
                        .iter()
                        .map(|u| format!("{:.3}", u.intensity)),
                );
                row.extend(
                    face.action_units
                        .iter()
                        .map(|u| u8::from(u.present).to_string()),
                );
            }
            match &face.expression {
                Some(e) => {
                    row.extend(e.combined.iter().map(|p| format!("{p:.4}")));
                    row.extend([e.valence, e.arousal].map(|v| format!("{v:.4}")));
                }
                None => row.extend(blank(9)),
            }
            row
        })
        .collect()
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
