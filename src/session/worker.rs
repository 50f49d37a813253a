//! The session worker and its vision and explain workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use prost::Message as _;
use tokio::sync::mpsc;

use super::outbox::Outbox;
use super::writer::{WriteJob, Writer};
use super::{
    Event, Frame, LatestFrame, LiveSession, Marker, SessionConfig, SessionEnded, SessionWarning,
    SessionWarningKind, check_session_id,
};
use crate::engine::{Engine, unix_now};
use crate::error::{Error, catch_panic};
use crate::explain;
use crate::formats::wire;
use crate::fusion::Timeline;
use crate::fusion::calibrate::{self, FusionModel};
use crate::signals::analyzers::{Analyzers, SignalChunk};
use crate::signals::features::FeatureWindow;
use crate::store::{FrameData, Record, Recorder, StoreError};
use crate::vision::dynamics::keyframes::Keyframes;
use crate::vision::dynamics::{ExpressionEvent, FaceDynamics};
use crate::vision::image::ImageInput;
use crate::vision::{AnalyzeOptions, FaceModels, FrameResult, Tracker};

/// Messages committed in one transaction at most.
pub const MAX_BATCH: usize = 256;

/// Client-message bytes one batch takes at most (beyond its first message): a commit stays
/// a few MB however far the writer has fallen behind, so acknowledgements keep coming, and
/// a disk that fills fails a small transaction, not one of hundreds of frames.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// A client message's share of the session's `limits.max_session_queue_bytes`, held from
/// when it is read off the stream until what it became is committed (or dropped).
pub type Held = tokio::sync::OwnedSemaphorePermit;

impl Input {
    /// The client-message bytes it holds (0 for the workers' own messages).
    fn held_bytes(&self) -> usize {
        match self {
            Input::Frame { held, .. }
            | Input::Chunk { held, .. }
            | Input::Marker { held, .. }
            | Input::Explain { held, .. } => held.num_permits(),
            _ => 0,
        }
    }
}

/// What the session worker receives.
pub enum Input {
    Frame {
        seq: u64,
        frame: Frame,
        held: Held,
    },
    Chunk {
        seq: u64,
        chunk: SignalChunk,
        held: Held,
    },
    Marker {
        seq: u64,
        marker: Marker,
        held: Held,
    },
    Explain {
        seq: u64,
        request: Box<explain::Request>,
        held: Held,
    },
    /// The receive side ended: by EndSession, the client closing its side, a transport
    /// error, or a protocol error (`error` then ends the session).
    End {
        reason: String,
        error: Option<Error>,
    },
    /// From the vision worker: a frame's face result, and it encoded for the recording
    /// (the client has it already).
    Faces {
        client_seq: u64,
        timestamp: f64,
        result: Arc<FrameResult>,
        encoded: Vec<u8>,
    },
    /// From the vision worker: an ended expression episode, encoded for the recording
    /// (the client has it already).
    EpisodeEnded {
        face_id: u32,
        onset: f64,
        offset: f64,
        encoded: Vec<u8>,
    },
    /// From the vision worker: a frame whose analysis failed (the client was warned).
    FrameFailed {
        client_seq: u64,
    },
    VisionDone,
    /// From the explain worker.
    Explained {
        seq: u64,
        encoded: Vec<u8>,
    },
    ExplainDone,
    /// A worker failed (a bug): the session ends with this error.
    WorkerFailed(Error),
    /// From the Calibrate RPC: train on the labelled blocks so far and switch.
    Calibrate {
        reply: tokio::sync::oneshot::Sender<Result<FusionModel, Error>>,
    },
}

/// Everything checked and opened before the session starts.
pub struct Setup {
    pub(super) live: Arc<LiveSession>,
    recorder: Option<Recorder>,
    analyzers: Analyzers,
    options: AnalyzeOptions,
    detect_every: u32,
    timeline: Timeline,
    registered: Registered,
}

/// Removes the session from the registry when dropped, however the session ends.
struct Registered {
    engine: Arc<Engine>,
    session_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.engine.sessions.remove(&self.session_id);
    }
}

