//! The `affect.v1.Affect` service: each RPC converts its request, asks the engine, and
//! converts the answer. CPU-bound work runs on blocking threads, off the async workers.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{caller, convert, info};
use crate::auth::Role;
use crate::engine::{Engine, unix_now};
use crate::error::Error;
use crate::formats::wire;
use crate::proto::affect_server::Affect;
use crate::proto::*;

pub struct AffectService {
    engine: Arc<Engine>,
}

impl AffectService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// A unary analysis's turn (`limits.max_concurrent_analyses`): waited for without a
    /// thread; a full queue or a wait past its timeout is the call's answer.
    async fn analysis_turn(&self) -> Result<crate::admission::Turn, Status> {
        self.engine
            .analysis_gate
            .admit()
            .await
            .map_err(convert::status)
    }

    /// The caller may act on the live session `session_id` (its owner, or an admin).
    fn require_own_session(
        &self,
        caller: &crate::auth::Principal,
        session_id: &str,
        what: &str,
    ) -> Result<(), Status> {
        let owner = self
            .engine
            .live_session_owner(session_id)
            .map_err(convert::status)?;
        caller
            .require_session(Role::Stream, owner.as_deref(), session_id, what)
            .map_err(convert::status)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Runs blocking work; a panic in it is an INTERNAL error naming `what`.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(move || crate::error::catch_panic(what, work))
        .await
        .map_err(|e| Status::internal(format!("{what} task failed: {e}")))?
        .map_err(convert::status)
}

#[tonic::async_trait]
impl Affect for AffectService {
    async fn analyze_frame(
        &self,
        request: Request<AnalyzeFrameRequest>,
    ) -> Result<Response<AnalyzeFrameResponse>, Status> {
        caller(&request)?
            .require(Role::Stream, "AnalyzeFrame")
            .map_err(convert::status)?;
        let request = request.into_inner();
        let image = convert::image_input(request.image);
        let settings = convert::frame_settings(request.options.as_ref());
        let turn = self.analysis_turn().await?;
        let engine = self.engine.clone();
        let analysis = blocking("face analysis", move || {
            let _turn = turn; // held while it runs, even if the client leaves
            engine.analyze_frame(image.as_ref(), &settings)
        })
        .await?;
        let mut timings = vec![StageTiming {
            stage: "decode".into(),
            ms: analysis.decode_ms,
        }];
        timings.extend(wire::timings(&analysis.result));
        let (marked_image, marked_image_mime) = match analysis.marked {
            Some((bytes, encoding)) => (bytes, encoding.mime().to_owned()),
            None => (Vec::new(), String::new()),
        };
        Ok(Response::new(AnalyzeFrameResponse {
            faces: analysis.result.faces.iter().map(wire::face).collect(),
            image_width: analysis.result.width,
            image_height: analysis.result.height,
            timestamp: request.timestamp,
            timings,
            marked_image,
            marked_image_mime,
        }))
    }

    async fn analyze_signals(
        &self,
        request: Request<AnalyzeSignalsRequest>,
    ) -> Result<Response<AnalyzeSignalsResponse>, Status> {
        caller(&request)?
            .require(Role::Stream, "AnalyzeSignals")
            .map_err(convert::status)?;
        let request = request.into_inner();
        let config = convert::analysis_config(request.config.as_ref())?;
        let streams = convert::stream_specs(&request.streams)?;
        let chunks: Vec<_> = request
            .chunks
            .into_iter()
            .map(convert::signal_chunk)
            .collect();
        let turn = self.analysis_turn().await?;
        let engine = self.engine.clone();
        let analysed = blocking("signal analysis", move || {
            let _turn = turn;
            engine.analyze_signals(&streams, &chunks, &config)
        })
        .await?;
        let response = AnalyzeSignalsResponse {
            windows: analysed.windows.iter().map(wire::feature_window).collect(),
            warnings: analysed
                .warnings
                .iter()
                .map(|(index, w)| wire::signal_warning(w, None, Some(*index as u32)))
                .collect(),
        };
        // Said here, with what to do, rather than as tonic's OUT_OF_RANGE from the encoder.
        let max = self.engine.config.server.max_message_bytes;
        let size = prost::Message::encoded_len(&response);
        if size > max {
            return Err(convert::status(Error::ResourceExhausted(format!(
                "the answer ({} feature windows) would be {size} bytes, over the config key server.max_message_bytes = {max}; send fewer samples per request or a longer hop_s",
                response.windows.len()
            ))));
        }
        Ok(Response::new(response))
    }

