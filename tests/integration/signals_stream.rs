//! Stream analysis: identical results for any chunking (property test), streamed beats
//! that agree with NeuroKit2 on a whole recording, and bad input that is rejected or
//! flagged without losing what was accepted.

use std::path::Path;

use affectd::signals::features::{FeatureWindow, Features, SignalKind, WarningKind};
use affectd::signals::stream::{
    AnalysisConfig, ChannelSpec, Chunk, StreamAnalyzer, StreamError, StreamSpec,
};
use proptest::prelude::*;
use serde_json::Value;

fn spec(kind: SignalKind, rate: f64, labels: &[&str]) -> StreamSpec {
    StreamSpec {
        id: "s".into(),
        kind,
        rate_hz: rate,
        channels: labels
            .iter()
            .map(|l| ChannelSpec {
                label: l.to_string(),
                unit: "uV".into(),
            })
            .collect(),
    }
}

fn chunk(samples: &[f64], first_timestamp: f64) -> Chunk<'_> {
    Chunk {
        first_timestamp,
        samples,
        timestamps: &[],
        first_sample_index: None,
    }
}

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/golden/physio.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn pyhrv_ecg() -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".testdata/SampleECG.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse().unwrap())
        .collect()
}

/// 4-channel EEG-like signal: alpha and beta sines plus deterministic noise, 256 Hz.
fn eeg(seconds: usize) -> Vec<f64> {
    let fs = 256.0;
    (0..seconds * 256)
        .flat_map(|i| {
            let t = i as f64 / fs;
            (0..4).map(move |c| {
                20.0 * (2.0 * std::f64::consts::PI * (9.0 + c as f64) * t).sin()
                    + 6.0 * (2.0 * std::f64::consts::PI * 21.0 * t).sin()
                    + ((i * 7919 + c * 104729) % 1000) as f64 / 100.0
            })
        })
        .collect()
}

fn run(
    spec: StreamSpec,
    config: &AnalysisConfig,
    data: &[f64],
    cuts: &[usize],
) -> Vec<FeatureWindow> {
    let channels = spec.channels.len();
    let rate = spec.rate_hz;
    let mut analyzer = StreamAnalyzer::new(spec, config).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut rest = data;
    for &cut in cuts {
        let take = (cut * channels).min(rest.len());
        let (windows, _) = analyzer
            .push(chunk(&rest[..take], 100.0 + at as f64 / rate))
            .unwrap();
        out.extend(windows);
        at += take / channels;
        rest = &rest[take..];
    }
    let (windows, _) = analyzer
        .push(chunk(rest, 100.0 + at as f64 / rate))
        .unwrap();
    out.extend(windows);
    out.extend(analyzer.finish());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Every encoder gives exactly the same windows whether the signal arrives in one
    /// block or in random-sized chunks.
    #[test]
    fn encoders_do_not_depend_on_chunking(
        kind in prop::sample::select(vec![SignalKind::Eeg, SignalKind::Ecg, SignalKind::Eda, SignalKind::Respiration]),
        cuts in proptest::collection::vec(0usize..3000, 1..30),
    ) {
        let config = AnalysisConfig::default();
        let (spec, data) = match kind {
            SignalKind::Eeg => (spec(kind, 256.0, &["F3", "F4", "F7", "F8"]), eeg(12)),
            SignalKind::Ecg => (spec(kind, 1000.0, &["ECG"]), pyhrv_ecg()[..15_000].to_vec()),
            SignalKind::Eda => (spec(kind, 50.0, &["EDA"]), floats(&golden()["eda"]["signal"])),
            _ => (spec(kind, 50.0, &["RSP"]), floats(&golden()["respiration"]["signal"])[..2500].to_vec()),
        };
        let whole = run(spec.clone(), &config, &data, &[]);
        prop_assert!(!whole.is_empty());
        let chunked = run(spec, &config, &data, &cuts);
        prop_assert_eq!(whole, chunked);
    }
}

