//! Subject calibration: a shrinkage LDA (the one `train-eeg` uses) over the per-modality
//! estimates of each hop, trained on labelled blocks of one participant's session. It
//! replaces `fusion-v1`'s label distribution with the calibrated classes' posterior;
//! valence and arousal stay `fusion-v1`'s.
//!
//! Features, per hop: each modality's own valence and arousal (`Contribution`), before
//! smoothing. A modality missing from a hop is filled with its training mean (neutral for
//! a linear model); features constant over the training hops are left out.

use serde::{Deserialize, Serialize};

use super::estimate::Modality;
use super::fuse::FusedEstimate;
use crate::formats::labels::LabelledBlock;
use crate::signals::classifier::{ClassifierError, CrossValidation, ShrinkageLda, cross_validate};

/// The calibrated model's file format.
pub const FORMAT: &str = "affectd-fusion-lda-v1";

/// Folds of the blocked cross-validation.
pub const FOLDS: usize = 5;

/// Every feature a hop can have: (modality, "valence" or "arousal").
pub fn feature_names() -> Vec<String> {
    let mut names = Vec::new();
    for m in Modality::ALL {
        if matches!(m, Modality::Face | Modality::Eeg) {
            names.push(format!("{}.valence", m.name()));
        }
        names.push(format!("{}.arousal", m.name()));
    }
    names
}

/// A hop's features, in `feature_names` order; None where the modality did not contribute.
pub fn features(estimate: &FusedEstimate) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for m in Modality::ALL {
        let c = estimate.contributions.iter().find(|c| c.modality == m);
        if matches!(m, Modality::Face | Modality::Eeg) {
            out.push(c.and_then(|c| c.valence));
        }
        out.push(c.and_then(|c| c.arousal));
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibrationError {
    #[error(
        "no labelled blocks: calibration needs markers with a duration (or instant markers, each labelling until the next) covering the hops to learn from"
    )]
    NoBlocks,
    #[error(
        "no fused estimate lies inside a labelled block ({blocks} blocks, {estimates} estimates): the blocks must cover moments with data"
    )]
    NoLabelledHops { blocks: usize, estimates: usize },
    #[error(
        "calibration needs at least two classes; the labelled hops are all {0:?} (label blocks of another condition too)"
    )]
    OneClass(String),
    #[error("no feature varies over the labelled hops (every modality is missing or constant)")]
    NoFeatures,
    #[error("{0}")]
    Classifier(#[from] ClassifierError),
}

/// A participant's calibrated fusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionModel {
    pub format: String,
    /// Indices into `feature_names()` of the features used.
    pub features: Vec<usize>,
    /// Training mean of every used feature, filled in for a missing modality.
    pub means: Vec<f64>,
    pub lda: ShrinkageLda,
    /// The blocked cross-validation of this training.
    pub cross_validation: CrossValidationFigures,
}

/// What a calibration reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidationFigures {
    pub folds: usize,
    pub hops: usize,
    pub classes: Vec<String>,
    pub balanced_accuracy: f64,
    pub chance_level: f64,
    pub chance_95th_percentile: f64,
}

impl From<&CrossValidation> for CrossValidationFigures {
    fn from(cv: &CrossValidation) -> Self {
        Self {
            folds: cv.folds,
            hops: cv.windows,
            classes: cv.classes.clone(),
            balanced_accuracy: cv.balanced_accuracy,
            chance_level: cv.chance_level,
            chance_95th_percentile: cv.chance_95th_percentile,
        }
    }
}

/// Trains on the estimates whose hop lies inside a labelled block.
pub fn train(
    estimates: &[FusedEstimate],
    blocks: &[LabelledBlock],
) -> Result<FusionModel, CalibrationError> {
    if blocks.is_empty() {
        return Err(CalibrationError::NoBlocks);
    }
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for e in estimates {
        if let Some(b) = blocks.iter().find(|b| b.holds(e.start_time, e.end_time)) {
            rows.push(features(e));
            labels.push(b.label.clone());
        }
    }
    if rows.is_empty() {
        return Err(CalibrationError::NoLabelledHops {
            blocks: blocks.len(),
            estimates: estimates.len(),
        });
    }
    let mut classes = labels.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(CalibrationError::OneClass(classes.remove(0)));
    }
    // Features present in some hop and varying over them; means over the hops that have
    // them.
    let names = feature_names();
    let mut used = Vec::new();
    let mut means = Vec::new();
    for k in 0..names.len() {
        let values: Vec<f64> = rows.iter().filter_map(|r| r[k]).collect();
        if values.len() < 2 {
            continue;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        if values.iter().any(|v| (v - mean).abs() > 1e-9) {
            used.push(k);
            means.push(mean);
        }
    }
    if used.is_empty() {
        return Err(CalibrationError::NoFeatures);
    }
    let fill = |row: &[Option<f64>]| -> Vec<f64> {
        used.iter()
            .zip(&means)
            .map(|(&k, mean)| row[k].unwrap_or(*mean))
            .collect()
    };
    let x: Vec<Vec<f64>> = rows.iter().map(|r| fill(r)).collect();
    let used_names: Vec<String> = used.iter().map(|&k| names[k].clone()).collect();
    let cv = cross_validate(&x, &labels, FOLDS, &used_names)?;
    let lda = ShrinkageLda::fit(&x, &labels, used_names)?;
    Ok(FusionModel {
        format: FORMAT.into(),
        features: used,
        means,
        lda,
        cross_validation: (&cv).into(),
    })
}

impl FusionModel {
    /// The method name calibrated estimates carry.
    pub fn method(&self) -> String {
        format!("{}+calibrated-lda", super::fuse::METHOD)
    }

    /// Replaces the estimate's label distribution with the calibrated classes' posterior.
    pub fn apply(&self, estimate: &mut FusedEstimate) {
        let row = features(estimate);
        let x: Vec<f64> = self
            .features
            .iter()
            .zip(&self.means)
            .map(|(&k, mean)| row.get(k).copied().flatten().unwrap_or(*mean))
            .collect();
        if let Ok(p) = self.lda.predict_proba(&x) {
            estimate.labels = p;
            estimate.label_names = self.lda.classes.clone();
            estimate.method = self.method();
        }
    }
}
