//! One frame's face analysis: detect -> mesh + head pose -> blendshapes -> AU estimates ->
//! expression, with per-stage timings. The trackers (`tracker.rs`) reuse its stages.

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

use super::action_units::{self, ActionUnit};
use super::backend::{Inference, InferenceError};
use super::blendshapes;
use super::detector::{self, Detection, DetectorConfig};
use super::expression::{self, Expression};
use super::marks::{Encoding, Layers};
use super::mesh::{self, CropRegion, HeadPose, Mesh};
use crate::config::VisionConfig;

/// The four networks. Only the detector is required; a missing stage is skipped.
#[derive(Clone)]
pub struct FaceModels {
    pub detector: Arc<dyn Inference>,
    pub mesh: Option<Arc<dyn Inference>>,
    pub blendshapes: Option<Arc<dyn Inference>>,
    pub expression: Option<Arc<dyn Inference>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyzeOptions {
    pub detector: DetectorConfig,
    pub landmarks: bool,
    pub blendshapes: bool,
    pub expression: bool,
    /// Minimum face-presence probability for a tracked face to count as still there.
    pub min_presence: f32,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::default(),
            landmarks: true,
            blendshapes: true,
            expression: true,
            min_presence: 0.5,
        }
    }
}

/// A request's face-analysis and mark options as the client sent them; unset fields take
/// the server's defaults (`[vision]` in the configuration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameSettings {
    /// Longest side of the detector's input, px, in `[32, 8192]`.
    pub detector_max_side: Option<u32>,
    /// Minimum detection score, `[0,1]`.
    pub min_face_score: Option<f32>,
    /// At most this many faces, highest score first; 0 = no limit.
    pub max_faces: u32,
    pub skip_landmarks: bool,
    pub skip_blendshapes: bool,
    pub skip_expression: bool,
    /// Mark layers; None = every layer.
    pub marks: Option<Layers>,
    /// Return the marked image (AnalyzeFrame).
    pub return_marked_image: bool,
    pub marked_image_encoding: Encoding,
}

impl FrameSettings {
    /// The analysis options, over the server's defaults; Err names the field out of range.
    pub fn options(&self, defaults: &VisionConfig) -> Result<AnalyzeOptions, String> {
        let mut out = AnalyzeOptions::default();
        out.detector.max_side = defaults.detector_max_side;
        out.detector.min_score = defaults.min_face_score;
        if let Some(side) = self.detector_max_side {
            if !(32..=8192).contains(&side) {
                return Err(format!(
                    "options.detector_max_side must be in [32, 8192] pixels, got {side}"
                ));
            }
            out.detector.max_side = side;
        }
        if let Some(score) = self.min_face_score {
            if !(0.0..=1.0).contains(&score) {
                return Err(format!(
                    "options.min_face_score must be in [0,1], got {score}"
                ));
            }
            out.detector.min_score = score;
        }
        out.detector.max_faces = self.max_faces as usize;
        out.landmarks = !self.skip_landmarks;
        out.blendshapes = !self.skip_blendshapes && out.landmarks;
        out.expression = !self.skip_expression;
        Ok(out)
    }

    /// The mark layers to draw.
    pub fn layers(&self) -> Layers {
        self.marks.unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaceResult {
    pub face_id: u32,
    /// The detector's box and key points; for a tracked face, derived from the mesh.
    pub detection: Detection,
    pub tracked: bool,
    pub mesh: Option<Mesh>,
    pub head_pose: Option<HeadPose>,
    pub blendshapes: Option<[f32; 52]>,
    pub action_units: Vec<ActionUnit>,
    /// How the AUs' `baseline` and `corrected` values were computed (the method's name
    /// and settings); None when they were not (single images, a face not yet settled).
    /// Shared: the same text for every face and frame of a stream.
    pub au_baseline_method: Option<Arc<str>>,
    pub expression: Option<Expression>,
    /// While the face is in an expression episode: its neutral shape (the 468 mesh points)
    /// as it would sit in this frame, pose and all (`vision::dynamics`). The motion layer
    /// draws the way from each of these points to `mesh`. Not sent or recorded.
    pub neutral_points: Option<Vec<[f32; 3]>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameResult {
    pub faces: Vec<FaceResult>,
    pub width: u32,
    pub height: u32,
    /// (stage, milliseconds), summed over faces.
    pub timings: Vec<(&'static str, f64)>,
}

/// Whether a stage may spread its work over every core (a frame at a time), or must stay on
/// its own thread (the pipelined tracker's worker, while the next frame's mesh has the
/// other core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cores {
    All,
    One,
}

/// A frame's measured faces and the time its stages took so far.
pub(super) struct MeasuredFrame {
    pub(super) faces: Vec<MeasuredFace>,
    pub(super) timer: Timer,
}

/// A face after the stages that tracking needs (detection or tracking, and the mesh), and
/// FER when it ran beside the mesh; [`FaceModels::complete`] does the rest.
pub(super) struct MeasuredFace {
    pub(super) face_id: u32,
    pub(super) detection: Detection,
    pub(super) tracked: bool,
    pub(super) mesh: Option<Mesh>,
    /// Some(result) when FER already ran (None inside: not wanted); None: still to run.
    pub(super) fer: Option<Option<[f32; 7]>>,
}

#[derive(Default)]
pub(super) struct Timer(Vec<(&'static str, f64)>);

impl Timer {
    pub(super) fn merge(&mut self, other: Timer) {
        for (stage, ms) in other.0 {
            match self.0.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, total)) => *total += ms,
                None => self.0.push((stage, ms)),
            }
        }
    }

    pub(super) fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += ms,
            None => self.0.push((stage, ms)),
        }
        out
    }
}

