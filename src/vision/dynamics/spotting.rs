//! Expression episodes of one tracked face: onset, apex and offset, from its
//! baseline-corrected AU estimates and its pose-compensated landmark motion.
//!
//! The method is the threshold-and-hysteresis spotting of facial-action onsets on AU
//! intensity time series used as the baseline of the micro-expression spotting challenges
//! (MEGC; Yap et al. 2022, "3D-CNN for facial micro- and macro-expression spotting on long
//! video sequences using temporal oriented reference frame", section 2; Valstar & Pantic
//! 2012, "Fully automatic recognition of the temporal phases of facial actions", for the
//! onset / apex / offset phases), applied to affectd's AU estimates:
//!
//! - The face's **activation** at a frame is its largest baseline-corrected AU intensity,
//!   leaving out AU45 (a blink is not an expression) and, while the eyes are closing
//!   (AU45 present), the eye-region AUs 5, 6 and 7 that a blink moves with it.
//! - An episode **opens** when the activation reaches `onset_intensity` (FACS "A", trace,
//!   by default: the presence threshold). Its **onset** is the start of that rise: the
//!   frame after the local minimum found by walking back while the activation keeps
//!   falling (by more than 0.01, so that a flat, noisy neutral stops the walk), at most 64
//!   frames. The AUs' starting values are those of that minimum.
//! - Its **apex** is the frame of its highest activation.
//! - It **ends** at the first frame whose activation is below `offset_intensity` (the
//!   **offset**, the face back at its baseline), when the face is lost for longer than
//!   `max_gap_s`, when the stream ends, or after `max_episode_s` (then no new episode opens
//!   until the activation has fallen).
//! - It is **reported** only if it spans at least [`MIN_FRAMES`] frames (a single-frame
//!   glitch is not an episode, at any frame rate: a session that skips frames under load,
//!   or a 15 fps camera, would otherwise turn one bad frame into a 67-ms "episode") and
//!   lasted at least `min_duration_s` (1/25 s by default, the
//!   shortest micro-expressions: two frames at 30 fps, so a single-frame glitch is not an
//!   episode) and, when landmarks were measured, if the pose-compensated landmark motion
//!   reached `min_landmark_motion` during it: an AU estimate that moved while the mesh,
//!   with the head's movement taken out, did not, is not an expression.
//! - A reported episode shorter than `micro_max_duration_s` (0.5 s, the usual upper bound
//!   of micro-expressions: Yan et al. 2013, "How fast are the leaked facial expressions")
//!   whose AUs all peaked at or below `micro_max_intensity` is flagged a **micro-expression
//!   candidate**. No labelled micro-expression data (CASME, SAMM) is reachable here: the
//!   flag is a candidate, never a detection, and no accuracy is claimed for it.
//!
//! `tests/reference/spotting_reference.py` implements the same steps in numpy for the
//! parity test.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::vision::action_units::{PRESENCE_THRESHOLD, TABLE};

/// The spotting and baseline settings (`[expression]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamicsConfig {
    /// The quantile of a face's own AU history taken as its neutral level, in (0, 1):
    /// 0.5, the default, is OpenFace 2's running median. The frames of an open episode are
    /// left out of the history (`baseline`).
    pub baseline_quantile: f32,
    /// Seconds of a face's history before its baseline is used (and its episodes spotted).
    pub baseline_settle_s: f64,
    /// Baseline-corrected intensity, `[0,5]`, at which an episode opens.
    pub onset_intensity: f32,
    /// Baseline-corrected intensity, `[0,5]`, below which every AU must fall for the
    /// episode to end; below `onset_intensity` (hysteresis).
    pub offset_intensity: f32,
    /// Shortest episode reported, s.
    pub min_duration_s: f64,
    /// Pose-compensated landmark motion (inter-ocular distances, 95th percentile of the
    /// mesh points) an episode must reach when landmarks were measured.
    pub min_landmark_motion: f32,
    /// An episode shorter than this, s, with every AU's peak at or below
    /// `micro_max_intensity`, is a micro-expression candidate.
    pub micro_max_duration_s: f64,
    /// See `micro_max_duration_s`; `[0,5]` (2 is FACS "B", slight).
    pub micro_max_intensity: f32,
    /// A face unseen for longer than this, s, ends its open episode ("face lost").
    pub max_gap_s: f64,
    /// The longest episode, s: one held longer ends there ("max_episode_s").
    pub max_episode_s: f64,
    /// A face unseen for this long, s, is forgotten with its baseline (track ids are never
    /// reused, so a face that returns has a new id and a new baseline anyway).
    pub forget_after_s: f64,
}

