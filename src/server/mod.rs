//! The gRPC front end: affect.v1 services, grpc.health.v1, and server reflection (v1 for
//! grpcurl, v1alpha for older clients such as Python's grpcio-reflection).

mod affect;
mod convert;
pub mod explain;
pub mod info;
mod recordings;
mod signals;
pub mod state;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::config::Config;
use crate::models::Manifest;
use crate::models::loaded::ModelSet;
use crate::proto::affect_server::AffectServer;
use crate::proto::recordings_server::RecordingsServer;
use state::ServerState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: the address is already in use (another affectd?); stop that process or choose another with --listen / AFFECTD_LISTEN"
    )]
    AddressInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] crate::models::manifest::ManifestError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Binds first, so a busy port is reported before any model is loaded.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::AddressInUse { addr }
        } else {
            ServeError::Bind { addr, source }
        }
    })
}

/// Verifies and loads every model (blocking work, off the async threads).
pub async fn load_state(config: Config) -> Result<Arc<ServerState>, ServeError> {
    let state = tokio::task::spawn_blocking(move || -> Result<ServerState, ServeError> {
        let manifest = Manifest::load(&config.models.dir, &config.models.cache_dir)?;
        let runtime = crate::onnx::init(&config.onnx.library);
        if let Err(e) = &runtime {
            tracing::error!("{e}");
        }
        let models = ModelSet::load(&manifest, runtime, &config.onnx);
        let face_models = models.face_models();
        let candle = explain::candle_backend(&config.llm, &manifest, &models);
        if let Err(reason) = &candle {
            tracing::warn!("backend candle is unavailable: {reason}");
        }
        // One server per database: any recording still open is an orphan of an earlier run.
        let store = crate::store::Store::open(&config.store.database)
            .and_then(|store| {
                let orphans = store.close_orphans(info::unix_now())?;
                if orphans > 0 {
                    tracing::warn!("closed {orphans} recording(s) an earlier run left open");
                }
                Ok(store)
            })
            .map_err(|e| e.to_string());
        if let Err(reason) = &store {
            tracing::warn!("sessions cannot be recorded: {reason}");
        }
        Ok(ServerState {
            openai: explain::openai_backend(&config.llm),
            candle,
            store,
            sessions: Default::default(),
            config,
            models,
            face_models,
        })
    })
    .await
    .expect("model loading task panicked")?;
    Ok(Arc::new(state))
}

/// Serves until `shutdown` resolves, then finishes in-flight calls and returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let max = state.config.server.max_message_bytes;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AffectServer<affect::AffectService>>()
        .await;
    health_reporter
        .set_serving::<RecordingsServer<recordings::RecordingsService>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let affect = AffectServer::new(affect::AffectService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let recordings = RecordingsServer::new(recordings::RecordingsService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    // On shutdown, live sessions end first (their recordings are completed and closed,
    // and each client gets SessionEnded); then the server drains the remaining calls.
    let sessions_state = state.clone();
    let shutdown = async move {
        shutdown.await;
        let live = sessions_state.sessions.len();
        if live > 0 {
            tracing::info!("ending {live} live session(s)");
        }
        sessions_state.sessions.close_all();
    };

    // TCP_NODELAY on every connection: a live session's small messages (acks, warnings)
    // otherwise wait for Nagle's algorithm and the peer's delayed ACK (measured: ~25 ms
    // median ack latency with it, see benches/session_load.py).
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        stream.inspect(|s| {
            if let Err(e) = s.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {e}");
            }
        })
    });

    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(affect)
        .add_service(recordings)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled, so a signal that arrives between start-up and
/// serving is not lost (and does not kill the process with the default action).
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}
