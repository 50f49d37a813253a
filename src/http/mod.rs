//! The HTTP listener (`server.http_listen`), axum in the gRPC server's runtime: the
//! dashboard (`dashboard`, its live feed in `feed`) and Prometheus metrics at `/metrics`,
//! behind the same bearer tokens as gRPC once `[auth]` has any.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::engine::Engine;

/// Buckets of the latency histograms, seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Buckets of the generation-speed histogram, tokens/s.
const SPEED_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0];

/// The process's Prometheus recorder, installed once (a second server in the same process
/// shares it).
pub fn recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            use metrics_exporter_prometheus::Matcher;
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metrics::EXPLAIN_TOKENS_PER_S.into()),
                        SPEED_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()
}

mod assets;
pub mod dashboard;
mod feed;

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct Http {
    engine: Arc<Engine>,
    metrics: PrometheusHandle,
    /// Whether the listener is TLS (the token cookie is then marked Secure).
    tls: bool,
    /// Turns for the dashboard's live feeds (`limits.max_dashboard_feeds`).
    feeds: Arc<tokio::sync::Semaphore>,
}

/// The HTTP listener's TLS when `[server]` has TLS: the gRPC listener's certificate and
/// key, and its client CA (then /metrics also needs a client certificate).
pub fn tls_acceptor(
    server: &crate::config::ServerConfig,
) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    if !server.tls() {
        return Ok(None);
    }
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))
    };
    let certificates = |key: &str, pem: &[u8]| {
        CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{key}: not PEM certificates ({e})"))
    };
    let chain = certificates(
        "server.tls_cert_file",
        &read("server.tls_cert_file", &server.tls_cert_file)?,
    )?;
    let key = PrivateKeyDer::from_pem_slice(&read("server.tls_key_file", &server.tls_key_file)?)
        .map_err(|e| format!("server.tls_key_file: not a PEM private key ({e})"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if server.tls_client_ca_file.as_os_str().is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let pem = read("server.tls_client_ca_file", &server.tls_client_ca_file)?;
        for certificate in certificates("server.tls_client_ca_file", &pem)? {
            roots
                .add(certificate)
                .map_err(|e| format!("server.tls_client_ca_file: {e}"))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("server.tls_client_ca_file: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("server.tls_cert_file and server.tls_key_file: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Handshakes in progress at once on the HTTP listener; more connections wait to be
/// accepted.
const MAX_HANDSHAKES: usize = 64;

/// Connections whose TLS handshake is done, for axum. Handshakes run in tasks of their own
/// (a client that stalls its handshake holds up no one), each within `handshake_timeout`.
/// Hand-written: axum serves any `Listener`, and no maintained crate wraps tokio-rustls for
/// axum 0.8 without bringing a server of its own.
struct TlsListener {
    connections: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    fn new(
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        handshake_timeout: Duration,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (done, connections) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, most likely: back off rather than spin.
                        tracing::debug!("HTTP listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "HTTP listener: TLS handshake failed: {e}")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "HTTP listener: TLS handshake timed out (server.handshake_timeout_s)")
                        }
                    }
                });
            }
        });
        Ok(TlsListener { connections, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task has ended: no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves until `shutdown` resolves; over TLS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<(tokio_rustls::TlsAcceptor, Duration)>,
    engine: Arc<Engine>,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Histograms are summarised on each render; upkeep keeps their buffers small between.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let http = Http {
        feeds: Arc::new(tokio::sync::Semaphore::new(
            engine.limits.max_dashboard_feeds,
        )),
        engine,
        metrics,
        tls: tls.is_some(),
    };
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .merge(dashboard::routes())
        .fallback(not_found)
        .with_state(http);
    match tls {
        Some((acceptor, handshake_timeout)) => {
            axum::serve(
                TlsListener::new(listener, acceptor, handshake_timeout)?,
                app,
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn render_metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    if http.engine.tokens.enabled() {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("(not text)"));
        if let Err(e) = http.engine.tokens.authenticate(header) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{e}\n"),
            )
                .into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "nothing at {}: the dashboard is at /, metrics at /metrics (gRPC is on server.listen)",
        uri.path()
    );
    if uri.path().starts_with("/api/") {
        dashboard::Failure::api(crate::error::Error::NotFound(message)).into_response()
    } else {
        dashboard::Failure::page(crate::error::Error::NotFound(message)).into_response()
    }
}