impl Default for DynamicsConfig {
    fn default() -> Self {
        Self {
            baseline_quantile: 0.5,
            baseline_settle_s: 2.0,
            onset_intensity: PRESENCE_THRESHOLD,
            offset_intensity: 0.5,
            min_duration_s: 0.04,
            min_landmark_motion: 0.02,
            micro_max_duration_s: 0.5,
            micro_max_intensity: 2.0,
            max_gap_s: 0.5,
            max_episode_s: 30.0,
            forget_after_s: 10.0,
        }
    }
}

impl DynamicsConfig {
    /// Err names the key and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if !(c.baseline_quantile > 0.0 && c.baseline_quantile < 1.0) {
            return Err(format!(
                "expression.baseline_quantile must be in (0, 1), got {}",
                c.baseline_quantile
            ));
        }
        for (name, value) in [
            ("expression.onset_intensity", c.onset_intensity),
            ("expression.offset_intensity", c.offset_intensity),
            ("expression.micro_max_intensity", c.micro_max_intensity),
        ] {
            if !(0.0..=5.0).contains(&value) {
                return Err(format!("{name} must be in [0, 5], got {value}"));
            }
        }
        if c.offset_intensity > c.onset_intensity {
            return Err(format!(
                "expression.offset_intensity ({}) must not exceed expression.onset_intensity ({})",
                c.offset_intensity, c.onset_intensity
            ));
        }
        if !(c.min_landmark_motion >= 0.0 && c.min_landmark_motion.is_finite()) {
            return Err(format!(
                "expression.min_landmark_motion must be finite and >= 0, got {}",
                c.min_landmark_motion
            ));
        }
        for (name, value) in [
            ("expression.baseline_settle_s", c.baseline_settle_s),
            ("expression.min_duration_s", c.min_duration_s),
            ("expression.micro_max_duration_s", c.micro_max_duration_s),
            ("expression.max_gap_s", c.max_gap_s),
            ("expression.max_episode_s", c.max_episode_s),
            ("expression.forget_after_s", c.forget_after_s),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!("{name} must be finite and >= 0 s, got {value}"));
            }
        }
        Ok(())
    }
}

/// The AUs in [`TABLE`] order.
pub const AU_COUNT: usize = TABLE.len();

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeEnd {
    /// The face returned to its baseline.
    Returned,
    /// The face was not seen for longer than `max_gap_s`.
    FaceLost,
    /// The video or session ended first.
    StreamEnded,
    /// It lasted `max_episode_s`.
    MaxDuration,
}

impl EpisodeEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeEnd::Returned => "returned",
            EpisodeEnd::FaceLost => "face_lost",
            EpisodeEnd::StreamEnded => "stream_ended",
            EpisodeEnd::MaxDuration => "max_episode_s",
        }
    }
}

/// One AU's part in an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeAu {
    pub number: u32,
    /// Baseline-corrected intensity just before the onset, `[0,5]`.
    pub start_intensity: f32,
    /// Its highest baseline-corrected intensity in the episode, `[0,5]`.
    pub peak_intensity: f32,
    /// When it peaked, s (the stream's clock).
    pub peak_time: f64,
    /// Time it spent at or above 80% of its peak, s (the apex phase, "held").
    pub held_s: f64,
}

/// One AU's part in an episode in words with numbers, as the events table and the prompt
/// state it: "AU12 rose from 0.40 to 3.10 in 380 ms, held 1.20 s" (`rise_s`: onset to peak).
pub fn describe_au(number: u32, start: f32, peak: f32, rise_s: f64, held_s: f64) -> String {
    format!(
        "AU{number:02} rose from {start:.2} to {peak:.2} in {:.0} ms, held {held_s:.2} s",
        rise_s.max(0.0) * 1e3
    )
}

