//! Wire types <-> core types. Requests become the core's domain types here (nothing is
//! decided here: a value out of range is passed on for the core to refuse, except where
//! the wire cannot express the domain value, such as an unknown enum number); results
//! become wire messages through `formats::wire`, and core errors become `Status`es.

use tonic::Status;

use crate::error::Error;
use crate::explain::{self, ExplainEvent};
use crate::formats::wire;
use crate::proto;
use crate::session::{self, Event, SessionWarningKind};
use crate::signals::analyzers::SignalChunk;
use crate::signals::eeg::Band;
use crate::signals::features::SignalKind;
use crate::signals::stream::{AnalysisConfig, ChannelSpec, StreamSpec};
use crate::store::{RecordingState, SessionRow};
use crate::vision::FrameSettings;
use crate::vision::image::{ImageInput, PixelLayout};
use crate::vision::marks::{Encoding, Layers};

/// The gRPC status of a core error.
pub fn status(e: Error) -> Status {
    match e {
        Error::InvalidArgument(m) => Status::invalid_argument(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::AlreadyExists(m) => Status::already_exists(m),
        Error::FailedPrecondition(m) => Status::failed_precondition(m),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::Unavailable(m) => Status::unavailable(m),
        Error::DeadlineExceeded(m) => Status::deadline_exceeded(m),
        Error::Unimplemented(m) => Status::unimplemented(m),
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

/// Frame options: 0 means the server's default, as the contract says.
pub fn frame_settings(options: Option<&proto::FrameOptions>) -> FrameSettings {
    let Some(o) = options else {
        return FrameSettings::default();
    };
    FrameSettings {
        detector_max_side: (o.detector_max_side != 0).then_some(o.detector_max_side),
        min_face_score: (o.min_face_score != 0.0).then_some(o.min_face_score),
        max_faces: o.max_faces,
        skip_landmarks: o.skip_landmarks,
        skip_blendshapes: o.skip_blendshapes,
        skip_expression: o.skip_expression,
        marks: o.marks.as_ref().map(|m| Layers {
            boxes: m.boxes,
            face_ids: m.face_ids,
            landmarks: m.landmarks,
            au_tags: m.au_tags,
        }),
        return_marked_image: o.return_marked_image,
        marked_image_encoding: if o.marked_image_format == proto::ImageFormat::Jpeg as i32 {
            Encoding::Jpeg
        } else {
            Encoding::Png
        },
    }
}

pub fn signal_kind(k: i32, stream_id: &str) -> Result<SignalKind, Status> {
    use proto::SignalKind as P;
    match P::try_from(k) {
        Ok(P::Eeg) => Ok(SignalKind::Eeg),
        Ok(P::Eda) => Ok(SignalKind::Eda),
        Ok(P::Ecg) => Ok(SignalKind::Ecg),
        Ok(P::Ppg) => Ok(SignalKind::Ppg),
        Ok(P::Respiration) => Ok(SignalKind::Respiration),
        Ok(P::Other) => Ok(SignalKind::Other),
        Ok(P::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "stream {stream_id:?}: kind must be one of EEG, EDA, ECG, PPG, RESPIRATION, OTHER (got {k})"
        ))),
    }
}

pub fn stream_spec(s: &proto::StreamInfo) -> Result<StreamSpec, Status> {
    Ok(StreamSpec {
        id: s.stream_id.clone(),
        kind: signal_kind(s.kind, &s.stream_id)?,
        rate_hz: s.nominal_rate_hz,
        channels: s
            .channels
            .iter()
            .map(|c| ChannelSpec {
                label: c.label.clone(),
                unit: c.unit.clone(),
            })
            .collect(),
    })
}

pub fn stream_specs(streams: &[proto::StreamInfo]) -> Result<Vec<StreamSpec>, Status> {
    streams.iter().map(stream_spec).collect()
}

/// Signal options over the defaults; zero fields keep the default.
pub fn analysis_config(c: Option<&proto::SignalConfig>) -> Result<AnalysisConfig, Status> {
    let mut config = AnalysisConfig::default();
    let Some(c) = c else { return Ok(config) };
    let seconds = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(Status::invalid_argument(format!(
                "config.{name} must be a non-negative number of seconds, got {v}"
            )))
        }
    };
    if seconds("window_s", c.window_s)? > 0.0 {
        config.window_s = c.window_s;
    }
    if seconds("hop_s", c.hop_s)? > 0.0 {
        config.hop_s = c.hop_s;
    }
    config.baseline_s = seconds("baseline_s", c.baseline_s)?;
    if c.line_frequency_hz != 0.0 {
        config.line_hz = c.line_frequency_hz;
    }
    if !c.eeg_bands.is_empty() {
        if c.eeg_bands.len() > 32 {
            return Err(Status::invalid_argument(format!(
                "config.eeg_bands: at most 32 bands, got {}",
                c.eeg_bands.len()
            )));
        }
        config.bands = c
            .eeg_bands
            .iter()
            .map(|b| {
                if b.name.trim().is_empty() {
                    return Err(Status::invalid_argument(
                        "config.eeg_bands: every band needs a name",
                    ));
                }
                Ok(Band::new(&b.name, b.low_hz, b.high_hz))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(config)
}

pub fn signal_chunk(c: proto::SignalChunk) -> SignalChunk {
    SignalChunk {
        stream_id: c.stream_id,
        first_timestamp: c.first_timestamp,
        samples: c.samples,
        timestamps: c.timestamps,
        first_sample_index: c.first_sample_index,
    }
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

pub fn session_config(c: proto::SessionConfig) -> Result<session::SessionConfig, Status> {
    Ok(session::SessionConfig {
        session_id: (!c.session_id.is_empty()).then_some(c.session_id),
        participant: c.participant,
        streams: stream_specs(&c.streams)?,
        analysis: analysis_config(c.signal_config.as_ref())?,
        frame: frame_settings(c.frame_options.as_ref()),
        detect_every: (c.detect_every_n_frames != 0).then_some(c.detect_every_n_frames),
        record: !c.no_record,
        metadata: c.metadata.into_iter().collect(),
    })
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
