//! The `affect.v1.Affect` service. RPCs whose capability is not built yet answer
//! UNIMPLEMENTED with the capability's name; RPCs whose models are missing or corrupt answer
//! FAILED_PRECONDITION with the reason.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::info;
use super::state::ServerState;
use crate::proto::affect_server::Affect;
use crate::proto::*;

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

fn not_built(rpc: &str, capability: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc}: {capability} is not implemented in affectd {} yet",
        env!("CARGO_PKG_VERSION")
    ))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Affect for AffectService {
    async fn analyze_frame(
        &self,
        _request: Request<AnalyzeFrameRequest>,
    ) -> Result<Response<AnalyzeFrameResponse>, Status> {
        self.require("face_detection")?;
        Err(not_built("AnalyzeFrame", "face analysis (vision pipeline)"))
    }

    async fn analyze_signals(
        &self,
        _request: Request<AnalyzeSignalsRequest>,
    ) -> Result<Response<AnalyzeSignalsResponse>, Status> {
        Err(not_built("AnalyzeSignals", "signal feature extraction"))
    }

    type ExplainStream = BoxStream<ExplainResponse>;

    async fn explain(
        &self,
        _request: Request<ExplainRequest>,
    ) -> Result<Response<Self::ExplainStream>, Status> {
        Err(not_built("Explain", "SoVTP explanation with a local LLM"))
    }

    type StreamStream = BoxStream<StreamResponse>;

    async fn stream(
        &self,
        _request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Err(not_built("Stream", "the live session"))
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
            return Err(Status::not_found(format!(
                "no live session `{}`: live sessions are not implemented in this version",
                request.session_id
            )));
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
