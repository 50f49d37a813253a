//! The dashboard's review of a one-hour recording: how long the server takes to read its
//! overview (`store::overview`, every series thinned to 800 points, as the review page
//! asks on load) and to serialise it as the JSON the page gets, a zoomed ten minutes, and
//! the frame at a time (scrubbing).
//!
//! The recording is written here through the store, as a live session writes it: one face
//! at 30 fps (108,000 face results of the real encoded size: 478 landmarks, 52
//! blendshapes, 20 AUs, the expression), a 32-channel EEG window, an EDA window, an ECG
//! window (72 bpm) and a fused estimate per second, a marker every 10 s and an expression
//! episode every 20 s. Frames are 30 fps stand-ins of 2 KB (a real 640x480 JPEG is about
//! 40 KB, 4 GB an hour): the overview never reads frames, and the moment reads one by its
//! index. Raw signal chunks are not written: the overview never reads them.
//!
//!     cargo bench --bench dashboard -- [--runs 5] [--keep DIR [--reuse]]
//!
//! `--keep DIR` leaves the database in DIR (`sessions.sqlite`, session `hour`) for a
//! browser measurement against a server; `--reuse` with it measures a database kept
//! before without writing it again. Under `cargo test --benches` (no `--bench`) it is
//! a 60-second recording. No peer: the figure is against the 2-s budget.

use std::time::{Duration, Instant};

use affectd::proto;
use affectd::store::{FrameData, Record, Store};
use prost::Message;

const FPS: usize = 30;

fn face_result(seq: u64, t: f64) -> Vec<u8> {
    let phase = (t * 0.1).sin() as f32;
    let landmarks = (0..478)
        .map(|i| proto::Point3 {
            x: 200.0 + (i % 22) as f32 * 9.0 + phase,
            y: 150.0 + (i / 22) as f32 * 9.0,
            z: (i as f32 * 0.37).sin() * 10.0,
        })
        .collect();
    let labels = [
        "neutral", "happy", "surprise", "fear", "angry", "disgust", "sad",
    ];
    let distribution = |shift: f32| {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| proto::LabelProbability {
                label: (*l).into(),
                probability: if i == 0 {
                    0.5 - shift
                } else if i == 1 {
                    0.4 + shift
                } else {
                    0.1 / 5.0
                },
            })
            .collect::<Vec<_>>()
    };
    let face = proto::Face {
        face_id: 1,
        detection_score: 0.98,
        landmarks,
        presence_score: Some(0.99),
        blendshapes: (0..52)
            .map(|i| proto::Blendshape {
                name: format!("blendshape{i:02}"),
                score: 0.1,
            })
            .collect(),
        action_units: (0..20)
            .map(|i| proto::ActionUnit {
                number: i + 1,
                name: format!("AU{:02}", i + 1),
                intensity: 1.0 + phase,
                present: phase > 0.0,
                ..Default::default()
            })
            .collect(),
        expression: Some(proto::Expression {
            fer: distribution(phase * 0.1),
            au_prototypes: distribution(0.0),
            combined: distribution(phase * 0.1),
            valence: 0.3 * phase,
            arousal: 0.5,
            ..Default::default()
        }),
        tracked: true,
        ..Default::default()
    };
    proto::FaceFrameResult {
        client_seq: seq,
        timestamp: t,
        faces: vec![face],
        timings: Vec::new(),
    }
    .encode_to_vec()
}

fn window(stream_id: &str, kind: proto::SignalKind, t: f64) -> Vec<u8> {
    use proto::feature_window::Features;
    let (quality, features) = match kind {
        proto::SignalKind::Eeg => {
            let channels: Vec<String> = [
                "Fp1", "Fp2", "F3", "F4", "F7", "F8", "Fz", "FC1", "FC2", "C3", "C4", "Cz", "CP1",
                "CP2", "T7", "T8", "TP9", "TP10", "P3", "P4", "P7", "P8", "Pz", "PO3", "PO4", "O1",
                "O2", "Oz", "AF3", "AF4", "FC5", "FC6",
            ]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
            let bands = ["delta", "theta", "alpha", "beta", "gamma"];
            let band_powers = channels
                .iter()
                .flat_map(|c| {
                    bands
                        .iter()
                        .enumerate()
                        .map(move |(i, b)| proto::BandPower {
                            channel: c.clone(),
                            band: (*b).into(),
                            absolute: 10.0 / (i + 1) as f64,
                            relative: Some(0.2 + 0.01 * (t * 0.05 + i as f64).sin()),
                            differential_entropy: Some(1.5),
                        })
                })
                .collect();
            (
                channels
                    .iter()
                    .map(|c| proto::ChannelQuality {
                        channel: c.clone(),
                        usable: true,
                        ..Default::default()
                    })
                    .collect(),
                Features::Eeg(proto::EegFeatures {
                    band_powers,
                    asymmetry: Vec::new(),
                    arousal_index: Some(0.8),
                    engagement_index: Some(0.4),
                }),
            )
        }
        proto::SignalKind::Eda => (
            vec![proto::ChannelQuality {
                channel: "EDA".into(),
                usable: true,
                ..Default::default()
            }],
            Features::Eda(proto::EdaFeatures {
                tonic_mean: 5.0 + (t / 300.0).sin(),
                responses: if (t as i64) % 7 == 0 {
                    vec![proto::Scr {
                        onset_time: t - 0.8,
                        peak_time: t - 0.2,
                        amplitude: 0.3,
                        rise_time_s: 0.6,
                    }]
                } else {
                    Vec::new()
                },
                scr_rate_per_min: 8.0,
            }),
        ),
        _ => (
            vec![proto::ChannelQuality {
                channel: "ECG".into(),
                usable: true,
                ..Default::default()
            }],
            Features::Cardiac(proto::CardiacFeatures {
                beat_times: vec![t - 0.9, t - 0.07],
                heart_rate_bpm: Some(72.0 + 3.0 * (t / 60.0).sin()),
                ..Default::default()
            }),
        ),
    };
    proto::FeatureWindow {
        stream_id: stream_id.into(),
        kind: kind as i32,
        start_time: t - 1.0,
        end_time: t,
        quality,
        features: Some(features),
        estimate: None,
    }
    .encode_to_vec()
}

