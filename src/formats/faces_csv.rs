//! The face table: one row per face per analysed frame, with OpenFace 2's column names
//! where OpenFace has the quantity, so that OpenFace and py-feat analysis scripts read it.
//! `affectd analyze --format csv` and the session export's `faces.csv` both write it.
//!
//! | column | meaning |
//! |---|---|
//! | `source` | the file (analyze) or the session id (export) |
//! | `frame` | frame number from 0 (analyze) or the frame's client_seq (export) |
//! | `timestamp` | s: from the video's start (analyze) or the client clock (export) |
//! | `face_id` | stable across a video's or session's frames (tracking) |
//! | `confidence` | detection score, `[0,1]` (OpenFace's name) |
//! | `success` | 1 when the face mesh found a face (presence >= 0.5), as OpenFace's |
//! | `tracked` | 1 when located by tracking from the previous frame |
//! | `face_x`, `face_y`, `face_width`, `face_height` | box, px |
//! | `presence` | face-mesh presence probability, `[0,1]` |
//! | `pose_Rx`, `pose_Ry`, `pose_Rz` | pitch, yaw, roll in radians (OpenFace's axes; affectd's signs: yaw > 0 turned to the subject's left, pitch > 0 up, roll > 0 toward the left shoulder) |
//! | `x_0`..`x_477`, `y_0`.., `z_0`.. | the 478 mesh points, px (z: relative depth) |
//! | `AU01_r`.. | AU intensity estimates, `[0,5]` |
//! | `AU01_c`.. | AU presence, 0/1 |
//! | `fer_angry`.. | the FER model's probabilities |
//! | `prototype_angry`.. | the AU-prototype distribution |
//! | `angry`..`neutral` | the combined expression distribution |
//! | `valence`, `arousal` | from the combined distribution, `[-1,1]` and `[0,1]` |
//! | `AU01_baseline`.. | the tracked face's neutral level of each AU (videos and sessions, once settled), `[0,5]` |
//! | `AU01_r_corrected`.. | intensity - baseline, `[0,5]` |
//! | `AU01_c_corrected`.. | presence on the corrected intensity, 0/1 |
//! | `prototypes_corrected` | 1 when the prototype distribution (and so the combined one) used the corrected AUs |
//!
//! A cell is empty when its stage did not run: never 0 for "not computed".

use crate::proto;
use crate::vision::action_units::TABLE as AU_TABLE;
use crate::vision::expression::LABELS;
use crate::vision::mesh::LANDMARK_COUNT;

fn au_column(number: u32, suffix: &str) -> String {
    format!("AU{number:02}_{suffix}")
}

/// The header row.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "source",
        "frame",
        "timestamp",
        "face_id",
        "confidence",
        "success",
        "tracked",
        "face_x",
        "face_y",
        "face_width",
        "face_height",
        "presence",
        "pose_Rx",
        "pose_Ry",
        "pose_Rz",
    ]
    .map(String::from)
    .to_vec();
    for axis in ["x", "y", "z"] {
        h.extend((0..LANDMARK_COUNT).map(|i| format!("{axis}_{i}")));
    }
    h.extend(AU_TABLE.iter().map(|(n, _, _)| au_column(*n, "r")));
    h.extend(AU_TABLE.iter().map(|(n, _, _)| au_column(*n, "c")));
    h.extend(LABELS.iter().map(|l| format!("fer_{l}")));
    h.extend(LABELS.iter().map(|l| format!("prototype_{l}")));
    h.extend(LABELS.iter().map(|l| (*l).to_owned()));
    h.extend(["valence", "arousal"].map(String::from));
    h.extend(AU_TABLE.iter().map(|(n, _, _)| au_column(*n, "baseline")));
    h.extend(
        AU_TABLE
            .iter()
            .map(|(n, _, _)| au_column(*n, "r_corrected")),
    );
    h.extend(
        AU_TABLE
            .iter()
            .map(|(n, _, _)| au_column(*n, "c_corrected")),
    );
    h.push("prototypes_corrected".into());
    h
}

/// The probabilities of a distribution in [`LABELS`] order; empty cells when it is empty.
fn distribution_cells(p: &[proto::LabelProbability]) -> Vec<String> {
    LABELS
        .iter()
        .map(|label| {
            p.iter()
                .find(|lp| lp.label == *label)
                .map_or(String::new(), |lp| format!("{:.4}", lp.probability))
        })
        .collect()
}

