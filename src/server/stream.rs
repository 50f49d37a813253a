//! `Affect.Stream`: the live session.
//!
//! Threads of one session, data flowing one way:
//! - the receive task (async) checks the protocol (config first, increasing client_seq)
//!   and passes each message on; when the session's worker lags, it stops reading, so
//!   HTTP/2 flow control slows the client instead of the server buffering without bound;
//! - the session worker owns the signal analyzers. It checks each message's content
//!   (decodes frames, pushes chunks), hands frames to the vision worker and everything
//!   accepted to the writer, and never waits for a commit;
//! - the writer owns the recorder: it commits whatever has queued up in one SQLite
//!   transaction (a commit with synchronous=FULL waits for the disk, ~10-30 ms here), and
//!   acknowledges after each commit;
//! - the vision worker owns the session's face tracker; frames wait for it in a queue of
//!   two, and a frame arriving at a full queue is recorded but skipped, with a warning;
//! - the explain worker answers the session's ExplainRequests one at a time from its
//!   latest moment.
//!
//! A message is either accepted (recorded, then acknowledged) or rejected with
//! INVALID_ARGUMENT, which ends the session after everything before it is recorded.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::explain;
use super::info::unix_now;
use super::state::ServerState;
use super::{convert, signals};
use crate::proto::{self, stream_request, stream_response};
use crate::session::{LatestFrame, LiveSession, check_session_id};
use crate::store::{FrameData, Record, Recorder, StoreError};
use crate::vision::{AnalyzeOptions, FaceModels, Tracker};

/// Frames that may wait for the tracker; one more is skipped.
const VISION_QUEUE: usize = 2;
/// Messages committed in one transaction at most.
const MAX_BATCH: usize = 256;
/// Longest marker label, bytes.
const MAX_LABEL_BYTES: usize = 1024;
/// Streams one session may describe.
const MAX_STREAMS: usize = 64;

pub type Responses = mpsc::Receiver<Result<proto::StreamResponse, Status>>;

/// What the session worker receives.
enum Input {
    Frame {
        seq: u64,
        frame: proto::Frame,
    },
    Chunk {
        seq: u64,
        chunk: proto::SignalChunk,
    },
    Marker {
        seq: u64,
        marker: proto::Marker,
    },
    Explain {
        seq: u64,
        request: Box<proto::ExplainRequest>,
    },
    /// The receive side ended: by EndSession, the client closing its side, a transport
    /// error, or a protocol error (`error` then ends the stream).
    End {
        reason: String,
        error: Option<Status>,
    },
    /// From the vision worker.
    /// A frame's face result, encoded for the recording (the client has it already).
    Faces {
        client_seq: u64,
        timestamp: f64,
        encoded: Vec<u8>,
    },
    VisionDone,
    /// From the explain worker.
    Explained {
        seq: u64,
        result: proto::ExplainResult,
    },
    ExplainDone,
}

fn response(message: stream_response::Message) -> proto::StreamResponse {
    proto::StreamResponse {
        client_seq: 0,
        message: Some(message),
    }
}

fn warning(
    kind: proto::WarningKind,
    message: String,
    seq: u64,
    timestamp: f64,
) -> proto::StreamResponse {
    response(stream_response::Message::Warning(proto::Warning {
        kind: kind as i32,
        message,
        stream_id: String::new(),
        timestamp,
        client_seq: seq,
    }))
}

