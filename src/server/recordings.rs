//! The `affect.v1.Recordings` service: not built yet; every RPC says so.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::proto::recordings_server::Recordings;
use crate::proto::*;

pub struct RecordingsService;

fn not_built(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc}: the session recording store is not implemented in affectd {} yet",
        env!("CARGO_PKG_VERSION")
    ))
}

#[tonic::async_trait]
impl Recordings for RecordingsService {
    async fn list_sessions(
        &self,
        _request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        Err(not_built("ListSessions"))
    }

    async fn get_session(
        &self,
        _request: Request<GetSessionRequest>,
    ) -> Result<Response<SessionSummary>, Status> {
        Err(not_built("GetSession"))
    }

    type ExportSessionStream =
        Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send + 'static>>;

    async fn export_session(
        &self,
        _request: Request<ExportSessionRequest>,
    ) -> Result<Response<Self::ExportSessionStream>, Status> {
        Err(not_built("ExportSession"))
    }

    async fn delete_session(
        &self,
        _request: Request<DeleteSessionRequest>,
    ) -> Result<Response<DeleteSessionResponse>, Status> {
        Err(not_built("DeleteSession"))
    }
}
