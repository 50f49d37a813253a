//! The time dimension of a tracked face: its person-specific neutral baseline, its
//! pose-compensated landmark motion, and its expression episodes.
//!
//! [`FaceDynamics::observe`] runs after the face pipeline on every analysed frame of a
//! video or live session, in time order. It fills each AU's `baseline` and `corrected`
//! values once the face's baseline has settled, recomputes the AU-prototype expression
//! from the corrected values, and reports [`ExpressionEvent`]s. Single images have no
//! history and get none of this.

pub mod baseline;
pub mod keyframes;
pub mod motion;
pub mod spotting;

use std::collections::{BTreeMap, VecDeque};

pub use spotting::{
    AU_COUNT, DynamicsConfig, Episode, EpisodeAu, EpisodeEnd, ExpressionEvent, Observation,
    describe_au,
};

use self::baseline::RunningQuantile;
use self::motion::ShapeReference;
use self::spotting::Spotter;
use crate::vision::action_units::{ActionUnit, PRESENCE_THRESHOLD};
use crate::vision::expression;
use crate::vision::{FaceResult, FrameResult};

struct FaceState {
    first_seen: f64,
    last_seen: f64,
    /// The baseline has had `baseline_settle_s` of history (and stays settled).
    settled: bool,
    baseline: Vec<RunningQuantile>,
    shape: ShapeReference,
    spotter: Spotter,
}

/// The dynamics of every face of one video or session.
pub struct FaceDynamics {
    config: DynamicsConfig,
    /// `FaceResult::au_baseline_method`, shared by every face and frame.
    method: std::sync::Arc<str>,
    faces: BTreeMap<u32, FaceState>,
    /// Episodes that ended within [`RECENT_S`] of the latest frame (at most
    /// [`MAX_RECENT`]), for prompts about the moment.
    recent: VecDeque<Episode>,
}

/// How long ended episodes are kept for [`FaceDynamics::recent_episodes`], s.
pub const RECENT_S: f64 = 60.0;
const MAX_RECENT: usize = 64;