/// Reads the first message, sets the session up and starts its workers.
pub async fn open(
    state: Arc<ServerState>,
    mut inbound: Streaming<proto::StreamRequest>,
) -> Result<Responses, Status> {
    let first = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("the stream ended before its config message"))?;
    let Some(stream_request::Message::Config(config)) = first.message else {
        return Err(Status::invalid_argument(
            "the first message of a stream must carry `config` (SessionConfig)",
        ));
    };
    if first.client_seq == 0 {
        return Err(Status::invalid_argument(
            "client_seq must start at 1 or more (acknowledgements refer to it)",
        ));
    }
    let first_seq = first.client_seq;
    let setup = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || Setup::new(&state, config))
            .await
            .map_err(|e| Status::internal(format!("session set-up failed: {e}")))??
    };
    let (out, responses) = mpsc::channel(256);
    let (input, inputs) = mpsc::channel(MAX_BATCH);
    let session_id = setup.live.session_id.clone();
    let _ = out
        .send(Ok(response(stream_response::Message::Started(
            proto::SessionStarted {
                session_id: session_id.clone(),
                server_time: unix_now(),
                recording: setup.recorder.is_some(),
            },
        ))))
        .await;
    tracing::info!(
        session = %session_id,
        recording = setup.recorder.is_some(),
        "session started"
    );
    let worker = Worker::start(state.clone(), setup, first_seq, out, input.clone());
    std::thread::Builder::new()
        .name(format!("session-{session_id}"))
        .spawn(move || worker.run(inputs))
        .map_err(|e| Status::internal(format!("cannot start the session worker: {e}")))?;
    tokio::spawn(receive(inbound, input, first_seq, state.sessions.closing()));
    Ok(responses)
}

/// The receive task: protocol checks, then on to the worker.
async fn receive(
    mut inbound: Streaming<proto::StreamRequest>,
    input: mpsc::Sender<Input>,
    mut last_seq: u64,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let end = loop {
        let next = tokio::select! {
            next = inbound.message() => next,
            _ = closing.wait_for(|closing| *closing) => {
                break Input::End {
                    reason: "the server is shutting down".into(),
                    error: None,
                };
            }
        };
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) => {
                break Input::End {
                    reason: "the client closed its side of the stream".into(),
                    error: None,
                };
            }
            Err(status) => {
                break Input::End {
                    reason: format!("the client's stream failed: {}", status.message()),
                    error: None,
                };
            }
        };
        let seq = request.client_seq;
        if seq <= last_seq {
            break Input::End {
                reason: format!("client_seq {seq} after {last_seq}"),
                error: Some(Status::invalid_argument(format!(
                    "client_seq must increase: got {seq} after {last_seq}; nothing from {seq} on was recorded"
                ))),
            };
        }
        last_seq = seq;
        let message = match request.message {
            None => {
                break Input::End {
                    reason: format!("empty message at client_seq {seq}"),
                    error: Some(Status::invalid_argument(format!(
                        "client_seq {seq}: the message is empty (set frame, chunk, marker, explain or end)"
                    ))),
                };
            }
            Some(stream_request::Message::Config(_)) => {
                break Input::End {
                    reason: format!("a second config at client_seq {seq}"),
                    error: Some(Status::invalid_argument(format!(
                        "client_seq {seq}: config may only be the first message"
                    ))),
                };
            }
            Some(stream_request::Message::End(_)) => {
                break Input::End {
                    reason: "EndSession received".into(),
                    error: None,
                };
            }
            Some(stream_request::Message::Frame(frame)) => Input::Frame { seq, frame },
            Some(stream_request::Message::Chunk(chunk)) => Input::Chunk { seq, chunk },
            Some(stream_request::Message::Marker(marker)) => Input::Marker { seq, marker },
            Some(stream_request::Message::Explain(request)) => Input::Explain {
                seq,
                request: Box::new(request),
            },
        };
        if input.send(message).await.is_err() {
            // The worker stopped (a rejected message or a failed commit); it has answered.
            return;
        }
    };
    let _ = input.send(end).await;
}

/// Everything checked and opened before the session starts.
struct Setup {
    live: Arc<LiveSession>,
    recorder: Option<Recorder>,
    analyzers: signals::Analyzers,
    options: AnalyzeOptions,
    detect_every: u32,
    registered: Registered,
}

/// Removes the session from the registry when dropped, however the session ends.
struct Registered {
    state: Arc<ServerState>,
    session_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.state.sessions.remove(&self.session_id);
    }
}

