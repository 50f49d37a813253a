//! The time dimension of a tracked face: its person-specific neutral baseline, its
//! pose-compensated landmark motion, and its expression episodes.
//!
//! [`FaceDynamics::observe`] runs after the face pipeline on every analysed frame of a
//! video or live session, in time order. It fills each AU's `baseline` and `corrected`
//! values once the face's baseline has settled, recomputes the AU-prototype expression
//! from the corrected values, and reports [`ExpressionEvent`]s. Single images have no
//! history and get none of this.

pub mod baseline;
pub mod motion;
pub mod spotting;

use std::collections::BTreeMap;

pub use spotting::{
    AU_COUNT, DynamicsConfig, Episode, EpisodeAu, EpisodeEnd, ExpressionEvent, Observation,
};

use self::baseline::RunningQuantile;
use self::motion::ShapeReference;
use self::spotting::Spotter;
use crate::vision::action_units::{ActionUnit, PRESENCE_THRESHOLD, TABLE};
use crate::vision::expression;
use crate::vision::{FaceResult, FrameResult};

struct FaceState {
    first_seen: f64,
    last_seen: f64,
    baseline: Vec<RunningQuantile>,
    shape: ShapeReference,
    spotter: Spotter,
}

/// The dynamics of every face of one video or session.
pub struct FaceDynamics {
    config: DynamicsConfig,
    method: String,
    faces: BTreeMap<u32, FaceState>,
}

impl FaceDynamics {
    /// `config` must have passed [`DynamicsConfig::validate`].
    pub fn new(config: &DynamicsConfig) -> Self {
        let method = format!(
            "running quantile {} of this tracked face's AU estimates since it was first seen, \
             frames inside expression episodes left out, used after {} s \
             (person-specific normalisation as in OpenFace 2)",
            config.baseline_quantile, config.baseline_settle_s
        );
        Self {
            config: config.clone(),
            method,
            faces: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DynamicsConfig {
        &self.config
    }

    /// The next analysed frame at `t` (s, the stream's clock): fills the baseline fields of
    /// its faces and returns the events it causes, lost faces' first.
    pub fn observe(&mut self, t: f64, frame: &mut FrameResult) -> Vec<ExpressionEvent> {
        let mut events = Vec::new();
        if !t.is_finite() {
            return events;
        }
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
                baseline: vec![RunningQuantile::default(); AU_COUNT],
                shape: ShapeReference::default(),
                spotter: Spotter::new(face.face_id),
            });
            if t < state.last_seen {
                continue; // out of order: no baseline or spotting on it
            }
            if t - state.last_seen > config.max_gap_s {
                events.extend(
                    state
                        .spotter
                        .end(config, state.last_seen, EpisodeEnd::FaceLost),
                );
            }
            state.last_seen = t;
            if t - state.first_seen < config.baseline_settle_s {
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
                motion: motion.as_ref().map(|(m, _)| *m),
                expression: face.expression.as_ref().map(|e| e.combined),
                landmarks: face.mesh.as_ref().map(|m| m.points.as_slice()),
            };
            events.extend(state.spotter.step(config, &observation));
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
        self.faces
            .values_mut()
            .filter_map(|s| s.spotter.end(config, s.last_seen, EpisodeEnd::StreamEnded))
            .collect()
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

/// The AU numbers in the order of the `corrected` arrays.
pub fn au_numbers() -> impl Iterator<Item = u32> {
    TABLE.iter().map(|(n, _, _)| *n)
}