impl Setup {
    /// `owner`: the name of the token that opened the session (None: no authentication).
    pub fn new(
        engine: &Arc<Engine>,
        mut config: SessionConfig,
        owner: Option<String>,
    ) -> Result<Setup, Error> {
        config.analysis.budget = engine.limits.signal_budget();
        let session_id = match &config.session_id {
            None => uuid::Uuid::new_v4().to_string(),
            Some(id) => {
                check_session_id(id).map_err(Error::InvalidArgument)?;
                id.clone()
            }
        };
        engine
            .limits
            .check_session_text(&config.participant, &config.metadata)
            .map_err(Error::InvalidArgument)?;
        let limit = engine.limits.max_streams_per_session;
        if config.streams.len() > limit {
            return Err(Error::InvalidArgument(format!(
                "config.streams: at most {limit} streams, got {}",
                config.streams.len()
            )));
        }
        let analyzers = Analyzers::new(&config.streams, &config.analysis, "config.streams")
            .map_err(Error::InvalidArgument)?;
        let options = config
            .frame
            .options(&engine.config.vision)
            .map_err(Error::InvalidArgument)?;
        let detect_every = config
            .detect_every
            .unwrap_or(engine.config.vision.detect_every_n_frames);
        let timeline = Timeline::new(
            &engine.config.fusion,
            config.analysis.hop_s,
            &config.streams,
            engine.face_models.is_some(),
            engine.stress_model.clone(),
        );
        let live = engine.sessions.insert(
            LiveSession::new(session_id.clone(), owner.clone()),
            engine.limits.max_live_sessions,
        )?;
        live.board.start(
            super::board::Info {
                participant: config.participant.clone(),
                started_at: unix_now(),
                recording: config.record,
            },
            &config
                .streams
                .iter()
                .map(|s| (s.id.clone(), s.kind))
                .collect::<Vec<_>>(),
        );
        let registered = Registered {
            engine: engine.clone(),
            session_id: session_id.clone(),
        };
        let recorder = if config.record {
            let store = engine.store.as_ref().map_err(|reason| {
                Error::FailedPrecondition(format!(
                    "this session cannot be recorded: {reason}; fix the database, or set no_record to run it unrecorded"
                ))
            })?;
            // A disk already past its limits refuses the session before it starts.
            engine
                .config
                .store
                .budget()
                .check(store, 0, 0)
                .map_err(|why| {
                    Error::ResourceExhausted(format!("this session cannot be recorded: {why}"))
                })?;
            let stored = SessionConfig {
                session_id: Some(session_id.clone()),
                ..config.clone()
            };
            Some(
                store
                    .begin(
                        &session_id,
                        &config.participant,
                        owner.as_deref(),
                        unix_now(),
                        &wire::session_config(&stored).encode_to_vec(),
                    )
                    .map_err(|e| match e {
                        StoreError::Exists(_) => Error::AlreadyExists(e.to_string()),
                        e => Error::Internal(e.to_string()),
                    })?,
            )
        } else {
            None
        };
        Ok(Setup {
            live,
            recorder,
            analyzers,
            options,
            detect_every,
            timeline,
            registered,
        })
    }

    pub fn session_id(&self) -> &str {
        &self.live.session_id
    }

    pub fn recording(&self) -> bool {
        self.recorder.is_some()
    }
}

struct Counts {
    frames: u64,
    chunks: u64,
    markers: u64,
    analysed: u64,
}

struct Worker {
    engine: Arc<Engine>,
    live: Arc<LiveSession>,
    writer: Option<Writer>,
    analyzers: Analyzers,
    out: Outbox,
    vision: Option<std_mpsc::SyncSender<(u64, f64, Arc<image::RgbImage>)>>,
    explain: Option<std_mpsc::Sender<(u64, explain::Request)>>,
    vision_running: bool,
    explain_running: bool,
    /// The vision and explain threads, joined when the session finishes.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Set when the session ends early (a failed recording): an explanation in progress
    /// stops instead of holding the end up.
    cancel: Arc<AtomicBool>,
    /// Why face analysis cannot run (no detector), when it cannot.
    no_vision: Option<String>,
    counts: Counts,
    /// The highest client_seq accepted so far.
    accepted: u64,
    timeline: Timeline,
    /// The fused estimates and markers a calibration trains on (bounded by
    /// `limits.calibration_history_s`).
    history: calibrate::History,
    registered: Registered,
    /// When the worker took the batch being handled: the start of its messages' ack
    /// latency.
    batch_taken_at: std::time::Instant,
    /// The queue-byte shares of the messages handled since the last commit: they go with
    /// the commit to the writer, which releases them once it is written.
    held: Vec<Held>,
}

