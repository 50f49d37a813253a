//! The live session, transport-free: a client's stream of frames, signal chunks, markers
//! and explanation requests in; face results, feature windows, acknowledgements of what is
//! recorded, warnings and explanations out.
//!
//! Threads of one session, data flowing one way:
//! - the receive task (async, `protocol.rs`) checks the protocol (increasing client_seq,
//!   one config, no empty message) and passes each message on; when the session's worker
//!   lags, it stops reading, so the transport's flow control slows the client instead of
//!   the server buffering without bound;
//! - the session worker (`worker.rs`) owns the signal analyzers. It checks each message's
//!   content (decodes frames, pushes chunks), hands frames to the vision worker and
//!   everything accepted to the writer, and never waits for a commit;
//! - the writer (`writer.rs`) owns the recorder: it commits whatever has queued up in one
//!   SQLite transaction and acknowledges after each commit;
//! - the vision worker owns the session's face tracker; frames wait for it in a short
//!   queue, and a frame arriving at a full queue is recorded but skipped, with a warning;
//! - the explain worker answers the session's explanation requests one at a time from its
//!   latest moment.
//!
//! A message is either accepted (recorded, then acknowledged) or rejected with
//! [`Error::InvalidArgument`], which ends the session after everything before it is
//! recorded. A worker that panics ends the session with [`Error::Internal`]; the stream
//! never just stops.

pub mod board;
mod outbox;
mod protocol;
mod registry;
mod worker;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;

pub use registry::{ClockReport, LatestFrame, LiveSession, Registry, Snapshot, check_session_id};

use crate::engine::Engine;
use crate::error::Error;
use crate::explain::{self, ExplainEvent};
use crate::signals::analyzers::SignalChunk;
use crate::signals::features::{FeatureWindow, StreamWarning};
use crate::signals::stream::{AnalysisConfig, StreamSpec};
use crate::vision::image::ImageInput;
use crate::vision::{FrameResult, FrameSettings};

/// A session's set-up, from its first message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionConfig {
    /// None: the server assigns a UUID.
    pub session_id: Option<String>,
    pub participant: String,
    pub streams: Vec<StreamSpec>,
    pub analysis: AnalysisConfig,
    pub frame: FrameSettings,
    /// Detector every this many frames while tracking; None = the server's default.
    pub detect_every: Option<u32>,
    /// Record the session (false: nothing is stored and no acks are sent).
    pub record: bool,
    pub metadata: BTreeMap<String, String>,
}

/// A webcam frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Capture time, client clock, s.
    pub timestamp: f64,
    /// None: the client sent none (refused).
    pub image: Option<ImageInput>,
}

/// A stimulus or event marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Client clock, s.
    pub timestamp: f64,
    pub label: String,
    /// s; 0 for an instant.
    pub duration_s: f64,
}

/// What a client message after the first carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// A configuration: only the first message may carry one.
    Config,
    Frame(Frame),
    Chunk(SignalChunk),
    Marker(Marker),
    /// Explain the session's latest moment (the request's own source is ignored).
    Explain(Box<explain::Request>),
    End,
}

/// Why the client's side of a stream stopped with an error.
#[derive(Debug)]
pub enum InboundError {
    /// The client sent what cannot be read (a message that does not decode, or one over
    /// the size limit): the session ends with this error, the recording says why.
    Refused(Error),
    /// The connection failed (reset, cancelled): there is no one to answer; the session
    /// ends and its recording is closed.
    Broken(String),
}

/// One client message: its sequence number and what it carries (None: nothing, which is
/// refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub client_seq: u64,
    pub message: Option<ClientMessage>,
}

/// What a session warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionWarningKind {
    /// A frame was recorded but not analysed.
    FrameSkipped,
    /// An explanation request failed; the session goes on.
    ExplainFailed,
}

/// A problem with one of the session's frames or explanations; the session goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionWarning {
    pub kind: SessionWarningKind,
    pub message: String,
    /// The frame's or request's client_seq.
    pub client_seq: u64,
    /// The frame's time, client clock, s.
    pub timestamp: Option<f64>,
}

/// How a session that ended normally ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEnded {
    pub session_id: String,
    pub frames: u64,
    pub chunks: u64,
    pub markers: u64,
    pub reason: String,
    pub frames_analysed: u64,
}

/// What the session sends its client, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// First: the session is set up.
    Started {
        session_id: String,
        /// Server clock, s.
        server_time: f64,
        recording: bool,
    },
    /// A frame's faces.
    Faces {
        client_seq: u64,
        timestamp: f64,
        result: Arc<FrameResult>,
    },
    /// An expression episode started or ended.
    Expression(crate::vision::dynamics::ExpressionEvent),
    /// A completed feature window.
    Features(FeatureWindow),
    /// The fused estimate of one hop.
    Fused(crate::fusion::FusedEstimate),
    /// A problem with a chunk's samples.
    SignalWarning {
        client_seq: u64,
        warning: StreamWarning,
    },
    /// A problem with a frame or an explanation.
    Warning(SessionWarning),
    /// Every message up to this client_seq is recorded.
    Ack(u64),
    /// An explanation's token or result, for the request with this client_seq.
    Explain {
        client_seq: u64,
        event: ExplainEvent,
    },
    /// Last, for a session that ended normally.
    Ended(SessionEnded),
}

