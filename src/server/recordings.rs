//! The `affect.v1.Recordings` service: recorded sessions, through the engine.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::auth::Role;
use crate::engine::{Engine, ExportFormat as Format};
use crate::error::Error;
use crate::proto::recordings_server::Recordings;
use crate::proto::*;

/// Bytes per ExportSessionResponse.
const EXPORT_CHUNK: usize = 1 << 20;
const MAX_PAGE: u32 = 1000;

pub struct RecordingsService {
    engine: Arc<Engine>,
}

impl RecordingsService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

fn check_id(session_id: &str) -> Result<(), Status> {
    if session_id.is_empty() {
        return Err(Status::invalid_argument("session_id is required"));
    }
    Ok(())
}

/// Runs a database call off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(move || crate::error::catch_panic("recordings call", work))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(convert::status)
}

#[tonic::async_trait]
impl Recordings for RecordingsService {
    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        let caller = caller(&request)?;
        // Readers list every recording; `stream` tokens their own.
        let owner = if caller.reads_all() {
            None
        } else {
            caller
                .require(Role::Stream, "ListSessions")
                .map_err(convert::status)?;
            caller.owner()
        };
        let request = request.into_inner();
        if request.page_size > MAX_PAGE {
            return Err(Status::invalid_argument(format!(
                "page_size must be at most {MAX_PAGE}, got {}",
                request.page_size
            )));
        }
        let size = if request.page_size == 0 {
            100
        } else {
            request.page_size as usize
        };
        let engine = self.engine.clone();
        let (rows, next_page_token) =
            blocking(move || engine.list_recordings(&request.page_token, size, owner.as_deref()))
                .await?;
        Ok(Response::new(ListSessionsResponse {
            sessions: rows.into_iter().map(convert::session_summary).collect(),
            next_page_token,
        }))
    }

    async fn get_session(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<GetSessionResponse>, Status> {
        let caller = caller(&request)?;
        let id = request.into_inner().session_id;
        check_id(&id)?;
        let engine = self.engine.clone();
        let row = blocking(move || engine.recording(&id)).await?;
        caller
            .require_session(
                Role::Read,
                row.owner.as_deref(),
                &row.session_id,
                "GetSession",
            )
            .map_err(convert::status)?;
        Ok(Response::new(GetSessionResponse {
            session: Some(convert::session_summary(row)),
        }))
    }

    type ExportSessionStream =
        Pin<Box<dyn Stream<Item = Result<ExportSessionResponse, Status>> + Send + 'static>>;

    async fn export_session(
        &self,
        request: Request<ExportSessionRequest>,
    ) -> Result<Response<Self::ExportSessionStream>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        check_id(&request.session_id)?;
        let owner = {
            let engine = self.engine.clone();
            let id = request.session_id.clone();
            blocking(move || engine.recording(&id)).await?.owner
        };
        caller
            .require_session(
                Role::Read,
                owner.as_deref(),
                &request.session_id,
                "ExportSession",
            )
            .map_err(convert::status)?;
        let format = match ExportFormat::try_from(request.format) {
            Ok(ExportFormat::Csv) => Format::CsvZip,
            Ok(ExportFormat::Xdf | ExportFormat::Unspecified) => Format::Xdf,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "format {} is not an ExportFormat",
                    request.format
                )));
            }
        };
        // Held until the last byte is sent: the temporary file lives that long.
        let turn = self.engine.export_turn().map_err(convert::status)?;
        let engine = self.engine.clone();
        let id = request.session_id.clone();
        // Built in a temporary file, not in memory: a session's frames can be large.
        let file = blocking(move || engine.export_file(&id, format)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let file_name = format!(
            "{}.{}",
            request.session_id,
            if format == Format::CsvZip {
                "zip"
            } else {
                "xdf"
            }
        );
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            Engine::send_export(file, EXPORT_CHUNK, |piece, first| {
                let chunk = piece
                    .map_err(convert::status)
                    .map(|data| ExportSessionResponse {
                        file_name: if first {
                            file_name.clone()
                        } else {
                            String::new()
                        },
                        data,
                    });
                tx.blocking_send(chunk).is_ok()
            });
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn delete_session(
        &self,
        request: Request<DeleteSessionRequest>,
    ) -> Result<Response<DeleteSessionResponse>, Status> {
        caller(&request)?
            .require(Role::Admin, "DeleteSession")
            .map_err(convert::status)?;
        let id = request.into_inner().session_id;
        check_id(&id)?;
        let engine = self.engine.clone();
        let deleted = blocking(move || engine.delete_recording(&id)).await?;
        Ok(Response::new(DeleteSessionResponse { deleted }))
    }
}
