//! The gRPC front end: affect.v1 services, grpc.health.v1, and server reflection (v1 for
//! grpcurl, v1alpha for older clients such as Python's grpcio-reflection). Conversion
//! only: every request is turned into the core's terms (`convert.rs`) and answered by the
//! [`Engine`]; core errors become `Status`es.

mod affect;
#[cfg(feature = "fuzzing")]
pub(crate) use affect::open_stream;
mod convert;
mod info;
mod recordings;
pub mod rpc_metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::config::{Config, duration as seconds};
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
    #[error("{0}")]
    Metrics(String),
    #[error("cannot read {key} {path}: {source}")]
    TlsFile {
        key: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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

/// Deletes recordings past `store.retention_days` at start-up and then every hour (or a
/// quarter of the retention, when that is shorter), checkpointing the database's log.
async fn expire_recordings(engine: Arc<Engine>) {
    let retention_s = engine.config.store.retention_days * 86_400.0;
    let period = seconds((retention_s / 4.0).clamp(0.1, 3600.0));
    loop {
        let sweeping = engine.clone();
        match tokio::task::spawn_blocking(move || sweeping.expire_recordings()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                "deleted {n} recording(s) older than store.retention_days = {}",
                engine.config.store.retention_days
            ),
            Ok(Err(e)) => tracing::warn!("cannot expire old recordings: {e}"),
            Err(e) => tracing::warn!("the retention sweep failed: {e}"),
        }
        tokio::time::sleep(period).await;
    }
}

/// The TLS settings of `[server]`, read from their files; None without TLS.
fn tls_config(
    server: &crate::config::ServerConfig,
) -> Result<Option<tonic::transport::ServerTlsConfig>, ServeError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    if !server.tls() {
        return Ok(None);
    }
    let read = |key: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServeError::TlsFile {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let identity = Identity::from_pem(
        read("server.tls_cert_file", &server.tls_cert_file)?,
        read("server.tls_key_file", &server.tls_key_file)?,
    );
    let mut tls = ServerTlsConfig::new()
        .identity(identity)
        .timeout(seconds(server.handshake_timeout_s));
    if !server.tls_client_ca_file.as_os_str().is_empty() {
        tls = tls.client_ca_root(Certificate::from_pem(read(
            "server.tls_client_ca_file",
            &server.tls_client_ca_file,
        )?));
    }
    Ok(Some(tls))
}

/// Serves until `shutdown` resolves, then finishes in-flight calls and returns. With
/// `http`, also serves the dashboard and `/metrics` there (see [`crate::http`]).
pub async fn serve(
    listener: TcpListener,
    http: Option<TcpListener>,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stopping, stop) = tokio::sync::watch::channel(false);
    if let Some(http) = http {
        let metrics = crate::http::recorder().map_err(ServeError::Metrics)?;
        let tls = crate::http::tls_acceptor(&engine.config.server)
            .map_err(ServeError::Metrics)?
            .map(|acceptor| (acceptor, seconds(engine.config.server.handshake_timeout_s)));
        let mut stop = stop.clone();
        let web_engine = engine.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::http::serve(http, tls, web_engine, metrics, stopped).await {
                tracing::error!("the HTTP listener failed: {e}");
            }
        });
    }
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
    // and each client gets SessionEnded); then the server drains the remaining calls, for
    // at most server.shutdown_timeout_s.
    let sessions = engine.clone();
    let shutdown_started = Arc::new(tokio::sync::Notify::new());
    let started = shutdown_started.clone();
    let shutdown = async move {
        shutdown.await;
        started.notify_one();
        stopping.send_replace(true);
        let live = sessions.sessions.len();
        if live > 0 {
            tracing::info!("ending {live} live session(s)");
        }
        sessions.sessions.close_all();
    };

    if engine.config.store.retention_days > 0.0 {
        tokio::spawn(expire_recordings(engine.clone()));
    }
    let incoming = accept_with_backoff(
        listener,
        engine.config.server.max_connections,
        seconds(engine.config.server.handshake_timeout_s),
    );

    let server_config = &engine.config.server;
    // Validated finite and >= 0; a value too large for a Duration means "never".
    let keepalive = (server_config.http2_keepalive_interval_s > 0.0)
        .then(|| seconds(server_config.http2_keepalive_interval_s));
    let mut builder = Server::builder();
    if let Some(tls) = tls_config(server_config)? {
        builder = builder.tls_config(tls)?;
    }
    let reflection = server_config.reflection;
    let deadline = seconds(server_config.shutdown_timeout_s);
    let serving = builder
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(seconds(server_config.http2_keepalive_timeout_s)))
        .max_concurrent_streams(Some(server_config.max_concurrent_streams))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        // Outermost: it sees the codes the layers below settle on.
        .layer(rpc_metrics::RpcMetricsLayer)
        .layer(tower::util::MapResponseLayer::new(
            decode_errors_are_invalid_argument,
        ))
        .layer(tonic::service::InterceptorLayer::new(authenticate(
            engine.tokens.clone(),
        )))
        .add_service(health_service)
        .add_optional_service(reflection.then_some(reflection_v1))
        .add_optional_service(reflection.then_some(reflection_v1alpha))
        .add_service(affect)
        .add_service(recordings)
        .serve_with_incoming_shutdown(incoming, shutdown);
    // A call that never finishes (a client that stopped reading, a long generation) must
    // not keep the process alive for ever after a shutdown signal.
    tokio::select! {
        served = serving => served?,
        () = async {
            shutdown_started.notified().await;
            tokio::time::sleep(deadline).await;
        } => {
            tracing::warn!(
                live_sessions = engine.sessions.len(),
                "calls still open {deadline:?} after the shutdown signal (config key server.shutdown_timeout_s); exiting without them (recordings left open are closed at the next start)"
            );
        }
    }
    Ok(())
}