    type ExplainStream = BoxStream<ExplainResponse>;

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<Self::ExplainStream>, Status> {
        let caller = caller(&request)?;
        let (request, source) = convert::explain_request(request.into_inner());
        caller
            .require(Role::Stream, "Explain")
            .map_err(convert::status)?;
        match &source {
            Some(crate::engine::ExplainSource::Session(id)) => {
                self.require_own_session(&caller, id, "Explain")?;
            }
            Some(crate::engine::ExplainSource::Recorded { session_id, .. }) => {
                let owner = self
                    .engine
                    .recording(session_id)
                    .map_err(convert::status)?
                    .owner;
                caller
                    .require_session(Role::Stream, owner.as_deref(), session_id, "Explain")
                    .map_err(convert::status)?;
            }
            _ => {}
        }
        let events = self
            .engine
            .explain(request, source)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(events).map(convert::explain_response),
        )))
    }

    type StreamStream = BoxStream<StreamResponse>;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let caller = caller(&request)?;
        caller
            .require(Role::Stream, "Stream")
            .map_err(convert::status)?;
        open_stream(self.engine.clone(), caller.owner(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn clock_sync(
        &self,
        request: Request<ClockSyncRequest>,
    ) -> Result<Response<ClockSyncResponse>, Status> {
        let server_receive_time = unix_now();
        let caller = caller(&request)?;
        let request = request.into_inner();
        if !request.client_send_time.is_finite() {
            return Err(Status::invalid_argument(
                "client_send_time must be a finite number of seconds",
            ));
        }
        if !request.session_id.is_empty() {
            let (Some(offset), Some(rtt)) = (request.measured_offset_s, request.measured_rtt_s)
            else {
                return Err(Status::invalid_argument(
                    "with session_id, set measured_offset_s and measured_rtt_s (the offset to store and its probe's round-trip time)",
                ));
            };
            // Another client's offset would shift that session's whole recording.
            self.require_own_session(&caller, &request.session_id, "ClockSync with a session_id")?;
            self.engine
                .report_clock(&request.session_id, offset, rtt)
                .map_err(convert::status)?;
        }
        Ok(Response::new(ClockSyncResponse {
            client_send_time: request.client_send_time,
            server_receive_time,
            server_send_time: unix_now(),
        }))
    }

    async fn calibrate(
        &self,
        request: Request<CalibrateRequest>,
    ) -> Result<Response<CalibrateResponse>, Status> {
        let caller = caller(&request)?;
        let session_id = request.into_inner().session_id;
        self.require_own_session(&caller, &session_id, "Calibrate")?;
        let model = self
            .engine
            .calibrate(&session_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(wire::calibration(&model)))
    }

    async fn get_server_info(
        &self,
        request: Request<GetServerInfoRequest>,
    ) -> Result<Response<GetServerInfoResponse>, Status> {
        let caller = caller(&request)?;
        // Paths only for an admin token: with authentication off, anyone is "admin".
        let show_paths = self.engine.tokens.enabled() && caller.is_admin();
        Ok(Response::new(info::server_info(&self.engine, show_paths)))
    }
}

/// A live session on `inbound`, a client's stream of messages (tonic's, or the session
/// fuzzer's): the config first, within `limits.first_message_timeout_s`, then the session.
pub(crate) async fn open_stream<S>(
    engine: Arc<Engine>,
    owner: Option<String>,
    mut inbound: S,
) -> Result<BoxStream<StreamResponse>, Status>
where
    S: Stream<Item = Result<StreamRequest, Status>> + Unpin + Send + 'static,
{
    let deadline = engine.limits.first_message_timeout_s;
    let first = tokio::time::timeout(crate::config::duration(deadline), inbound.next())
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "no config message within {deadline} s of opening the stream (config key limits.first_message_timeout_s)"
            ))
        })?
        .ok_or_else(|| Status::invalid_argument("the stream ended before its config message"))??;
    let Some(stream_request::Message::Config(config)) = first.message else {
        return Err(Status::invalid_argument(
            "the first message of a stream must carry `config` (SessionConfig)",
        ));
    };
    let config = convert::session_config(config)?;
    let max_bytes = engine.config.server.max_message_bytes;
    let inbound = inbound.map(move |message| {
        message
            .map(convert::incoming)
            .map_err(|status| inbound_error(status, max_bytes))
    });
    let events = crate::session::open(engine.clone(), first.client_seq, config, owner, inbound)
        .await
        .map_err(convert::status)?;
    Ok(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(events).map(convert::stream_response),
    ))
}

/// What a failed read of the client's stream means: the client's fault (a message that does
/// not decode, or one over the size limit) ends the session with that error; anything else
/// is a broken connection.
fn inbound_error(status: Status, max_bytes: usize) -> crate::session::InboundError {
    use crate::session::InboundError;
    let message = status.message();
    match status.code() {
        code if super::is_decode_failure(code, message) => InboundError::Refused(
            Error::InvalidArgument(format!("a message is not a valid StreamRequest: {message}")),
        ),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => {
            InboundError::Refused(Error::ResourceExhausted(format!(
                "a message is over the server's limit of {max_bytes} bytes (config key server.max_message_bytes): {message}"
            )))
        }
        _ => InboundError::Broken(message.to_string()),
    }
}
