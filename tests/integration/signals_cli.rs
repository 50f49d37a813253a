//! `affectd signals` and `affectd train-eeg` on real and generated recordings.

use std::path::Path;

use crate::common::*;

fn affectd_signals(args: &[&str]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap();
    affectd(cache.path())
        .env("AFFECTD_LOG_LEVEL", "error")
        .args(args)
        .output()
        .unwrap()
}

fn testdata(name: &str) -> String {
    let path = repo().join(".testdata").join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-testdata.sh",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn an_edf_file_becomes_a_csv_table_of_windows() {
    let out = affectd_signals(&[
        "signals",
        &testdata("test_utf8.edf"),
        "--format",
        "csv",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "source",
        "stream",
        "kind",
        "start_time",
        "end_time",
        "alpha_Fp1_abs",
        "alpha_Fp1_rel",
        "alpha_Fp1_de",
        "arousal_index",
        "valence",
    ] {
        assert!(header.contains(&column), "no column {column} in {header:?}");
    }
    // 698 s, 4 s windows every 1 s.
    assert_eq!(lines.count(), 695);
}

#[test]
fn an_xdf_file_becomes_json_lines_with_warnings_on_stderr() {
    let xdf = repo().join("tests/reference/golden/synthetic.xdf");
    let out = affectd_signals(&["signals", xdf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s break before"), "{stderr}");
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().any(|r| r["kind"] == "ecg" && r["quality"][0]["non_finite_samples"].as_u64() > Some(0)));
    let eeg: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "eeg").collect();
    assert_eq!(eeg.len(), 27);
    assert_eq!(
        eeg[0]["features"]["band_powers"].as_array().unwrap().len(),
        20
    );
    assert_eq!(eeg[0]["features"]["asymmetry"][0]["pair"], "F4-F3");
}

#[test]
fn bad_files_and_options_are_reported_by_name() {
    let missing = affectd_signals(&["signals", "/nonexistent/rec.edf"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/rec.edf"));
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    std::fs::write(&wav, "RIFF").unwrap();
    let unknown = affectd_signals(&["signals", wav.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown file type"));
    let bad_window = affectd_signals(&["signals", &testdata("test_utf8.edf"), "--window-s", "0"]);
    assert!(!bad_window.status.success());
    assert!(
        String::from_utf8_lossy(&bad_window.stderr).contains("window 0 s"),
        "{}",
        String::from_utf8_lossy(&bad_window.stderr)
    );
    let garbage = dir.path().join("g.edf");
    std::fs::write(&garbage, vec![7u8; 1000]).unwrap();
    let out = affectd_signals(&["signals", garbage.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an EDF/BDF file"));
}

/// 4-channel EEG at 128 Hz in 20 s blocks: "closed" blocks carry strong occipital alpha
/// (as with eyes closed), "open" blocks weak alpha and more beta.
fn write_block_design(dir: &Path) -> (String, String) {
    let fs = 128.0;
    let blocks = 12;
    let mut csv = String::from("time,F3,F4,O1,O2\n");
    let mut labels = String::from("onset,duration,label\n");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    for b in 0..blocks {
        let closed = b % 2 == 0;
        labels += &format!("{},20,{}\n", b * 20, if closed { "closed" } else { "open" });
        for i in 0..(20.0 * fs) as usize {
            let t = b as f64 * 20.0 + i as f64 / fs;
            let alpha =
                (2.0 * std::f64::consts::PI * 10.0 * t).sin() * if closed { 25.0 } else { 8.0 };
            let beta =
                (2.0 * std::f64::consts::PI * 21.0 * t).sin() * if closed { 3.0 } else { 6.0 };
            let row: Vec<String> = (0..4)
                .map(|c| {
                    format!(
                        "{:.4}",
                        alpha * if c >= 2 { 1.0 } else { 0.5 } + beta + 30.0 * noise()
                    )
                })
                .collect();
            csv += &format!("{t:.6},{}\n", row.join(","));
        }
    }
    let data = dir.join("eeg.csv");
    let label_file = dir.join("labels.csv");
    std::fs::write(&data, csv).unwrap();
    std::fs::write(&label_file, labels).unwrap();
    (data.display().to_string(), label_file.display().to_string())
}

#[test]
fn train_eeg_reports_cross_validated_accuracy_against_chance_and_the_model_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = write_block_design(dir.path());
    let model = dir.path().join("model.json");
    let out = affectd_signals(&[
        "train-eeg",
        &data,
        "--labels",
        &labels,
        "--model-out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{report:#}");
    let cv = &report["cross_validation"];
    assert_eq!(cv["chance_level"], 0.5);
    assert!(
        cv["balanced_accuracy"].as_f64().unwrap() > cv["chance_95th_percentile"].as_f64().unwrap()
    );
    assert!(report["windows"].as_u64().unwrap() > 150);

    let out = affectd_signals(&[
        "signals",
        &data,
        "--model",
        model.to_str().unwrap(),
        "--format",
        "csv",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let predicted = header
        .iter()
        .position(|c| *c == "predicted")
        .expect("a predicted column");
    assert!(header.contains(&"p_closed") && header.contains(&"p_open"));
    let first = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(predicted)
        .unwrap()
        .to_string();
    assert_eq!(first, "closed");

    // A model from other channels is refused with the reason.
    let other = dir.path().join("other.csv");
    std::fs::write(
        &other,
        (0..2000).fold(String::from("Cz\n"), |s, i| {
            s + &format!("{}\n", (i as f64 * 0.3).sin())
        }),
    )
    .unwrap();
    let out = affectd_signals(&[
        "signals",
        other.to_str().unwrap(),
        "--rate",
        "128",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("same channels"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A window's start time and its absolute band powers by "band_channel".
type WindowPowers = (f64, serde_json::Map<String, serde_json::Value>);

/// Band powers of `affectd signals` on a CSV, and its stderr.
fn band_powers(csv: &Path, extra: &[&str]) -> (Vec<WindowPowers>, String) {
    let mut args = vec!["signals", csv.to_str().unwrap(), "--quiet"];
    args.extend(extra);
    let out = affectd_signals(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let windows = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|w| {
            let mut powers = serde_json::Map::new();
            for b in w["features"]["band_powers"].as_array().unwrap() {
                let key = format!(
                    "{}_{}",
                    b["band"].as_str().unwrap(),
                    b["channel"].as_str().unwrap()
                );
                powers.insert(key, b["absolute"].clone());
            }
            (w["start_time"].as_f64().unwrap(), powers)
        })
        .collect();
    (windows, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A CSV whose time column is written at 6 decimals (how many recorders write it): the rate
/// is 256 Hz, not the 256.016 Hz its median step suggests, and the band powers equal
/// scipy's. Forcing the shifted rate moves them by a hair, not by a third.
#[test]
fn a_csv_time_column_with_rounded_steps_keeps_the_band_powers() {
    let golden_dir = repo().join("tests/reference/golden");
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir.join("rounded_eeg.json")).unwrap(),
    )
    .unwrap();
    let csv = golden_dir.join("rounded_eeg.csv");
    let expected = golden["windows"].as_array().unwrap();
    assert!((golden["median_step_rate_hz"].as_f64().unwrap() - 256.016).abs() < 1e-3);

    let (windows, stderr) = band_powers(&csv, &[]);
    assert!(
        !stderr.contains("warning"),
        "a snapped rate needs no warning: {stderr}"
    );
    // The whole windows (the last, shorter tail window has no golden row).
    for (want, (start, got)) in expected.iter().zip(&windows) {
        assert!((want["start_time"].as_f64().unwrap() - start).abs() < 1e-9);
        for (key, value) in want["band_power"].as_object().unwrap() {
            let (w, g) = (value.as_f64().unwrap(), got[key].as_f64().unwrap());
            assert!(
                (w - g).abs() <= 1e-8 * w.abs(),
                "{key} at {start}: scipy {w}, affectd {g}"
            );
        }
    }
    assert!(windows.len() >= expected.len());

    // The rate the median step suggested: the bins no longer land on the band edges, and
    // the interpolated edges keep every band power within 1 % of scipy's at 256 Hz (the
    // whole-bin integral was off by 26-33 %).
    let (shifted, _) = band_powers(&csv, &["--rate", "256.01638503928734"]);
    let mut worst = 0.0f64;
    for (want, (_, got)) in expected.iter().zip(&shifted) {
        for (key, value) in want["band_power"].as_object().unwrap() {
            let (w, g) = (value.as_f64().unwrap(), got[key].as_f64().unwrap());
            worst = worst.max((w - g).abs() / w);
        }
    }
    assert!(worst < 0.01, "worst relative band-power error {worst}");
}