#[test]
fn streamed_r_peaks_agree_with_neurokit2_on_the_whole_recording() {
    let golden = golden();
    let case = golden["cardiac"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pyhrv_ecg")
        .unwrap()
        .clone();
    let reference: Vec<f64> = case["peaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap() / 1000.0)
        .collect();
    let config = AnalysisConfig {
        window_s: 2.0,
        hop_s: 2.0,
        baseline_s: 5.0,
        ..AnalysisConfig::default()
    };
    let windows = run(
        spec(SignalKind::Ecg, 1000.0, &["ECG"]),
        &config,
        &pyhrv_ecg(),
        &[777; 40],
    );
    let mut beats = Vec::new();
    let mut changes = 0;
    for w in &windows {
        let Features::Cardiac(c) = &w.features else {
            panic!("no cardiac features: {w:?}")
        };
        beats.extend(c.beat_times.iter().map(|t| t - 100.0));
        if let Some(change) = c.heart_rate_change_bpm {
            assert!(change.abs() < 40.0);
            changes += 1;
        }
        if let Some(hr) = c.heart_rate_bpm {
            assert!((40.0..150.0).contains(&hr), "{hr}");
        }
    }
    assert!(changes > 0, "the 5 s baseline never completed");
    let matched = beats
        .iter()
        .filter(|b| reference.iter().any(|r| (*b - r).abs() <= 0.05))
        .count();
    let f1 = 2.0 * matched as f64 / (beats.len() + reference.len()) as f64;
    println!(
        "streamed {} beats, NeuroKit2 {} on the whole file, F1 {f1:.4}",
        beats.len(),
        reference.len()
    );
    assert!(f1 >= 0.99, "F1 {f1}");
}

#[test]
fn nan_samples_are_flagged_and_excluded_without_poisoning_the_window() {
    let mut data = eeg(8);
    for v in data.iter_mut().skip(2 * 256 * 4).take(100 * 4) {
        *v = f64::NAN;
    }
    let mut analyzer = StreamAnalyzer::new(
        spec(SignalKind::Eeg, 256.0, &["F3", "F4", "F7", "F8"]),
        &AnalysisConfig::default(),
    )
    .unwrap();
    let (windows, warnings) = analyzer.push(chunk(&data, 0.0)).unwrap();
    assert!(warnings.iter().any(|w| w.kind == WarningKind::NonFinite));
    let hit = &windows[0];
    assert_eq!(hit.quality[0].non_finite_samples, 100);
    let Features::Eeg(f) = &hit.features else {
        panic!()
    };
    assert_eq!(
        f.band_powers.len(),
        20,
        "channels with a short dropout stay usable"
    );
    assert!(
        f.band_powers
            .iter()
            .all(|b| b.absolute.is_finite() && b.relative.is_some_and(f64::is_finite))
    );
    assert!(hit.estimate.as_ref().unwrap().valence.is_finite());

    // An ECG dropout: the beats around it are still found, none inside it.
    let mut ecg = pyhrv_ecg()[..12_000].to_vec();
    for v in &mut ecg[5000..5400] {
        *v = f64::NAN;
    }
    let mut analyzer = StreamAnalyzer::new(
        spec(SignalKind::Ecg, 1000.0, &["ECG"]),
        &AnalysisConfig::default(),
    )
    .unwrap();
    let (windows, _) = analyzer.push(chunk(&ecg, 0.0)).unwrap();
    for w in &windows {
        if let Features::Cardiac(c) = &w.features {
            assert!(c.beat_times.iter().all(|t| !(5.0..5.4).contains(t)));
            assert!(c.heart_rate_bpm.is_none_or(f64::is_finite));
        }
    }
}

#[test]
fn bad_streams_and_chunks_are_rejected_and_the_stream_survives() {
    let config = AnalysisConfig::default();
    assert!(matches!(
        StreamAnalyzer::new(spec(SignalKind::Eeg, 0.0, &["Cz"]), &config),
        Err(StreamError::Rate { .. })
    ));
    assert!(matches!(
        StreamAnalyzer::new(spec(SignalKind::Eeg, -5.0, &["Cz"]), &config),
        Err(StreamError::Rate { .. })
    ));
    assert!(matches!(
        StreamAnalyzer::new(spec(SignalKind::Eeg, 256.0, &[]), &config),
        Err(StreamError::NoChannels { .. })
    ));
    let line = AnalysisConfig {
        line_hz: 55.0,
        ..AnalysisConfig::default()
    };
    assert!(StreamAnalyzer::new(spec(SignalKind::Eeg, 256.0, &["Cz"]), &line).is_err());

    let mut analyzer =
        StreamAnalyzer::new(spec(SignalKind::Eeg, 256.0, &["F3", "F4"]), &config).unwrap();
    let err = analyzer.push(chunk(&[1.0, 2.0, 3.0], 0.0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a whole number of 2-channel samples"),
        "{err}"
    );
    let err = analyzer
        .push(Chunk {
            first_timestamp: 0.0,
            samples: &[1.0; 6],
            timestamps: &[0.0, 0.2, 0.1],
            first_sample_index: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("strictly increasing"), "{err}");
    let err = analyzer
        .push(Chunk {
            first_timestamp: 0.0,
            samples: &[1.0; 6],
            timestamps: &[0.0, 0.1],
            first_sample_index: None,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("2 timestamps for 3 samples"),
        "{err}"
    );

    // After the rejected chunks the stream still produces its windows.
    let data: Vec<f64> = eeg(6).chunks(4).flat_map(|s| [s[0], s[1]]).collect();
    let (windows, _) = analyzer.push(chunk(&data, 0.0)).unwrap();
    assert_eq!(windows.len(), 3);
    assert_eq!(windows[0].start_time, 0.0);
    assert_eq!(windows[0].end_time, 4.0);

    // A gap announced by first_sample_index is filled with NaN and reported; an overlap is
    // dropped and reported.
    let mut analyzer = StreamAnalyzer::new(spec(SignalKind::Eeg, 256.0, &["Cz"]), &config).unwrap();
    let one: Vec<f64> = eeg(2).chunks(4).map(|s| s[0]).collect();
    analyzer
        .push(Chunk {
            first_sample_index: Some(0),
            ..chunk(&one, 10.0)
        })
        .unwrap();
    let (_, warnings) = analyzer
        .push(Chunk {
            first_sample_index: Some(612),
            ..chunk(&one, 12.4)
        })
        .unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.kind == WarningKind::SampleGap && w.message.contains("100 samples")),
        "{warnings:?}"
    );
    let (windows, warnings) = analyzer
        .push(Chunk {
            first_sample_index: Some(1000),
            ..chunk(&one, 13.9)
        })
        .unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.kind == WarningKind::SampleOverlap),
        "{warnings:?}"
    );
    assert!(
        windows
            .iter()
            .any(|w| w.quality[0].non_finite_samples == 100),
        "{windows:?}"
    );
    let err = analyzer
        .push(Chunk {
            first_sample_index: Some(10_000_000),
            ..chunk(&one, 0.0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("start a new stream"), "{err}");
}