impl Setup {
    fn new(state: &Arc<ServerState>, config: proto::SessionConfig) -> Result<Setup, Status> {
        let session_id = if config.session_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            check_session_id(&config.session_id).map_err(Status::invalid_argument)?;
            config.session_id.clone()
        };
        if config.streams.len() > MAX_STREAMS {
            return Err(Status::invalid_argument(format!(
                "config.streams: at most {MAX_STREAMS} streams, got {}",
                config.streams.len()
            )));
        }
        let analysis = signals::analysis_config(config.signal_config.as_ref())?;
        let analyzers = signals::Analyzers::new(&config.streams, &analysis, "config.streams")?;
        let options =
            convert::analyze_options(config.frame_options.as_ref(), &state.config.vision)?;
        let detect_every = if config.detect_every_n_frames == 0 {
            state.config.vision.detect_every_n_frames
        } else {
            config.detect_every_n_frames
        };
        let recording = !config.no_record;
        let live = state
            .sessions
            .insert(LiveSession::new(session_id.clone()))
            .ok_or_else(|| {
                Status::already_exists(format!(
                    "session `{session_id}` is already live on this server; choose another session_id (or leave it empty)"
                ))
            })?;
        let registered = Registered {
            state: state.clone(),
            session_id: session_id.clone(),
        };
        let recorder = if recording {
            let store = state.store.as_ref().map_err(|reason| {
                Status::failed_precondition(format!(
                    "this session cannot be recorded: {reason}; fix the database, or set no_record to run it unrecorded"
                ))
            })?;
            let mut stored = config.clone();
            stored.session_id = session_id.clone();
            Some(
                store
                    .begin(
                        &session_id,
                        &config.participant,
                        unix_now(),
                        &stored.encode_to_vec(),
                    )
                    .map_err(|e| match e {
                        StoreError::Exists(_) => Status::already_exists(e.to_string()),
                        e => Status::internal(e.to_string()),
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
            registered,
        })
    }
}

struct Counts {
    frames: u64,
    chunks: u64,
    markers: u64,
    analysed: u64,
}

struct Worker {
    state: Arc<ServerState>,
    live: Arc<LiveSession>,
    writer: Option<Writer>,
    analyzers: signals::Analyzers,
    out: mpsc::Sender<Result<proto::StreamResponse, Status>>,
    vision: Option<std_mpsc::SyncSender<(u64, f64, Arc<image::RgbImage>)>>,
    explain: Option<std_mpsc::Sender<(u64, proto::ExplainRequest)>>,
    vision_running: bool,
    explain_running: bool,
    /// Why face analysis cannot run (no detector), when it cannot.
    no_vision: Option<String>,
    counts: Counts,
    /// The highest client_seq accepted so far.
    accepted: u64,
    registered: Registered,
}

impl Worker {
    fn start(
        state: Arc<ServerState>,
        setup: Setup,
        first_seq: u64,
        out: mpsc::Sender<Result<proto::StreamResponse, Status>>,
        input: mpsc::Sender<Input>,
    ) -> Worker {
        let (vision, no_vision) = match state.face_models.clone() {
            Some(models) => {
                let (tx, rx) = std_mpsc::sync_channel(VISION_QUEUE);
                let tracker = Tracker::new(setup.detect_every);
                let (live, out, input, options) = (
                    setup.live.clone(),
                    out.clone(),
                    input.clone(),
                    setup.options,
                );
                std::thread::spawn(move || {
                    vision_worker(models, tracker, options, rx, live, out, input)
                });
                (Some(tx), None)
            }
            None => {
                let reason = match state.models.capabilities().remove("face_detection") {
                    Some(Err(reason)) => reason,
                    _ => "the face models are not loaded".to_string(),
                };
                (None, Some(reason))
            }
        };
        let (explain_tx, explain_rx) = std_mpsc::channel();
        {
            let (state, live, out, input) = (state.clone(), setup.live.clone(), out.clone(), input);
            std::thread::spawn(move || explain_worker(state, live, explain_rx, out, input));
        }
        Worker {
            state,
            live: setup.live,
            writer: setup
                .recorder
                .map(|recorder| Writer::start(recorder, out.clone())),
            analyzers: setup.analyzers,
            out,
            vision_running: vision.is_some(),
            vision,
            explain: Some(explain_tx),
            explain_running: true,
            no_vision,
            counts: Counts {
                frames: 0,
                chunks: 0,
                markers: 0,
                analysed: 0,
            },
            // The config message itself is accepted (and recorded as the session row).
            accepted: first_seq,
            registered: setup.registered,
        }
    }

