//! `fusion-v1`: reliability-weighted late fusion of the modality estimates on one timeline.
//!
//! 1. **Latency.** An estimate of modality m made at time t describes the moment
//!    `t - latency_m`: skin conductance follows a stimulus by 1-3 s, heart rate and breathing
//!    by a few seconds, the face and the EEG at once (values and sources in the README and
//!    `FusionConfig`).
//! 2. **Bins.** The timeline is cut into hops `[k·hop, (k+1)·hop)` of the client clock.
//!    In each, a modality's value is the reliability-weighted mean of its estimates whose
//!    moment falls there; its reliability, their mean (for the face, times the share of the
//!    bin's frames that were analysed). A modality with no estimate in a bin keeps its last
//!    value with its reliability decaying as `exp(-Δt / dropout_s)`, so a modality that
//!    drops out (a face that leaves, a stream that stops) loses its weight smoothly.
//! 3. **Weights.** `w_m = prior_m · r_m / Σ prior · r`, with `prior_m` from the
//!    configuration. Valence averages the modalities that have one; arousal all.
//! 4. **Labels.** A product of experts over the seven expression labels: the face's own
//!    distribution, and for every other modality a circumplex likelihood
//!    `exp(-((v - v_l)² + (a - a_l)²) / (2 · 0.3²))` of each label's position (the arousal
//!    term alone for modalities without valence), each raised to its weight.
//! 5. **Smoothing.** An exponential filter, `x_k = x_{k-1} + α (x_new - x_{k-1})` with
//!    `α = 1 - exp(-hop / smoothing_s)`, on valence, arousal, the label distribution and
//!    each modality's reliability.
//!
//! A bin is reported once every modality whose data is expected has reported past the bin
//! (its latency included), or has fallen `stale_s` behind the others (it has stopped), so
//! that the output does not depend on how chunks and frames were interleaved on the way in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::estimate::{Modality, ModalityEstimate};
use crate::config::FusionConfig;
use crate::vision::expression::CIRCUMPLEX;

/// The method's name in every estimate.
pub const METHOD: &str = "fusion-v1";

/// One modality's share of a fused estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub modality: Modality,
    /// `[0,1]`; the weights of one estimate sum to 1.
    pub weight: f64,
    /// `[0,1]`, smoothed.
    pub reliability: f64,
    /// The modality's own valence `[-1,1]` and arousal `[0,1]` in this hop (not smoothed);
    /// None where it has none.
    pub valence: Option<f64>,
    pub arousal: Option<f64>,
}

/// The fused estimate of one hop of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FusedEstimate {
    /// The moment it describes, client clock, s: `[start_time, end_time)`.
    pub start_time: f64,
    pub end_time: f64,
    /// `[-1,1]`; None when no modality with valence contributed.
    pub valence: Option<f64>,
    /// `[0,1]`.
    pub arousal: Option<f64>,
    /// Over the labels of `label_names`; they sum to 1.
    pub labels: Vec<f64>,
    pub label_names: Vec<String>,
    /// Every modality that contributed, with its weight and reliability.
    pub contributions: Vec<Contribution>,
    /// "fusion-v1", or the calibrated model's name.
    pub method: String,
}

/// A modality's state on the timeline.
#[derive(Debug, Clone, Default)]
struct Track {
    /// Estimates not yet binned, by bin index.
    pending: BTreeMap<i64, Vec<ModalityEstimate>>,
    /// The latest time this modality has reported up to (client clock, s).
    watermark: Option<f64>,
    /// Frames (face) in each bin and how many were analysed.
    frames: BTreeMap<i64, (u32, u32)>,
    /// The last binned value, and its bin's end.
    last: Option<(BinValue, f64)>,
    /// Smoothed reliability.
    reliability: f64,
}

/// Fuses the estimates of one session or recording, in time order.
pub struct Fuser {
    config: FusionConfig,
    hop: f64,
    tracks: BTreeMap<Modality, Track>,
    /// The next bin to report.
    next: Option<i64>,
    /// The earliest time any modality reported (client clock, s).
    origin: Option<f64>,
    /// Whether a bin has been reported (the timeline's start is then fixed).
    started: bool,
    /// Estimates that arrived for a bin already reported, and were dropped.
    late: u64,
    smoothed: Option<(Option<f64>, Option<f64>, [f64; 7])>,
}