/// Starts the session's threads: the worker, its vision and explain workers, the writer.
pub fn start(
    engine: Arc<Engine>,
    setup: Setup,
    first_seq: u64,
    out: Outbox,
    input: mpsc::Sender<Input>,
    inputs: mpsc::Receiver<Input>,
) -> Result<(), Error> {
    let thread_error =
        |e: std::io::Error| Error::Internal(format!("cannot start a session thread: {e}"));
    let mut threads = Vec::new();
    let (vision, no_vision) = match engine.face_models.clone() {
        Some(models) => {
            let (tx, rx) = std_mpsc::sync_channel(engine.limits.vision_queue_frames);
            let tracker = Tracker::new(setup.detect_every);
            let dynamics = FaceDynamics::new(&engine.config.expression);
            let (live, out, input, options) = (
                setup.live.clone(),
                out.clone(),
                input.clone(),
                setup.options,
            );
            threads.push(
                std::thread::Builder::new()
                    .name("session-vision".into())
                    .spawn(move || {
                        let failed = input.clone();
                        if let Err(e) = catch_panic("session's face analysis", || {
                            vision_worker(models, tracker, dynamics, options, rx, live, out, input);
                            Ok(())
                        }) {
                            let _ = failed.blocking_send(Input::WorkerFailed(e));
                        }
                    })
                    .map_err(thread_error)?,
            );
            (Some(tx), None)
        }
        None => (None, Some(engine.face_unavailable.clone())),
    };
    let (explain_tx, explain_rx) = std_mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let (engine, live, out, input, cancel) = (
            engine.clone(),
            setup.live.clone(),
            out.clone(),
            input.clone(),
            cancel.clone(),
        );
        // Sessions start from async code (session::open), so there is a runtime.
        let runtime = tokio::runtime::Handle::current();
        threads.push(
            std::thread::Builder::new()
                .name("session-explain".into())
                .spawn(move || {
                    explain_worker(engine, live, explain_rx, out, input, cancel, runtime)
                })
                .map_err(thread_error)?,
        );
    }
    setup.live.set_control(input);
    let writer = setup
        .recorder
        .map(|recorder| {
            let store = engine
                .store
                .as_ref()
                .expect("a session records only with a database")
                .clone();
            Writer::start(recorder, store, engine.config.store.budget(), out.clone())
        })
        .transpose()?;
    let worker = Worker {
        history: calibrate::History::new(engine.limits.calibration_history_s),
        held: Vec::new(),
        engine,
        live: setup.live,
        writer,
        analyzers: setup.analyzers,
        out: out.clone(),
        vision_running: vision.is_some(),
        vision,
        explain: Some(explain_tx),
        explain_running: true,
        threads,
        cancel,
        no_vision,
        counts: Counts {
            frames: 0,
            chunks: 0,
            markers: 0,
            analysed: 0,
        },
        // The config message itself is accepted (and recorded as the session row).
        accepted: first_seq,
        timeline: setup.timeline,
        registered: setup.registered,
        batch_taken_at: std::time::Instant::now(),
    };
    std::thread::Builder::new()
        .name(format!("session-{}", worker.live.session_id))
        .spawn(move || {
            // A panic here drops the worker (its registration, its writer's queue); the
            // client is told, never left with a stream that just stops.
            if let Err(e) = catch_panic("session worker", || {
                worker.run(inputs);
                Ok(())
            }) {
                tracing::error!("{e}");
                let _ = out.send(Err(e));
            }
        })
        .map_err(thread_error)?;
    Ok(())
}

fn skipped(message: String, seq: u64, timestamp: f64) -> Event {
    metrics::counter!(crate::metrics::SESSION_FRAMES, "outcome" => "skipped").increment(1);
    Event::Warning(SessionWarning {
        kind: SessionWarningKind::FrameSkipped,
        message,
        client_seq: seq,
        timestamp: Some(timestamp),
    })
}

impl Worker {
    /// Sends to the client; a client that has gone does not stop the recording.
    fn send(&self, event: Event) {
        let _ = self.out.send(Ok(event));
    }

    fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut ending: Option<(String, Option<Error>)> = None;
        let mut records = Vec::new();
        // The config message is recorded by the session row; acknowledge it.
        if self.commit(&mut records).is_err() {
            return self.finish(&mut records, Some(("recording failed".into(), None)), true);
        }
        while let Some(first) = inputs.blocking_recv() {
            self.batch_taken_at = std::time::Instant::now();
            let mut bytes = first.held_bytes();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match inputs.try_recv() {
                    Ok(item) => {
                        bytes += item.held_bytes();
                        batch.push(item);
                    }
                    Err(_) => break,
                }
            }
            for item in batch {
                if ending.is_some()
                    && matches!(
                        item,
                        Input::Frame { .. }
                            | Input::Chunk { .. }
                            | Input::Marker { .. }
                            | Input::Explain { .. }
                    )
                {
                    continue;
                }
                if let Err((reason, error)) = self.handle(item, &mut records, &mut ending) {
                    // The first error ends the session; a later one (a worker failing
                    // while it drains) does not hide it.
                    if !matches!(ending, Some((_, Some(_)))) {
                        ending = Some((reason, Some(error)));
                    }
                }
            }
            if ending.is_none() && self.out.stalled() {
                ending = Some((
                    format!(
                        "the client read none of its responses for {} s (config key limits.client_read_timeout_s)",
                        self.engine.limits.client_read_timeout_s
                    ),
                    None,
                ));
            }
            self.live.board.set_accepted(
                self.counts.frames,
                self.counts.chunks,
                self.counts.analysed,
            );
            self.fuse(&mut records, false);
            for report in self.live.take_clock_reports() {
                records.push(Record::ClockOffset {
                    server_time: report.server_time,
                    offset_s: report.offset_s,
                    rtt_s: report.rtt_s,
                });
            }
            if self.commit(&mut records).is_err() {
                // Nothing more can be recorded: stop the workers and end now.
                self.vision = None;
                self.explain = None;
                return self.finish(&mut records, Some(("recording failed".into(), None)), true);
            }
            if ending.is_some() {
                // No more client input: let the workers finish what they hold.
                self.vision = None;
                self.explain = None;
                if !self.vision_running && !self.explain_running {
                    break;
                }
            }
        }
        self.finish(&mut records, ending, false);
    }

    /// One input. Err ends the session with that error (after what is accepted is
    /// recorded).
    fn handle(
        &mut self,
        item: Input,
        records: &mut Vec<Record>,
        ending: &mut Option<(String, Option<Error>)>,
    ) -> Result<(), (String, Error)> {
        let invalid = |seq: u64, message: String| {
            (
                format!("invalid input at client_seq {seq}"),
                Error::InvalidArgument(format!(
                    "client_seq {seq}: {message}; everything before it is recorded"
                )),
            )
        };
        match item {
            Input::Frame { seq, frame, held } => {
                self.held.push(held);
                if !frame.timestamp.is_finite() {
                    return Err(invalid(seq, "frame.timestamp must be finite".into()));
                }
                let Some(input) = frame.image else {
                    return Err(invalid(
                        seq,
                        "frame.image is required (encoded bytes or raw pixels)".into(),
                    ));
                };
                let image = input
                    .decode(self.engine.config.vision.max_image_pixels)
                    .map_err(|e| invalid(seq, format!("frame: image: {e}")))?;
                let image = Arc::new(image);
                let data = match input {
                    ImageInput::Encoded(bytes) => FrameData::Encoded(bytes),
                    // Raw frames are stored as the RGB8 they were converted to.
                    ImageInput::Raw { .. } => FrameData::Rgb8(image.as_raw().clone()),
                };
                records.push(Record::Frame {
                    client_seq: seq,
                    timestamp: frame.timestamp,
                    received_at: unix_now(),
                    width: image.width(),
                    height: image.height(),
                    data,
                });
                self.counts.frames += 1;
                self.accepted = seq;
                match (&self.vision, &self.no_vision) {
                    (Some(vision), _) => {
                        self.timeline.frame_accepted(seq, frame.timestamp);
                        if let Err(std_mpsc::TrySendError::Full(_)) =
                            vision.try_send((seq, frame.timestamp, image))
                        {
                            self.timeline.frame_not_analysed(seq);
                            self.send(skipped(
                                format!(
                                    "frame {seq} was recorded but not analysed: face analysis is {} frames behind",
                                    self.engine.limits.vision_queue_frames
                                ),
                                seq,
                                frame.timestamp,
                            ));
                        }
                    }
                    (None, reason) => self.send(skipped(
                        format!(
                            "frame {seq} was recorded but not analysed: face analysis is unavailable ({})",
                            reason.as_deref().unwrap_or("the session is ending")
                        ),
                        seq,
                        frame.timestamp,
                    )),
                }
            }
            Input::Chunk { seq, chunk, held } => {
                self.held.push(held);
                let pushed = self.analyzers.push(&chunk).map_err(|e| invalid(seq, e))?;
                records.push(Record::Chunk {
                    client_seq: seq,
                    stream_id: chunk.stream_id,
                    first_timestamp: chunk.first_timestamp,
                    first_sample_index: chunk.first_sample_index,
                    sample_count: pushed.samples,
                    samples: chunk.samples,
                    timestamps: chunk.timestamps,
                });
                self.counts.chunks += 1;
                self.accepted = seq;
                for warning in pushed.warnings {
                    self.send(Event::SignalWarning {
                        client_seq: seq,
                        warning,
                    });
                }
                for w in pushed.windows {
                    self.window(w, records);
                }
            }
            Input::Marker { seq, marker, held } => {
                self.held.push(held);
                if !marker.timestamp.is_finite() {
                    return Err(invalid(seq, "marker.timestamp must be finite".into()));
                }
                let limit = self.engine.limits.max_marker_label_bytes;
                if marker.label.is_empty() || marker.label.len() > limit {
                    return Err(invalid(
                        seq,
                        format!(
                            "marker.label must be 1 to {limit} bytes, got {}",
                            marker.label.len()
                        ),
                    ));
                }
                if !(marker.duration_s.is_finite() && marker.duration_s >= 0.0) {
                    return Err(invalid(
                        seq,
                        format!(
                            "marker.duration_s must be a finite number >= 0, got {}",
                            marker.duration_s
                        ),
                    ));
                }
                self.history
                    .push_marker(marker.timestamp, marker.duration_s, marker.label.clone());
                self.live
                    .board
                    .marker(marker.timestamp, &marker.label, marker.duration_s);
                records.push(Record::Marker {
                    client_seq: seq,
                    timestamp: marker.timestamp,
                    label: marker.label,
                    duration_s: marker.duration_s,
                });
                self.counts.markers += 1;
                self.accepted = seq;
            }
            Input::Explain { seq, request, held } => {
                self.held.push(held);
                self.accepted = seq;
                if let Some(explain) = &self.explain {
                    let _ = explain.send((seq, *request));
                }
            }
            Input::End { reason, error } => {
                if ending.is_none() {
                    *ending = Some((reason, error));
                }
            }
            Input::Faces {
                client_seq,
                timestamp,
                result,
                encoded,
            } => {
                self.counts.analysed += 1;
                metrics::counter!(crate::metrics::SESSION_FRAMES, "outcome" => "analysed")
                    .increment(1);
                self.timeline.frame_analysed(client_seq, &result);
                records.push(Record::FaceResult {
                    client_seq,
                    timestamp,
                    encoded,
                });
            }
            Input::EpisodeEnded {
                face_id,
                onset,
                offset,
                encoded,
            } => records.push(Record::ExpressionEvent {
                face_id,
                onset,
                offset,
                encoded,
            }),
            Input::FrameFailed { client_seq } => self.timeline.frame_not_analysed(client_seq),
            Input::Calibrate { reply } => {
                let _ = reply.send(self.calibrate(records));
            }
            Input::VisionDone => self.vision_running = false,
            Input::Explained { seq, encoded } => records.push(Record::Explanation {
                client_seq: seq,
                encoded,
            }),
            Input::ExplainDone => self.explain_running = false,
            Input::WorkerFailed(error) => {
                // The failed worker will send nothing more.
                self.vision_running = false;
                self.vision = None;
                return Err(("a session worker failed".into(), error));
            }
        }
        Ok(())
    }

    /// Trains the calibration on the labelled blocks so far, records it and switches to it.
    fn calibrate(&mut self, records: &mut Vec<Record>) -> Result<FusionModel, Error> {
        let model = self
            .history
            .train()
            .map_err(|e| Error::FailedPrecondition(format!("calibration: {e}")))?;
        records.push(Record::FusionModel {
            trained_at: unix_now(),
            model: serde_json::to_string(&model)
                .map_err(|e| Error::Internal(format!("cannot encode the calibration: {e}")))?,
        });
        self.timeline.calibrate(model.clone());
        tracing::info!(
            session = %self.live.session_id,
            balanced_accuracy = model.cross_validation.balanced_accuracy,
            "session calibrated"
        );
        Ok(model)
    }

    /// Fused estimates now complete (all that remain, at the end): to the client, the live
    /// view and the recording.
    fn fuse(&mut self, records: &mut Vec<Record>, end: bool) {
        let estimates = if end {
            self.timeline.finish()
        } else {
            self.timeline.advance()
        };
        for e in estimates {
            let recorded = wire::fused_estimate(&e);
            self.live.board.fused(&recorded);
            records.push(Record::FusedEstimate {
                start_time: e.start_time,
                end_time: e.end_time,
                encoded: recorded.encode_to_vec(),
            });
            self.send(Event::Fused(e.clone()));
            self.live.set_fused(e.clone());
            self.history.push_estimate(e);
        }
    }

    /// A completed feature window: to the client, the live view and the recording.
    fn window(&mut self, w: FeatureWindow, records: &mut Vec<Record>) {
        self.timeline.window(&w);
        let recorded = wire::feature_window(&w);
        self.live.board.window(&w, &recorded);
        records.push(Record::FeatureWindow {
            stream_id: w.stream_id.clone(),
            start_time: w.start_time,
            end_time: w.end_time,
            encoded: recorded.encode_to_vec(),
        });
        self.send(Event::Features(w.clone()));
        self.live.set_window(w);
    }

    /// Hands what is pending to the writer; Err when recording has failed (the writer
    /// has told the client).
    fn commit(&mut self, records: &mut Vec<Record>) -> Result<(), ()> {
        let records = std::mem::take(records);
        let held = std::mem::take(&mut self.held);
        match &self.writer {
            // Not recorded: handled is done with.
            None => Ok(()),
            Some(writer) => writer
                .jobs
                .send(WriteJob::Records {
                    records,
                    accepted: self.accepted,
                    taken_at: self.batch_taken_at,
                    held,
                })
                .map(|()| metrics::gauge!(crate::metrics::WRITER_QUEUE).increment(1.0))
                .map_err(|_| ()),
        }
    }

    /// Flushes the analyzers, records the end, waits for the writer, and answers the
    /// client (unless recording failed: the writer has answered then).
    fn finish(
        mut self,
        records: &mut Vec<Record>,
        ending: Option<(String, Option<Error>)>,
        mut recording_failed: bool,
    ) {
        let (reason, error) =
            ending.unwrap_or_else(|| ("the session's inputs closed".to_string(), None));
        self.live.clear_control();
        if !recording_failed {
            for w in self.analyzers.finish() {
                self.window(w, records);
            }
            self.fuse(records, true);
            recording_failed = self.commit(records).is_err();
        }
        if let Some(writer) = self.writer.take() {
            let recorded_reason = match &error {
                Some(e) => format!("{reason}: {}", e.message()),
                None => reason.clone(),
            };
            let _ = writer.jobs.send(WriteJob::End {
                ended_at: unix_now(),
                reason: recorded_reason,
            });
            recording_failed |= !writer.join();
        }
        // The workers have said they are done (or, after a failed recording, are told to
        // stop); their threads end now. Each catches its own panics, so a join cannot
        // carry one.
        if recording_failed {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.vision = None;
        self.explain = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // No longer live (Explain and ClockSync answer NOT_FOUND) before the client is
        // told it has ended.
        drop(self.registered);
        tracing::info!(session = %self.live.session_id, %reason, "session ended");
        if recording_failed {
            return;
        }
        let _ = self.out.send(match error {
            Some(error) => Err(error),
            None => Ok(Event::Ended(SessionEnded {
                session_id: self.live.session_id.clone(),
                frames: self.counts.frames,
                chunks: self.counts.chunks,
                markers: self.counts.markers,
                reason,
                frames_analysed: self.counts.analysed,
            })),
        });
    }
}