/// An expression episode of one face. Times are in the stream's clock, s.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub face_id: u32,
    pub onset: f64,
    pub apex: f64,
    /// None while the episode is open.
    pub offset: Option<f64>,
    /// Every AU that reached `onset_intensity`, highest peak first.
    pub action_units: Vec<EpisodeAu>,
    /// The face's combined expression distribution at the apex (labels in
    /// `expression::LABELS` order); None when the expression stage did not run.
    pub apex_expression: Option<[f32; 7]>,
    /// The largest pose-compensated landmark motion in the episode, inter-ocular
    /// distances; None without landmarks.
    pub peak_motion: Option<f32>,
    pub micro_candidate: bool,
    /// None while open.
    pub end: Option<EpisodeEnd>,
}

impl Episode {
    /// offset - onset, s; None while open.
    pub fn duration_s(&self) -> Option<f64> {
        self.offset.map(|o| o - self.onset)
    }
}

/// What the spotter says about a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpressionEvent {
    /// An episode has lasted `min_duration_s` (and moved the landmarks): it is open.
    Started(Episode),
    /// An episode ended and is reported.
    Ended(Episode),
}

/// One frame of a face, as the spotter reads it.
pub struct Observation<'a> {
    pub t: f64,
    /// Baseline-corrected AU intensities in [`TABLE`] order.
    pub corrected: &'a [f32; AU_COUNT],
    pub motion: Option<f32>,
    pub expression: Option<[f32; 7]>,
}

#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    activation: f32,
    corrected: [f32; AU_COUNT],
}

#[derive(Debug, Clone)]
struct Open {
    episode: Episode,
    /// The episode's frames from its onset, for the AUs' hold times.
    samples: Vec<Sample>,
    peaks: [(f32, f64); AU_COUNT],
    start: [f32; AU_COUNT],
    apex_activation: f32,
    started_sent: bool,
}

/// The fewest analysed frames an episode spans to be reported.
pub const MIN_FRAMES: usize = 2;

/// Samples kept before an onset, to find where the rise began.
const LOOKBACK: usize = 64;
/// How much the activation must fall per frame, walking back from an onset, for the walk
/// to go on: a flat neutral face's noise stops it.
const RISE_STEP: f32 = 0.01;

fn index_of(number: u32) -> usize {
    TABLE
        .iter()
        .position(|(n, _, _)| *n == number)
        .expect("an AU of the table")
}

/// The face's activation: its largest corrected AU intensity, blinks left out (module doc).
pub fn activation(corrected: &[f32; AU_COUNT]) -> f32 {
    let blinking = corrected[index_of(45)] >= PRESENCE_THRESHOLD;
    TABLE
        .iter()
        .zip(corrected)
        .filter(|((number, _, _), _)| *number != 45 && !(blinking && matches!(number, 5..=7)))
        .map(|(_, v)| *v)
        .fold(0.0, f32::max)
}

/// One face's episodes.
#[derive(Debug, Clone)]
pub struct Spotter {
    face_id: u32,
    recent: VecDeque<Sample>,
    open: Option<Box<Open>>,
    /// After `max_episode_s`: no new episode until the activation falls.
    saturated: bool,
    last_t: Option<f64>,
}

impl Spotter {
    pub fn new(face_id: u32) -> Self {
        Self {
            face_id,
            recent: VecDeque::with_capacity(LOOKBACK),
            open: None,
            // A face already moving when spotting begins has no onset to report: an
            // episode opens only once the activation has been below the offset level.
            saturated: true,
            last_t: None,
        }
    }

    /// The open episode as it stands, once it has been reported started.
    pub fn current(&self, config: &DynamicsConfig) -> Option<Episode> {
        let open = self.open.as_ref().filter(|o| o.started_sent)?;
        let last = open.samples.last()?.t;
        Some(open.summary(config, last))
    }

    /// Whether an episode is open (reported or not yet).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The next frame; at most one event. Frames must come in time order: one at or before
    /// the last is ignored.
    pub fn step(&mut self, config: &DynamicsConfig, o: &Observation) -> Option<ExpressionEvent> {
        if !o.t.is_finite() || self.last_t.is_some_and(|last| o.t <= last) {
            return None;
        }
        self.last_t = Some(o.t);
        let sample = Sample {
            t: o.t,
            activation: activation(o.corrected),
            corrected: *o.corrected,
        };
        let event = match self.open.as_mut() {
            None => {
                if self.saturated {
                    self.saturated = sample.activation >= config.offset_intensity;
                    None
                } else if sample.activation >= config.onset_intensity {
                    self.open_episode(&sample, o);
                    self.confirm(config)
                } else {
                    None
                }
            }
            Some(open) => {
                if sample.activation < config.offset_intensity {
                    self.close(config, sample.t, EpisodeEnd::Returned)
                } else {
                    open.extend(&sample, o);
                    if sample.t - open.episode.onset >= config.max_episode_s {
                        self.saturated = true;
                        self.close(config, sample.t, EpisodeEnd::MaxDuration)
                    } else {
                        self.confirm(config)
                    }
                }
            }
        };
        if self.recent.len() == LOOKBACK {
            self.recent.pop_front();
        }
        self.recent.push_back(sample);
        event
    }

