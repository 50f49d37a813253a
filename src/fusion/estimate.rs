//! Per-modality estimates: valence `[-1,1]` (where a modality has one), arousal `[0,1]`, a
//! distribution over the seven expression labels (where it has one), and a reliability
//! `[0,1]` from the modality's own quality. Every formula is written out here and in the
//! README's fusion section, with its source.
//!
//! | modality | valence | arousal | reliability |
//! |---|---|---|---|
//! | face | the combined expression's circumplex valence | its circumplex arousal (Russell 1980) | detection score x presence x head-pose factor (1 up to 20 degrees from frontal, 0 at 60); in fusion also x the share of frames analysed |
//! | EEG | tanh(2 x mean frontal alpha asymmetry) (Davidson 1992; Coan & Allen 2004) | beta/alpha index r as r/(1+r) (Barry et al. 2007) | usable-channel share x (1 - mean artefact share) x mains factor (1 up to mains power 0.3 of the band power, 0 from 1.3) x (1, or 0.5 without an asymmetry pair) |
//! | cardiac | - | logistic((HR - HR0) / 8 bpm + ln RMSSD0 - ln RMSSD) with RMSSD over the last 10 s of beats (Kreibig 2010: HR up and vagal HRV down with arousal; Munoz et al. 2015 for 10-s RMSSD) | beats found against expected at the window's rate, x (1 - implausible-RR share) |
//! | EDA | - | logistic((SCR rate - rate0) / 4 per min + (tonic - tonic0) / (0.1 tonic0 + 0.2 uS) + 0.5 ln(amplitude / amplitude0), the last term within +-1) with SCR rate and mean amplitude over the last 30 s, counting responses of 0.05 uS or more (Boucsein 2012; Dawson et al. 2007) | 0 when flat or unusable, else 1 - clipped share |
//! | respiration | - | logistic((rate - rate0) / 4 per min) (Boiten et al. 1994; Kreibig 2010) | 1 when usable with a rate, 0.3 without |
//!
//! A subscript 0 is the participant's baseline. The scales (8 bpm, 4 per min, ...) are one
//! logit unit of arousal: a typical within-person change between rest and a demanding task in
//! the cited reviews, set by hand, not fitted. Subject calibration (`train-fusion`) is where
//! a person's own mapping is learnt.
//!
//! Baselines are the mean of a modality's first `fusion.baseline_s` seconds of windows (the
//! running mean until then, with the reliability halved): physiological arousal is read as
//! change from the participant's own resting level, not as an absolute value.

use serde::Serialize;

use crate::signals::features::{FeatureWindow, Features, SignalKind};
use crate::vision::{FaceResult, FrameResult};

/// The modalities fusion combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Face,
    Eeg,
    Cardiac,
    Eda,
    Respiration,
}

impl Modality {
    pub const ALL: [Modality; 5] = [
        Modality::Face,
        Modality::Eeg,
        Modality::Cardiac,
        Modality::Eda,
        Modality::Respiration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Modality::Face => "face",
            Modality::Eeg => "eeg",
            Modality::Cardiac => "cardiac",
            Modality::Eda => "eda",
            Modality::Respiration => "respiration",
        }
    }

    /// The modality a signal stream's windows speak for.
    pub fn of_kind(kind: SignalKind) -> Option<Modality> {
        match kind {
            SignalKind::Eeg => Some(Modality::Eeg),
            SignalKind::Ecg | SignalKind::Ppg => Some(Modality::Cardiac),
            SignalKind::Eda => Some(Modality::Eda),
            SignalKind::Respiration => Some(Modality::Respiration),
            SignalKind::Other => None,
        }
    }
}

/// What one modality says about one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalityEstimate {
    pub modality: Modality,
    /// The moment it describes, client clock, s (a frame's time, a window's midpoint).
    pub time: f64,
    pub valence: Option<f64>,
    pub arousal: Option<f64>,
    /// Over the seven expression labels (`vision::expression::LABELS`).
    pub labels: Option<[f64; 7]>,
    pub reliability: f64,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The participant's face in a frame: the largest one (the person in front of the camera).
