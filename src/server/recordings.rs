//! The `affect.v1.Recordings` service: recorded sessions from the SQLite store.

use std::io::{Read, Seek};
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::state::ServerState;
use crate::proto::recordings_server::Recordings;
use crate::proto::*;
use crate::store::{SessionRow, Store, StoreError, export};

/// Bytes per ExportChunk.
const EXPORT_CHUNK: usize = 1 << 20;
const MAX_PAGE: u32 = 1000;

pub struct RecordingsService {
    state: Arc<ServerState>,
}

impl RecordingsService {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }

    fn store(&self) -> Result<Store, Status> {
        self.state.store.clone().map_err(|reason| {
            Status::failed_precondition(format!("the session database is unavailable: {reason}"))
        })
    }
}

fn status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        e => Status::internal(e.to_string()),
    }
}

fn summary(row: SessionRow) -> SessionSummary {
    // A configuration that does not decode leaves streams and metadata empty; the counts
    // still describe what is stored.
    let config = SessionConfig::decode(row.config.as_slice()).unwrap_or_default();
    SessionSummary {
        session_id: row.session_id,
        participant: row.participant,
        started_at: row.started_at,
        ended_at: row.ended_at.unwrap_or(0.0),
        frames: row.frames,
        chunks: row.chunks,
        markers: row.markers,
        streams: config.streams,
        metadata: config.metadata,
        stored_bytes: row.stored_bytes,
    }
}

fn check_id(session_id: &str) -> Result<(), Status> {
    if session_id.is_empty() {
        return Err(Status::invalid_argument("session_id is required"));
    }
    Ok(())
}

#[tonic::async_trait]
impl Recordings for RecordingsService {
    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
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
        let store = self.store()?;
        let rows = tokio::task::spawn_blocking(move || {
            let after = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
            // One more than asked tells whether there is a next page.
            store.list(after, size + 1).map_err(|e| match e {
                StoreError::NotFound(id) => Status::invalid_argument(format!(
                    "page_token {id:?} is not a session of this database (was it deleted?)"
                )),
                e => status(e),
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let more = rows.len() > size;
        let sessions: Vec<SessionSummary> = rows.into_iter().take(size).map(summary).collect();
        let next_page_token = if more {
            sessions
                .last()
                .map(|s| s.session_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListSessionsResponse {
            sessions,
            next_page_token,
        }))
    }

    async fn get_session(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<SessionSummary>, Status> {
        let id = request.into_inner().session_id;
        check_id(&id)?;
        let store = self.store()?;
        let row = tokio::task::spawn_blocking(move || store.get(&id).map_err(status))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(summary(row)))
    }

    type ExportSessionStream =
        Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send + 'static>>;

    async fn export_session(
        &self,
        request: Request<ExportSessionRequest>,
    ) -> Result<Response<Self::ExportSessionStream>, Status> {
        let request = request.into_inner();
        check_id(&request.session_id)?;
        let format = ExportFormat::try_from(request.format).map_err(|_| {
            Status::invalid_argument(format!("format {} is not an ExportFormat", request.format))
        })?;
        let store = self.store()?;
        let id = request.session_id.clone();
        // Built in a temporary file, not in memory: a session's frames can be large.
        let mut file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, Status> {
            let mut file = tempfile::tempfile()
                .map_err(|e| Status::internal(format!("export: temporary file: {e}")))?;
            let written = match format {
                ExportFormat::Csv => export::csv_zip(&store, &id, &mut file),
                ExportFormat::Xdf | ExportFormat::Unspecified => {
                    export::xdf(&store, &id, std::io::BufWriter::new(&mut file))
                }
            };
            written.map_err(|e| match e {
                export::ExportError::Store(e) => status(e),
                e => Status::internal(e.to_string()),
            })?;
            file.rewind()
                .map_err(|e| Status::internal(format!("export: {e}")))?;
            Ok(file)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let file_name = format!(
            "{}.{}",
            request.session_id,
            if format == ExportFormat::Csv {
                "zip"
            } else {
                "xdf"
            }
        );
        tokio::task::spawn_blocking(move || {
            let mut first = true;
            loop {
                let mut data = vec![0u8; EXPORT_CHUNK];
                let n = match file.read(&mut data) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("export: {e}"))));
                        return;
                    }
                };
                if n == 0 && !first {
                    return;
                }
                data.truncate(n);
                let chunk = ExportChunk {
                    file_name: if first {
                        file_name.clone()
                    } else {
                        String::new()
                    },
                    data,
                };
                first = false;
                if tx.blocking_send(Ok(chunk)).is_err() || n == 0 {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn delete_session(
        &self,
        request: Request<DeleteSessionRequest>,
    ) -> Result<Response<DeleteSessionResponse>, Status> {
        let id = request.into_inner().session_id;
        check_id(&id)?;
        if self.state.sessions.get(&id).is_some() {
            return Err(Status::failed_precondition(format!(
                "session `{id}` is live; end it before deleting its recording"
            )));
        }
        let store = self.store()?;
        let deleted = tokio::task::spawn_blocking(move || store.delete(&id).map_err(status))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(DeleteSessionResponse { deleted }))
    }
}