/// The session's answers: events, then at most one error, which ends it.
pub type Events = mpsc::Receiver<Result<Event, Error>>;

/// Sets a session up from its first message and starts its workers; the session then
/// reads `inbound` (every message after the first, or a transport error's text) until it
/// ends. Errors before it starts: a bad configuration, a session id that is live or
/// recorded, a recording that cannot be made.
pub async fn open<S>(
    engine: Arc<Engine>,
    first_seq: u64,
    config: SessionConfig,
    owner: Option<String>,
    inbound: S,
) -> Result<Events, Error>
where
    S: Stream<Item = Result<Incoming, InboundError>> + Unpin + Send + 'static,
{
    if first_seq == 0 {
        return Err(Error::InvalidArgument(
            "client_seq must start at 1 or more (acknowledgements refer to it)".into(),
        ));
    }
    let setup = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || worker::Setup::new(&engine, config, owner))
            .await
            .map_err(|e| Error::Internal(format!("session set-up failed: {e}")))??
    };
    let (out, events) = mpsc::channel(256);
    let out = outbox::Outbox::new(
        out,
        crate::config::duration(engine.limits.client_read_timeout_s),
    )
    .showing_on(setup.live.clone());
    let (input, inputs) = mpsc::channel(worker::MAX_BATCH);
    let session_id = setup.session_id().to_string();
    let recording = setup.recording();
    // The channel is empty: this cannot wait.
    let _ = out.send(Ok(Event::Started {
        session_id: session_id.clone(),
        server_time: crate::engine::unix_now(),
        recording,
    }));
    tracing::info!(session = %session_id, recording, "session started");
    let closing = engine.sessions.closing();
    let idle = engine.limits.session_idle_timeout_s;
    let queue_bytes = protocol::QueueBytes::new(engine.limits.max_session_queue_bytes);
    worker::start(engine, setup, first_seq, out, input.clone(), inputs)?;
    tokio::spawn(protocol::receive(
        inbound,
        input,
        first_seq,
        closing,
        idle,
        queue_bytes,
    ));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::models::loaded::ModelSet;
    use crate::vision::FaceModels;
    use crate::vision::backend::{Inference, InferenceError};
    use tokio_stream::StreamExt as _;

    /// A face detector with a bug: it panics.
    struct PanickingDetector;

    impl Inference for PanickingDetector {
        fn id(&self) -> &str {
            "panicking-detector"
        }
        fn run(
            &self,
            _input: ndarray::ArrayD<f32>,
        ) -> Result<Vec<(String, ndarray::ArrayD<f32>)>, InferenceError> {
            panic!("index 7 out of range for an anchor list of length 4");
        }
    }

    fn engine_with_a_panicking_detector() -> Arc<Engine> {
        let config = Config::default();
        let manifest = crate::models::Manifest::load(&config.models.dir, &config.models.cache_dir)
            .expect("the vendored manifest");
        let models = ModelSet {
            runtime: Err(crate::onnx::OnnxError::NotFound {
                looked: "nowhere (a unit test)".into(),
            }),
            models: Vec::new(),
        };
        let explainer = crate::explain::Explainer::new(&config, &manifest, &models);
        let mut engine = Engine::from_parts(
            config,
            models,
            explainer,
            Err("no database in this test".into()),
            None,
        );
        engine.face_models = Some(FaceModels {
            detector: Arc::new(PanickingDetector),
            mesh: None,
            blendshapes: None,
            expression: None,
        });
        Arc::new(engine)
    }

    fn png() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(8, 8, image::Rgb([90, 120, 150]))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    }

    /// A worker that panics ends its session with INTERNAL and the panic's message: the
    /// client is never left with a stream that just stops, or one that ends as if normal.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_worker_ends_the_session_with_an_internal_error() {
        let engine = engine_with_a_panicking_detector();
        let inbound = tokio_stream::iter(vec![Ok::<_, InboundError>(Incoming {
            client_seq: 2,
            message: Some(ClientMessage::Frame(Frame {
                timestamp: 1.0,
                image: Some(ImageInput::Encoded(png())),
            })),
        })])
        .chain(tokio_stream::pending());
        let config = SessionConfig {
            record: false,
            ..Default::default()
        };
        let mut events = open(engine.clone(), 1, config, None, inbound)
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(event) =
            tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
                .await
                .expect("the session ends within 30 s")
        {
            seen.push(event);
        }
        assert!(
            matches!(seen.first(), Some(Ok(Event::Started { .. }))),
            "{seen:?}"
        );
        match seen.last() {
            Some(Err(Error::Internal(message))) => {
                assert!(message.contains("face analysis"), "{message}");
                assert!(message.contains("index 7 out of range"), "{message}");
            }
            other => panic!("expected the session to end with an internal error, got {other:?}"),
        }
        assert!(!seen.iter().any(|e| matches!(e, Ok(Event::Ended(_)))));
        // The session is no longer live.
        assert!(engine.sessions.is_empty());
    }
}