    /// Ends an open episode at `t` (the face lost, or the stream ended).
    pub fn end(
        &mut self,
        config: &DynamicsConfig,
        t: f64,
        why: EpisodeEnd,
    ) -> Option<ExpressionEvent> {
        self.saturated = false;
        self.close(config, t, why)
    }

    fn open_episode(&mut self, sample: &Sample, o: &Observation) {
        // The rise began after the local minimum before it: walk back while the
        // activation keeps falling; the minimum gives the AUs' starting values.
        let mut first = self.recent.len();
        let mut later = sample.activation;
        while first > 0 && self.recent[first - 1].activation < later - RISE_STEP {
            first -= 1;
            later = self.recent[first].activation;
        }
        // `first` is the minimum (or the oldest frame kept): the rise is what follows it.
        let first =
            if first < self.recent.len() && self.recent[first].activation < sample.activation {
                first + 1
            } else {
                first
            };
        let rise: Vec<Sample> = self.recent.range(first..).cloned().collect();
        let before = first.checked_sub(1).map(|i| self.recent[i].corrected);
        let onset = rise.first().map_or(sample.t, |s| s.t);
        let start =
            before.unwrap_or_else(|| rise.first().map_or(sample.corrected, |s| s.corrected));
        let mut open = Open {
            episode: Episode {
                face_id: self.face_id,
                onset,
                apex: sample.t,
                offset: None,
                action_units: Vec::new(),
                apex_expression: o.expression,
                peak_motion: None,
                micro_candidate: false,
                end: None,
            },
            samples: Vec::new(),
            peaks: [(f32::NEG_INFINITY, onset); AU_COUNT],
            start,
            apex_activation: f32::NEG_INFINITY,
            started_sent: false,
        };
        for s in &rise {
            open.add_sample(s);
        }
        open.extend(sample, o);
        self.open = Some(Box::new(open));
    }

    fn confirm(&mut self, config: &DynamicsConfig) -> Option<ExpressionEvent> {
        let open = self.open.as_mut()?;
        let last = open.samples.last()?.t;
        if open.started_sent
            || open.samples.len() < MIN_FRAMES
            || last - open.episode.onset < config.min_duration_s
            || !moved_enough(config, open.episode.peak_motion)
        {
            return None;
        }
        open.started_sent = true;
        Some(ExpressionEvent::Started(open.summary(config, last)))
    }

    fn close(
        &mut self,
        config: &DynamicsConfig,
        t: f64,
        why: EpisodeEnd,
    ) -> Option<ExpressionEvent> {
        let open = self.open.take()?;
        let mut episode = open.summary(config, t);
        episode.offset = Some(t.max(episode.onset));
        episode.end = Some(why);
        let duration = t - episode.onset;
        episode.micro_candidate = duration < config.micro_max_duration_s
            && episode
                .action_units
                .iter()
                .all(|au| au.peak_intensity <= config.micro_max_intensity);
        let reported = open.samples.len() >= MIN_FRAMES
            && duration >= config.min_duration_s
            && moved_enough(config, episode.peak_motion);
        reported.then_some(ExpressionEvent::Ended(episode))
    }
}

fn moved_enough(config: &DynamicsConfig, peak_motion: Option<f32>) -> bool {
    peak_motion.is_none_or(|m| m >= config.min_landmark_motion)
}

impl Open {
    fn add_sample(&mut self, s: &Sample) {
        for (i, v) in s.corrected.iter().enumerate() {
            if *v > self.peaks[i].0 {
                self.peaks[i] = (*v, s.t);
            }
        }
        if s.activation > self.apex_activation {
            self.apex_activation = s.activation;
            self.episode.apex = s.t;
        }
        self.samples.push(s.clone());
    }