impl FaceDynamics {
    /// `config` must have passed [`DynamicsConfig::validate`].
    pub fn new(config: &DynamicsConfig) -> Self {
        let method = format!(
            "running quantile {} of this tracked face's AU estimates since it was first seen, \
             frames inside expression episodes left out, used after {} s \
             (person-specific normalisation as in OpenFace 2)",
            config.baseline_quantile, config.baseline_settle_s
        )
        .into();
        Self {
            config: config.clone(),
            method,
            faces: BTreeMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// The episodes that ended in the last [`RECENT_S`] and those open now (once reported
    /// started), as they stand: what a prompt about the latest frame may describe.
    pub fn recent_episodes(&self) -> Vec<Episode> {
        let mut out: Vec<Episode> = self.recent.iter().cloned().collect();
        out.extend(
            self.faces
                .values()
                .filter_map(|s| s.spotter.current(&self.config)),
        );
        out
    }

    fn remember(&mut self, t: f64, events: &[ExpressionEvent]) {
        for event in events {
            if let ExpressionEvent::Ended(e) = event {
                if self.recent.len() == MAX_RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(e.clone());
            }
        }
        while self
            .recent
            .front()
            .is_some_and(|e| e.offset.is_some_and(|o| o < t - RECENT_S))
        {
            self.recent.pop_front();
        }
    }

    /// The next analysed frame at `t` (s, the stream's clock): fills the baseline fields of
    /// its faces and returns the events it causes, lost faces' first.
    pub fn observe(&mut self, t: f64, frame: &mut FrameResult) -> Vec<ExpressionEvent> {
        if !t.is_finite() {
            return Vec::new();
        }
        let events = self.observe_faces(t, frame);
        self.remember(t, &events);
        events
    }

    fn observe_faces(&mut self, t: f64, frame: &mut FrameResult) -> Vec<ExpressionEvent> {
        let mut events = Vec::new();
        let config = &self.config;
        // Faces not in this frame: a gap ends their episode; a long one forgets them.
        for (id, state) in &mut self.faces {
            if !frame.faces.iter().any(|f| f.face_id == *id)
                && t - state.last_seen > config.max_gap_s
            {
                events.extend(
                    state
                        .spotter
                        .end(config, state.last_seen, EpisodeEnd::FaceLost),
                );
            }
        }
        self.faces
            .retain(|_, s| t - s.last_seen <= config.forget_after_s);
        for face in &mut frame.faces {
            if face.action_units.len() != AU_COUNT {
                continue;
            }
            let state = self.faces.entry(face.face_id).or_insert_with(|| FaceState {
                first_seen: t,
                last_seen: t,
                settled: false,
                baseline: vec![RunningQuantile::default(); AU_COUNT],
                shape: ShapeReference::default(),
                spotter: Spotter::new(face.face_id),
            });
            if t < state.last_seen {
                // The clock went back (a client that reset or stepped it): the open episode
                // cannot go on across that; it ends where the face was last seen, and
                // spotting starts again from here. The baseline is the same person's and
                // is kept. Skipping such frames instead would stop this face for good.
                events.extend(
                    state
                        .spotter
                        .end(config, state.last_seen, EpisodeEnd::FaceLost),
                );
                state.spotter = Spotter::new(face.face_id);
                if !state.settled {
                    state.first_seen = t;
                }
                state.last_seen = t;
            }
            if t - state.last_seen > config.max_gap_s {
                events.extend(
                    state
                        .spotter
                        .end(config, state.last_seen, EpisodeEnd::FaceLost),
                );
            }
            state.last_seen = t;
            state.settled |= t - state.first_seen >= config.baseline_settle_s;
            if !state.settled {
                for (history, au) in state.baseline.iter_mut().zip(&face.action_units) {
                    history.push(au.intensity);
                }
                if let Some(mesh) = &face.mesh {
                    state.shape.add_neutral(&mesh.points);
                }
                continue;
            }
            let mut corrected = [0.0f32; AU_COUNT];
            for ((au, history), c) in face
                .action_units
                .iter_mut()
                .zip(&state.baseline)
                .zip(&mut corrected)
            {
                let neutral = history
                    .quantile(config.baseline_quantile)
                    .expect("pushed above");
                *c = (au.intensity - neutral).clamp(0.0, 5.0);
                au.baseline = Some(neutral);
                au.corrected = Some(*c);
            }
            face.au_baseline_method = Some(self.method.clone());
            recompute_prototypes(face);
            let motion = face
                .mesh
                .as_ref()
                .and_then(|m| state.shape.motion(&m.points));
            let observation = Observation {
                t,
                corrected: &corrected,
                motion,
                expression: face.expression.as_ref().map(|e| e.combined),
            };
            events.extend(state.spotter.step(config, &observation));
            if state.spotter.is_open() {
                face.neutral_points = face
                    .mesh
                    .as_ref()
                    .and_then(|m| state.shape.neutral_in(&m.points));
            }
            // The frames of an episode stay out of the face's history, so that an
            // expression, however long or often held, is not taken for its neutral; calm
            // frames also keep the neutral shape current.
            if !state.spotter.is_open() {
                for (history, au) in state.baseline.iter_mut().zip(&face.action_units) {
                    history.push(au.intensity);
                }
                if spotting::activation(&corrected) < config.offset_intensity
                    && let Some(mesh) = &face.mesh
                {
                    state.shape.add_neutral(&mesh.points);
                }
            }
        }
        events
    }

    /// The end of the stream: open episodes end at their face's last frame.
    pub fn finish(&mut self) -> Vec<ExpressionEvent> {
        let config = &self.config;
        let events: Vec<ExpressionEvent> = self
            .faces
            .values_mut()
            .filter_map(|s| s.spotter.end(config, s.last_seen, EpisodeEnd::StreamEnded))
            .collect();
        let last = self
            .faces
            .values()
            .map(|s| s.last_seen)
            .fold(f64::MIN, f64::max);
        self.remember(last, &events);
        events
    }
}

/// The AU-prototype expression from the corrected AUs, and the combination with FER again.
fn recompute_prototypes(face: &mut FaceResult) {
    let Some(expression) = &face.expression else {
        return;
    };
    if expression.au_prototypes.is_none() {
        return;
    }
    let corrected: Vec<ActionUnit> = face
        .action_units
        .iter()
        .map(|au| {
            let c = au.corrected.unwrap_or(au.intensity);
            ActionUnit {
                intensity: c,
                present: c >= PRESENCE_THRESHOLD,
                ..*au
            }
        })
        .collect();
    let prototypes = expression::prototype_distribution(&corrected);
    if let Some(mut updated) = expression::combine(expression.fer, Some(prototypes)) {
        updated.au_prototypes_corrected = true;
        face.expression = Some(updated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The episodes that ended, in order.
    fn ended(events: &[ExpressionEvent]) -> Vec<&Episode> {
        events
            .iter()
            .filter_map(|e| match e {
                ExpressionEvent::Ended(e) => Some(e),
                _ => None,
            })
            .collect()
    }
    use crate::vision::action_units::TABLE;
    use crate::vision::detector::Detection;
    use crate::vision::mesh::Mesh;

    /// One face whose AU01 drifts to 1.5 on its neutral face and who smiles (AU12 4, the
    /// mouth points moved) while `smiling`.
    fn frame(smiling: bool) -> FrameResult {
        let mut points: Vec<[f32; 3]> = (0..478)
            .map(|i| {
                let a = i as f32 * 0.37;
                [
                    300.0 + 60.0 * a.cos(),
                    200.0 + 70.0 * (a * 1.3).sin(),
                    15.0 * (a * 0.7).cos(),
                ]
            })
            .collect();
        if smiling {
            for p in points.iter_mut().skip(400).take(60) {
                p[1] -= 8.0;
            }
        }
        let action_units = TABLE
            .iter()
            .map(|(number, _, _)| {
                let intensity = match number {
                    1 => 1.5,
                    12 if smiling => 4.0,
                    _ => 0.1,
                };
                ActionUnit {
                    number: *number,
                    intensity,
                    present: intensity >= PRESENCE_THRESHOLD,
                    baseline: None,
                    corrected: None,
                }
            })
            .collect::<Vec<_>>();
        let prototypes = expression::prototype_distribution(&action_units);
        FrameResult {
            faces: vec![FaceResult {
                face_id: 7,
                detection: Detection {
                    score: 0.9,
                    x: 200.0,
                    y: 100.0,
                    width: 200.0,
                    height: 200.0,
                    keypoints: [[0.0; 2]; 5],
                },
                tracked: true,
                mesh: Some(Mesh {
                    points,
                    presence: 1.0,
                }),
                head_pose: None,
                blendshapes: None,
                action_units,
                au_baseline_method: None,
                expression: expression::combine(None, Some(prototypes)),
                neutral_points: None,
            }],
            width: 640,
            height: 480,
            timings: Vec::new(),
        }
    }

    #[test]
    fn a_face_gets_its_baseline_then_its_smile_as_an_episode_with_motion() {
        let mut dynamics = FaceDynamics::new(&DynamicsConfig::default());
        let mut events = Vec::new();
        let mut in_episode_frames = 0;
        for i in 0..150 {
            let t = i as f64 / 30.0;
            let mut f = frame((90..120).contains(&i));
            events.extend(dynamics.observe(t, &mut f));
            let face = &f.faces[0];
            let au01 = face.action_units[0];
            if t < 2.0 {
                assert!(au01.corrected.is_none() && face.au_baseline_method.is_none());
                // Raw drift: "angry"-leaning prototypes are what the baseline corrects.
                assert!(!face.expression.as_ref().unwrap().au_prototypes_corrected);
            } else {
                assert_eq!(au01.baseline, Some(1.5));
                assert_eq!(au01.corrected, Some(0.0));
                assert_eq!(au01.corrected_present(), Some(false));
                assert!(face.expression.as_ref().unwrap().au_prototypes_corrected);
            }
            if face.neutral_points.is_some() {
                in_episode_frames += 1;
                assert!(
                    (90..120).contains(&i),
                    "neutral points outside the episode: {i}"
                );
            }
        }
        assert_eq!(in_episode_frames, 30);
        let ended = ended(&events);
        assert_eq!(ended.len(), 1, "{events:?}");
        let e = ended[0];
        assert!((e.onset - 3.0).abs() < 1e-9 && (e.offset.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(e.action_units[0].number, 12);
        assert!(e.peak_motion.unwrap() > 0.02, "{:?}", e.peak_motion);
        assert!(dynamics.finish().is_empty());
    }

    /// A clock that steps back (a client resetting it) ends the open episode where it was
    /// and spotting goes on from the new times, with the baseline kept.
    #[test]
    fn a_clock_stepping_back_ends_the_open_episode_and_spotting_goes_on() {
        let mut dynamics = FaceDynamics::new(&DynamicsConfig::default());
        let mut events = Vec::new();
        for i in 0..100 {
            let mut f = frame(i >= 90);
            events.extend(dynamics.observe(i as f64 / 30.0, &mut f));
        }
        // The clock restarts at 0: still smiling, then neutral, then a new smile.
        for i in 0..120 {
            let mut f = frame((60..90).contains(&i));
            events.extend(dynamics.observe(i as f64 / 30.0, &mut f));
            assert!(
                f.faces[0].action_units[0].corrected.is_some(),
                "the baseline is kept"
            );
        }
        let ended = ended(&events);
        assert_eq!(ended.len(), 2, "{events:?}");
        assert_eq!(ended[0].end, Some(EpisodeEnd::FaceLost));
        assert!((ended[0].offset.unwrap() - 99.0 / 30.0).abs() < 1e-9);
        assert!((ended[1].onset - 2.0).abs() < 1e-9 && ended[1].end == Some(EpisodeEnd::Returned));
    }

    #[test]
    fn a_face_lost_mid_episode_ends_it_at_its_last_frame() {
        let mut dynamics = FaceDynamics::new(&DynamicsConfig::default());
        let mut events = Vec::new();
        for i in 0..100 {
            let mut f = frame(i >= 90);
            events.extend(dynamics.observe(i as f64 / 30.0, &mut f));
        }
        // The face leaves: an empty frame a second later.
        let mut empty = FrameResult::default();
        events.extend(dynamics.observe(100.0 / 30.0 + 1.0, &mut empty));
        let last = events.last().unwrap();
        match last {
            ExpressionEvent::Ended(e) => {
                assert_eq!(e.end, Some(EpisodeEnd::FaceLost));
                assert!((e.offset.unwrap() - 99.0 / 30.0).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_latest_episode_keeps_its_onset_and_apex_frames_for_a_strip() {
        use std::sync::Arc;
        let mut dynamics = FaceDynamics::new(&DynamicsConfig::default());
        let mut kept = keyframes::Keyframes::default();
        for i in 0..130 {
            let t = i as f64 / 30.0;
            let mut f = frame((90..120).contains(&i));
            dynamics.observe(t, &mut f);
            // Each frame's image differs, so the kept ones can be told apart.
            let image = Arc::new(image::RgbImage::from_pixel(
                640,
                480,
                image::Rgb([i as u8, 0, 0]),
            ));
            kept.observe(t, &image, &Arc::new(f), &dynamics.recent_episodes());
        }
        let episode = dynamics.recent_episodes().pop().expect("the smile");
        let (onset, apex) = kept.of(&episode).expect("both kept");
        assert!((onset.t - 3.0).abs() < 1e-9, "{}", onset.t);
        assert_eq!(onset.image.get_pixel(0, 0)[0], 90);
        assert!((3.0..4.0).contains(&apex.t) && apex.t == episode.apex);
        assert!(
            apex.face.neutral_points.is_some(),
            "the apex frame carries the motion"
        );
        let strip = keyframes::strip(onset, apex);
        assert_eq!(strip.height(), keyframes::STRIP_HEIGHT);
        let frame_image = image::RgbImage::new(640, 480);
        let both = keyframes::below(&frame_image, std::slice::from_ref(&strip));
        assert_eq!(both.width(), 640);
        assert_eq!(both.height(), 480 + 8 + strip.height().min(480));
        // Another episode's keyframes are not these.
        let other = Episode {
            onset: 1.0,
            ..episode
        };
        assert!(kept.of(&other).is_none());
    }
}