fn fused(t: f64) -> Vec<u8> {
    proto::FusedEstimate {
        start_time: t - 1.0,
        end_time: t,
        valence: Some(0.2 * (t / 30.0).sin()),
        arousal: Some(0.5),
        labels: vec![proto::LabelProbability {
            label: "neutral".into(),
            probability: 1.0,
        }],
        method: "fusion-v1".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn episode(t: f64) -> Vec<u8> {
    proto::ExpressionEvent {
        kind: 2,
        face_id: 1,
        onset: t,
        apex: t + 0.4,
        offset: Some(t + 1.2),
        duration_s: Some(1.2),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Writes a recording of `seconds` as session `hour`.
fn record(store: &Store, seconds: usize) {
    let config = proto::SessionConfig {
        session_id: "hour".into(),
        participant: "P01".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut recorder = store.begin("hour", "P01", None, 0.0, &config).unwrap();
    let jpeg_stand_in = vec![0xA5u8; 2048];
    let mut seq = 1u64;
    for second in 0..seconds {
        let mut batch = Vec::with_capacity(2 * FPS + 8);
        for frame in 0..FPS {
            let t = second as f64 + frame as f64 / FPS as f64;
            batch.push(Record::Frame {
                client_seq: seq,
                timestamp: t,
                received_at: t,
                width: 640,
                height: 480,
                data: FrameData::Encoded(jpeg_stand_in.clone()),
            });
            batch.push(Record::FaceResult {
                client_seq: seq,
                timestamp: t,
                encoded: face_result(seq, t),
            });
            seq += 1;
        }
        let t = second as f64 + 1.0;
        for (id, kind) in [
            ("eeg", proto::SignalKind::Eeg),
            ("eda", proto::SignalKind::Eda),
            ("ecg", proto::SignalKind::Ecg),
        ] {
            batch.push(Record::FeatureWindow {
                stream_id: id.into(),
                start_time: t - 1.0,
                end_time: t,
                encoded: window(id, kind, t),
            });
        }
        batch.push(Record::FusedEstimate {
            start_time: t - 1.0,
            end_time: t,
            encoded: fused(t),
        });
        if second % 10 == 0 {
            batch.push(Record::Marker {
                client_seq: seq,
                timestamp: second as f64,
                label: format!("trial {}", second / 10),
                duration_s: 0.0,
            });
            seq += 1;
        }
        if second % 20 == 5 {
            batch.push(Record::ExpressionEvent {
                face_id: 1,
                onset: second as f64,
                offset: second as f64 + 1.2,
                encoded: episode(second as f64),
            });
        }
        recorder.write(&batch).unwrap();
    }
    recorder.end(seconds as f64, "the bench ended it").unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = value("--runs").map_or(5, |v| v.parse().expect("--runs N"));
    let seconds = if bench { 3600 } else { 60 };
    let temporary = tempfile::tempdir().unwrap();
    let dir = value("--keep").map_or_else(|| temporary.path().to_owned(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sessions.sqlite");
    let reuse = args.iter().any(|a| a == "--reuse") && path.exists();
    if !reuse {
        let _ = std::fs::remove_file(&path);
    }
    let store = Store::open(&path).unwrap();
    let started = Instant::now();
    if !reuse {
        record(&store, seconds);
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "recording: {seconds} s ({} face results), written in {:.1} s, database {:.0} MB",
        seconds * FPS,
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    let measure = |what: &str, f: &dyn Fn() -> usize| {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let t = Instant::now();
            size = f();
            times.push(t.elapsed());
        }
        let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let (lo, hi) = ms
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "{what}: median {:.1} ms (range {lo:.1}-{hi:.1} ms over {runs} runs), {size} bytes",
            median(times).as_secs_f64() * 1e3
        );
    };
    measure(
        "overview of the whole recording, 800 points per series",
        &|| {
            let o = affectd::store::overview::overview(&store, "hour", None, None, 800).unwrap();
            serde_json::to_vec(&o).unwrap().len()
        },
    );
    let zoom = (
        seconds as f64 * 0.4,
        seconds as f64 * 0.4 + (seconds as f64 / 6.0),
    );
    measure("overview of a zoomed sixth (10 min of an hour)", &|| {
        let o = affectd::store::overview::overview(&store, "hour", Some(zoom.0), Some(zoom.1), 800)
            .unwrap();
        serde_json::to_vec(&o).unwrap().len()
    });
    measure(
        "the frame and faces at a time (scrubbing: the row read, not drawn)",
        &|| {
            let conn = store.connect().unwrap();
            let frame =
                affectd::store::export::analysed_frame_at(&conn, "hour", seconds as f64 * 0.7)
                    .unwrap()
                    .unwrap();
            frame.faces.encoded_len()
        },
    );
}