/// One face's row.
pub fn row(source: &str, frame: u64, timestamp: f64, face: &proto::Face) -> Vec<String> {
    let blank = |n: usize| std::iter::repeat_n(String::new(), n);
    let b = face.r#box.unwrap_or_default();
    let mut row = vec![
        source.to_owned(),
        frame.to_string(),
        format!("{timestamp:.6}"),
        face.face_id.to_string(),
        format!("{:.4}", face.detection_score),
        u8::from(face.presence_score.is_none_or(|p| p >= 0.5)).to_string(),
        u8::from(face.tracked).to_string(),
    ];
    row.extend([b.x, b.y, b.width, b.height].map(|v| format!("{v:.2}")));
    row.push(
        face.presence_score
            .map_or(String::new(), |p| format!("{p:.4}")),
    );
    match &face.head_pose {
        Some(p) => row.extend(
            [p.pitch_deg, p.yaw_deg, p.roll_deg].map(|deg| format!("{:.4}", deg.to_radians())),
        ),
        None => row.extend(blank(3)),
    }
    if face.landmarks.len() == LANDMARK_COUNT {
        row.extend(face.landmarks.iter().map(|p| format!("{:.2}", p.x)));
        row.extend(face.landmarks.iter().map(|p| format!("{:.2}", p.y)));
        row.extend(face.landmarks.iter().map(|p| format!("{:.2}", p.z)));
    } else {
        row.extend(blank(3 * LANDMARK_COUNT));
    }
    let au = |number: u32| face.action_units.iter().find(|a| a.number == number);
    row.extend(
        AU_TABLE
            .iter()
            .map(|(n, _, _)| au(*n).map_or(String::new(), |a| format!("{:.3}", a.intensity))),
    );
    row.extend(
        AU_TABLE
            .iter()
            .map(|(n, _, _)| au(*n).map_or(String::new(), |a| u8::from(a.present).to_string())),
    );
    match &face.expression {
        Some(e) => {
            row.extend(distribution_cells(&e.fer));
            row.extend(distribution_cells(&e.au_prototypes));
            row.extend(distribution_cells(&e.combined));
            row.extend([e.valence, e.arousal].map(|v| format!("{v:.4}")));
        }
        None => row.extend(blank(3 * LABELS.len() + 2)),
    }
    let cell = |v: Option<String>| v.unwrap_or_default();
    row.extend(
        AU_TABLE
            .iter()
            .map(|(n, _, _)| cell(au(*n).and_then(|a| a.baseline).map(|v| format!("{v:.3}")))),
    );
    row.extend(AU_TABLE.iter().map(|(n, _, _)| {
        cell(
            au(*n)
                .and_then(|a| a.corrected_intensity)
                .map(|v| format!("{v:.3}")),
        )
    }));
    row.extend(AU_TABLE.iter().map(|(n, _, _)| {
        cell(
            au(*n)
                .and_then(|a| a.corrected_present)
                .map(|v| u8::from(v).to_string()),
        )
    }));
    row.push(cell(
        face.expression
            .as_ref()
            .map(|e| u8::from(e.au_prototypes_corrected).to_string()),
    ));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_without_its_later_stages_has_empty_cells_not_zeros() {
        let face = proto::Face {
            face_id: 3,
            detection_score: 0.9,
            r#box: Some(proto::BoundingBox {
                x: 1.0,
                y: 2.0,
                width: 30.0,
                height: 40.0,
            }),
            ..Default::default()
        };
        let header = header();
        let row = row("a.jpg", 0, 0.0, &face);
        assert_eq!(header.len(), row.len());
        let cell = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(cell("face_id"), "3");
        assert_eq!(cell("presence"), "");
        assert_eq!(cell("pose_Ry"), "");
        assert_eq!(cell("AU12_r"), "");
        assert_eq!(cell("x_0"), "");
        assert_eq!(cell("happy"), "");
        assert_eq!(cell("valence"), "");
        // No mesh ran, so the detection is all there is: success as OpenFace's.
        assert_eq!(cell("success"), "1");
    }
}
