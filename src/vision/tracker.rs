//! Faces over a stream of frames: stable ids, MediaPipe-style detect-or-track, and a
//! two-stage pipelined tracker for videos.

use std::sync::Arc;

use image::RgbImage;

use super::analysis::{
    AnalyzeOptions, Cores, FaceModels, FrameResult, MeasuredFace, MeasuredFrame, Timer,
    detection_from_mesh, parallel_map,
};
use super::backend::InferenceError;
use super::detector::{self, Detection};
use super::mesh::CropRegion;

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
