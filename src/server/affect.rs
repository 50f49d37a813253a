//! The `affect.v1.Affect` service. RPCs whose capability is not built yet answer
//! UNIMPLEMENTED with the capability's name; RPCs whose models are missing or corrupt answer
//! FAILED_PRECONDITION with the reason.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::state::ServerState;
use super::{convert, info};
use crate::proto::affect_server::Affect;
use crate::proto::*;
use crate::vision::marks;

pub struct AffectService {
    state: Arc<ServerState>,
}

impl AffectService {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }

    fn require(&self, capability: &str) -> Result<(), Status> {
        match self.state.models.capabilities().remove(capability) {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(Status::failed_precondition(format!(
                "{capability} is unavailable: {reason}"
            ))),
            None => Err(Status::internal(format!("unknown capability {capability}"))),
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Affect for AffectService {
    async fn analyze_frame(
        &self,
        request: Request<AnalyzeFrameRequest>,
    ) -> Result<Response<AnalyzeFrameResponse>, Status> {
        self.require("face_detection")?;
        let models = self
            .state
            .face_models
            .clone()
            .ok_or_else(|| Status::failed_precondition("face_detection is unavailable"))?;
        let state = self.state.clone();
        let request = request.into_inner();
        // Decoding and the networks are CPU-bound: keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            let vision = &state.config.vision;
            let started = std::time::Instant::now();
            let image = convert::decode_image(request.image.as_ref(), vision.max_image_pixels)?;
            let decode_ms = started.elapsed().as_secs_f64() * 1e3;
            let options = convert::analyze_options(request.options.as_ref(), vision)?;
            let result = models
                .analyze(&image, &options)
                .map_err(|e| Status::internal(format!("face analysis failed: {e}")))?;
            let mut timings = vec![StageTiming {
                stage: "decode".into(),
                ms: decode_ms,
            }];
            timings.extend(result.timings.iter().map(|(stage, ms)| StageTiming {
                stage: (*stage).into(),
                ms: *ms,
            }));
            let (marked_image, marked_image_mime) = match request.options.as_ref() {
                Some(o) if o.return_marked_image => {
                    let (layers, encoding) = convert::mark_options(Some(o));
                    let marked = marks::render(&image, &result.faces, &layers);
                    (marks::encode(&marked, encoding), encoding.mime().to_owned())
                }
                _ => (Vec::new(), String::new()),
            };
            Ok(Response::new(AnalyzeFrameResponse {
                faces: result.faces.iter().map(convert::face).collect(),
                image_width: result.width,
                image_height: result.height,
                timestamp: request.timestamp,
                timings,
                marked_image,
                marked_image_mime,
            }))
        })
        .await
        .map_err(|e| Status::internal(format!("face analysis task failed: {e}")))?
    }

    async fn analyze_signals(
        &self,
        request: Request<AnalyzeSignalsRequest>,
    ) -> Result<Response<AnalyzeSignalsResponse>, Status> {
        let request = request.into_inner();
        // Filtering and spectra are CPU-bound: keep them off the async workers.
        tokio::task::spawn_blocking(move || super::signals::analyze(request))
            .await
            .map_err(|e| Status::internal(format!("signal analysis task failed: {e}")))?
            .map(Response::new)
    }

    type ExplainStream = BoxStream<ExplainResponse>;

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<Self::ExplainStream>, Status> {
        let state = self.state.clone();
        let request = request.into_inner();
        let prepared =
            tokio::task::spawn_blocking(move || super::explain::prepare(&state, &request))
                .await
                .map_err(|e| Status::internal(format!("explain task failed: {e}")))??;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::task::spawn_blocking(move || super::explain::run(prepared, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type StreamStream = BoxStream<StreamResponse>;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let responses = super::stream::open(self.state.clone(), request.into_inner()).await?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(responses),
        )))
    }

    async fn clock_sync(
        &self,
        request: Request<ClockSyncRequest>,
    ) -> Result<Response<ClockSyncResponse>, Status> {
        let server_receive_time = info::unix_now();
        let request = request.into_inner();
        if !request.client_send_time.is_finite() {
            return Err(Status::invalid_argument(
                "client_send_time must be a finite number of seconds",
            ));
        }
        if !request.session_id.is_empty() {
            let live = self
                .state
                .sessions
                .get(&request.session_id)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "no live session `{}` on this server",
                        request.session_id
                    ))
                })?;
            if !(request.measured_offset_s.is_finite()
                && request.measured_rtt_s.is_finite()
                && request.measured_rtt_s >= 0.0)
            {
                return Err(Status::invalid_argument(format!(
                    "measured_offset_s and measured_rtt_s must be finite and the rtt >= 0, got {} and {}",
                    request.measured_offset_s, request.measured_rtt_s
                )));
            }
            live.report_clock(crate::session::ClockReport {
                server_time: server_receive_time,
                offset_s: request.measured_offset_s,
                rtt_s: request.measured_rtt_s,
            });
        }
        Ok(Response::new(ClockSyncResponse {
            client_send_time: request.client_send_time,
            server_receive_time,
            server_send_time: info::unix_now(),
        }))
    }

    async fn get_server_info(
        &self,
        _request: Request<GetServerInfoRequest>,
    ) -> Result<Response<ServerInfo>, Status> {
        Ok(Response::new(info::server_info(&self.state)))
    }
}