    fn extend(&mut self, s: &Sample, o: &Observation) {
        let apex_before = self.apex_activation;
        self.add_sample(s);
        if self.apex_activation > apex_before {
            self.episode.apex_expression = o.expression;
        }
        if let Some(m) = o.motion {
            self.episode.peak_motion = Some(self.episode.peak_motion.map_or(m, |p| p.max(m)));
        }
    }

    /// The episode as it stands at `until`: its AUs with their dynamics.
    fn summary(&self, config: &DynamicsConfig, until: f64) -> Episode {
        let mut episode = self.episode.clone();
        let mut aus: Vec<EpisodeAu> = TABLE
            .iter()
            .enumerate()
            .filter(|(i, (number, _, _))| {
                *number != 45 && self.peaks[*i].0 >= config.onset_intensity
            })
            .map(|(i, (number, _, _))| {
                let (peak, peak_time) = self.peaks[i];
                // Each frame holds until the next one, the last until `until`.
                let ends = self.samples.iter().skip(1).map(|s| s.t).chain([until]);
                let held_s = self
                    .samples
                    .iter()
                    .zip(ends)
                    .filter(|(s, _)| s.corrected[i] >= 0.8 * peak)
                    .fold(0.0, |held, (s, end)| held + (end - s.t).max(0.0));
                EpisodeAu {
                    number: *number,
                    start_intensity: self.start[i],
                    peak_intensity: peak,
                    peak_time,
                    held_s,
                }
            })
            .collect();
        aus.sort_by(|a, b| b.peak_intensity.total_cmp(&a.peak_intensity));
        episode.action_units = aus;
        episode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(values: &[(u32, f32)]) -> [f32; AU_COUNT] {
        let mut out = [0.0; AU_COUNT];
        for (number, v) in values {
            out[index_of(*number)] = *v;
        }
        out
    }

    /// Runs a series of (t, AUs) through a spotter; returns the events.
    fn run(series: &[(f64, [f32; AU_COUNT])]) -> Vec<ExpressionEvent> {
        let config = DynamicsConfig::default();
        let mut spotter = Spotter::new(1);
        let mut events: Vec<ExpressionEvent> = series
            .iter()
            .filter_map(|(t, c)| {
                spotter.step(
                    &config,
                    &Observation {
                        t: *t,
                        corrected: c,
                        motion: None,
                        expression: None,
                    },
                )
            })
            .collect();
        events.extend(spotter.end(&config, series.last().unwrap().0, EpisodeEnd::StreamEnded));
        events
    }

    fn ended(events: &[ExpressionEvent]) -> Vec<&Episode> {
        events
            .iter()
            .filter_map(|e| match e {
                ExpressionEvent::Ended(ep) => Some(ep),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_smile_has_its_onset_apex_offset_and_dynamics() {
        // 30 fps: still, a rise of AU12 over 4 frames from t = 1.0, held, back at t = 2.5.
        let series: Vec<(f64, [f32; AU_COUNT])> = (0..120)
            .map(|i| {
                let t = i as f64 / 30.0;
                let v = match t {
                    t if t < 1.0 - 1e-9 => 0.1,
                    t if t < 1.13 => 0.6 + 0.8 * ((t - 1.0) * 30.0).round() as f32,
                    t if t < 2.5 - 1e-9 => 3.1,
                    _ => 0.0,
                };
                (t, au(&[(12, v), (6, v / 2.0)]))
            })
            .collect();
        let events = run(&series);
        assert!(
            matches!(events[0], ExpressionEvent::Started(_)),
            "{events:?}"
        );
        let episodes = ended(&events);
        assert_eq!(episodes.len(), 1);
        let e = episodes[0];
        assert!((e.onset - 1.0).abs() < 1e-9, "{}", e.onset);
        assert!((e.offset.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(e.end, Some(EpisodeEnd::Returned));
        assert_eq!(e.action_units[0].number, 12);
        assert_eq!(e.action_units[0].start_intensity, 0.1);
        assert_eq!(e.action_units[0].peak_intensity, 3.1);
        assert_eq!(e.action_units[1].number, 6);
        assert!(
            (e.action_units[0].held_s - (2.5 - 4.0 / 30.0 - 1.0)).abs() < 0.04,
            "{:?}",
            e.action_units[0]
        );
        assert!(!e.micro_candidate);
    }

    #[test]
    fn blinks_and_single_frame_glitches_are_not_episodes() {
        let series: Vec<(f64, [f32; AU_COUNT])> = (0..90)
            .map(|i| {
                let t = i as f64 / 30.0;
                let blink = (30..34).contains(&i);
                let glitch = i == 60;
                let mut c = au(&[(45, if blink { 4.5 } else { 0.0 })]);
                if blink {
                    c[index_of(7)] = 2.0; // the lids tighten with the blink
                    c[index_of(6)] = 1.5;
                }
                if glitch {
                    c[index_of(4)] = 2.5;
                }
                (t, c)
            })
            .collect();
        assert!(run(&series).is_empty());
    }

    /// The class of the glitch above at any frame rate: at 15 fps (a camera, or a session
    /// skipping frames under load) one bad frame lasts 67 ms, longer than min_duration_s.
    #[test]
    fn a_single_frame_glitch_is_not_an_episode_at_15_fps_either() {
        let glitch: Vec<(f64, [f32; AU_COUNT])> = (0..45)
            .map(|i| {
                let v = if i == 30 { 3.0 } else { 0.0 };
                (i as f64 / 15.0, au(&[(4, v)]))
            })
            .collect();
        assert!(run(&glitch).is_empty());
        // Two frames of it are an episode.
        let twice: Vec<(f64, [f32; AU_COUNT])> = (0..45)
            .map(|i| {
                let v = if i == 30 || i == 31 { 3.0 } else { 0.0 };
                (i as f64 / 15.0, au(&[(4, v)]))
            })
            .collect();
        assert_eq!(ended(&run(&twice)).len(), 1);
    }

    #[test]
    fn a_short_slight_episode_is_a_micro_candidate_and_a_strong_one_is_not() {
        let make = |peak: f32| -> Vec<(f64, [f32; AU_COUNT])> {
            (0..60)
                .map(|i| {
                    let v = if (30..39).contains(&i) { peak } else { 0.0 };
                    (i as f64 / 30.0, au(&[(14, v)]))
                })
                .collect()
        };
        let slight = run(&make(1.6));
        let e = ended(&slight)[0];
        assert!((e.duration_s().unwrap() - 0.3).abs() < 1e-9);
        assert!(e.micro_candidate);
        let strong = run(&make(3.5));
        assert!(!ended(&strong)[0].micro_candidate);
    }

    #[test]
    fn an_episode_without_landmark_motion_is_not_reported() {
        let config = DynamicsConfig::default();
        let mut spotter = Spotter::new(3);
        let mut events = Vec::new();
        for i in 0..60 {
            let c = au(&[(12, if (20..40).contains(&i) { 3.0 } else { 0.0 })]);
            events.extend(spotter.step(
                &config,
                &Observation {
                    t: i as f64 / 30.0,
                    corrected: &c,
                    motion: Some(0.005),
                    expression: None,
                },
            ));
        }
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_held_expression_ends_at_the_limit_and_does_not_reopen_until_it_falls() {
        let config = DynamicsConfig {
            max_episode_s: 1.0,
            ..DynamicsConfig::default()
        };
        let mut spotter = Spotter::new(1);
        let mut ends = Vec::new();
        for i in 0..150 {
            let c = au(&[(12, if (10..120).contains(&i) { 3.0 } else { 0.0 })]);
            let o = Observation {
                t: i as f64 / 30.0,
                corrected: &c,
                motion: None,
                expression: None,
            };
            if let Some(ExpressionEvent::Ended(e)) = spotter.step(&config, &o) {
                ends.push(e);
            }
        }
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].end, Some(EpisodeEnd::MaxDuration));
    }

    #[test]
    fn the_settings_are_checked_by_name() {
        assert!(DynamicsConfig::default().validate().is_ok());
        let bad = DynamicsConfig {
            offset_intensity: 2.0,
            ..DynamicsConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("expression.offset_intensity")
        );
        let bad = DynamicsConfig {
            baseline_quantile: 1.0,
            ..DynamicsConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("expression.baseline_quantile")
        );
        let bad = DynamicsConfig {
            max_gap_s: f64::NAN,
            ..DynamicsConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("expression.max_gap_s"));
    }
}