/// Accepts connections on a task of its own, at most `max_connections` open at once (one
/// more is closed at once, and logged once per episode), each with `first_bytes` to start
/// talking (see [`Connection`]).
///
/// When the process is out of descriptors (or the kernel out of buffers), accepting fails
/// until something closes: the loop then backs off (10 ms doubling to 1 s) and logs once
/// per episode, instead of retrying at once and spinning a core while the server cannot be
/// reached. Hand-written: tonic's own loop retries at once and has no connection limit, and
/// no well-kept crate wraps a tokio listener this way.
fn accept_with_backoff(
    listener: tokio::net::TcpListener,
    max_connections: usize,
    first_bytes: Duration,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Connection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let open = Arc::new(tokio::sync::Semaphore::new(max_connections));
    tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        let mut refusing = false;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if !backoff.is_zero() {
                        tracing::info!("accepting connections again");
                        backoff = Duration::ZERO;
                    }
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        if !refusing {
                            tracing::warn!(
                                %peer,
                                "closing new connections: {max_connections} are open (config key server.max_connections)"
                            );
                            refusing = true;
                        }
                        drop(stream);
                        continue;
                    };
                    refusing = false;
                    // TCP_NODELAY on every connection: a live session's small messages
                    // (acks, warnings) otherwise wait for Nagle's algorithm and the peer's
                    // delayed ACK (measured: ~25 ms median ack latency with it, see
                    // benches/session_load.py).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::warn!("cannot set TCP_NODELAY: {e}");
                    }
                    metrics::gauge!(crate::metrics::OPEN_CONNECTIONS).increment(1.0);
                    let connection = Connection {
                        stream,
                        _permit: permit,
                        first_bytes: Some(Box::pin(tokio::time::sleep(first_bytes))),
                    };
                    if tx.send(Ok(connection)).await.is_err() {
                        return; // the server has stopped
                    }
                }
                Err(e) => {
                    if backoff.is_zero() {
                        tracing::warn!(
                            "cannot accept connections: {e}; retrying with back-off (raise the descriptor limit, ulimit -n, if this is EMFILE)"
                        );
                        backoff = Duration::from_millis(10);
                    } else {
                        backoff = (backoff * 2).min(Duration::from_secs(1));
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

/// An accepted connection: holds its place among `server.max_connections` until it closes,
/// and fails its reads if the client sends nothing within `server.handshake_timeout_s` of
/// connecting (a half-open or silent connection would otherwise hold a descriptor for
/// ever; TLS has its own handshake deadline, this one covers plaintext too).
struct Connection {
    stream: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Until the first bytes arrive.
    first_bytes: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::OPEN_CONNECTIONS).decrement(1.0);
    }
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.first_bytes = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .first_bytes
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client sent nothing in time (config key server.handshake_timeout_s)",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// The authenticated caller of a request (or why it is not), put in each request's
/// extensions by [`authenticate`] before any handler runs.
#[derive(Clone)]
struct Caller(Result<crate::auth::Principal, crate::error::Error>);

/// Reads the `authorization` metadata of every call. A request without a valid token is
/// still passed on (health checks and reflection need none); each handler asks
/// [`caller`] and refuses it there.
fn authenticate(
    tokens: crate::auth::Tokens,
) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request: tonic::Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("(not text)"));
        let caller = Caller(tokens.authenticate(header));
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The caller of a request, or UNAUTHENTICATED saying what to send.
pub(crate) fn caller<T>(
    request: &tonic::Request<T>,
) -> Result<crate::auth::Principal, tonic::Status> {
    match request.extensions().get::<Caller>() {
        Some(Caller(Ok(principal))) => Ok(principal.clone()),
        Some(Caller(Err(e))) => Err(convert::status(e.clone())),
        None => Err(tonic::Status::internal(
            "the request was not authenticated (a bug: the authentication layer is missing)",
        )),
    }
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