/// A decayed reliability under 1 % (about 4.6 dropout time constants) ends a silent
/// modality's contribution.
const GONE_RELIABILITY: f64 = 0.01;

fn circumplex_likelihood(valence: Option<f64>, arousal: f64) -> [f64; 7] {
    const SIGMA2: f64 = 2.0 * 0.3 * 0.3;
    let mut out = [0.0; 7];
    for (o, (_, v, a)) in out.iter_mut().zip(CIRCUMPLEX) {
        let dv = valence.map_or(0.0, |x| x - v as f64);
        let da = arousal - a as f64;
        *o = (-(dv * dv + da * da) / SIGMA2).exp();
    }
    out
}

impl Fuser {
    /// A fuser over hops of `hop_s` seconds.
    pub fn new(config: &FusionConfig, hop_s: f64) -> Self {
        Self {
            config: config.clone(),
            hop: hop_s,
            tracks: BTreeMap::new(),
            next: None,
            origin: None,
            started: false,
            late: 0,
            smoothed: None,
        }
    }

    /// Expects data from `modality`: bins wait for it until it reports or stops.
    pub fn expect(&mut self, modality: Modality) {
        self.tracks.entry(modality).or_default();
    }

    fn bin_of(&self, moment: f64) -> i64 {
        (moment / self.hop).floor() as i64
    }

    /// A face frame at `time`: its estimate, or None (no face, or not analysed: `analysed`
    /// says which).
    pub fn push_frame(&mut self, time: f64, estimate: Option<ModalityEstimate>, analysed: bool) {
        let latency = self.config.latency_s.get(Modality::Face);
        let bin = self.bin_of(time - latency);
        if self.is_reported(bin) {
            self.late += 1;
            return;
        }
        let track = self.tracks.entry(Modality::Face).or_default();
        let counts = track.frames.entry(bin).or_default();
        counts.0 += 1;
        counts.1 += u32::from(analysed);
        track.watermark = Some(track.watermark.map_or(time, |w| w.max(time)));
        if let Some(e) = estimate {
            track.pending.entry(bin).or_default().push(e);
        }
        self.start_at(bin, time);
    }

    /// A signal estimate (a window's), or a window with nothing usable (`None`) that still
    /// moves the modality's clock to `time`.
    pub fn push_signal(
        &mut self,
        modality: Modality,
        time: f64,
        estimate: Option<ModalityEstimate>,
    ) {
        let latency = self.config.latency_s.get(modality);
        let bin = self.bin_of(time - latency);
        let track = self.tracks.entry(modality).or_default();
        track.watermark = Some(track.watermark.map_or(time, |w| w.max(time)));
        if self.is_reported(bin) {
            self.late += usize::from(estimate.is_some()) as u64;
            return;
        }
        let track = self.tracks.entry(modality).or_default();
        track.watermark = Some(track.watermark.map_or(time, |w| w.max(time)));
        if let Some(e) = estimate {
            track.pending.entry(bin).or_default().push(e);
        }
        self.start_at(bin, time);
    }

    fn start_at(&mut self, bin: i64, time: f64) {
        self.origin = Some(self.origin.map_or(time, |o| o.min(time)));
        if !self.started {
            self.next = Some(self.next.map_or(bin, |n| n.min(bin)));
        }
    }

    fn is_reported(&self, bin: i64) -> bool {
        self.started && self.next.is_some_and(|next| bin < next)
    }

    /// Estimates dropped because their bin had already been reported (a stream that fell
    /// more than `stale_s` behind and then caught up).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The estimates of every bin that is complete.
    pub fn advance(&mut self) -> Vec<FusedEstimate> {
        let mut out = Vec::new();
        while let Some(bin) = self.next {
            if !self.complete(bin) {
                break;
            }
            if let Some(e) = self.fuse(bin) {
                out.push(e);
            }
            self.started = true;
            self.next = Some(bin + 1);
        }
        out
    }

