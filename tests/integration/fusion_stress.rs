//! synheart-emotion's stress model as affectd runs it, against the package's own Python on
//! the same RR series: RR intervals from affectd's R-peaks on a real ECG (scipy's ecg.dat,
//! 5 min of MIT-BIH record 208 at 360 Hz), cut into the model's 60-s windows every 5 s.

use std::io::Read;

use affectd::config::Config;
use affectd::fusion::stress;
use affectd::models::loaded::ModelSet;
use affectd::models::manifest::{Format, Manifest};

use crate::common::llama::fetched;
use crate::common::*;

fn scipy_ecg() -> Vec<f64> {
    let file = std::fs::File::open(repo().join(".testdata/ecg.dat"))
        .expect(".testdata/ecg.dat: run scripts/fetch-testdata.sh");
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut npy = Vec::new();
    archive
        .by_name("ecg.npy")
        .unwrap()
        .read_to_end(&mut npy)
        .unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    npy[10 + header_len..]
        .chunks_exact(2)
        .map(|b| (u16::from_le_bytes([b[0], b[1]]) as f64 - 1024.0) / 200.0)
        .collect()
}

#[test]
fn the_stress_model_matches_its_package_on_affectds_beats() {
    let fs = 360.0;
    let ecg = scipy_ecg();
    let cleaned = affectd::signals::cardiac::ecg_clean(&ecg, fs, 50.0).unwrap();
    let beats: Vec<f64> = affectd::signals::cardiac::ecg_r_peaks(&cleaned, fs)
        .into_iter()
        .map(|i| i as f64 / fs)
        .collect();
    assert!(beats.len() > 300, "{} beats", beats.len());
    // RR intervals (ms) ending inside each 60-s window, every 5 s.
    let duration = ecg.len() as f64 / fs;
    let mut windows: Vec<Vec<f64>> = Vec::new();
    let mut start = 0.0;
    while start + stress::WINDOW_S <= duration {
        let rr: Vec<f64> = beats
            .windows(2)
            .filter(|b| b[1] > start && b[1] <= start + stress::WINDOW_S)
            .map(|b| (b[1] - b[0]) * 1000.0)
            .collect();
        windows.push(rr);
        start += 5.0;
    }
    assert!(windows.len() >= 40);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rr.json");
    let output = dir.path().join("reference.json");
    std::fs::write(
        &input,
        serde_json::json!({ "windows": windows }).to_string(),
    )
    .unwrap();
    let run = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/reference/synheart_reference.py"))
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the reference failed (scripts/setup.sh --dev installs synheart-emotion): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();

    fetched(stress::MODEL_ID, "synheart_stress_ecg_60s.onnx");
    let config = Config::default();
    let manifest = Manifest::load(&config.models.dir, &repo().join(".testdata/llm-cache")).unwrap();
    let set = ModelSet::load_formats(
        &manifest,
        affectd::onnx::init(&config.onnx.library),
        &config.onnx,
        &[Format::Onnx],
    );
    let state = set.get(stress::MODEL_ID).unwrap();
    let model = state
        .model
        .clone()
        .unwrap_or_else(|| panic!("{}", state.reason));

    let mut largest = 0.0f64;
    let mut stressed = 0;
    for (i, rr) in windows.iter().enumerate() {
        let theirs: Vec<f64> = reference["features"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let ours = stress::features(rr).expect("at least 10 beats a minute");
        // The five inputs the trees read: equal to rounding.
        for k in [0, 1, 2, 3, 13] {
            let scale = theirs[k].abs().max(1.0);
            assert!(
                (ours[k] - theirs[k]).abs() / scale < 1e-9,
                "window {i}, {}: {} vs {}",
                stress::INPUTS[k],
                ours[k],
                theirs[k]
            );
        }
        let p = stress::stress_probability(model.as_ref(), &ours).unwrap();
        let p_theirs = reference["probabilities"][i][1].as_f64().unwrap();
        largest = largest.max((p - p_theirs).abs());
        stressed += usize::from(p > 0.5);
    }
    println!(
        "{} windows; largest |P(stress) - package| = {largest:.2e}; {stressed} windows over 0.5",
        windows.len()
    );
    // The same float32 model on the same inputs (the nine unused ones passed as 0); the
    // ensemble averages its trees' votes in float32, in an order that depends on the
    // session's threads, so the last digits differ (5.8e-6 measured).
    assert!(largest < 2e-5, "{largest}");
}

/// With fusion.cardiac_encoder = "synheart-stress", the cardiac arousal of a window is the
/// model's P(stress) of the last 60 s of beats (not computed before 10 beats); a server
/// asked for the encoder without the model refuses to start, saying how to fetch it.
#[test]
fn the_stress_encoder_reads_the_last_minute_and_is_refused_when_missing() {
    use affectd::fusion::SignalEstimator;
    use affectd::signals::features::SignalKind;
    use affectd::signals::stream::{
        AnalysisConfig, ChannelSpec, Chunk, StreamAnalyzer, StreamSpec,
    };

    let path = fetched(stress::MODEL_ID, "synheart_stress_ecg_60s.onnx");
    let config = Config::default();
    let manifest = Manifest::load(&config.models.dir, path.parent().unwrap()).unwrap();
    let set = ModelSet::load_formats(
        &manifest,
        affectd::onnx::init(&config.onnx.library),
        &config.onnx,
        &[Format::Onnx],
    );
    let model = set.get(stress::MODEL_ID).unwrap().model.clone().unwrap();
    let fs = 360.0;
    let ecg = scipy_ecg();
    let spec = StreamSpec {
        id: "ecg".into(),
        kind: SignalKind::Ecg,
        rate_hz: fs,
        channels: vec![ChannelSpec {
            label: "ECG".into(),
            unit: "mV".into(),
        }],
    };
    let mut analyzer = StreamAnalyzer::new(spec, &AnalysisConfig::default()).unwrap();
    let mut estimator = SignalEstimator::new(60.0).with_stress_model(Some(model.clone()));
    let mut seen = Vec::new();
    for (k, chunk) in ecg[..(120.0 * fs) as usize].chunks(fs as usize).enumerate() {
        let (windows, _) = analyzer
            .push(Chunk {
                first_timestamp: k as f64,
                samples: chunk,
                timestamps: &[],
                first_sample_index: None,
            })
            .unwrap();
        seen.extend(
            windows
                .iter()
                .filter_map(|w| estimator.estimate(w).map(|e| (w.clone(), e))),
        );
    }
    let (window, last) = seen.last().unwrap();
    // The model's own answer on the beats of the minute before the window's end.
    let cleaned =
        affectd::signals::cardiac::ecg_clean(&ecg[..(120.0 * fs) as usize], fs, 50.0).unwrap();
    let beats: Vec<f64> = affectd::signals::cardiac::ecg_r_peaks(&cleaned, fs)
        .into_iter()
        .map(|i| i as f64 / fs)
        .filter(|t| *t >= window.end_time - 60.0 && *t <= window.end_time)
        .collect();
    let rr: Vec<f64> = beats.windows(2).map(|b| (b[1] - b[0]) * 1000.0).collect();
    let expected =
        stress::stress_probability(model.as_ref(), &stress::features(&rr).unwrap()).unwrap();
    let arousal = last.arousal.unwrap();
    println!("P(stress) {arousal:.3}, expected {expected:.3}");
    // The analyzer's beats near the minute's edge may differ by one from a whole-record
    // detection; the value is the model's.
    assert!((arousal - expected).abs() < 0.05, "{arousal} vs {expected}");
    // The first window holds fewer than 10 beats: not computed, not a guess.
    assert_eq!(seen.first().unwrap().1.arousal, None);

    // Asked for without the model: the server refuses to start and says what to run.
    let cache = tempfile::tempdir().unwrap();
    let toml = cache.path().join("affectd.toml");
    std::fs::write(&toml, "[fusion]\ncardiac_encoder = \"synheart-stress\"\n").unwrap();
    let out = affectd(cache.path())
        .arg("--config")
        .arg(&toml)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("affectd models fetch synheart-stress-ecg-60s"),
        "{err}"
    );
}