    /// Sends to the client; a client that has gone does not stop the recording.
    fn send(&self, message: proto::StreamResponse) {
        let _ = self.out.blocking_send(Ok(message));
    }

    fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut ending: Option<(String, Option<Status>)> = None;
        let mut records = Vec::new();
        // The config message is recorded by the session row; acknowledge it.
        if self.commit(&mut records).is_err() {
            return self.finish(&mut records, Some(("recording failed".into(), None)), true);
        }
        loop {
            let Some(first) = inputs.blocking_recv() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inputs.try_recv() {
                    Ok(item) => batch.push(item),
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
                if let Err((reason, status)) = self.handle(item, &mut records, &mut ending) {
                    ending = Some((reason, Some(status)));
                }
            }
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

    /// One input. Err ends the session with that status (after what is accepted is
    /// recorded).
    fn handle(
        &mut self,
        item: Input,
        records: &mut Vec<Record>,
        ending: &mut Option<(String, Option<Status>)>,
    ) -> Result<(), (String, Status)> {
        let invalid = |seq: u64, message: String| {
            (
                format!("invalid input at client_seq {seq}"),
                Status::invalid_argument(format!(
                    "client_seq {seq}: {message}; everything before it is recorded"
                )),
            )
        };
        match item {
            Input::Frame { seq, frame } => {
                if !frame.timestamp.is_finite() {
                    return Err(invalid(seq, "frame.timestamp must be finite".into()));
                }
                let image = convert::decode_image(
                    frame.image.as_ref(),
                    self.state.config.vision.max_image_pixels,
                )
                .map_err(|s| invalid(seq, format!("frame: {}", s.message())))?;
                let image = Arc::new(image);
                let data = match frame.image.and_then(|i| i.data) {
                    Some(proto::image_input::Data::Encoded(bytes)) => FrameData::Encoded(bytes),
                    // Raw frames are stored as the RGB8 they were converted to.
                    _ => FrameData::Rgb8(image.as_raw().clone()),
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
                        if let Err(std_mpsc::TrySendError::Full(_)) =
                            vision.try_send((seq, frame.timestamp, image))
                        {
                            self.send(warning(
                                proto::WarningKind::FrameSkipped,
                                format!(
                                    "frame {seq} was recorded but not analysed: face analysis is {VISION_QUEUE} frames behind"
                                ),
                                seq,
                                frame.timestamp,
                            ));
                        }
                    }
                    (None, reason) => self.send(warning(
                        proto::WarningKind::FrameSkipped,
                        format!(
                            "frame {seq} was recorded but not analysed: face analysis is unavailable ({})",
                            reason.as_deref().unwrap_or("the session is ending")
                        ),
                        seq,
                        frame.timestamp,
                    )),
                }
            }
            Input::Chunk { seq, chunk } => {
                let pushed = self.analyzers.push(&chunk).map_err(|e| invalid(seq, e))?;
                records.push(Record::Chunk {
                    client_seq: seq,
                    stream_id: chunk.stream_id.clone(),
                    first_timestamp: chunk.first_timestamp,
                    first_sample_index: (chunk.first_sample_index > 0)
                        .then_some(chunk.first_sample_index),
                    sample_count: pushed.samples,
                    samples: chunk.samples,
                    timestamps: chunk.timestamps,
                });
                self.counts.chunks += 1;
                self.accepted = seq;
                for w in pushed.warnings {
                    self.send(response(stream_response::Message::Warning(
                        signals::warning(w, seq),
                    )));
                }
                for w in pushed.windows {
                    self.window(w, records);
                }
            }
            Input::Marker { seq, marker } => {
                if !marker.timestamp.is_finite() {
                    return Err(invalid(seq, "marker.timestamp must be finite".into()));
                }
                if marker.label.is_empty() || marker.label.len() > MAX_LABEL_BYTES {
                    return Err(invalid(
                        seq,
                        format!(
                            "marker.label must be 1 to {MAX_LABEL_BYTES} bytes, got {}",
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
                records.push(Record::Marker {
                    client_seq: seq,
                    timestamp: marker.timestamp,
                    label: marker.label,
                    duration_s: marker.duration_s,
                });
                self.counts.markers += 1;
                self.accepted = seq;
            }
            Input::Explain { seq, request } => {
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
                encoded,
            } => {
                self.counts.analysed += 1;
                records.push(Record::FaceResult {
                    client_seq,
                    timestamp,
                    encoded,
                });
            }
            Input::VisionDone => self.vision_running = false,
            Input::Explained { seq, result } => records.push(Record::Explanation {
                client_seq: seq,
                encoded: result.encode_to_vec(),
            }),
            Input::ExplainDone => self.explain_running = false,
        }
        Ok(())
    }

    /// A completed feature window: to the client, the live view and the recording.
    fn window(&mut self, w: crate::signals::stream::FeatureWindow, records: &mut Vec<Record>) {
        let message = signals::feature_window(&w);
        records.push(Record::FeatureWindow {
            stream_id: w.stream_id.clone(),
            start_time: w.start_time,
            end_time: w.end_time,
            encoded: message.encode_to_vec(),
        });
        self.live.set_window(w);
        self.send(response(stream_response::Message::Features(message)));
    }

    /// Hands what is pending to the writer; Err when recording has failed (the writer
    /// has told the client).
    fn commit(&mut self, records: &mut Vec<Record>) -> Result<(), ()> {
        let records = std::mem::take(records);
        match &self.writer {
            None => Ok(()),
            Some(writer) => writer
                .jobs
                .send(WriteJob::Records {
                    records,
                    accepted: self.accepted,
                })
                .map_err(|_| ()),
        }
    }

    /// Flushes the analyzers, records the end, waits for the writer, and answers the
    /// client (unless recording failed: the writer has answered then).
    fn finish(
        mut self,
        records: &mut Vec<Record>,
        ending: Option<(String, Option<Status>)>,
        mut recording_failed: bool,
    ) {
        let (reason, error) =
            ending.unwrap_or_else(|| ("the session's inputs closed".to_string(), None));
        if !recording_failed {
            for w in self.analyzers.finish() {
                self.window(w, records);
            }
            recording_failed = self.commit(records).is_err();
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.jobs.send(WriteJob::End {
                ended_at: unix_now(),
                reason: reason.clone(),
            });
            drop(writer.jobs);
            recording_failed |= writer.thread.join().map_or(true, |ok| !ok);
        }
        // No longer live (Explain and ClockSync answer NOT_FOUND) before the client is
        // told it has ended.
        drop(self.registered);
        tracing::info!(session = %self.live.session_id, %reason, "session ended");
        if recording_failed {
            return;
        }
        match error {
            Some(status) => {
                let _ = self.out.blocking_send(Err(status));
            }
            None => {
                let _ = self
                    .out
                    .blocking_send(Ok(response(stream_response::Message::Ended(
                        proto::SessionEnded {
                            session_id: self.live.session_id.clone(),
                            frames: self.counts.frames,
                            chunks: self.counts.chunks,
                            markers: self.counts.markers,
                            reason,
                            frames_analysed: self.counts.analysed,
                        },
                    ))));
            }
        }
    }
}

enum WriteJob {
    /// Records to commit; every client message up to `accepted` is among them or earlier.
    Records { records: Vec<Record>, accepted: u64 },
    /// Marks the recording ended (after everything before it is committed).
    End { ended_at: f64, reason: String },
}

/// The session's recording thread.
struct Writer {
    jobs: std_mpsc::Sender<WriteJob>,
    /// Answers whether everything was recorded.
    thread: std::thread::JoinHandle<bool>,
}

impl Writer {
    fn start(
        mut recorder: Recorder,
        out: mpsc::Sender<Result<proto::StreamResponse, Status>>,
    ) -> Writer {
        let (jobs, queue) = std_mpsc::channel::<WriteJob>();
        let thread = std::thread::spawn(move || {
            let mut acked = 0u64;
            while let Ok(first) = queue.recv() {
                // Everything queued meanwhile goes into the same transaction.
                let mut records = Vec::new();
                let mut accepted = acked;
                let mut end = None;
                for job in std::iter::once(first).chain(queue.try_iter()) {
                    match job {
                        WriteJob::Records {
                            records: more,
                            accepted: upto,
                        } => {
                            records.extend(more);
                            accepted = accepted.max(upto);
                        }
                        WriteJob::End { ended_at, reason } => end = Some((ended_at, reason)),
                    }
                }
                if let Err(e) = recorder.write(&records) {
                    tracing::error!("recording failed: {e}");
                    let _ = out.blocking_send(Err(Status::internal(format!(
                        "recording failed: {e}; messages up to client_seq {acked} are recorded"
                    ))));
                    return false;
                }
                if accepted > acked {
                    acked = accepted;
                    let _ = out.blocking_send(Ok(response(stream_response::Message::Ack(
                        proto::Ack { client_seq: acked },
                    ))));
                }
                if let Some((ended_at, reason)) = end {
                    if let Err(e) = recorder.end(ended_at, &reason) {
                        tracing::error!("cannot mark the recording ended: {e}");
                    }
                    return true;
                }
            }
            true
        });
        Writer { jobs, thread }
    }
}

fn vision_worker(
    models: FaceModels,
    mut tracker: Tracker,
    options: AnalyzeOptions,
    frames: std_mpsc::Receiver<(u64, f64, Arc<image::RgbImage>)>,
    live: Arc<LiveSession>,
    out: mpsc::Sender<Result<proto::StreamResponse, Status>>,
    input: mpsc::Sender<Input>,
) {
    for (seq, timestamp, image) in frames {
        let result = match tracker.process(&models, &image, &options) {
            Ok(result) => result,
            Err(e) => {
                let _ = out.blocking_send(Ok(warning(
                    proto::WarningKind::FrameSkipped,
                    format!("frame {seq} was recorded but face analysis failed: {e}"),
                    seq,
                    timestamp,
                )));
                continue;
            }
        };
        let message = proto::FaceFrameResult {
            client_seq: seq,
            timestamp,
            faces: result.faces.iter().map(convert::face).collect(),
            timings: result
                .timings
                .iter()
                .map(|(stage, ms)| proto::StageTiming {
                    stage: (*stage).into(),
                    ms: *ms,
                })
                .collect(),
        };
        live.set_frame(LatestFrame {
            timestamp,
            image,
            faces: Arc::new(result),
        });
        let recorded = Input::Faces {
            client_seq: seq,
            timestamp,
            encoded: message.encode_to_vec(),
        };
        let _ = out.blocking_send(Ok(response(stream_response::Message::Faces(message))));
        if input.blocking_send(recorded).is_err() {
            return;
        }
    }
    let _ = input.blocking_send(Input::VisionDone);
}

fn explain_worker(
    state: Arc<ServerState>,
    live: Arc<LiveSession>,
    requests: std_mpsc::Receiver<(u64, proto::ExplainRequest)>,
    out: mpsc::Sender<Result<proto::StreamResponse, Status>>,
    input: mpsc::Sender<Input>,
) {
    for (seq, request) in requests {
        let failed = |status: Status| {
            let _ = out.blocking_send(Ok(warning(
                proto::WarningKind::ExplainFailed,
                format!(
                    "{:?}: explanation {seq}: {}",
                    status.code(),
                    status.message()
                ),
                seq,
                0.0,
            )));
        };
        let prepared = explain::prepare_from(&state, &request, |_| {
            explain::moment_of(&live.snapshot(), &live.session_id)
        });
        let prepared = match prepared {
            Ok(p) => p,
            Err(status) => {
                failed(status);
                continue;
            }
        };
        let result = explain::run_into(
            prepared,
            &|event| match event {
                Ok(event) => out
                    .blocking_send(Ok(proto::StreamResponse {
                        client_seq: seq,
                        message: Some(stream_response::Message::Explain(event)),
                    }))
                    .is_ok(),
                Err(status) => {
                    failed(status);
                    true
                }
            },
            &|| out.is_closed(),
        );
        if let Some(result) = result
            && input
                .blocking_send(Input::Explained { seq, result })
                .is_err()
        {
            return;
        }
    }
    let _ = input.blocking_send(Input::ExplainDone);
}
