//! synheart-emotion's WESAD stress model as a cardiac arousal encoder (optional:
//! `fusion.cardiac_encoder = "synheart-stress"`): P(stress) of the last 60 s of beats.
//!
//! The features are the package's `extract_14_features` (synheart_emotion 0.1.0), written
//! again here: RR intervals outside 300-2000 ms dropped, at least 10 kept, then RMSSD,
//! mean RR, SDNN (ddof 1), pNN50 (%, successive differences over 50 ms) and HR (60000 /
//! mean RR). The model's trees split on those five only (tests/reference/
//! synheart_reference.py counts the splits); the package's frequency-domain and
//! non-linear features (inputs 5-13) are constant 0 in its scaler and unused by its trees,
//! so they are passed as 0. tests/integration/fusion_stress.rs holds the probabilities to
//! the package's own Python on the same RR series.

use crate::vision::backend::{Inference, InferenceError};

/// The manifest id of the model.
pub const MODEL_ID: &str = "synheart-stress-ecg-60s";
/// Seconds of beats per estimate, as the model was trained.
pub const WINDOW_S: f64 = 60.0;
/// The model's inputs, in order.
pub const INPUTS: [&str; 14] = [
    "RMSSD",
    "Mean_RR",
    "HRV_SDNN",
    "pNN50",
    "HRV_HF",
    "HRV_LF",
    "HRV_HF_nu",
    "HRV_LF_nu",
    "HRV_LFHF",
    "HRV_TP",
    "HRV_SD1SD2",
    "HRV_Sampen",
    "HRV_DFA_alpha1",
    "HR",
];

/// The model's input vector for RR intervals (ms), or None with fewer than 10 valid ones.
pub fn features(rr_ms: &[f64]) -> Option<[f64; 14]> {
    let valid: Vec<f64> = rr_ms
        .iter()
        .copied()
        .filter(|rr| (300.0..=2000.0).contains(rr))
        .collect();
    if valid.len() < 10 {
        return None;
    }
    let n = valid.len() as f64;
    let mean = valid.iter().sum::<f64>() / n;
    let sdnn = (valid.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let diffs: Vec<f64> = valid.windows(2).map(|w| w[1] - w[0]).collect();
    let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    let pnn50 = diffs.iter().filter(|d| d.abs() > 50.0).count() as f64 / diffs.len() as f64 * 100.0;
    let mut out = [0.0; 14];
    out[0] = rmssd;
    out[1] = mean;
    out[2] = sdnn;
    out[3] = pnn50;
    out[13] = 60000.0 / mean;
    Some(out)
}

/// P(stress) for one feature vector.
pub fn stress_probability(
    model: &dyn Inference,
    features: &[f64; 14],
) -> Result<f64, InferenceError> {
    let input =
        ndarray::Array2::from_shape_vec((1, 14), features.iter().map(|v| *v as f32).collect())
            .expect("14 values")
            .into_dyn();
    let outputs = model.run(input)?;
    let probabilities = outputs
        .iter()
        .find(|(name, _)| name == "probabilities")
        .or_else(|| outputs.iter().find(|(_, a)| a.len() == 2))
        .ok_or_else(|| InferenceError::Run {
            model: model.id().to_string(),
            message: "no probabilities output".into(),
        })?;
    // Classes Baseline (0) and Stress (1).
    Ok(probabilities.1.iter().nth(1).copied().unwrap_or(f32::NAN) as f64)
}
