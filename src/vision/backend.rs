//! The small trait the face stages run their networks through. ONNX Runtime implements
//! it (crate::onnx::OnnxModel); tests or other runtimes can provide their own.

use ndarray::ArrayD;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("model {model}: {message}")]
    Run { model: String, message: String },
    #[error(
        "model {model}: output `{output}` is missing or has shape {shape:?}, expected {expected}"
    )]
    Output {
        model: String,
        output: String,
        shape: Vec<usize>,
        expected: String,
    },
}

/// One network with one f32 input.
pub trait Inference: Send + Sync {
    fn id(&self) -> &str;
    /// Runs the network; returns every output by name, in the model's order.
    fn run(&self, input: ArrayD<f32>) -> Result<Vec<(String, ArrayD<f32>)>, InferenceError>;
}

/// Picks a named output and checks its element count.
pub fn output<'a>(
    model: &str,
    outputs: &'a [(String, ArrayD<f32>)],
    name: &str,
    expected_len: Option<usize>,
) -> Result<&'a ArrayD<f32>, InferenceError> {
    let found = outputs.iter().find(|(n, _)| n == name).map(|(_, a)| a);
    match found {
        Some(a) if expected_len.is_none_or(|n| a.len() == n) => Ok(a),
        other => Err(InferenceError::Output {
            model: model.to_owned(),
            output: name.to_owned(),
            shape: other.map(|a| a.shape().to_vec()).unwrap_or_default(),
            expected: expected_len.map_or_else(|| "any".into(), |n| format!("{n} values")),
        }),
    }
}