    /// The estimates of every bin that has data, at the end of the session.
    pub fn finish(&mut self) -> Vec<FusedEstimate> {
        let last = self
            .tracks
            .values()
            .flat_map(|t| t.pending.keys().copied().chain(t.frames.keys().copied()))
            .max();
        let mut out = Vec::new();
        while let (Some(bin), Some(last)) = (self.next, last) {
            if bin > last {
                break;
            }
            if let Some(e) = self.fuse(bin) {
                out.push(e);
            }
            self.started = true;
            self.next = Some(bin + 1);
        }
        out
    }

    /// Every expected modality has reported past `bin` (its latency included), or has
    /// stopped (fallen `stale_s` behind the others).
    fn complete(&self, bin: i64) -> bool {
        let end = (bin + 1) as f64 * self.hop;
        let front = self
            .tracks
            .values()
            .filter_map(|t| t.watermark)
            .fold(f64::NEG_INFINITY, f64::max);
        self.tracks.iter().all(|(m, t)| {
            let needed = end + self.config.latency_s.get(*m);
            // A modality that has not reported yet counts as having stopped at the start:
            // a declared stream that never sends holds the output up `stale_s` once.
            let w = t.watermark.or(self.origin).unwrap_or(f64::NEG_INFINITY);
            w >= needed || w < front - self.config.stale_s
        })
    }

    fn fuse(&mut self, bin: i64) -> Option<FusedEstimate> {
        let (start, end) = (bin as f64 * self.hop, (bin + 1) as f64 * self.hop);
        let alpha = 1.0 - (-self.hop / self.config.smoothing_s.max(1e-9)).exp();
        let dropout = self.config.dropout_s.max(1e-9);
        // Each modality's value in this bin: what it reported here, or its last value with
        // a decaying reliability; its reliability then smoothed.
        let mut values: Vec<(Modality, BinValue)> = Vec::new();
        for (m, track) in self.tracks.iter_mut() {
            let estimates = track.pending.remove(&bin).unwrap_or_default();
            let frames = track.frames.remove(&bin);
            let value = match BinValue::of(&estimates, frames) {
                Some(fresh) => {
                    track.last = Some((fresh.clone(), end));
                    Some(fresh)
                }
                // A modality gone for several time constants no longer counts as used.
                None => track
                    .last
                    .clone()
                    .map(|(last, at)| BinValue {
                        reliability: last.reliability * (-(end - at) / dropout).exp(),
                        ..last
                    })
                    .filter(|v| v.reliability >= GONE_RELIABILITY),
            };
            let Some(mut value) = value else {
                track.last = None;
                track.reliability = 0.0;
                continue;
            };
            track.reliability += alpha * (value.reliability - track.reliability);
            value.reliability = track.reliability;
            values.push((*m, value));
        }
        let total: f64 = values
            .iter()
            .map(|(m, v)| self.config.weights.get(*m) * v.reliability)
            .sum();
        if total <= 1e-9 {
            return None;
        }
        let weights: Vec<f64> = values
            .iter()
            .map(|(m, v)| self.config.weights.get(*m) * v.reliability / total)
            .collect();
        let weighted = |get: fn(&BinValue) -> Option<f64>| {
            let (mut sum, mut w) = (0.0, 0.0);
            for ((_, v), weight) in values.iter().zip(&weights) {
                if let Some(x) = get(v) {
                    sum += weight * x;
                    w += weight;
                }
            }
            (w > 1e-9).then(|| sum / w)
        };
        let valence = weighted(|v| v.valence);
        let arousal = weighted(|v| v.arousal);
        let mut log_p = [0.0f64; 7];
        for ((_, v), weight) in values.iter().zip(&weights) {
            let q = match (v.labels, v.arousal) {
                (Some(l), _) => l,
                (None, Some(a)) => circumplex_likelihood(v.valence, a),
                (None, None) => continue,
            };
            for (lp, qi) in log_p.iter_mut().zip(q) {
                *lp += weight * qi.max(1e-6).ln();
            }
        }
        let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut labels = log_p.map(|l| (l - top).exp());
        let sum: f64 = labels.iter().sum();
        labels.iter_mut().for_each(|p| *p /= sum);
        // Smoothing over time.
        let (valence, arousal, labels) = match self.smoothed {
            None => (valence, arousal, labels),
            Some((sv, sa, sl)) => {
                let blend = |old: Option<f64>, new: Option<f64>| match (old, new) {
                    (Some(o), Some(n)) => Some(o + alpha * (n - o)),
                    (None, n) => n,
                    (o, None) => o,
                };
                let mut l = sl;
                for (li, ni) in l.iter_mut().zip(labels) {
                    *li += alpha * (ni - *li);
                }
                (blend(sv, valence), blend(sa, arousal), l)
            }
        };
        self.smoothed = Some((valence, arousal, labels));
        Some(FusedEstimate {
            start_time: start,
            end_time: end,
            valence,
            arousal,
            labels: labels.to_vec(),
            label_names: CIRCUMPLEX.iter().map(|(l, _, _)| l.to_string()).collect(),
            contributions: values
                .iter()
                .zip(&weights)
                .map(|((m, v), weight)| Contribution {
                    modality: *m,
                    weight: *weight,
                    reliability: v.reliability,
                    valence: v.valence,
                    arousal: v.arousal,
                })
                .collect(),
            method: METHOD.into(),
        })
    }
}

