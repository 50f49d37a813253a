//! A tracked face's neutral level of each AU estimate: a running quantile over the face's
//! whole history.
//!
//! OpenFace 2 (Baltrusaitis et al. 2018, "OpenFace 2.0: Facial Behavior Analysis Toolkit",
//! section 4.2; Baltrusaitis, Mahmoud & Robinson 2015, "Cross-dataset learning and
//! person-specific normalisation for automatic Action Unit detection") corrects for a
//! person's neutral face by subtracting a running median of that person's features, kept as
//! histograms so that the history costs a fixed amount of memory. The same is done here on
//! the AU estimates themselves, with the quantile a setting (`expression.baseline_quantile`,
//! the median by default). Unlike OpenFace, the frames inside an expression episode are left
//! out of the history (`dynamics::FaceDynamics::observe`): a smile held for half of a clip
//! would otherwise become the face's neutral, and an AU that an expression lowers (the brows
//! of a smile) would read as raised once the face is neutral again.

/// Width of a histogram bin on the 0-5 intensity scale: baselines are exact to half of it.
pub const BIN_WIDTH: f32 = 0.01;
const BINS: usize = (5.0 / BIN_WIDTH) as usize + 1;

/// The histogram of one AU's estimates over a face's history.
#[derive(Debug, Clone)]
pub struct RunningQuantile {
    counts: Vec<u32>,
    total: u64,
}

impl Default for RunningQuantile {
    fn default() -> Self {
        Self {
            counts: vec![0; BINS],
            total: 0,
        }
    }
}

impl RunningQuantile {
    pub fn push(&mut self, value: f32) {
        if !value.is_finite() {
            return;
        }
        let bin = ((value.clamp(0.0, 5.0) / BIN_WIDTH).round() as usize).min(BINS - 1);
        // A face tracked for 4 billion frames stops counting rather than wrapping.
        if self.counts[bin] < u32::MAX {
            self.counts[bin] += 1;
            self.total += 1;
        }
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (lower quantile: the smallest value with at least `q` of the
    /// history at or below it); None when empty.
    pub fn quantile(&self, q: f32) -> Option<f32> {
        if self.total == 0 {
            return None;
        }
        // The tolerance keeps an f32 quantile such as 0.1 (0.100000001) from skipping a rank.
        let rank = ((q as f64 * self.total as f64 - 1e-6).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (bin, &count) in self.counts.iter().enumerate() {
            seen += count as u64;
            if seen >= rank {
                return Some(bin as f32 * BIN_WIDTH);
            }
        }
        unreachable!("rank <= total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_the_sorted_history_to_a_bin() {
        let mut q = RunningQuantile::default();
        let values: Vec<f32> = (0..1000).map(|i| ((i * 37) % 500) as f32 / 100.0).collect();
        for v in &values {
            q.push(*v);
        }
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        for p in [0.1f32, 0.25, 0.5, 0.9] {
            let exact = sorted[((p as f64 * 1000.0 - 1e-6).ceil() as usize).max(1) - 1];
            let got = q.quantile(p).unwrap();
            assert!(
                (got - exact).abs() <= BIN_WIDTH / 2.0 + 1e-6,
                "{p}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_clamped_and_non_finite_ignored() {
        let mut q = RunningQuantile::default();
        assert_eq!(q.quantile(0.5), None);
        q.push(f32::NAN);
        assert!(q.is_empty());
        q.push(9.0);
        q.push(-1.0);
        assert_eq!(q.len(), 2);
        assert_eq!(q.quantile(1.0), Some(5.0));
        assert_eq!(q.quantile(0.1), Some(0.0));
    }
}
