//! What fusion costs a live session: one minute of a session at 30 frames/s with 64-channel
//! EEG at 1 kHz, EDA and ECG (feature windows every second), through the session's fusion
//! timeline: per-modality estimates, latency-aligned bins, weights, labels, smoothing.
//! Face analysis and the signal analyzers are not fusion and are done once, before timing.
//!
//! `cargo bench --bench fusion` prints criterion's time for the minute and, first, the
//! median share of one core over 21 runs (time per session-second / 1 s).

use std::hint::black_box;
use std::time::Instant;

use affectd::config::FusionConfig;
use affectd::fusion::Timeline;
use affectd::signals::features::{FeatureWindow, SignalKind};
use affectd::signals::stream::{AnalysisConfig, ChannelSpec, Chunk, StreamAnalyzer, StreamSpec};
use affectd::vision::detector::Detection;
use affectd::vision::expression::Expression;
use affectd::vision::{FaceResult, FrameResult};
use criterion::{Criterion, criterion_group, criterion_main};

const SECONDS: usize = 60;
const FPS: usize = 30;

fn stream(id: &str, kind: SignalKind, rate: f64, channels: usize) -> StreamSpec {
    StreamSpec {
        id: id.into(),
        kind,
        rate_hz: rate,
        channels: (0..channels)
            .map(|c| ChannelSpec {
                label: if kind == SignalKind::Eeg {
                    // Frontal pairs first, so that asymmetry is computed.
                    ["F3", "F4", "F7", "F8"]
                        .get(c)
                        .map_or(format!("E{c}"), |l| l.to_string())
                } else {
                    format!("{id}{c}")
                },
                unit: if kind == SignalKind::Eda { "uS" } else { "uV" }.into(),
            })
            .collect(),
    }
}

/// Feature windows of a synthetic minute (+ 4 s for the first window) of each stream.
fn windows(spec: &StreamSpec, signal: impl Fn(usize, f64) -> f64) -> Vec<FeatureWindow> {
    let rate = spec.rate_hz;
    let channels = spec.channels.len();
    let mut analyzer = StreamAnalyzer::new(spec.clone(), &AnalysisConfig::default()).unwrap();
    let mut out = Vec::new();
    for second in 0..SECONDS + 4 {
        let n = rate as usize;
        let samples: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = second as f64 + i as f64 / rate;
                (0..channels).map(move |c| (c, t))
            })
            .map(|(c, t)| signal(c, t))
            .collect();
        let (w, _) = analyzer
            .push(Chunk {
                first_timestamp: second as f64,
                samples: &samples,
                timestamps: &[],
                first_sample_index: None,
            })
            .unwrap();
        out.extend(w);
    }
    out
}

fn frame() -> FrameResult {
    let mut combined = [0.05f32; 7];
    combined[3] = 0.7;
    let (valence, arousal) = affectd::vision::expression::valence_arousal(&combined);
    FrameResult {
        faces: vec![FaceResult {
            face_id: 1,
            detection: Detection {
                score: 0.97,
                x: 200.0,
                y: 120.0,
                width: 220.0,
                height: 260.0,
                keypoints: [[0.0; 2]; 5],
            },
            tracked: true,
            mesh: None,
            head_pose: None,
            blendshapes: None,
            action_units: Vec::new(),
            au_baseline_method: None,
            neutral_points: None,
            expression: Some(Expression {
                fer: None,
                au_prototypes: None,
                au_prototypes_corrected: false,
                combined,
                valence,
                arousal,
            }),
        }],
        width: 640,
        height: 480,
        timings: Vec::new(),
    }
}

struct Minute {
    streams: Vec<StreamSpec>,
    windows: Vec<FeatureWindow>,
    frame: FrameResult,
}

fn minute() -> Minute {
    let tau = 2.0 * std::f64::consts::PI;
    let eeg = stream("eeg", SignalKind::Eeg, 1000.0, 64);
    let eda = stream("eda", SignalKind::Eda, 32.0, 1);
    let ecg = stream("ecg", SignalKind::Ecg, 250.0, 1);
    let mut all = windows(&eeg, |c, t| {
        20.0 * (tau * 10.0 * t + c as f64).sin() + 6.0 * (tau * 21.0 * t).sin()
    });
    all.extend(windows(&eda, |_, t| 5.0 + 0.2 * (tau * 0.05 * t).sin()));
    all.extend(windows(&ecg, |_, t| {
        let phase = (t * 1.2).fract();
        1000.0 * (-(phase - 0.5).powi(2) / 0.0004).exp()
    }));
    all.sort_by(|a, b| a.end_time.total_cmp(&b.end_time));
    Minute {
        streams: vec![eeg, eda, ecg],
        windows: all,
        frame: frame(),
    }
}

/// One minute through a fresh timeline, in arrival order (frames and windows by time).
fn run(m: &Minute, config: &FusionConfig) -> usize {
    let mut timeline = Timeline::new(config, 1.0, &m.streams, true, None);
    let mut fused = 0;
    let mut next_window = 0;
    for i in 0..SECONDS * FPS {
        let t = i as f64 / FPS as f64;
        while next_window < m.windows.len() && m.windows[next_window].end_time <= t {
            timeline.window(&m.windows[next_window]);
            next_window += 1;
        }
        let seq = i as u64 + 1;
        timeline.frame_accepted(seq, t);
        timeline.frame_analysed(seq, &m.frame);
        fused += timeline.advance().len();
    }
    fused + timeline.finish().len()
}

fn bench(c: &mut Criterion) {
    let m = minute();
    let config = FusionConfig::default();
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let started = Instant::now();
            black_box(run(&m, &config));
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let (low, median, high) = (times[0], times[10], times[20]);
    println!(
        "fusion: one minute of session (30 fps, 64-ch EEG at 1 kHz, EDA, ECG) in {:.2} ms median ({:.2}-{:.2}); {:.4} % of one core (median), {} fused estimates",
        median * 1e3,
        low * 1e3,
        high * 1e3,
        median / SECONDS as f64 * 100.0,
        run(&m, &config)
    );
    c.bench_function("fusion one minute of session", |b| {
        b.iter(|| black_box(run(&m, &config)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
