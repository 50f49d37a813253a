//! The DSP core against scipy.signal (golden file from tests/reference/signals_reference.py):
//! Butterworth SOS design, sosfilt, sosfilt_zi and sosfiltfilt within 1e-9 relative error.
//!
//! Relative error of a value b is |a - b| / max(|b|, rms of the whole reference output), so
//! that samples crossing zero are judged against the signal's scale, not against ~0.

use affectd::signals::dsp::{BandType, butter_sos, sosfilt, sosfilt_zi, sosfiltfilt};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

/// tests/reference/golden/dsp.json, made by tests/reference/signals_reference.py.
fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/golden/dsp.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn worst_relative(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    let rms = (expected.iter().map(|v| v * v).sum::<f64>() / expected.len() as f64).sqrt();
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs() / b.abs().max(rms).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

#[test]
fn butterworth_filters_equal_scipy() {
    let golden = golden();
    let x = floats(&golden["x"]);
    let mut report = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let order = case["order"].as_u64().unwrap() as usize;
        let fs = case["fs"].as_f64().unwrap();
        let cutoff = floats(&case["cutoff"]);
        let band = match case["btype"].as_str().unwrap() {
            "lowpass" => BandType::Lowpass(cutoff[0]),
            "highpass" => BandType::Highpass(cutoff[0]),
            "bandpass" => BandType::Bandpass(cutoff[0], cutoff[1]),
            "bandstop" => BandType::Bandstop(cutoff[0], cutoff[1]),
            other => panic!("unknown band type {other}"),
        };
        let name = format!("{band:?} order {order} at {fs} Hz");
        let sos = butter_sos(order, band, fs).unwrap();
        let expected_sos: Vec<Vec<f64>> =
            case["sos"].as_array().unwrap().iter().map(floats).collect();
        assert_eq!(sos.len(), expected_sos.len(), "{name}: sections");
        let flat: Vec<f64> = sos.iter().flatten().copied().collect();
        let expected_flat: Vec<f64> = expected_sos.iter().flatten().copied().collect();
        let sos_err = flat
            .iter()
            .zip(&expected_flat)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
            .filter(|e| e.is_finite())
            .fold(0.0, f64::max);
        let zero_mismatch = flat
            .iter()
            .zip(&expected_flat)
            .any(|(a, b)| (a.abs() < 1e-15) != (b.abs() < 1e-15) && (a - b).abs() > 1e-12);
        assert!(
            sos_err <= TOLERANCE && !zero_mismatch,
            "{name}: SOS coefficients differ by {sos_err:e}\n{sos:?}\n{expected_sos:?}"
        );

        let zi: Vec<f64> = sosfilt_zi(&sos).iter().flatten().copied().collect();
        let expected_zi: Vec<f64> = case["sosfilt_zi"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        let zi_err = worst_relative(&zi, &expected_zi);
        assert!(
            zi_err <= TOLERANCE,
            "{name}: sosfilt_zi differs by {zi_err:e}"
        );

        let (y, _) = sosfilt(&sos, &x, None);
        let filt_err = worst_relative(&y, &floats(&case["sosfilt"]));
        assert!(
            filt_err <= TOLERANCE,
            "{name}: sosfilt differs by {filt_err:e}"
        );

        let yy = sosfiltfilt(&sos, &x).unwrap();
        let filtfilt_err = worst_relative(&yy, &floats(&case["sosfiltfilt"]));
        assert!(
            filtfilt_err <= TOLERANCE,
            "{name}: sosfiltfilt differs by {filtfilt_err:e}"
        );
        report.push(format!("{name}: sos {sos_err:.1e}, zi {zi_err:.1e}, sosfilt {filt_err:.1e}, sosfiltfilt {filtfilt_err:.1e}"));
    }
    eprintln!(
        "largest relative errors vs scipy {}:\n  {}",
        golden["scipy"],
        report.join("\n  ")
    );
}

#[test]
fn welch_and_band_power_equal_scipy() {
    use affectd::signals::dsp::{Detrend, WelchConfig, band_power, welch};
    let golden = golden();
    let x = floats(&golden["x"]);
    let mut report = Vec::new();
    for case in golden["welch"].as_array().unwrap() {
        let fs = case["fs"].as_f64().unwrap();
        let config = WelchConfig {
            nperseg: case["nperseg"].as_u64().unwrap() as usize,
            noverlap: case["noverlap"].as_u64().map(|v| v as usize),
            detrend: match case["detrend"].as_str().unwrap() {
                "constant" => Detrend::Constant,
                "linear" => Detrend::Linear,
                _ => Detrend::None,
            },
        };
        let s = welch(&x, fs, config).unwrap();
        let freq_err = worst_relative(&s.freqs, &floats(&case["freqs"]));
        let psd_err = worst_relative(&s.psd, &floats(&case["psd"]));
        let name = format!("{config:?} at {fs} Hz");
        assert!(
            freq_err <= TOLERANCE && psd_err <= TOLERANCE,
            "{name}: freqs {freq_err:e}, psd {psd_err:e}"
        );
        let mut band_err: f64 = 0.0;
        for (band, (lo, hi)) in [
            ("delta", (1.0, 4.0)),
            ("theta", (4.0, 8.0)),
            ("alpha", (8.0, 13.0)),
            ("beta", (13.0, 30.0)),
            ("gamma", (30.0, 45.0)),
        ] {
            let actual = band_power(&s, lo, hi);
            // Where both edges are bins, scipy's trapezoid over the bins in the band; and
            // on every grid, the integral of the PSD interpolated linearly at the edges
            // (numpy's interp, scipy's trapezoid).
            let on_grid = [lo, hi].iter().all(|edge| s.freqs.contains(edge));
            let mut references = vec![case["band_power_interpolated"][band].as_f64().unwrap()];
            if on_grid {
                references.push(case["band_power"][band].as_f64().unwrap());
            }
            for expected in references {
                let err = (actual - expected).abs() / expected.abs().max(1e-300);
                assert!(
                    err <= TOLERANCE || (expected == 0.0 && actual == 0.0),
                    "{name}: {band} power {actual} vs {expected}"
                );
                band_err = band_err.max(if expected == 0.0 { 0.0 } else { err });
            }
        }
        report.push(format!(
            "{name}: psd {psd_err:.1e}, band power {band_err:.1e}"
        ));
    }
    eprintln!("Welch vs scipy:\n  {}", report.join("\n  "));
}

#[test]
fn mains_notch_equals_scipy_iirnotch() {
    use affectd::signals::dsp::notch_sos;
    let golden = golden();
    let x = floats(&golden["x"]);
    for case in golden["notch"].as_array().unwrap() {
        let (freq, quality, fs) = (
            case["freq"].as_f64().unwrap(),
            case["quality"].as_f64().unwrap(),
            case["fs"].as_f64().unwrap(),
        );
        let section = notch_sos(freq, quality, fs).unwrap();
        let expected = floats(&case["sos"][0]);
        let coef_err = worst_relative(&section, &expected);
        assert!(
            coef_err <= TOLERANCE,
            "notch {freq} Hz Q {quality} at {fs} Hz: coefficients differ by {coef_err:e}"
        );
        let (y, _) = sosfilt(&[section], &x, None);
        let err = worst_relative(&y, &floats(&case["sosfilt"]));
        assert!(
            err <= TOLERANCE,
            "notch {freq} Hz: output differs by {err:e}"
        );
    }
    assert!(notch_sos(50.0, 0.0, 250.0).is_err() && notch_sos(200.0, 30.0, 250.0).is_err());
}

#[test]
fn polyphase_resampling_equals_scipy_resample_poly() {
    use affectd::signals::dsp::resample_poly;
    let golden = golden();
    let x = floats(&golden["x"]);
    let mut report = Vec::new();
    for case in golden["resample_poly"].as_array().unwrap() {
        let (up, down) = (
            case["up"].as_u64().unwrap() as usize,
            case["down"].as_u64().unwrap() as usize,
        );
        let y = resample_poly(&x, up, down).unwrap();
        let expected = floats(&case["y"]);
        assert_eq!(y.len(), expected.len(), "{up}/{down}: length");
        let err = worst_relative(&y, &expected);
        assert!(err <= TOLERANCE, "resample {up}/{down} differs by {err:e}");
        report.push(format!("{up}/{down}: {err:.1e}"));
    }
    eprintln!("resample_poly vs scipy: {}", report.join(", "));
}
