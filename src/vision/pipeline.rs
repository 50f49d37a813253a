//! The face pipeline: detect (or track) -> mesh + head pose -> blendshapes -> AU estimates
//! -> expression, with per-stage timings.

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

use super::action_units::{self, ActionUnit};
use super::backend::{Inference, InferenceError};
use super::blendshapes;
use super::detector::{self, Detection, DetectorConfig};
use super::expression::{self, Expression};
use super::mesh::{self, CropRegion, HeadPose, Mesh};

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
    pub expression: Option<Expression>,
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
enum Cores {
    All,
    One,
}

/// A frame's measured faces and the time its stages took so far.
struct MeasuredFrame {
    faces: Vec<MeasuredFace>,
    timer: Timer,
}

/// A face after the stages that tracking needs (detection or tracking, and the mesh), and
/// FER when it ran beside the mesh; [`FaceModels::complete`] does the rest.
struct MeasuredFace {
    face_id: u32,
    detection: Detection,
    tracked: bool,
    mesh: Option<Mesh>,
    /// Some(result) when FER already ran (None inside: not wanted); None: still to run.
    fer: Option<Option<[f32; 7]>>,
}

#[derive(Default)]
struct Timer(Vec<(&'static str, f64)>);

impl Timer {
    fn merge(&mut self, other: Timer) {
        for (stage, ms) in other.0 {
            match self.0.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, total)) => *total += ms,
                None => self.0.push((stage, ms)),
            }
        }
    }

    fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
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
    fn describe_detections(
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
    fn measure_detections(
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
    fn measure_detection(
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

    fn wants_fer(&self, options: &AnalyzeOptions) -> bool {
        options.expression && self.expression.is_some()
    }

    fn fer(
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
    fn complete_frame(
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
    fn complete(
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
            expression,
        })
    }
}

/// Maps `f` over `items` on up to one scoped thread per core, keeping their order; each
/// thread times its stages on its own timer, merged (summed) into `timer` afterwards.
fn parallel_map<T: Send, R: Send>(
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

/// Stable face ids over a stream, and MediaPipe-style detect-or-track: the previous frame's
/// landmarks give the next frame's crop. The detector describes the faces on the first frame
/// and when a tracked face is lost; every `detect_every` frames it also runs beside the
/// tracked faces to find newcomers. `detect_every` = 1 turns tracking off.
pub struct Tracker {
    pub detect_every: u32,
    /// A face unseen for more than this many detector runs is forgotten.
    pub max_missed: u32,
    /// Minimum IoU for a detection to continue an existing track.
    pub min_iou: f32,
    next_id: u32,
    frames_since_detection: u32,
    tracks: Vec<Track>,
}

struct Track {
    id: u32,
    box_xywh: [f32; 4],
    /// Crop for the next frame, from this frame's landmarks.
    next_region: Option<CropRegion>,
    missed: u32,
}

impl Tracker {
    pub fn new(detect_every: u32) -> Self {
        Self {
            detect_every: detect_every.max(1),
            max_missed: 3,
            min_iou: 0.3,
            next_id: 1,
            frames_since_detection: 0,
            tracks: Vec::new(),
        }
    }

    /// Analyses the next frame of the stream.
    pub fn process(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        options: &AnalyzeOptions,
    ) -> Result<FrameResult, InferenceError> {
        let measured = self.measure(models, image, options)?;
        models.complete_frame(image, measured, options, Cores::All)
    }

    /// The part of a frame that the next frame depends on: which faces there are, their
    /// ids and their meshes (the next crops). The rest is [`FaceModels::complete_frame`].
    fn measure(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        options: &AnalyzeOptions,
    ) -> Result<MeasuredFrame, InferenceError> {
        let can_track = options.landmarks && models.mesh.is_some();
        let all_trackable = !self.tracks.is_empty()
            && self
                .tracks
                .iter()
                .all(|t| t.missed == 0 && t.next_region.is_some());
        // detect_every = 1 asks for no tracking at all: every face from the detector.
        if !(can_track && all_trackable) || self.detect_every == 1 {
            self.frames_since_detection = 1;
            return self.detect(models, image, options, None);
        }
        if self.frames_since_detection < self.detect_every {
            if let Some(frame) = self.track(models, image, options)? {
                self.frames_since_detection += 1;
                return Ok(frame);
            }
            self.frames_since_detection = 1;
            return self.detect(models, image, options, None);
        }
        // The scheduled detection only looks for faces that entered: the tracked faces
        // carry on from their landmarks, on one core, while the detector runs on the other.
        self.frames_since_detection = 1;
        let (detected, tracked) = std::thread::scope(|scope| {
            let detector_job = scope.spawn(|| {
                let mut timer = Timer::default();
                let detections = timer.time("detect", || {
                    detector::detect(models.detector.as_ref(), image, &options.detector)
                });
                (detections, timer)
            });
            let tracked = self.track(models, image, options);
            let detected = detector_job.join().expect("the detector worker panicked");
            (detected, tracked)
        });
        let detected = (detected.0?, detected.1);
        match tracked? {
            Some(mut frame) => {
                self.add_entered_faces(models, image, options, detected, &mut frame)?;
                Ok(frame)
            }
            None => self.detect(models, image, options, Some(detected)),
        }
    }

    /// Adds the detections that no tracked face covers as new tracks (a scheduled detection
    /// on a tracking frame). A detection counts as covered when it overlaps a tracked box by
    /// `min_iou` or its centre lies inside one, so a tracked face is never counted twice.
    fn add_entered_faces(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        options: &AnalyzeOptions,
        (detections, detect_timer): (Vec<Detection>, Timer),
        frame: &mut MeasuredFrame,
    ) -> Result<(), InferenceError> {
        frame.timer.merge(detect_timer);
        let covered = |d: &Detection| {
            let (cx, cy) = (d.x + d.width / 2.0, d.y + d.height / 2.0);
            frame.faces.iter().any(|f| {
                let t = &f.detection;
                detector::iou([t.x, t.y, t.width, t.height], [d.x, d.y, d.width, d.height])
                    >= self.min_iou
                    || (cx >= t.x && cx <= t.x + t.width && cy >= t.y && cy <= t.y + t.height)
            })
        };
        let entered: Vec<Detection> = detections.into_iter().filter(|d| !covered(d)).collect();
        let mut jobs = Vec::with_capacity(entered.len());
        for detection in entered {
            self.tracks.push(Track {
                id: self.next_id,
                box_xywh: [detection.x, detection.y, detection.width, detection.height],
                next_region: None,
                missed: 0,
            });
            jobs.push((self.next_id, detection));
            self.next_id += 1;
        }
        let faces = models.measure_detections(image, jobs, options, &mut frame.timer)?;
        for face in faces {
            if let Some(track) = self.tracks.iter_mut().find(|t| t.id == face.face_id) {
                track.next_region = face
                    .mesh
                    .as_ref()
                    .map(|m| CropRegion::from_landmarks(&m.points));
            }
            frame.faces.push(face);
        }
        Ok(())
    }

    /// Tracking frame; None when any face was lost (the caller detects on this frame).
    fn track(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        options: &AnalyzeOptions,
    ) -> Result<Option<MeasuredFrame>, InferenceError> {
        let mut timer = Timer::default();
        let regions: Vec<CropRegion> = self
            .tracks
            .iter()
            .map(|t| t.next_region.expect("checked by caller"))
            .collect();
        let meshes = parallel_map(regions, &mut timer, |region, timer| {
            timer.time("landmarks", || models.mesh_at(image, &region))
        });
        let mut faces = Vec::with_capacity(meshes.len());
        for (track, mesh) in self.tracks.iter_mut().zip(meshes) {
            let mesh = mesh?.expect("can_track");
            if mesh.presence < options.min_presence {
                return Ok(None);
            }
            let detection = detection_from_mesh(&mesh);
            track.box_xywh = [detection.x, detection.y, detection.width, detection.height];
            track.next_region = Some(CropRegion::from_landmarks(&mesh.points));
            faces.push(MeasuredFace {
                face_id: track.id,
                detection,
                tracked: true,
                mesh: Some(mesh),
                fer: None,
            });
        }
        Ok(Some(MeasuredFrame { faces, timer }))
    }

    /// Detection frame: detections (run here unless `detected` brings them) are matched to
    /// the tracks, and every face is measured from its detection.
    fn detect(
        &mut self,
        models: &FaceModels,
        image: &RgbImage,
        options: &AnalyzeOptions,
        detected: Option<(Vec<Detection>, Timer)>,
    ) -> Result<MeasuredFrame, InferenceError> {
        let (detections, mut timer) = match detected {
            Some(done) => done,
            None => {
                let mut timer = Timer::default();
                let detections = timer.time("detect", || {
                    detector::detect(models.detector.as_ref(), image, &options.detector)
                })?;
                (detections, timer)
            }
        };
        // Greedy association by IoU, best pairs first; ids are never reused, so a face that
        // enters where another left gets a new id once the old track is forgotten.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            for (d, det) in detections.iter().enumerate() {
                let overlap = detector::iou(track.box_xywh, [det.x, det.y, det.width, det.height]);
                if overlap >= self.min_iou {
                    pairs.push((overlap, t, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of_detection: Vec<Option<usize>> = vec![None; detections.len()];
        let mut track_used = vec![false; self.tracks.len()];
        for (_, t, d) in pairs {
            if !track_used[t] && track_of_detection[d].is_none() {
                track_used[t] = true;
                track_of_detection[d] = Some(t);
            }
        }
        for (t, used) in track_used.iter().enumerate() {
            if !used {
                self.tracks[t].missed += 1;
                self.tracks[t].next_region = None;
            }
        }
        let mut jobs = Vec::with_capacity(detections.len());
        let mut track_index = Vec::with_capacity(detections.len());
        for (d, detection) in detections.into_iter().enumerate() {
            let t = match track_of_detection[d] {
                Some(t) => t,
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        box_xywh: [0.0; 4],
                        next_region: None,
                        missed: 0,
                    });
                    self.next_id += 1;
                    self.tracks.len() - 1
                }
            };
            jobs.push((self.tracks[t].id, detection));
            track_index.push(t);
        }
        let faces = models.measure_detections(image, jobs, options, &mut timer)?;
        for (face, t) in faces.iter().zip(track_index) {
            let d = &face.detection;
            let track = &mut self.tracks[t];
            track.missed = 0;
            track.box_xywh = [d.x, d.y, d.width, d.height];
            track.next_region = face
                .mesh
                .as_ref()
                .map(|m| CropRegion::from_landmarks(&m.points));
        }
        let max_missed = self.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        Ok(MeasuredFrame { faces, timer })
    }
}

/// A [`Tracker`] run as a two-stage pipeline over a stream, for throughput. The calling
/// thread measures frame N (detection or tracking and the mesh: what frame N+1's crop
/// depends on) while a worker thread completes frame N-1 (head pose, blendshapes, AU
/// estimates, FER, expression), so a frame costs the slower stage rather than the sum of
/// both. MediaPipe's graphs pipeline their calculators the same way. Results come out in
/// frame order, one frame behind; [`PipelinedTracker::finish`] returns the last one.
pub struct PipelinedTracker {
    tracker: Tracker,
    models: FaceModels,
    options: AnalyzeOptions,
    jobs: Option<std::sync::mpsc::SyncSender<(Arc<RgbImage>, MeasuredFrame)>>,
    results: std::sync::mpsc::Receiver<Result<FrameResult, InferenceError>>,
    worker: Option<std::thread::JoinHandle<()>>,
    in_flight: bool,
    /// A frame that failed to measure, reported by the next call so that the frame before
    /// it is still returned first.
    failed: Option<InferenceError>,
}

impl PipelinedTracker {
    pub fn new(tracker: Tracker, models: FaceModels, options: AnalyzeOptions) -> Self {
        let (jobs, job_queue) = std::sync::mpsc::sync_channel::<(Arc<RgbImage>, MeasuredFrame)>(1);
        let (result_sink, results) = std::sync::mpsc::channel();
        let worker_models = models.clone();
        let worker = std::thread::Builder::new()
            .name("affectd-faces".into())
            .spawn(move || {
                for (image, frame) in job_queue {
                    // One thread: the other core is measuring the next frame.
                    let result = worker_models.complete_frame(&image, frame, &options, Cores::One);
                    if result_sink.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("cannot start the face pipeline's worker thread");
        Self {
            tracker,
            models,
            options,
            jobs: Some(jobs),
            results,
            worker: Some(worker),
            in_flight: false,
            failed: None,
        }
    }

    /// Measures `image`, hands it to the worker, and returns the previous frame's result
    /// (None after the first frame). An error belongs to the previous frame, or, when that
    /// was returned already, to the frame that failed to measure.
    pub fn push(&mut self, image: Arc<RgbImage>) -> Result<Option<FrameResult>, InferenceError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let measured = self.tracker.measure(&self.models, &image, &self.options);
        let previous = self.take_in_flight();
        match measured {
            Ok(frame) => {
                self.jobs
                    .as_ref()
                    .expect("present until drop")
                    .send((image, frame))
                    .expect("the face pipeline's worker stopped");
                self.in_flight = true;
            }
            Err(error) => self.failed = Some(error),
        }
        previous.transpose()
    }

    /// The last frame's result, once every frame has been pushed.
    pub fn finish(mut self) -> Result<Option<FrameResult>, InferenceError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        self.take_in_flight().transpose()
    }

    fn take_in_flight(&mut self) -> Option<Result<FrameResult, InferenceError>> {
        if !std::mem::take(&mut self.in_flight) {
            return None;
        }
        Some(
            self.results
                .recv()
                .expect("the face pipeline's worker panicked"),
        )
    }
}

impl Drop for PipelinedTracker {
    fn drop(&mut self) {
        // Closing the queue ends the worker's loop.
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
