//! A subject-specific classifier for EEG feature windows: linear discriminant analysis with
//! Ledoit-Wolf shrinkage, the model scikit-learn fits with
//! `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")` and that BCI work favours
//! for few, correlated training windows (Blankertz et al. 2011). Hand-written: the Rust ML
//! crates (linfa) need a LAPACK backend for LDA, and the problem sizes here (a few hundred
//! features) are small enough for a plain Cholesky solve. tests/signals_classifier.rs
//! holds it to scikit-learn's coefficients.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClassifierError {
    #[error("no training windows")]
    Empty,
    #[error("feature vectors have different lengths ({0} and {1})")]
    Ragged(usize, usize),
    #[error("{0} labels for {1} feature vectors")]
    LabelCount(usize, usize),
    #[error("training needs at least two classes, got {0:?}")]
    OneClass(Vec<String>),
    #[error("non-finite feature value in window {0}")]
    NonFinite(usize),
    #[error("the shrunk covariance is singular; are all features constant?")]
    Singular,
    #[error(
        "cross-validation needs at least {folds} windows of every class; {class:?} has {count}"
    )]
    TooFewForFolds {
        class: String,
        count: usize,
        folds: usize,
    },
    #[error("the model expects {expected} features, got {got}")]
    FeatureCount { expected: usize, got: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkageLda {
    pub format: String,
    pub classes: Vec<String>,
    pub feature_names: Vec<String>,
    /// One row of weights per class.
    pub coef: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
    /// Ledoit-Wolf shrinkage intensity per class covariance, `[0,1]`.
    pub shrinkage: Vec<f64>,
    pub training_windows: usize,
}

pub const MODEL_FORMAT: &str = "affectd-shrinkage-lda-v1";

impl ShrinkageLda {
    pub fn fit(
        x: &[Vec<f64>],
        labels: &[String],
        feature_names: Vec<String>,
    ) -> Result<Self, ClassifierError> {
        let n = x.len();
        if n == 0 {
            return Err(ClassifierError::Empty);
        }
        if labels.len() != n {
            return Err(ClassifierError::LabelCount(labels.len(), n));
        }
        let d = x[0].len();
        for (i, row) in x.iter().enumerate() {
            if row.len() != d {
                return Err(ClassifierError::Ragged(d, row.len()));
            }
            if row.iter().any(|v| !v.is_finite()) {
                return Err(ClassifierError::NonFinite(i));
            }
        }
        let mut classes: Vec<String> = labels.to_vec();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(ClassifierError::OneClass(classes));
        }
        let mut covariance = vec![vec![0.0; d]; d];
        let mut means = Vec::with_capacity(classes.len());
        let mut priors = Vec::with_capacity(classes.len());
        let mut shrinkage = Vec::with_capacity(classes.len());
        for class in &classes {
            let rows: Vec<&Vec<f64>> = x
                .iter()
                .zip(labels)
                .filter(|(_, l)| *l == class)
                .map(|(r, _)| r)
                .collect();
            let prior = rows.len() as f64 / n as f64;
            let (mean, cov, intensity) = standardised_ledoit_wolf(&rows, d);
            for (acc_row, cov_row) in covariance.iter_mut().zip(&cov) {
                for (a, c) in acc_row.iter_mut().zip(cov_row) {
                    *a += prior * c;
                }
            }
            means.push(mean);
            priors.push(prior);
            shrinkage.push(intensity);
        }
        let factor = cholesky(&covariance).ok_or(ClassifierError::Singular)?;
        let coef: Vec<Vec<f64>> = means.iter().map(|m| cholesky_solve(&factor, m)).collect();
        let intercept = coef
            .iter()
            .zip(&means)
            .zip(&priors)
            .map(|((c, m), p)| -0.5 * dot(c, m) + p.ln())
            .collect();
        Ok(Self {
            format: MODEL_FORMAT.to_string(),
            classes,
            feature_names,
            coef,
            intercept,
            shrinkage,
            training_windows: n,
        })
    }

    /// Class probabilities (softmax of the discriminants), in `classes` order.
    pub fn predict_proba(&self, features: &[f64]) -> Result<Vec<f64>, ClassifierError> {
        let expected = self.coef.first().map_or(0, Vec::len);
        if features.len() != expected {
            return Err(ClassifierError::FeatureCount {
                expected,
                got: features.len(),
            });
        }
        let scores: Vec<f64> = self
            .coef
            .iter()
            .zip(&self.intercept)
            .map(|(c, b)| dot(c, features) + b)
            .collect();
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
        let sum: f64 = exp.iter().sum();
        Ok(exp.into_iter().map(|e| e / sum).collect())
    }

    pub fn predict(&self, features: &[f64]) -> Result<&str, ClassifierError> {
        let p = self.predict_proba(features)?;
        let best = (0..p.len())
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0);
        Ok(&self.classes[best])
    }
}

