//! The gRPC front end: affect.v1 services, grpc.health.v1, and server reflection (v1 for
//! grpcurl, v1alpha for older clients such as Python's grpcio-reflection). Conversion
//! only: every request is turned into the core's terms (`convert.rs`) and answered by the
//! [`Engine`]; core errors become `Status`es.

mod affect;
mod convert;
mod info;
mod recordings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::config::Config;
use crate::engine::{Engine, StartError};
use crate::proto::affect_server::AffectServer;
use crate::proto::recordings_server::RecordingsServer;

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
    Start(#[from] StartError),
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

/// Loads the engine (blocking work, off the async threads): models, explainer, the session
/// database and its lock.
pub async fn load_engine(config: Config) -> Result<Arc<Engine>, ServeError> {
    let engine = tokio::task::spawn_blocking(move || Engine::start(config))
        .await
        .expect("engine loading task panicked")?;
    Ok(Arc::new(engine))
}

/// Serves until `shutdown` resolves, then finishes in-flight calls and returns.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let max = engine.config.server.max_message_bytes;
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

    let affect = AffectServer::new(affect::AffectService::new(engine.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let recordings = RecordingsServer::new(recordings::RecordingsService::new(engine.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    // On shutdown, live sessions end first (their recordings are completed and closed,
    // and each client gets SessionEnded); then the server drains the remaining calls.
    let sessions = engine.clone();
    let shutdown = async move {
        shutdown.await;
        let live = sessions.sessions.len();
        if live > 0 {
            tracing::info!("ending {live} live session(s)");
        }
        sessions.sessions.close_all();
    };

    // TCP_NODELAY on every connection: a live session's small messages (acks, warnings)
    // otherwise wait for Nagle's algorithm and the peer's delayed ACK (measured: ~25 ms
    // median ack latency with it, see benches/session_load.py).
    let incoming = accept_with_backoff(listener);

    let server_config = &engine.config.server;
    // Validated finite and >= 0; a value too large for a Duration means "never".
    let keepalive = (server_config.http2_keepalive_interval_s > 0.0)
        .then(|| Duration::try_from_secs_f64(server_config.http2_keepalive_interval_s).ok())
        .flatten();
    Server::builder()
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(
            Duration::try_from_secs_f64(server_config.http2_keepalive_timeout_s).ok(),
        )
        .max_concurrent_streams(Some(server_config.max_concurrent_streams))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .layer(tower::util::MapResponseLayer::new(
            decode_errors_are_invalid_argument,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(affect)
        .add_service(recordings)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Accepts connections on a task of its own. When the process is out of descriptors (or
/// the kernel out of buffers), accepting fails until something closes: the loop then backs
/// off (10 ms doubling to 1 s) and logs once per episode, instead of retrying at once and
/// spinning a core while the server cannot be reached. Hand-written: tonic's own loop
/// retries at once, and no well-kept crate wraps a tokio listener this way.
fn accept_with_backoff(
    listener: tokio::net::TcpListener,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio::net::TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut backoff = std::time::Duration::ZERO;
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    if !backoff.is_zero() {
                        tracing::info!("accepting connections again");
                        backoff = std::time::Duration::ZERO;
                    }
                    // TCP_NODELAY on every connection: a live session's small messages
                    // (acks, warnings) otherwise wait for Nagle's algorithm and the peer's
                    // delayed ACK (measured: ~25 ms median ack latency with it, see
                    // benches/session_load.py).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::warn!("cannot set TCP_NODELAY: {e}");
                    }
                    if tx.send(Ok(stream)).await.is_err() {
                        return; // the server has stopped
                    }
                }
                Err(e) => {
                    if backoff.is_zero() {
                        tracing::warn!(
                            "cannot accept connections: {e}; retrying with back-off (raise the descriptor limit, ulimit -n, if this is EMFILE)"
                        );
                        backoff = std::time::Duration::from_millis(10);
                    } else {
                        backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// How tonic words a request that does not decode (invalid UTF-8 in a string, a bad wire
/// type), which it reports as INTERNAL. One place for both the unary answers below and a
/// Stream's inbound messages (`affect::inbound_error`); no handler's own INTERNAL says it.
pub(crate) fn is_decode_failure(code: tonic::Code, message: &str) -> bool {
    code == tonic::Code::Internal && message.starts_with("failed to decode")
}

/// tonic answers a unary request body that does not decode with INTERNAL before any
/// handler runs; it is the client's request that is wrong, so the answer is
/// INVALID_ARGUMENT. Such answers carry their status in the headers (trailers-only).
fn decode_errors_are_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32);
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        // grpc-message is percent-encoded (gRPC over HTTP/2).
        .map(|m| percent_encoding::percent_decode_str(m).decode_utf8_lossy());
    if let (Some(code), Some(message)) = (code, message)
        && is_decode_failure(code, &message)
    {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
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