impl FaceModels {
    /// One image, no tracking: faces numbered 1..n by descending detection score.
    pub fn analyze(
        &self,
        image: &RgbImage,
        options: &AnalyzeOptions,
    ) -> Result<FrameResult, InferenceError> {
        let mut timer = Timer::default();
        let detections = timer.time("detect", || {
            detector::detect(self.detector.as_ref(), image, &options.detector)
        })?;
        let jobs = detections
            .into_iter()
            .enumerate()
            .map(|(i, d)| (i as u32 + 1, d))
            .collect();
        let faces = self.describe_detections(image, jobs, options, &mut timer)?;
        Ok(FrameResult {
            faces,
            width: image.width(),
            height: image.height(),
            timings: timer.0,
        })
    }

    /// Everything after detection for each (face id, detection), faces in parallel.
    pub(super) fn describe_detections(
        &self,
        image: &RgbImage,
        jobs: Vec<(u32, Detection)>,
        options: &AnalyzeOptions,
        timer: &mut Timer,
    ) -> Result<Vec<FaceResult>, InferenceError> {
        parallel_map(jobs, timer, |(face_id, detection), timer| {
            let measured = self.measure_detection(image, face_id, detection, options, timer)?;
            self.complete(image, measured, options, Cores::All, timer)
        })
        .into_iter()
        .collect()
    }

    /// The tracking-relevant stages for each (face id, detection), faces in parallel.
    pub(super) fn measure_detections(
        &self,
        image: &RgbImage,
        jobs: Vec<(u32, Detection)>,
        options: &AnalyzeOptions,
        timer: &mut Timer,
    ) -> Result<Vec<MeasuredFace>, InferenceError> {
        parallel_map(jobs, timer, |(face_id, detection), timer| {
            self.measure_detection(image, face_id, detection, options, timer)
        })
        .into_iter()
        .collect()
    }

    /// Runs the mesh on `region`; None when the landmark stage is off or unavailable.
    pub(crate) fn mesh_at(
        &self,
        image: &RgbImage,
        region: &CropRegion,
    ) -> Result<Option<Mesh>, InferenceError> {
        match &self.mesh {
            Some(model) => mesh::run(model.as_ref(), image, region).map(Some),
            None => Ok(None),
        }
    }

    /// The mesh from a detection's crop, with FER beside it on another core (its crop
    /// needs only the box).
    pub(super) fn measure_detection(
        &self,
        image: &RgbImage,
        face_id: u32,
        detection: Detection,
        options: &AnalyzeOptions,
        timer: &mut Timer,
    ) -> Result<MeasuredFace, InferenceError> {
        let region = CropRegion::from_detection(
            detection.x,
            detection.y,
            detection.width,
            detection.height,
            detection.keypoints[0],
            detection.keypoints[1],
        );
        let (mesh, fer) = std::thread::scope(|scope| {
            let fer_job = self.wants_fer(options).then(|| {
                scope.spawn(|| {
                    let mut local = Timer::default();
                    let fer = self.fer(image, &detection, &mut local);
                    (fer, local)
                })
            });
            let mesh = if options.landmarks {
                timer.time("landmarks", || self.mesh_at(image, &region))
            } else {
                Ok(None)
            };
            let fer = fer_job.map(|job| {
                let (fer, local) = job.join().expect("the FER worker panicked");
                timer.merge(local);
                fer
            });
            (mesh, fer)
        });
        Ok(MeasuredFace {
            face_id,
            detection,
            tracked: false,
            mesh: mesh?,
            fer: Some(fer.transpose()?),
        })
    }

    pub(super) fn wants_fer(&self, options: &AnalyzeOptions) -> bool {
        options.expression && self.expression.is_some()
    }

    pub(super) fn fer(
        &self,
        image: &RgbImage,
        d: &Detection,
        timer: &mut Timer,
    ) -> Result<[f32; 7], InferenceError> {
        let model = self.expression.as_ref().expect("checked by wants_fer");
        timer.time("expression", || {
            expression::run_fer(model.as_ref(), image, d.x, d.y, d.width, d.height)
        })
    }

