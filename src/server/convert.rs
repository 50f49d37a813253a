//! Wire types <-> core types. Requests become the core's domain types here (nothing is
//! decided here: a value out of range is passed on for the core to refuse, except where
//! the wire cannot express the domain value, such as an unknown enum number); results
//! become wire messages through `formats::wire`, and core errors become `Status`es.

use tonic::Status;

use crate::error::Error;
use crate::explain::{self, ExplainEvent};
use crate::formats::{from_wire, wire};
use crate::proto;
use crate::session::{self, Event, SessionWarningKind};
use crate::signals::stream::{AnalysisConfig, StreamSpec};
use crate::store::{RecordingState, SessionRow};
use crate::vision::image::{ImageInput, PixelLayout};

/// The gRPC status of a core error.
pub fn status(e: Error) -> Status {
    crate::metrics::rejected_by(e.message());
    match e {
        Error::InvalidArgument(m) => Status::invalid_argument(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::AlreadyExists(m) => Status::already_exists(m),
        Error::FailedPrecondition(m) => Status::failed_precondition(m),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::Unavailable(m) => Status::unavailable(m),
        Error::DeadlineExceeded(m) => Status::deadline_exceeded(m),
        Error::Unimplemented(m) => Status::unimplemented(m),
        Error::Unauthenticated(m) => Status::unauthenticated(m),
        Error::PermissionDenied(m) => Status::permission_denied(m),
        Error::Internal(m) => Status::internal(m),
    }
}

/// The image of a request; None when it has none.
pub fn image_input(input: Option<proto::ImageInput>) -> Option<ImageInput> {
    match input.and_then(|i| i.data)? {
        proto::image_input::Data::Encoded(bytes) => Some(ImageInput::Encoded(bytes)),
        proto::image_input::Data::Raw(raw) => Some(ImageInput::Raw {
            layout: match proto::PixelFormat::try_from(raw.format) {
                Ok(proto::PixelFormat::Rgb8) => Some(PixelLayout::Rgb8),
                Ok(proto::PixelFormat::Bgr8) => Some(PixelLayout::Bgr8),
                Ok(proto::PixelFormat::Rgba8) => Some(PixelLayout::Rgba8),
                Ok(proto::PixelFormat::Bgra8) => Some(PixelLayout::Bgra8),
                Ok(proto::PixelFormat::Gray8) => Some(PixelLayout::Gray8),
                _ => None,
            },
            pixels: raw.pixels,
            width: raw.width,
            height: raw.height,
            stride: raw.stride_bytes as usize,
        }),
    }
}

pub use crate::formats::from_wire::{frame_settings, signal_chunk};

pub fn stream_specs(streams: &[proto::StreamInfo]) -> Result<Vec<StreamSpec>, Status> {
    from_wire::stream_specs(streams).map_err(Status::invalid_argument)
}

pub fn analysis_config(c: Option<&proto::SignalConfig>) -> Result<AnalysisConfig, Status> {
    from_wire::analysis_config(c).map_err(Status::invalid_argument)
}

pub fn session_config(c: proto::SessionConfig) -> Result<session::SessionConfig, Status> {
    from_wire::session_config(c).map_err(Status::invalid_argument)
}

/// An explanation request and its source (None: the request named none).
pub fn explain_request(
    r: proto::ExplainRequest,
) -> (explain::Request, Option<crate::engine::ExplainSource>) {
    use crate::engine::ExplainSource;
    let source = match r.source {
        Some(proto::explain_request::Source::Image(image)) => {
            Some(ExplainSource::Image(image_input(Some(image))))
        }
        Some(proto::explain_request::Source::SessionId(id)) => Some(ExplainSource::Session(id)),
        Some(proto::explain_request::Source::Recorded(r)) => Some(ExplainSource::Recorded {
            session_id: r.session_id,
            time: r.time,
        }),
        None => None,
    };
    let request = explain::Request {
        frame: frame_settings(r.frame_options.as_ref()),
        labels: r.labels,
        backend: r.backend,
        model: r.model,
        max_tokens: r.max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        seed: r.seed,
        include_image: r.include_image,
        context: r.context,
        face_ids: r.face_ids,
    };
    (request, source)
}

/// A session message after the first.
pub fn incoming(r: proto::StreamRequest) -> session::Incoming {
    use proto::stream_request::Message as M;
    use session::ClientMessage as C;
    let message = r.message.map(|m| match m {
        M::Config(_) => C::Config,
        M::Frame(f) => C::Frame(session::Frame {
            timestamp: f.timestamp,
            image: image_input(f.image),
        }),
        M::Chunk(c) => C::Chunk(signal_chunk(c)),
        M::Marker(m) => C::Marker(session::Marker {
            timestamp: m.timestamp,
            label: m.label,
            duration_s: m.duration_s,
        }),
        M::Explain(e) => C::Explain(Box::new(explain_request(e).0)),
        M::End(_) => C::End,
    });
    session::Incoming {
        client_seq: r.client_seq,
        message,
    }
}

fn explain_event(event: ExplainEvent) -> proto::ExplainResponse {
    proto::ExplainResponse {
        event: Some(match event {
            ExplainEvent::Token(t) => proto::explain_response::Event::Token(t),
            ExplainEvent::Result(r) => {
                proto::explain_response::Event::Result(wire::explanation(&r))
            }
        }),
    }
}

/// An Explain stream's event.
pub fn explain_response(
    event: Result<ExplainEvent, Error>,
) -> Result<proto::ExplainResponse, Status> {
    event.map(explain_event).map_err(status)
}

/// A session's event.
pub fn stream_response(event: Result<Event, Error>) -> Result<proto::StreamResponse, Status> {
    use proto::stream_response::Message as M;
    let event = event.map_err(status)?;
    let (client_seq, message) = match event {
        Event::Started {
            session_id,
            server_time,
            recording,
        } => (
            None,
            M::Started(proto::SessionStarted {
                session_id,
                server_time,
                recording,
            }),
        ),
        Event::Faces {
            client_seq,
            timestamp,
            result,
        } => (
            None,
            M::Faces(wire::face_frame(client_seq, timestamp, &result)),
        ),
        Event::Expression(e) => (None, M::ExpressionEvent(wire::expression_event(&e))),
        Event::Features(w) => (None, M::Features(wire::feature_window(&w))),
        Event::Fused(e) => (None, M::Fused(wire::fused_estimate(&e))),
        Event::SignalWarning {
            client_seq,
            warning,
        } => (
            None,
            M::SignalWarning(wire::signal_warning(&warning, Some(client_seq), None)),
        ),
        Event::Warning(w) => (
            None,
            M::Warning(proto::SessionWarning {
                kind: match w.kind {
                    SessionWarningKind::FrameSkipped => proto::SessionWarningKind::FrameSkipped,
                    SessionWarningKind::ExplainFailed => proto::SessionWarningKind::ExplainFailed,
                } as i32,
                message: w.message,
                client_seq: w.client_seq,
                timestamp: w.timestamp,
            }),
        ),
        Event::Ack(client_seq) => (None, M::Ack(proto::Ack { client_seq })),
        Event::Explain { client_seq, event } => {
            (Some(client_seq), M::Explain(explain_event(event)))
        }
        Event::Ended(e) => (
            None,
            M::Ended(proto::SessionEnded {
                session_id: e.session_id,
                frames: e.frames,
                chunks: e.chunks,
                markers: e.markers,
                reason: e.reason,
                frames_analysed: e.frames_analysed,
            }),
        ),
    };
    Ok(proto::StreamResponse {
        client_seq,
        message: Some(message),
    })
}

/// A recorded session's summary.
pub fn session_summary(row: SessionRow) -> proto::SessionSummary {
    use prost::Message as _;
    // A configuration that does not decode leaves streams and metadata empty; the counts
    // still describe what is stored.
    let state = match row.state() {
        RecordingState::Live => proto::SessionState::Live,
        RecordingState::Ended => proto::SessionState::Ended,
        RecordingState::Interrupted => proto::SessionState::Interrupted,
    };
    let config = proto::SessionConfig::decode(row.config.as_slice()).unwrap_or_default();
    proto::SessionSummary {
        session_id: row.session_id,
        participant: row.participant,
        started_at: row.started_at,
        ended_at: row.ended_at,
        frames: row.frames,
        chunks: row.chunks,
        markers: row.markers,
        streams: config.streams,
        metadata: config.metadata,
        stored_bytes: row.stored_bytes,
        state: state as i32,
        end_reason: row.end_reason,
    }
}