#[allow(clippy::too_many_arguments)] // the worker's channels and state, each used once
fn vision_worker(
    models: FaceModels,
    mut tracker: Tracker,
    mut dynamics: FaceDynamics,
    options: AnalyzeOptions,
    frames: std_mpsc::Receiver<(u64, f64, Arc<image::RgbImage>)>,
    live: Arc<LiveSession>,
    out: Outbox,
    input: mpsc::Sender<Input>,
) {
    // Episodes go to the client after the frame that settled them, and ended ones to the
    // recording; false when the session worker has gone.
    let report = |events: Vec<ExpressionEvent>| -> bool {
        for event in events {
            let sent = wire::expression_event(&event);
            live.board.expression(&sent);
            if let ExpressionEvent::Ended(episode) = &event {
                let ended = Input::EpisodeEnded {
                    face_id: episode.face_id,
                    onset: episode.onset,
                    offset: episode.offset.unwrap_or(episode.onset),
                    encoded: sent.encode_to_vec(),
                };
                if input.blocking_send(ended).is_err() {
                    return false;
                }
            }
            let _ = out.send(Ok(Event::Expression(event)));
        }
        true
    };
    let mut keyframes = Keyframes::default();
    for (seq, timestamp, image) in frames {
        let (result, episodes) = match tracker.process(&models, &image, &options) {
            Ok(mut result) => {
                let episodes = dynamics.observe(timestamp, &mut result);
                (Arc::new(result), episodes)
            }
            Err(e) => {
                let _ = out.send(Ok(skipped(
                    format!("frame {seq} was recorded but face analysis failed: {e}"),
                    seq,
                    timestamp,
                )));
                if input
                    .blocking_send(Input::FrameFailed { client_seq: seq })
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let recorded = Input::Faces {
            client_seq: seq,
            timestamp,
            result: result.clone(),
            encoded: wire::face_frame(seq, timestamp, &result).encode_to_vec(),
        };
        let recent = Arc::new(dynamics.recent_episodes());
        keyframes.observe(timestamp, &image, &result, &recent);
        live.set_frame(LatestFrame {
            timestamp,
            image,
            faces: result.clone(),
            episodes: recent,
            keyframes: Some(Arc::new(keyframes.clone())),
        });
        let _ = out.send(Ok(Event::Faces {
            client_seq: seq,
            timestamp,
            result,
        }));
        if input.blocking_send(recorded).is_err() || !report(episodes) {
            return;
        }
    }
    if !report(dynamics.finish()) {
        return;
    }
    let _ = input.blocking_send(Input::VisionDone);
}

fn explain_worker(
    engine: Arc<Engine>,
    live: Arc<LiveSession>,
    requests: std_mpsc::Receiver<(u64, explain::Request)>,
    out: Outbox,
    input: mpsc::Sender<Input>,
    cancel: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
) {
    let failed = |seq: u64, error: Error| {
        let _ = out.send(Ok(Event::Warning(SessionWarning {
            kind: SessionWarningKind::ExplainFailed,
            message: format!(
                "{}: explanation {seq}: {}",
                error.kind_name(),
                error.message()
            ),
            client_seq: seq,
            timestamp: None,
        })));
    };
    for (seq, request) in requests {
        // The same turn as Explain calls (limits.max_concurrent_explanations and the
        // queue): waited for here, on this session's own thread, and given up when the
        // session ends meanwhile.
        let turn = runtime.block_on(async {
            tokio::select! {
                turn = engine.explain_gate.admit() => Some(turn),
                () = async {
                    while !cancel.load(Ordering::Relaxed) && !out.is_closed() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                } => None,
            }
        });
        let _turn = match turn {
            None => break, // the session is ending
            Some(Err(error)) => {
                failed(seq, error);
                continue;
            }
            Some(Ok(turn)) => turn,
        };
        // A failure (or a bug) in one explanation ends that explanation, not the session.
        let prepared = catch_panic("explanation", || {
            engine.explainer.prepare(&request, || live.moment())
        });
        let prepared = match prepared {
            Ok(p) => p,
            Err(error) => {
                failed(seq, error);
                continue;
            }
        };
        let result = explain::stream_into(
            prepared,
            &|event| match event {
                Ok(event) => out.send(Ok(Event::Explain {
                    client_seq: seq,
                    event,
                })),
                Err(error) => {
                    failed(seq, error);
                    true
                }
            },
            &|| out.is_closed() || cancel.load(Ordering::Relaxed),
        );
        if let Some(result) = result
            && input
                .blocking_send(Input::Explained {
                    seq,
                    encoded: wire::explanation(&result).encode_to_vec(),
                })
                .is_err()
        {
            return;
        }
    }
    let _ = input.blocking_send(Input::ExplainDone);
}
