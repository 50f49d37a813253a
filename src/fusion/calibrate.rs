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

/// What a live session's calibration trains on: its fused estimates and markers of the last
/// `history_s` seconds of the client clock (`limits.calibration_history_s`), and at most
/// [`History::MAX_ESTIMATES`] estimates (a client's hop can be short). Kept bounded so that
/// a session's memory does not grow with its length: older estimates are dropped, and a
/// marker once its labelled block has ended before the oldest estimate kept.
pub struct History {
    history_s: f64,
    estimates: std::collections::VecDeque<FusedEstimate>,
    markers: Vec<(f64, f64, String)>,
    /// Markers held after the last trim: the next trims when this many more have come, so
    /// trimming costs O(log n) per marker.
    markers_at_trim: usize,
    /// The latest estimate's end, client clock, s: the horizon is `history_s` before it.
    latest: f64,
}

impl History {
    /// Most estimates held: four hours of one-second hops (~1 KB each).
    pub const MAX_ESTIMATES: usize = 16_384;

    /// `history_s`: how far back the calibration looks, s (0: no limit).
    pub fn new(history_s: f64) -> History {
        History {
            history_s,
            estimates: Default::default(),
            markers: Vec::new(),
            markers_at_trim: 0,
            latest: f64::NEG_INFINITY,
        }
    }

    pub fn push_estimate(&mut self, estimate: FusedEstimate) {
        self.latest = self.latest.max(estimate.end_time);
        self.estimates.push_back(estimate);
        let horizon = self.horizon();
        // Estimates come in time order.
        while self.estimates.front().is_some_and(|e| e.end_time < horizon)
            || self.estimates.len() > Self::MAX_ESTIMATES
        {
            self.estimates.pop_front();
        }
    }

    pub fn push_marker(&mut self, onset: f64, duration_s: f64, label: String) {
        self.markers.push((onset, duration_s, label));
        if self.markers.len() >= 2 * self.markers_at_trim + 64 {
            self.trim_markers();
            self.markers_at_trim = self.markers.len();
        }
    }

    /// Estimates and markers held (for the memory bound's test).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.estimates.len(), self.markers.len())
    }

    /// Trains on the labelled blocks within the horizon.
    pub fn train(&mut self) -> Result<FusionModel, CalibrationError> {
        self.trim_markers();
        let blocks = crate::formats::labels::from_markers(&self.markers);
        train(self.estimates.make_contiguous(), &blocks)
    }

    /// Client time before which nothing is trained on: `history_s` before the latest
    /// estimate, or the oldest estimate kept when the count bound is reached first.
    fn horizon(&self) -> f64 {
        let by_time = if self.history_s > 0.0 {
            self.latest - self.history_s
        } else {
            f64::NEG_INFINITY
        };
        match self.estimates.front() {
            Some(oldest) if self.estimates.len() >= Self::MAX_ESTIMATES => {
                by_time.max(oldest.start_time)
            }
            _ => by_time,
        }
    }

    /// Drops the markers whose blocks end before the horizon. The blocks of those kept are
    /// unchanged: a block that ends at the next marker's onset ends before the horizon when
    /// that next marker's does, so the two go together.
    fn trim_markers(&mut self) {
        let horizon = self.horizon();
        if horizon == f64::NEG_INFINITY {
            return;
        }
        self.markers.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ends: Vec<f64> = crate::formats::labels::from_markers(&self.markers)
            .iter()
            .map(|b| b.end)
            .collect();
        let mut i = 0;
        self.markers.retain(|_| {
            i += 1;
            ends[i - 1] >= horizon
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::fuse::Contribution;

    fn hop(start: f64, valence: f64) -> FusedEstimate {
        FusedEstimate {
            start_time: start,
            end_time: start + 1.0,
            valence: Some(valence),
            arousal: Some(0.5),
            labels: Vec::new(),
            label_names: Vec::new(),
            contributions: vec![Contribution {
                modality: Modality::Face,
                valence: Some(valence),
                arousal: Some(0.5),
                weight: 1.0,
                reliability: 1.0,
            }],
            method: "fusion-v1".into(),
        }
    }

    #[test]
    fn a_long_session_holds_only_its_horizon() {
        let mut history = History::new(600.0);
        for s in 0..100_000 {
            history.push_estimate(hop(s as f64, 0.0));
            if s % 10 == 0 {
                history.push_marker(s as f64, 0.0, format!("block{}", s % 3));
            }
        }
        let (estimates, markers) = history.held();
        assert!(
            (600..=602).contains(&estimates),
            "{estimates} estimates held"
        );
        // 60 markers in the horizon, plus those since the last trim (at most twice as many + 64).
        assert!(markers <= 3 * 61 + 64, "{markers} markers held");
    }

    #[test]
    fn short_hops_are_held_up_to_the_count_bound() {
        let mut history = History::new(0.0);
        for s in 0..100_000 {
            history.push_estimate(hop(s as f64 * 0.01, 0.0));
            history.push_marker(s as f64 * 0.01, 0.0, "x".into());
        }
        let (estimates, markers) = history.held();
        assert!(estimates <= History::MAX_ESTIMATES + 1, "{estimates}");
        assert!(markers <= 3 * History::MAX_ESTIMATES + 64, "{markers}");
    }

    #[test]
    fn trimming_keeps_the_blocks_within_the_horizon() {
        // Blocks alternate every 20 s; a long-duration marker from the start overlaps all.
        let mut trimmed = History::new(200.0);
        let mut whole = History::new(0.0);
        for h in [&mut trimmed, &mut whole] {
            h.push_marker(0.0, 1e6, "long".into());
            for s in 0..1000 {
                let label = if (s / 20) % 2 == 0 { "calm" } else { "stress" };
                h.push_estimate(hop(s as f64, if label == "calm" { 0.5 } else { -0.5 }));
                if s % 20 == 0 {
                    h.push_marker(s as f64, 0.0, label.into());
                }
            }
        }
        trimmed.trim_markers();
        let horizon = trimmed.horizon();
        let blocks = |h: &History| crate::formats::labels::from_markers(&h.markers);
        let kept: Vec<_> = blocks(&whole)
            .into_iter()
            .filter(|b| b.end >= horizon)
            .collect();
        assert_eq!(blocks(&trimmed), kept);
        assert!(trimmed.markers.len() < whole.markers.len() / 3);
    }
}
