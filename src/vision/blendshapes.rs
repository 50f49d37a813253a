//! MediaPipe's 52 blendshape coefficients from 146 of the mesh landmarks.

use ndarray::Array3;

use super::backend::{Inference, InferenceError, output};

/// The landmark subset the blendshape model reads, in its input order.
pub const INPUT_LANDMARKS: [usize; 146] = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65,
    66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136,
    144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172,
    173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283,
    284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324,
    332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477,
];

pub const NAMES: [&str; 52] = [
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
];

/// Index of a blendshape by name (panics on a name not in [`NAMES`]: a programming error).
pub fn index(name: &str) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown blendshape {name}"))
}

/// The model's input: image-pixel x, y of the subset, [1, 146, 2].
pub fn preprocess(points: &[[f32; 3]]) -> Array3<f32> {
    let mut tensor = Array3::<f32>::zeros((1, INPUT_LANDMARKS.len(), 2));
    for (i, &k) in INPUT_LANDMARKS.iter().enumerate() {
        tensor[[0, i, 0]] = points[k][0];
        tensor[[0, i, 1]] = points[k][1];
    }
    tensor
}

/// 52 scores in `[0,1]`, in [`NAMES`] order.
pub fn run(model: &dyn Inference, points: &[[f32; 3]]) -> Result<[f32; 52], InferenceError> {
    let outputs = model.run(preprocess(points).into_dyn())?;
    let scores = output(model.id(), &outputs, "StatefulPartitionedCall:0", Some(52))?;
    let mut out = [0.0; 52];
    for (o, s) in out.iter_mut().zip(scores.iter()) {
        *o = s.clamp(0.0, 1.0);
    }
    Ok(out)
}