    /// Completes every measured face of a frame, in id order: faces in parallel with
    /// [`Cores::All`], one after another on this thread with [`Cores::One`].
    pub(super) fn complete_frame(
        &self,
        image: &RgbImage,
        frame: MeasuredFrame,
        options: &AnalyzeOptions,
        cores: Cores,
    ) -> Result<FrameResult, InferenceError> {
        let MeasuredFrame { faces, mut timer } = frame;
        let complete = |face, timer: &mut Timer| self.complete(image, face, options, cores, timer);
        let mut faces = match cores {
            Cores::All => parallel_map(faces, &mut timer, complete),
            Cores::One => faces
                .into_iter()
                .map(|face| complete(face, &mut timer))
                .collect(),
        }
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        faces.sort_by_key(|f| f.face_id);
        Ok(FrameResult {
            faces,
            width: image.width(),
            height: image.height(),
            timings: timer.0,
        })
    }

    /// Everything after the mesh: head pose, blendshapes, AU estimates, FER (unless it ran
    /// already) and the combined expression.
    pub(super) fn complete(
        &self,
        image: &RgbImage,
        face: MeasuredFace,
        options: &AnalyzeOptions,
        cores: Cores,
        timer: &mut Timer,
    ) -> Result<FaceResult, InferenceError> {
        let MeasuredFace {
            face_id,
            detection,
            tracked,
            mesh,
            fer,
        } = face;
        let head_pose = mesh
            .as_ref()
            .map(|m| timer.time("head_pose", || mesh::head_pose(&m.points)));
        // A tracked face has no FER result yet: it needs only the box, so it runs on
        // another core beside the blendshapes when this frame may use every core.
        let fer_wanted = fer.is_none() && self.wants_fer(options);
        let (blendshapes, fer) = std::thread::scope(|scope| {
            let fer_job = (fer_wanted && cores == Cores::All).then(|| {
                scope.spawn(|| {
                    let mut local = Timer::default();
                    let fer = self.fer(image, &detection, &mut local);
                    (fer, local)
                })
            });
            let blendshapes = match (&mesh, &self.blendshapes) {
                (Some(m), Some(model)) if options.blendshapes => {
                    Some(timer.time("blendshapes", || {
                        blendshapes::run(model.as_ref(), &m.points)
                    }))
                }
                _ => None,
            };
            let fer = match (fer, fer_job) {
                (Some(done), _) => Ok(done),
                (None, Some(job)) => {
                    let (fer, local) = job.join().expect("the FER worker panicked");
                    timer.merge(local);
                    fer.map(Some)
                }
                (None, None) if fer_wanted => self.fer(image, &detection, timer).map(Some),
                (None, None) => Ok(None),
            };
            (blendshapes.transpose(), fer)
        });
        let (blendshapes, fer) = (blendshapes?, fer?);
        let action_units = match (&blendshapes, &mesh) {
            (Some(b), Some(m)) => {
                timer.time("action_units", || action_units::estimate(b, &m.points))
            }
            _ => Vec::new(),
        };
        let prototypes =
            (!action_units.is_empty()).then(|| expression::prototype_distribution(&action_units));
        let expression = if options.expression {
            expression::combine(fer, prototypes)
        } else {
            None
        };
        Ok(FaceResult {
            face_id,
            detection,
            tracked,
            mesh,
            head_pose,
            blendshapes,
            action_units,
            au_baseline_method: None,
            expression,
            neutral_points: None,
        })
    }
}

/// Maps `f` over `items` on up to one scoped thread per core, keeping their order; each
/// thread times its stages on its own timer, merged (summed) into `timer` afterwards.
pub(super) fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    timer: &mut Timer,
    f: impl Fn(T, &mut Timer) -> R + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if workers <= 1 {
        return items.into_iter().map(|item| f(item, timer)).collect();
    }
    let mut buckets: Vec<Vec<(usize, T)>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        buckets[i % workers].push((i, item));
    }
    let f = &f;
    let mut results: Vec<(usize, R)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = buckets
            .into_iter()
            .map(|bucket| {
                scope.spawn(move || {
                    let mut local = Timer::default();
                    let out: Vec<(usize, R)> = bucket
                        .into_iter()
                        .map(|(i, item)| (i, f(item, &mut local)))
                        .collect();
                    (out, local)
                })
            })
            .collect();
        for handle in handles {
            let (out, local) = handle.join().expect("a face worker panicked");
            results.extend(out);
            timer.merge(local);
        }
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// A face box and key points derived from a mesh (tracking frames have no detector output).
pub fn detection_from_mesh(mesh: &Mesh) -> Detection {
    let [x0, y0, x1, y1] = mesh::hull(&mesh.points);
    let pt = |i: usize| [mesh.points[i][0], mesh.points[i][1]];
    Detection {
        score: mesh.presence,
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
        // Iris centres, nose tip, mouth corners: the detector's five points.
        keypoints: [
            pt(mesh::RIGHT_IRIS),
            pt(mesh::LEFT_IRIS),
            pt(1),
            pt(61),
            pt(291),
        ],
    }
}
