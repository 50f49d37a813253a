//! The recording readers against the reference readers: pyedflib on its own EDF/BDF test
//! files (tests/reference/edf_reference.py), pyxdf on XDF files
//! (tests/reference/xdf_reference.py); CSV by hand. Lying and truncated headers get
//! errors or warnings that name the problem.

use std::path::{Path, PathBuf};

use affectd::signals::features::SignalKind;
use affectd::signals::readers::{self, csv::CsvOptions, edf};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn testdata(name: &str) -> PathBuf {
    let path = root().join(".testdata").join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-testdata.sh",
        path.display()
    );
    path
}

fn golden(name: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(root().join("tests/reference/golden").join(name)).unwrap(),
    )
    .unwrap()
}

#[test]
fn edf_and_bdf_files_read_as_pyedflib_reads_them() {
    let golden = golden("edf.json");
    for file in golden["files"].as_array().unwrap() {
        let name = file["file"].as_str().unwrap();
        let recording = readers::read(&testdata(name), &CsvOptions::default()).unwrap();
        let channels: Vec<(&readers::RecordedChannel, f64)> = recording
            .streams
            .iter()
            .flat_map(|s| s.channels.iter().map(move |c| (c, s.rate_hz)))
            .collect();
        let want = file["signals"].as_array().unwrap();
        assert_eq!(channels.len(), want.len(), "{name}: channel count");
        for w in want {
            let label = w["label"].as_str().unwrap();
            let (c, rate) = channels
                .iter()
                .find(|(c, _)| c.label == label)
                .unwrap_or_else(|| panic!("{name}: no channel {label:?}"));
            assert_eq!(c.unit, w["unit"].as_str().unwrap(), "{name}/{label}: unit");
            assert_eq!(
                *rate,
                w["rate_hz"].as_f64().unwrap(),
                "{name}/{label}: rate"
            );
            assert_eq!(
                c.samples.len() as u64,
                w["samples"].as_u64().unwrap(),
                "{name}/{label}: samples"
            );
            for (got, want) in c.samples.iter().zip(w["head"].as_array().unwrap()) {
                let want = want.as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{name}/{label}: {got} vs {want}"
                );
            }
            let sum: f64 = c.samples.iter().sum();
            let sum_sq: f64 = c.samples.iter().map(|v| v * v).sum();
            // Sums of signed samples cancel, so their tolerance scales with the energy.
            let scale = (c.samples.len() as f64 * sum_sq).sqrt().max(1.0);
            for (got, key) in [(sum, "sum"), (sum_sq, "sum_sq")] {
                let want = w[key].as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(scale),
                    "{name}/{label}: {key} {got} vs {want}"
                );
            }
        }
        let annotations = file["annotations"].as_array().unwrap();
        assert_eq!(
            recording.annotations.len(),
            annotations.len(),
            "{name}: annotations {:?}",
            recording.annotations
        );
        for (got, want) in recording.annotations.iter().zip(annotations) {
            assert_eq!(got.text, want["text"].as_str().unwrap());
            assert!(
                (got.onset - want["onset"].as_f64().unwrap()).abs() < 1e-6,
                "{name}: {got:?} vs {want}"
            );
            assert_eq!(got.duration, want["duration"].as_f64().unwrap().max(0.0));
        }
        assert!(
            recording.warnings.is_empty(),
            "{name}: {:?}",
            recording.warnings
        );
    }
}

#[test]
fn a_10_20_channel_is_eeg_in_microvolts() {
    let recording = readers::read(&testdata("test_utf8.edf"), &CsvOptions::default()).unwrap();
    assert_eq!(recording.streams.len(), 1);
    assert_eq!(recording.streams[0].kind, SignalKind::Eeg);
    assert_eq!(recording.streams[0].channels[0].label, "Fp1");
    assert_eq!(recording.streams[0].channels[0].unit, "uV");
}

#[test]
fn lying_and_truncated_edf_headers_get_errors_or_warnings() {
    let good = std::fs::read(testdata("test_generator.edf")).unwrap();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        edf::parse(&b)
    };
    let put = |b: &mut Vec<u8>, at: usize, text: &str| {
        b[at..at + text.len()].copy_from_slice(text.as_bytes());
    };
    // Truncated inside the header.
    let err = edf::parse(&good[..1000]).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    assert!(
        edf::parse(&good[..100])
            .unwrap_err()
            .contains("fewer than the 256-byte header")
    );
    // Not EDF at all.
    assert!(
        edf::parse(&[b'x'; 300])
            .unwrap_err()
            .contains("does not start with")
    );
    // A header length that does not fit the signal count.
    let err = with(&|b| put(b, 184, "999     ")).unwrap_err();
    assert!(err.contains("header length field says 999"), "{err}");
    // A non-numeric signal count.
    let err = with(&|b| put(b, 252, "ab  ")).unwrap_err();
    assert!(
        err.contains("'number of signals'") && err.contains("\"ab\""),
        "{err}"
    );
    // Digital range of zero for the first signal (digital min at 256 + 11*(16+80+8+8+8)).
    let dmin = 256 + 12 * (16 + 80 + 8 + 8 + 8);
    let dmax = dmin + 12 * 8;
    let digital_max = String::from_utf8_lossy(&good[dmax..dmax + 8]).to_string();
    let err = with(&|b| put(b, dmin, &digital_max)).unwrap_err();
    assert!(err.contains("digital maximum"), "{err}");
    // Data cut short: the complete records are read and the truncation reported.
    let cut = edf::parse(&good[..good.len() - 5000]).unwrap();
    assert!(
        cut.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        cut.warnings
    );
    assert!(cut.streams[0].channels[0].samples.len() < 120_000);
    // A record count that claims more than is there.
    let more = with(&|b| put(b, 236, "9999    ")).unwrap();
    assert!(
        more.warnings.iter().any(|w| w.contains("declares 9999")),
        "{:?}",
        more.warnings
    );
    // A record count of -1 (unknown) is computed from the file size.
    let unknown = with(&|b| put(b, 236, "-1      ")).unwrap();
    assert_eq!(unknown.streams[0].channels[0].samples.len(), 120_000);
    // A zero record duration.
    let err = with(&|b| put(b, 244, "0       ")).unwrap_err();
    assert!(err.contains("record duration"), "{err}");
}

