//! The peripheral encoders against NeuroKit2 on real recordings from registry packages
//! (tests/reference/physio_reference.py wrote the golden file; scripts/fetch-testdata.sh
//! fetched the recordings into .testdata/).

use std::io::Read;
use std::path::{Path, PathBuf};

use affectd::signals::{cardiac, eda, respiration};
use serde_json::Value;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/golden/physio.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn testdata(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".testdata")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-testdata.sh",
        path.display()
    );
    path
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// scipy's ecg.dat is an npz holding one little-endian uint16 array; scipy scales it as
/// (raw - 1024) / 200 mV.
fn scipy_ecg() -> Vec<f64> {
    let file = std::fs::File::open(testdata("ecg.dat")).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut npy = Vec::new();
    archive
        .by_name("ecg.npy")
        .unwrap()
        .read_to_end(&mut npy)
        .unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
    assert!(header.contains("'<u2'"), "unexpected npy header {header}");
    npy[10 + header_len..]
        .chunks_exact(2)
        .map(|b| (u16::from_le_bytes([b[0], b[1]]) as f64 - 1024.0) / 200.0)
        .collect()
}

fn pyhrv_ecg() -> Vec<f64> {
    std::fs::read_to_string(testdata("SampleECG.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse().unwrap())
        .collect()
}

fn heartpy_ppg() -> Vec<f64> {
    std::fs::read_to_string(testdata("heartpy_ppg.csv"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Matches within `tolerance` samples, each reference beat used once.
fn f1(found: &[usize], reference: &[usize], tolerance: usize) -> f64 {
    let mut used = vec![false; reference.len()];
    let mut hits = 0;
    for &f in found {
        if let Some(k) =
            (0..reference.len()).find(|&k| !used[k] && reference[k].abs_diff(f) <= tolerance)
        {
            used[k] = true;
            hits += 1;
        }
    }
    2.0 * hits as f64 / (found.len() + reference.len()).max(1) as f64
}

fn max_relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn cardiac_peaks_match_neurokit2_on_real_recordings() {
    let golden = golden();
    for case in golden["cardiac"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let fs = case["sampling_rate"].as_f64().unwrap();
        let raw = match name {
            "scipy_ecg" => scipy_ecg(),
            "pyhrv_ecg" => pyhrv_ecg(),
            "heartpy_ppg" => heartpy_ppg(),
            other => panic!("unknown case {other}"),
        };
        assert_eq!(
            raw.len() as u64,
            case["samples"].as_u64().unwrap(),
            "{name}"
        );
        let (cleaned, peaks) = if case["kind"] == "ecg" {
            let cleaned = cardiac::ecg_clean(&raw, fs, 50.0).unwrap();
            let peaks = cardiac::ecg_r_peaks(&cleaned, fs);
            (cleaned, peaks)
        } else {
            let cleaned = cardiac::ppg_clean(&raw, fs).unwrap();
            let peaks = cardiac::ppg_peaks(&cleaned, fs);
            (cleaned, peaks)
        };
        let start = case["cleaned_slice_start"].as_u64().unwrap() as usize;
        let want = floats(&case["cleaned_slice"]);
        let err = max_relative_error(&cleaned[start..start + want.len()], &want);
        assert!(
            err < 1e-9,
            "{name}: cleaned signal differs from NeuroKit2 by {err:e}"
        );

        let reference = indices(&case["peaks"]);
        let tolerance = (0.05 * fs) as usize;
        let score = f1(&peaks, &reference, tolerance);
        let times: Vec<f64> = peaks.iter().map(|&p| p as f64 / fs).collect();
        let rate = cardiac::heart_rate(&times).unwrap().mean_bpm;
        let want_rate = case["mean_rate_bpm"].as_f64().unwrap();
        println!(
            "{name}: {} beats (NeuroKit2 {}), F1 {score:.4} at ±50 ms, exact {}, HR {rate:.2} vs {want_rate:.2} bpm",
            peaks.len(),
            reference.len(),
            peaks == reference
        );
        assert!(score >= 0.99, "{name}: F1 {score}");
        assert!(
            (rate - want_rate).abs() < 1.0,
            "{name}: HR {rate} vs {want_rate}"
        );
    }
}

#[test]
fn eda_decomposition_and_scrs_match_neurokit2() {
    let golden = golden();
    let case = &golden["eda"];
    let fs = case["sampling_rate"].as_f64().unwrap();
    let signal = floats(&case["signal"]);
    let cleaned = eda::eda_clean(&signal, fs).unwrap();
    assert!(max_relative_error(&cleaned, &floats(&case["cleaned"])) < 1e-9);
    let parts = eda::eda_decompose(&cleaned, fs).unwrap();
    assert!(max_relative_error(&parts.tonic, &floats(&case["tonic"])) < 1e-9);
    assert!(max_relative_error(&parts.phasic, &floats(&case["phasic"])) < 1e-9);
    let scrs = eda::scr_peaks(&parts.phasic, fs);
    assert_eq!(
        scrs.iter().map(|s| s.onset).collect::<Vec<_>>(),
        indices(&case["onsets"])
    );
    assert_eq!(
        scrs.iter().map(|s| s.peak).collect::<Vec<_>>(),
        indices(&case["peaks"])
    );
    for (s, (a, r)) in scrs.iter().zip(
        floats(&case["amplitudes"])
            .into_iter()
            .zip(floats(&case["rise_times_s"])),
    ) {
        assert!(
            (s.amplitude - a).abs() <= 1e-9 * a.abs().max(1.0),
            "amplitude {} vs {a}",
            s.amplitude
        );
        assert!((s.rise_time_s - r).abs() < 1e-12);
    }
}

#[test]
fn breathing_rate_matches_the_simulated_rate() {
    let golden = golden();
    let case = &golden["respiration"];
    let fs = case["sampling_rate"].as_f64().unwrap();
    let cleaned = respiration::rsp_clean(&floats(&case["signal"]), fs).unwrap();
    let times: Vec<f64> = respiration::breath_peaks(&cleaned)
        .iter()
        .map(|&p| p as f64 / fs)
        .collect();
    let rate = respiration::breathing_rate(&times).unwrap();
    let nk = case["neurokit_mean_rate_per_min"].as_f64().unwrap();
    println!("respiration: {rate:.2}/min, NeuroKit2 {nk:.2}/min, simulated 15/min");
    assert!(
        (rate - 15.0).abs() < 1.0 && (rate - nk).abs() < 1.0,
        "rate {rate}"
    );
}