pub fn subject(frame: &FrameResult) -> Option<&FaceResult> {
    frame.faces.iter().max_by(|a, b| {
        (a.detection.width * a.detection.height)
            .total_cmp(&(b.detection.width * b.detection.height))
    })
}

/// The face estimate of a frame; None without a face with an expression.
pub fn face(frame: &FrameResult, time: f64) -> Option<ModalityEstimate> {
    let face = subject(frame)?;
    let expression = face.expression.as_ref()?;
    let presence = face.mesh.as_ref().map_or(1.0, |m| m.presence as f64);
    let pose = face.head_pose.map_or(1.0, |p| {
        let off = p.yaw.abs().max(p.pitch.abs()) as f64;
        (1.0 - (off - 20.0) / 40.0).clamp(0.0, 1.0)
    });
    Some(ModalityEstimate {
        modality: Modality::Face,
        time,
        valence: Some(expression.valence as f64),
        arousal: Some(expression.arousal as f64),
        labels: Some(expression.combined.map(|p| p as f64)),
        reliability: (face.detection.score as f64 * presence * pose).clamp(0.0, 1.0),
    })
}

/// A quantity's baseline: the mean over the first `span_s` seconds of its values.
#[derive(Debug, Clone, Default)]
struct Baseline {
    start: Option<f64>,
    sum: f64,
    count: usize,
    done: bool,
}

impl Baseline {
    /// Adds a value seen at `time` (while the baseline is open) and returns the baseline
    /// and whether it is complete.
    fn update(&mut self, time: f64, value: f64, span_s: f64) -> (f64, bool) {
        let start = *self.start.get_or_insert(time);
        if !self.done {
            if time - start <= span_s {
                self.sum += value;
                self.count += 1;
            } else {
                self.done = true;
            }
        }
        (self.sum / self.count.max(1) as f64, self.done)
    }
}

/// Seconds of beats behind RMSSD: ultra-short RMSSD over 10 s tracks the 5-minute value
/// (Munoz et al. 2015, r = 0.9); one 4-s window holds too few beats.
pub const HRV_SPAN_S: f64 = 10.0;
/// Seconds of SCRs behind the SCR rate and amplitude: one 4-s window holds 0 or 1 response,
/// a rate in steps of 15 per minute.
pub const SCR_SPAN_S: f64 = 30.0;

/// The smallest skin conductance response counted, uS: the common criterion (Dawson et al.
/// 2007; Boucsein 2012 cites 0.01-0.05 uS).
pub const SCR_MIN_AMPLITUDE_US: f64 = 0.05;

/// The resting rate of non-specific SCRs, per minute, that a short baseline leans on.
pub const RESTING_SCR_PER_MIN: f64 = 2.0;

/// Times (and values) seen across overlapping windows, each once, over a trailing span.
#[derive(Debug, Clone, Default)]
struct Trailing {
    items: std::collections::VecDeque<(f64, f64)>,
}

impl Trailing {
    /// Adds the items after the last one held (overlapping windows repeat them).
    fn extend(&mut self, items: impl IntoIterator<Item = (f64, f64)>) {
        for (t, v) in items {
            if self.items.back().is_none_or(|(last, _)| t > *last) {
                self.items.push_back((t, v));
            }
        }
    }

    /// Drops what lies before `from`, and returns what remains.
    fn since(&mut self, from: f64) -> impl Iterator<Item = &(f64, f64)> {
        while self.items.front().is_some_and(|(t, _)| *t < from) {
            self.items.pop_front();
        }
        self.items.iter()
    }
}

/// The physiological estimators of one stream, with their baselines.
#[derive(Clone, Default)]
pub struct SignalEstimator {
    baseline_s: f64,
    /// synheart-emotion's stress model as the cardiac encoder, when configured.
    stress_model: Option<std::sync::Arc<dyn crate::vision::backend::Inference>>,
    /// The stream's first window start, client clock, s.
    first: Option<f64>,
    beats: Trailing,
    responses: Trailing,
    heart_rate: Baseline,
    ln_rmssd: Baseline,
    /// Peak times of the SCRs in the baseline period, and their summed amplitude.
    baseline_responses: Vec<f64>,
    baseline_amplitude_sum: f64,
    tonic: Baseline,
    breathing: Baseline,
}

