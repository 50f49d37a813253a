//! FACS action-unit ESTIMATES from MediaPipe blendshapes and landmark geometry.
//!
//! No FACS-trained AU model is reachable for affectd, so these are derived, documented
//! estimates, not AU detections. Each AU's intensity is 5 x its source score, on OpenFace's
//! 0-5 `AUxx_r` scale; `AUxx_c` (presence) is intensity >= 1 (FACS "A", trace).
//!
//! The table pairs each AU with the blendshapes whose ARKit/MediaPipe definitions describe
//! the same muscle movement (Ekman, Friesen & Hager 2002, FACS manual, for the AUs; Apple
//! ARKit `ARFaceAnchor.BlendShapeLocation` docs for the blendshapes):

use super::blendshapes::index;
use super::mesh::{LEFT_EYE_OUTER, LOWER_LIP_INNER, RIGHT_EYE_OUTER, UPPER_LIP_INNER};

/// How an AU's source score is computed.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Mean of these blendshapes (left/right pairs).
    Mean(&'static [&'static str]),
    /// Largest of these blendshapes.
    Max(&'static [&'static str]),
    /// Lip separation from the mesh: inner-lip gap / outer-eye-corner distance, scaled so a
    /// gap of 0.25 eye widths reads 1.0 (lips clearly apart).
    LipGap,
}

/// (AU number, FACS name, source).
pub const TABLE: &[(u32, &str, Source)] = &[
    (1, "inner brow raiser", Source::Mean(&["browInnerUp"])),
    (
        2,
        "outer brow raiser",
        Source::Mean(&["browOuterUpLeft", "browOuterUpRight"]),
    ),
    (
        4,
        "brow lowerer",
        Source::Mean(&["browDownLeft", "browDownRight"]),
    ),
    (
        5,
        "upper lid raiser",
        Source::Mean(&["eyeWideLeft", "eyeWideRight"]),
    ),
    (
        6,
        "cheek raiser",
        Source::Mean(&["cheekSquintLeft", "cheekSquintRight"]),
    ),
    (
        7,
        "lid tightener",
        Source::Mean(&["eyeSquintLeft", "eyeSquintRight"]),
    ),
    (
        9,
        "nose wrinkler",
        Source::Mean(&["noseSneerLeft", "noseSneerRight"]),
    ),
    (
        10,
        "upper lip raiser",
        Source::Mean(&["mouthUpperUpLeft", "mouthUpperUpRight"]),
    ),
    (
        12,
        "lip corner puller",
        Source::Mean(&["mouthSmileLeft", "mouthSmileRight"]),
    ),
    (
        14,
        "dimpler",
        Source::Mean(&["mouthDimpleLeft", "mouthDimpleRight"]),
    ),
    (
        15,
        "lip corner depressor",
        Source::Mean(&["mouthFrownLeft", "mouthFrownRight"]),
    ),
    (17, "chin raiser", Source::Mean(&["mouthShrugLower"])),
    (
        20,
        "lip stretcher",
        Source::Mean(&["mouthStretchLeft", "mouthStretchRight"]),
    ),
    // AU23 narrows and tightens the lips; ARKit has no single shape for it: pressing plus
    // rolling of the lips is the closest visible movement.
    (
        23,
        "lip tightener",
        Source::Mean(&[
            "mouthPressLeft",
            "mouthPressRight",
            "mouthRollLower",
            "mouthRollUpper",
        ]),
    ),
    (
        24,
        "lip pressor",
        Source::Mean(&["mouthPressLeft", "mouthPressRight"]),
    ),
    // Lips part is better measured on the mesh than from jawOpen (lips can part with the jaw closed).
    (25, "lips part", Source::LipGap),
    (26, "jaw drop", Source::Mean(&["jawOpen"])),
    (
        28,
        "lip suck",
        Source::Max(&["mouthRollLower", "mouthRollUpper"]),
    ),
    // MediaPipe cannot tell a blink (AU45) from closed eyes (AU43) in one frame; one estimate.
    (
        45,
        "blink / eyes closed (AU43/45)",
        Source::Mean(&["eyeBlinkLeft", "eyeBlinkRight"]),
    ),
];

pub const PRESENCE_THRESHOLD: f32 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionUnit {
    pub number: u32,
    /// `[0,5]`, as estimated on this frame.
    pub intensity: f32,
    pub present: bool,
    /// This tracked face's neutral level of the AU (`vision::dynamics::baseline`), `[0,5]`;
    /// None until the face's baseline has settled, and for single images.
    pub baseline: Option<f32>,
    /// `intensity - baseline`, clamped to `[0,5]`; None when `baseline` is.
    pub corrected: Option<f32>,
}

impl ActionUnit {
    /// Presence on the baseline-corrected intensity; None without a baseline.
    pub fn corrected_present(&self) -> Option<bool> {
        self.corrected.map(|c| c >= PRESENCE_THRESHOLD)
    }
}

fn lip_gap(points: &[[f32; 3]]) -> f32 {
    let d = |a: [f32; 3], b: [f32; 3]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let eye_width = d(points[RIGHT_EYE_OUTER], points[LEFT_EYE_OUTER]).max(f32::EPSILON);
    (d(points[UPPER_LIP_INNER], points[LOWER_LIP_INNER]) / eye_width / 0.25).clamp(0.0, 1.0)
}

/// AU estimates in [`TABLE`] order.
pub fn estimate(blendshapes: &[f32; 52], points: &[[f32; 3]]) -> Vec<ActionUnit> {
    TABLE
        .iter()
        .map(|(number, _, source)| {
            let score = match source {
                Source::Mean(names) => {
                    names.iter().map(|n| blendshapes[index(n)]).sum::<f32>() / names.len() as f32
                }
                Source::Max(names) => names
                    .iter()
                    .map(|n| blendshapes[index(n)])
                    .fold(0.0, f32::max),
                Source::LipGap => lip_gap(points),
            };
            let intensity = (5.0 * score).clamp(0.0, 5.0);
            ActionUnit {
                number: *number,
                intensity,
                present: intensity >= PRESENCE_THRESHOLD,
                baseline: None,
                corrected: None,
            }
        })
        .collect()
}

/// Intensity of one AU from an estimate list (0 when absent).
pub fn intensity(units: &[ActionUnit], number: u32) -> f32 {
    units
        .iter()
        .find(|u| u.number == number)
        .map_or(0.0, |u| u.intensity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smile_blendshapes_raise_au12_only() {
        let mut b = [0.0; 52];
        b[index("mouthSmileLeft")] = 0.8;
        b[index("mouthSmileRight")] = 0.6;
        let points = vec![[0.0; 3]; 478];
        let units = estimate(&b, &points);
        assert!((intensity(&units, 12) - 3.5).abs() < 1e-5);
        assert!(units.iter().find(|u| u.number == 12).unwrap().present);
        assert_eq!(units.iter().filter(|u| u.present).count(), 1);
    }

    #[test]
    fn lip_gap_reads_the_mesh() {
        let mut points = vec![[0.0; 3]; 478];
        points[RIGHT_EYE_OUTER] = [0.0, 0.0, 0.0];
        points[LEFT_EYE_OUTER] = [100.0, 0.0, 0.0];
        points[UPPER_LIP_INNER] = [50.0, 100.0, 0.0];
        points[LOWER_LIP_INNER] = [50.0, 112.5, 0.0];
        let units = estimate(&[0.0; 52], &points);
        assert!((intensity(&units, 25) - 2.5).abs() < 1e-5);
    }
}