/// One modality's value in one bin.
#[derive(Debug, Clone, PartialEq)]
struct BinValue {
    valence: Option<f64>,
    arousal: Option<f64>,
    labels: Option<[f64; 7]>,
    reliability: f64,
}

impl BinValue {
    /// The reliability-weighted mean of a bin's estimates; the reliability, their mean (times
    /// the share of frames analysed, for the face). None without estimates.
    fn of(estimates: &[ModalityEstimate], frames: Option<(u32, u32)>) -> Option<BinValue> {
        if estimates.is_empty() {
            return None;
        }
        let r_sum: f64 = estimates.iter().map(|e| e.reliability).sum();
        let weight = |e: &ModalityEstimate| {
            if r_sum > 0.0 {
                e.reliability / r_sum
            } else {
                1.0 / estimates.len() as f64
            }
        };
        let mean = |get: fn(&ModalityEstimate) -> Option<f64>| {
            let (mut sum, mut w) = (0.0, 0.0);
            for e in estimates {
                if let Some(x) = get(e) {
                    sum += weight(e) * x;
                    w += weight(e);
                }
            }
            (w > 0.0).then(|| sum / w)
        };
        let mut labels: Option<[f64; 7]> = None;
        let mut label_weight = 0.0;
        for e in estimates {
            if let Some(l) = e.labels {
                let p = labels.get_or_insert([0.0; 7]);
                for (pi, li) in p.iter_mut().zip(l) {
                    *pi += weight(e) * li;
                }
                label_weight += weight(e);
            }
        }
        let mut reliability = r_sum / estimates.len() as f64;
        if let Some((count, analysed)) = frames {
            reliability *= analysed as f64 / count.max(1) as f64;
        }
        Some(BinValue {
            valence: mean(|e| e.valence),
            arousal: mean(|e| e.arousal),
            labels: labels.map(|p| p.map(|x| x / label_weight.max(1e-12))),
            reliability,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn estimate(modality: Modality, time: f64, arousal: f64, reliability: f64) -> ModalityEstimate {
        ModalityEstimate {
            modality,
            time,
            valence: (modality == Modality::Eeg).then_some(arousal - 0.5),
            arousal: Some(arousal),
            labels: None,
            reliability,
        }
    }

    /// Feeds (modality, estimate) in the given order, collecting everything reported.
    fn run(config: &FusionConfig, events: &[(Modality, ModalityEstimate)]) -> Vec<FusedEstimate> {
        let mut fuser = Fuser::new(config, 1.0);
        for m in [Modality::Eeg, Modality::Cardiac, Modality::Eda] {
            fuser.expect(m);
        }
        let mut out = Vec::new();
        for (m, e) in events {
            fuser.push_signal(*m, e.time, Some(e.clone()));
            out.extend(fuser.advance());
        }
        out.extend(fuser.finish());
        out
    }

    #[test]
    fn the_label_distribution_follows_the_expression_labels() {
        let names: Vec<&str> = CIRCUMPLEX.iter().map(|(l, _, _)| *l).collect();
        assert_eq!(names, crate::vision::expression::LABELS);
    }

    #[test]
    fn a_late_modality_is_aligned_by_its_latency() {
        let config = FusionConfig::default();
        let mut fuser = Fuser::new(&config, 1.0);
        fuser.expect(Modality::Eda);
        // An EDA window at 12.5 s describes the moment 10.5 s (latency 2 s).
        fuser.push_signal(
            Modality::Eda,
            12.5,
            Some(estimate(Modality::Eda, 12.5, 0.8, 1.0)),
        );
        let fused = fuser.finish();
        assert_eq!(fused.len(), 1);
        assert_eq!((fused[0].start_time, fused[0].end_time), (10.0, 11.0));
    }

    #[test]
    fn a_modality_that_stops_loses_its_weight_smoothly_and_is_then_not_listed() {
        let config = FusionConfig::default();
        let mut events = Vec::new();
        for i in 0..60 {
            let t = i as f64 + 0.5;
            events.push((Modality::Eeg, estimate(Modality::Eeg, t, 0.5, 1.0)));
            // The cardiac stream stops at 20 s.
            if t < 20.0 {
                events.push((Modality::Cardiac, estimate(Modality::Cardiac, t, 0.5, 1.0)));
            }
        }
        let fused = run(&config, &events);
        let weight = |f: &FusedEstimate| {
            f.contributions
                .iter()
                .find(|c| c.modality == Modality::Cardiac)
                .map(|c| c.weight)
        };
        let after: Vec<Option<f64>> = fused
            .iter()
            .filter(|f| f.start_time >= 18.0)
            .map(weight)
            .collect();
        let listed: Vec<f64> = after.iter().map_while(|w| *w).collect();
        assert!(listed.len() > 3, "{after:?}");
        assert!(
            listed.windows(2).all(|w| w[1] < w[0]),
            "not falling: {listed:?}"
        );
        assert!(after.last().unwrap().is_none(), "still listed: {after:?}");
        // Each step is a fraction of the weight, not a jump to zero.
        assert!(listed.windows(2).all(|w| w[1] > 0.3 * w[0]), "{listed:?}");
    }

    #[test]
    fn an_estimate_for_a_moment_already_reported_is_counted_as_late() {
        let config = FusionConfig::default();
        let mut fuser = Fuser::new(&config, 1.0);
        fuser.expect(Modality::Eeg);
        for i in 0..5 {
            let t = i as f64 + 0.5;
            fuser.push_signal(Modality::Eeg, t, Some(estimate(Modality::Eeg, t, 0.5, 1.0)));
        }
        assert_eq!(fuser.advance().len(), 4);
        fuser.push_signal(
            Modality::Eeg,
            1.5,
            Some(estimate(Modality::Eeg, 1.5, 0.5, 1.0)),
        );
        assert_eq!(fuser.late(), 1);
        assert_eq!(fuser.finish().len(), 1);
    }

    proptest! {
        /// Streams delivered with different delays (each less than `stale_s`) give the same
        /// fused estimates as delivery in time order.
        #[test]
        fn the_output_does_not_depend_on_how_streams_interleave(
            values in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 90),
            delays in proptest::collection::vec(0.0f64..8.0, 3),
        ) {
            let config = FusionConfig::default();
            let modalities = [Modality::Eeg, Modality::Cardiac, Modality::Eda];
            let mut events: Vec<(f64, Modality, ModalityEstimate)> = Vec::new();
            for (i, (arousal, reliability)) in values.iter().enumerate() {
                let m = modalities[i % 3];
                let t = (i / 3) as f64 + 0.25 * (i % 3) as f64;
                events.push((t, m, estimate(m, t, *arousal, *reliability)));
            }
            let in_order: Vec<_> = events.iter().map(|(_, m, e)| (*m, e.clone())).collect();
            let mut delayed = events.clone();
            delayed.sort_by(|a, b| {
                let key = |e: &(f64, Modality, ModalityEstimate)| {
                    e.0 + delays[modalities.iter().position(|m| *m == e.1).unwrap()]
                };
                key(a).total_cmp(&key(b))
            });
            let delayed: Vec<_> = delayed.iter().map(|(_, m, e)| (*m, e.clone())).collect();
            prop_assert_eq!(run(&config, &in_order), run(&config, &delayed));
        }
    }
}