impl SignalEstimator {
    pub fn new(baseline_s: f64) -> Self {
        Self {
            baseline_s,
            ..Default::default()
        }
    }

    /// Cardiac arousal from synheart-emotion's stress model (P(stress) of the last 60 s
    /// of beats) instead of the rules; None keeps the rules.
    pub fn with_stress_model(
        mut self,
        model: Option<std::sync::Arc<dyn crate::vision::backend::Inference>>,
    ) -> Self {
        self.stress_model = model;
        self
    }

    /// The estimate of one feature window; None for kinds fusion does not use, or a window
    /// with nothing computed.
    pub fn estimate(&mut self, w: &FeatureWindow) -> Option<ModalityEstimate> {
        let modality = Modality::of_kind(w.kind)?;
        let usable =
            w.quality.iter().filter(|q| q.usable).count() as f64 / w.quality.len().max(1) as f64;
        // A window's values describe its whole span; its midpoint is the moment.
        let time = 0.5 * (w.start_time + w.end_time);
        let first = *self.first.get_or_insert(w.start_time);
        let span = self.baseline_s;
        // Until a baseline is complete, the change from it is less certain.
        let settled = |done: bool| if done { 1.0 } else { 0.5 };
        let out = |arousal: Option<f64>, valence: Option<f64>, reliability: f64| ModalityEstimate {
            modality,
            time,
            valence,
            arousal,
            labels: None,
            reliability: reliability.clamp(0.0, 1.0),
        };
        match &w.features {
            Features::Eeg(f) => {
                let e = w.estimate.as_ref()?;
                let usable_quality: Vec<_> = w.quality.iter().filter(|q| q.usable).collect();
                let mean =
                    |f: &dyn Fn(&&crate::signals::quality::ChannelQuality) -> Option<f64>| {
                        usable_quality.iter().filter_map(f).sum::<f64>()
                            / usable_quality.len().max(1) as f64
                    };
                let artefacts = mean(&|q| q.artifact_fraction);
                let mains = mean(&|q| q.line_noise_ratio);
                // Mains power up to 30 % of the band power is tolerated, none above 130 %.
                let mains_factor = (1.0 - (mains - 0.3)).clamp(0.0, 1.0);
                let has_valence = !f.asymmetry.is_empty();
                Some(out(
                    Some(e.arousal),
                    has_valence.then_some(e.valence),
                    e.reliability * (1.0 - artefacts) * mains_factor,
                ))
            }
            Features::Cardiac(c) => {
                let hr = c.heart_rate_bpm?;
                let (base, done) = self.heart_rate.update(time, hr, span);
                let mut x = (hr - base) / 8.0;
                self.beats.extend(c.beat_times.iter().map(|t| (*t, 0.0)));
                let held_s = if self.stress_model.is_some() {
                    super::stress::WINDOW_S
                } else {
                    HRV_SPAN_S
                };
                let held: Vec<f64> = self
                    .beats
                    .since(w.end_time - held_s)
                    .map(|(t, _)| *t)
                    .collect();
                let recent: Vec<f64> = held
                    .iter()
                    .copied()
                    .filter(|t| *t >= w.end_time - HRV_SPAN_S)
                    .collect();
                if let Some(hrv) = crate::signals::cardiac::heart_rate(&recent)
                    .filter(|h| recent.len() >= 3 && h.rmssd_ms > 0.0)
                {
                    let ln_rmssd = hrv.rmssd_ms.ln();
                    let (ln_base, _) = self.ln_rmssd.update(time, ln_rmssd, span);
                    x += ln_base - ln_rmssd;
                }
                let arousal = match &self.stress_model {
                    // P(stress) of the last 60 s; not computed with fewer than 10 beats.
                    Some(model) => {
                        let rr: Vec<f64> =
                            held.windows(2).map(|b| (b[1] - b[0]) * 1000.0).collect();
                        super::stress::features(&rr).and_then(|f| {
                            super::stress::stress_probability(model.as_ref(), &f).ok()
                        })
                    }
                    None => Some(logistic(x)),
                };
                // Beats found against those expected at the window's own rate, and RR
                // intervals outside 0.3-2.0 s (200-30 bpm) as implausible.
                let window_s = (w.end_time - w.start_time).max(1e-9);
                let expected = window_s * hr / 60.0;
                let found = c.beat_times.len() as f64;
                let agreement = if expected > 0.0 && found > 0.0 {
                    (found / expected).min(expected / found)
                } else {
                    0.0
                };
                let rr: Vec<f64> = c.beat_times.windows(2).map(|b| b[1] - b[0]).collect();
                let implausible = rr.iter().filter(|r| !(0.3..=2.0).contains(*r)).count() as f64
                    / rr.len().max(1) as f64;
                Some(out(
                    arousal,
                    None,
                    usable * agreement.min(1.0) * (1.0 - implausible) * settled(done),
                ))
            }
            Features::Eda(e) => {
                // NeuroKit2's peak finder keeps peaks relative to the window's largest, so a
                // quiet window yields noise-sized "responses"; fusion counts only those of
                // the usual absolute criterion.
                let responses: Vec<_> = e
                    .responses
                    .iter()
                    .filter(|r| r.amplitude >= SCR_MIN_AMPLITUDE_US)
                    .collect();
                self.responses
                    .extend(responses.iter().map(|r| (r.peak_time, r.amplitude)));
                // The baseline's responses are counted over the baseline period itself (a
                // trailing rate over the first seconds would divide by almost nothing).
                let baseline_end = first + span;
                for r in responses.iter().filter(|r| r.peak_time <= baseline_end) {
                    if self
                        .baseline_responses
                        .last()
                        .is_none_or(|t| r.peak_time > *t)
                    {
                        self.baseline_responses.push(r.peak_time);
                        self.baseline_amplitude_sum += r.amplitude;
                    }
                }
                let baseline_count = self.baseline_responses.len() as f64;
                // Half a minute holds a few responses at most, so the baseline rate leans on
                // the resting rate of the literature, 2 per minute (Dawson et al. 2007: 1-3),
                // counted as one minute of prior observation.
                let observed_s = (w.end_time.min(baseline_end) - first).max(0.0);
                let rate_base = (baseline_count + RESTING_SCR_PER_MIN) * 60.0 / (observed_s + 60.0);
                let from = (w.end_time - SCR_SPAN_S).max(first);
                let recent: Vec<f64> = self.responses.since(from).map(|(_, a)| *a).collect();
                let rate = recent.len() as f64 * 60.0 / (w.end_time - from).max(1.0);
                let done = w.end_time > baseline_end;
                let (tonic_base, _) = self.tonic.update(time, e.tonic_mean, span);
                let mut x = ((rate - rate_base) / 4.0).clamp(-2.0, 2.0)
                    + (e.tonic_mean - tonic_base) / (0.1 * tonic_base.abs() + 0.2);
                if !recent.is_empty() && baseline_count > 0.0 {
                    let amplitude = recent.iter().sum::<f64>() / recent.len() as f64;
                    let amplitude_base = self.baseline_amplitude_sum / baseline_count;
                    x += (0.5 * (amplitude / amplitude_base).ln()).clamp(-1.0, 1.0);
                }
                let clipped = w
                    .quality
                    .first()
                    .and_then(|q| q.clipped_fraction)
                    .unwrap_or(0.0);
                let flat = w.quality.first().is_none_or(|q| q.flat || !q.usable);
                Some(out(
                    Some(logistic(x)),
                    None,
                    if flat {
                        0.0
                    } else {
                        (1.0 - clipped) * settled(done)
                    },
                ))
            }
            Features::Respiration(r) => {
                let usable = w.quality.first().is_some_and(|q| q.usable);
                let Some(rate) = r.rate_per_min else {
                    return Some(out(None, None, if usable { 0.3 } else { 0.0 }));
                };
                let (base, done) = self.breathing.update(time, rate, span);
                Some(out(
                    Some(logistic((rate - base) / 4.0)),
                    None,
                    if usable { settled(done) } else { 0.0 },
                ))
            }
            Features::None => None,
        }
    }
}