/// sklearn's `_cov(X, shrinkage="auto")`: Ledoit-Wolf on standardised features, scaled
/// back. Returns (class mean, covariance, shrinkage intensity).
fn standardised_ledoit_wolf(rows: &[&Vec<f64>], d: usize) -> (Vec<f64>, Vec<Vec<f64>>, f64) {
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let scale: Vec<f64> = (0..d)
        .map(|j| {
            let s = (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt();
            if s == 0.0 { 1.0 } else { s }
        })
        .collect();
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| (0..d).map(|j| (r[j] - mean[j]) / scale[j]).collect())
        .collect();
    // Empirical covariance of the standardised data.
    let mut emp = vec![vec![0.0; d]; d];
    for row in &z {
        for a in 0..d {
            for b in 0..d {
                emp[a][b] += row[a] * row[b];
            }
        }
    }
    emp.iter_mut().flatten().for_each(|v| *v /= n);
    // sklearn.covariance.ledoit_wolf_shrinkage.
    let trace: Vec<f64> = (0..d)
        .map(|j| z.iter().map(|r| r[j] * r[j]).sum::<f64>() / n)
        .collect();
    let mu = trace.iter().sum::<f64>() / d as f64;
    let mut beta_sum = 0.0;
    for a in 0..d {
        for b in 0..d {
            beta_sum += z.iter().map(|r| r[a] * r[a] * r[b] * r[b]).sum::<f64>();
        }
    }
    let delta_sum = emp.iter().flatten().map(|v| (v * n).powi(2)).sum::<f64>() / (n * n);
    let beta = (beta_sum / n - delta_sum) / (d as f64 * n);
    let delta = (delta_sum - 2.0 * mu * trace.iter().sum::<f64>() + d as f64 * mu * mu) / d as f64;
    let beta = beta.min(delta);
    let intensity = if beta == 0.0 { 0.0 } else { beta / delta };
    let mut cov = emp;
    for a in 0..d {
        for b in 0..d {
            let shrunk = (1.0 - intensity) * cov[a][b] + if a == b { intensity * mu } else { 0.0 };
            cov[a][b] = shrunk * scale[a] * scale[b];
        }
    }
    (mean, cov, intensity)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lower-triangular L with A = L L^T; None when A is not positive definite.
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let d = a.len();
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let v = a[i][i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i][j] = v.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

fn cholesky_solve(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let d = l.len();
    let mut y = vec![0.0; d];
    for i in 0..d {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        x[i] = (y[i] - (i + 1..d).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

/// Cross-validated performance, with the chance level it must be read against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossValidation {
    pub folds: usize,
    pub windows: usize,
    pub classes: Vec<String>,
    /// Mean per-class recall over all held-out windows, `[0,1]`.
    pub balanced_accuracy: f64,
    /// Balanced accuracy of guessing: 1 / number of classes.
    pub chance_level: f64,
    /// Accuracy a guesser exceeds with probability 5% on this many windows (binomial,
    /// p = chance level; Combrisson & Jerbi 2015). Overlapping windows are not independent,
    /// so read this as a lower bound on what is significant.
    pub chance_95th_percentile: f64,
    /// Rows: true class; columns: predicted class, both in `classes` order.
    pub confusion: Vec<Vec<usize>>,
}

/// Blocked, stratified k-fold: each class's windows, in time order, are cut into k
/// contiguous blocks, and fold i holds block i of every class. Contiguous blocks keep
/// overlapping neighbours (hop < window) mostly on the same side of the split, which
/// shuffled folds would not.
pub fn cross_validate(
    x: &[Vec<f64>],
    labels: &[String],
    folds: usize,
    feature_names: &[String],
) -> Result<CrossValidation, ClassifierError> {
    if x.is_empty() {
        return Err(ClassifierError::Empty);
    }
    if labels.len() != x.len() {
        return Err(ClassifierError::LabelCount(labels.len(), x.len()));
    }
    let folds = folds.max(2);
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(ClassifierError::OneClass(classes));
    }
    let mut fold_of = vec![0usize; x.len()];
    for class in &classes {
        let members: Vec<usize> = (0..x.len()).filter(|&i| &labels[i] == class).collect();
        if members.len() < folds {
            return Err(ClassifierError::TooFewForFolds {
                class: class.clone(),
                count: members.len(),
                folds,
            });
        }
        for (rank, &i) in members.iter().enumerate() {
            fold_of[i] = rank * folds / members.len();
        }
    }
    let mut confusion = vec![vec![0usize; classes.len()]; classes.len()];
    for fold in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..x.len()).partition(|&i| fold_of[i] != fold);
        let model = ShrinkageLda::fit(
            &train.iter().map(|&i| x[i].clone()).collect::<Vec<_>>(),
            &train.iter().map(|&i| labels[i].clone()).collect::<Vec<_>>(),
            feature_names.to_vec(),
        )?;
        for &i in &test {
            let predicted = model.predict(&x[i])?;
            let t = classes
                .iter()
                .position(|c| *c == labels[i])
                .expect("known class");
            let p = classes
                .iter()
                .position(|c| c == predicted)
                .expect("known class");
            confusion[t][p] += 1;
        }
    }
    let balanced_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(k, row)| row[k] as f64 / row.iter().sum::<usize>().max(1) as f64)
        .sum::<f64>()
        / classes.len() as f64;
    let chance_level = 1.0 / classes.len() as f64;
    Ok(CrossValidation {
        folds,
        windows: x.len(),
        chance_95th_percentile: binomial_upper_5_percent(x.len(), chance_level),
        classes,
        balanced_accuracy,
        chance_level,
        confusion,
    })
}

/// Smallest k/n with P(X >= k) <= 0.05 for X ~ Binomial(n, p).
fn binomial_upper_5_percent(n: usize, p: f64) -> f64 {
    // Log-space pmf to stay finite for long recordings.
    let ln_pmf = |k: usize| -> f64 {
        let ln_choose =
            ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0);
        ln_choose + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()
    };
    let mut tail = 0.0;
    for k in (0..=n).rev() {
        let with_k = tail + ln_pmf(k).exp();
        if with_k > 0.05 {
            return (k + 1) as f64 / n as f64;
        }
        tail = with_k;
    }
    0.0
}

/// Lanczos approximation (g = 7), accurate to ~1e-13 for x > 0.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_threshold_matches_known_values() {
        // scipy.stats.binom.sf(k - 1, 20, 0.5) <= 0.05 first at k = 15.
        assert!((binomial_upper_5_percent(20, 0.5) - 0.75).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }
}