#[test]
fn csv_with_a_time_column_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.csv");
    let mut text = String::from("time,Fz (mV),Cz (uV),GSR (uS)\n");
    for i in 0..500 {
        let t = 10.0 + i as f64 / 250.0;
        text += &format!(
            "{t},{},{},{}\n",
            0.001 * i as f64,
            i,
            if i == 7 { String::new() } else { "2.5".into() }
        );
    }
    std::fs::write(&path, text).unwrap();
    let recording = readers::read(&path, &CsvOptions::default()).unwrap();
    assert_eq!(recording.streams.len(), 2, "{recording:?}");
    let eeg = &recording.streams[0];
    assert_eq!(
        (eeg.kind, eeg.rate_hz.round(), eeg.first_timestamp),
        (SignalKind::Eeg, 250.0, 10.0)
    );
    assert_eq!(eeg.channels[0].unit, "uV");
    assert!(
        (eeg.channels[0].samples[3] - 3.0).abs() < 1e-9,
        "mV scaled to uV"
    );
    let eda = &recording.streams[1];
    assert_eq!(
        (eda.kind, eda.channels[0].unit.as_str()),
        (SignalKind::Eda, "uS")
    );
    assert!(
        eda.channels[0].samples[7].is_nan(),
        "an empty cell is a missing sample"
    );
}

#[test]
fn bad_csv_files_are_refused_with_the_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            "a.csv",
            "Fz,Cz\n1,2\n3,x\n",
            CsvOptions {
                rate_hz: Some(250.0),
                kind: None,
            },
            "row 3, column \"Cz\": \"x\" is not a number",
        ),
        (
            "b.csv",
            "Fz,Cz\n1,2\n",
            CsvOptions::default(),
            "pass --rate",
        ),
        (
            "c.csv",
            "time,Fz\n0.0,1\n0.2,1\n0.1,1\n",
            CsvOptions::default(),
            "must increase strictly",
        ),
        (
            "d.csv",
            "Fz,Cz\n1,2,3\n",
            CsvOptions {
                rate_hz: Some(250.0),
                kind: None,
            },
            "row 2",
        ),
        (
            "e.csv",
            "Fz\n",
            CsvOptions {
                rate_hz: Some(250.0),
                kind: None,
            },
            "no data rows",
        ),
        (
            "f.csv",
            "Fz\n1\n",
            CsvOptions {
                rate_hz: Some(0.0),
                kind: None,
            },
            "must be positive",
        ),
    ];
    for (name, text, options, words) in cases {
        let err = readers::read(&write(name, text), &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words) && err.contains(name), "{name}: {err}");
    }
    let err = readers::read(&write("x.wav", "RIFF"), &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown file type"), "{err}");
}

#[test]
fn xdf_time_stamps_match_pyxdf() {
    let golden = golden("xdf.json");
    let bytes = std::fs::read(root().join("tests/reference/golden/synthetic.xdf")).unwrap();
    let streams = affectd::formats::xdf::load(&bytes).unwrap();
    for want in golden["streams"].as_array().unwrap() {
        let name = want["name"].as_str().unwrap();
        let s = streams.iter().find(|s| s.name == name).unwrap();
        let stamps: Vec<f64> = want["time_stamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(s.time_stamps.len(), stamps.len(), "{name}");
        let worst = s
            .time_stamps
            .iter()
            .zip(&stamps)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{name}: {} samples, worst time-stamp difference {worst:.3e} s",
            stamps.len()
        );
        assert!(
            worst < 1e-9,
            "{name}: time stamps differ from pyxdf by up to {worst} s"
        );
        let segments: Vec<(usize, usize)> = want["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(s.segments, segments, "{name}");
        assert!(
            (s.effective_srate - want["effective_srate"].as_f64().unwrap()).abs() < 1e-6,
            "{name}"
        );
    }
    // As a recording: EEG in microvolts, the ECG break filled with NaN, markers as annotations.
    let recording = affectd::signals::readers::xdf::parse(&bytes).unwrap();
    let names: Vec<&str> = recording.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ECG/ecg", "EEG/eeg"]);
    let ecg = &recording.streams[0];
    assert_eq!(ecg.channels[0].unit, "uV");
    assert!(
        ecg.channels[0]
            .samples
            .iter()
            .filter(|v| v.is_nan())
            .count()
            > 1000
    );
    assert!(
        recording.warnings.iter().any(|w| w.contains("break")),
        "{:?}",
        recording.warnings
    );
    let texts: Vec<&str> = recording
        .annotations
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    assert_eq!(texts, ["stimulus onset", "response", "end"]);
    assert!((recording.annotations[0].onset - 101.0).abs() < 1e-6);
}

#[test]
fn corrupt_xdf_files_are_refused() {
    let bytes = std::fs::read(root().join("tests/reference/golden/synthetic.xdf")).unwrap();
    use affectd::formats::xdf::load;
    assert!(load(b"NOPE").unwrap_err().contains("magic"));
    let err = load(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        err.contains("truncated") || err.contains("unexpected end"),
        "{err}"
    );
    let mut lying = bytes.clone();
    // The first chunk's 1-byte length field claims 255 bytes.
    lying[5] = 255;
    assert!(load(&lying).is_err());
}
