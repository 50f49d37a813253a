//! Hardening on the real server: tokens and roles, session owners, TLS and mutual TLS, the
//! refusal to listen openly, reflection off, connection and session time limits, a client
//! that stops reading, and the shutdown deadline.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::recordings_client::RecordingsClient;
use affectd::proto::*;
use tonic::Code;
use tonic::transport::Channel;

/// Tokens for the tests: (name, token, roles).
const TOKENS: [(&str, &str, &str); 4] = [
    ("pc1", "token-pc1", r#"["stream"]"#),
    ("pc2", "token-pc2", r#"["stream"]"#),
    ("reader", "token-reader", r#"["read"]"#),
    ("boss", "token-boss", r#"["admin"]"#),
];

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn auth_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let mut text = String::from(extra);
    for (name, token, roles) in TOKENS {
        text.push_str(&format!(
            "\n[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = {roles}\n",
            sha256_hex(token)
        ));
    }
    let path = dir.join("affectd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn signals_request() -> AnalyzeSignalsRequest {
    AnalyzeSignalsRequest {
        streams: vec![StreamInfo {
            stream_id: "eda".into(),
            kind: SignalKind::Eda as i32,
            nominal_rate_hz: 4.0,
            channels: vec![ChannelInfo {
                label: "eda".into(),
                unit: "uS".into(),
            }],
        }],
        chunks: vec![SignalChunk {
            stream_id: "eda".into(),
            first_timestamp: 0.0,
            samples: vec![1.0; 40],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Opens a recorded session with `token`, sends one marker and waits for its ack; returns
/// the request sender and the response stream.
async fn recorded_session(
    channel: &Channel,
    token: &str,
    session_id: &str,
) -> (
    tokio::sync::mpsc::Sender<StreamRequest>,
    tonic::Streaming<StreamResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig {
            session_id: session_id.into(),
            participant: "P01".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(StreamRequest {
        client_seq: 2,
        message: Some(stream_request::Message::Marker(Marker {
            timestamp: 1.0,
            label: "start".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut responses = AffectClient::new(channel.clone())
        .stream(with_token(
            token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
        .expect("the owner may open a session")
        .into_inner();
    loop {
        let message = responses.message().await.unwrap().expect("open");
        if let Some(stream_response::Message::Ack(ack)) = message.message
            && ack.client_seq == 2
        {
            break;
        }
    }
    (tx, responses)
}

/// Finding 6: without a token nothing but health and reflection answers; each role reaches
/// what it should, and a session belongs to the token that opened it: another `stream`
/// token can neither explain it, clock-shift it, calibrate it, list, get nor export it; only
/// `admin` deletes; only `admin` sees the server's file paths.
#[tokio::test]
async fn tokens_roles_and_session_owners() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let channel = server.channel().await;
    let mut affect = AffectClient::new(channel.clone());
    let mut recordings = RecordingsClient::new(channel.clone());

    // No token, a wrong token, a malformed header.
    let status = affect.analyze_signals(signals_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("authorization: Bearer"));
    let status = recordings
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = affect
        .analyze_signals(with_token("guess", signals_request()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut malformed = tonic::Request::new(signals_request());
    malformed
        .metadata_mut()
        .insert("authorization", "token-pc1".parse().unwrap());
    let status = affect.analyze_signals(malformed).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Health needs no token (load balancers, `grpc_health_probe`).
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "{health:?}");

    // Roles.
    affect
        .analyze_signals(with_token("token-pc1", signals_request()))
        .await
        .expect("stream may analyse");
    let status = affect
        .analyze_signals(with_token("token-reader", signals_request()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("`stream` role"), "{status:?}");

    // pc1's live session: pc2 cannot touch it.
    let (tx, mut responses) = recorded_session(&channel, "token-pc1", "owned-1").await;
    let clock = |token: &str| {
        with_token(
            token,
            ClockSyncRequest {
                client_send_time: 1.0,
                session_id: "owned-1".into(),
                measured_offset_s: Some(3600.0),
                measured_rtt_s: Some(0.001),
            },
        )
    };
    let status = affect.clock_sync(clock("token-pc2")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("another token"));
    let status = affect
        .explain(with_token(
            "token-pc2",
            ExplainRequest {
                source: Some(explain_request::Source::SessionId("owned-1".into())),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = affect
        .calibrate(with_token(
            "token-pc2",
            CalibrateRequest {
                session_id: "owned-1".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // The owner (and an admin) may.
    affect
        .clock_sync(clock("token-pc1"))
        .await
        .expect("the owner reports its offset");
    tx.send(StreamRequest {
        client_seq: 3,
        message: Some(stream_request::Message::End(EndSession {})),
    })
    .await
    .unwrap();
    while responses.message().await.unwrap().is_some() {}

    // Recordings: pc2 sees none, pc1 its own, the reader all.
    let list = |token: &str| with_token(token, ListSessionsRequest::default());
    let ids = |r: ListSessionsResponse| -> Vec<String> {
        r.sessions.into_iter().map(|s| s.session_id).collect()
    };
    let mine = recordings.list_sessions(list("token-pc1")).await.unwrap();
    assert_eq!(ids(mine.into_inner()), ["owned-1"]);
    let theirs = recordings.list_sessions(list("token-pc2")).await.unwrap();
    assert!(ids(theirs.into_inner()).is_empty());
    let all = recordings
        .list_sessions(list("token-reader"))
        .await
        .unwrap();
    assert_eq!(ids(all.into_inner()), ["owned-1"]);
    let get = |token: &str| {
        with_token(
            token,
            GetSessionRequest {
                session_id: "owned-1".into(),
            },
        )
    };
    assert_eq!(
        recordings
            .get_session(get("token-pc2"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    recordings.get_session(get("token-reader")).await.unwrap();
    // Nor explain a moment of its recording.
    let status = affect
        .explain(with_token(
            "token-pc2",
            ExplainRequest {
                source: Some(explain_request::Source::Recorded(RecordedMoment {
                    session_id: "owned-1".into(),
                    time: 100.0,
                })),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let export = |token: &str| {
        with_token(
            token,
            ExportSessionRequest {
                session_id: "owned-1".into(),
                format: ExportFormat::Xdf as i32,
            },
        )
    };
    assert_eq!(
        recordings
            .export_session(export("token-pc2"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut stream = recordings
        .export_session(export("token-reader"))
        .await
        .unwrap()
        .into_inner();
    let mut xdf = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        xdf.extend(chunk.data);
    }
    assert!(xdf.starts_with(b"XDF:"));
    // Offsets reported by the owner are in the recording; pc2's +3600 s is not.
    let delete = |token: &str| {
        with_token(
            token,
            DeleteSessionRequest {
                session_id: "owned-1".into(),
            },
        )
    };
    for token in ["token-pc1", "token-reader"] {
        let status = recordings.delete_session(delete(token)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{token}: {status:?}");
        assert!(status.message().contains("`admin` role"));
    }
    assert!(
        recordings
            .delete_session(delete("token-boss"))
            .await
            .unwrap()
            .into_inner()
            .deleted
    );

    // Paths: redacted for stream tokens, shown to admins.
    let models_dir = repo().join("models").display().to_string();
    let info = |token: &str| with_token(token, GetServerInfoRequest {});
    let redacted = format!(
        "{:?}",
        affect.get_server_info(info("token-pc1")).await.unwrap()
    );
    assert!(!redacted.contains(&models_dir), "{redacted}");
    let full = format!(
        "{:?}",
        affect.get_server_info(info("token-boss")).await.unwrap()
    );
    assert!(full.contains(&models_dir), "an admin sees the paths");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["lab-pc".into()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// TLS with a client certificate required (mutual TLS): a client with the CA and its
/// certificate gets answers; one without a certificate, and a plaintext client, get none.
#[tokio::test]
async fn tls_and_mutual_tls() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (cert, key, ca) = (
        write("server.pem", &pki.server_cert),
        write("server.key", &pki.server_key),
        write("ca.pem", &pki.ca),
    );
    let config = auth_config(
        dir.path(),
        &format!(
            "[server]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\ntls_client_ca_file = {ca:?}\n"
        ),
    );
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");

    let channel = Endpoint::from_shared(url.clone())
        .unwrap()
        .tls_config(
            tls.clone()
                .identity(Identity::from_pem(&pki.client_cert, &pki.client_key)),
        )
        .unwrap()
        .connect()
        .await
        .expect("mutual TLS connects");
    AffectClient::new(channel)
        .analyze_signals(with_token("token-pc1", signals_request()))
        .await
        .expect("an answer over TLS");

    // No client certificate: the handshake is refused.
    let without = Endpoint::from_shared(url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap();
    assert!(
        answers(without).await.is_err(),
        "a client without a certificate got in"
    );
    // Plaintext to a TLS port.
    let plain = answers(Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap()).await;
    assert!(plain.is_err(), "plaintext got an answer from a TLS port");

    // /metrics is served over the same TLS, with the same client-certificate rule.
    let metrics_url = server.metrics_url.clone().expect("the metrics address");
    let metrics_addr = metrics_url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("metrics not over TLS: {metrics_url}"))
        .trim_end_matches("/metrics")
        .to_string();
    let scraped = https_get(&metrics_addr, &pki, true, "token-pc1")
        .await
        .expect("mutual TLS reaches /metrics");
    assert!(
        scraped.starts_with("HTTP/1.1 200") && scraped.contains("affectd_"),
        "{scraped}"
    );
    let wrong_token = https_get(&metrics_addr, &pki, true, "not-a-token")
        .await
        .unwrap();
    assert!(wrong_token.starts_with("HTTP/1.1 401"), "{wrong_token}");
    assert!(
        https_get(&metrics_addr, &pki, false, "token-pc1")
            .await
            .is_err(),
        "/metrics answered a client without a certificate"
    );
    let mut plain = tokio::net::TcpStream::connect(&metrics_addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("affectd_"),
        "plaintext got metrics from a TLS port"
    );
}

/// GET /metrics over TLS (trusting the test CA; with the client certificate when
/// `client_certificate`) with a bearer token; the whole HTTP answer, or why there was none.
async fn https_get(
    addr: &str,
    pki: &Pki,
    client_certificate: bool,
    token: &str,
) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if client_certificate {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    if answer.is_empty() {
        return Err("no answer".into());
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Whether a client on `endpoint` gets an answer (Err: why not, at connecting or calling).
async fn answers(endpoint: tonic::transport::Endpoint) -> Result<(), String> {
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    AffectClient::new(channel)
        .analyze_signals(with_token("token-pc1", signals_request()))
        .await
        .map(|_| ())
        .map_err(|s| s.to_string())
}

/// `affectd serve` refuses a non-loopback address without TLS and tokens, naming what is
/// missing; `--insecure` serves anyway and warns.
#[test]
fn serve_refuses_an_open_address_without_tls_and_tokens() {
    let cache = tempfile::tempdir().unwrap();
    let output = affectd(cache.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without TLS and tokens")
            && stderr.contains("--insecure"),
        "{stderr}"
    );
    let mut cmd = affectd(cache.path());
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--insecure"]);
    let mut server = TestServer::spawn(cmd, None);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30)).expect("exits");
    let log = server.stderr_until_closed().join("\n");
    assert!(log.contains("without TLS and tokens (--insecure)"), "{log}");

    // /metrics beyond loopback: tokens are not enough, a token sent in the clear could be
    // replayed on the gRPC port.
    let config = auth_config(cache.path(), "");
    let output = affectd(cache.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "0.0.0.0:0",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve the dashboard and /metrics on 0.0.0.0:0 without TLS"),
        "{stderr}"
    );
}

/// `server.reflection = false` hides the schema.
#[tokio::test]
async fn reflection_can_be_turned_off() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    for (reflection, served) in [(true, true), (false, false)] {
        std::fs::write(&config, format!("[server]\nreflection = {reflection}\n")).unwrap();
        let server = TestServer::start(|cmd| {
            cmd.arg("--config").arg(&config);
        });
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let answer = ServerReflectionClient::new(server.channel().await)
            .server_reflection_info(tokio_stream::iter([request]))
            .await;
        match answer {
            Ok(mut stream) => {
                let first = stream.get_mut().message().await;
                assert_eq!(
                    first.is_ok(),
                    served,
                    "reflection = {reflection}: {first:?}"
                );
            }
            Err(status) => {
                assert!(!served, "{status:?}");
                assert_eq!(status.code(), Code::Unimplemented);
            }
        }
    }
}

/// Finding 4: a connection that never speaks is closed after `server.handshake_timeout_s`;
/// one over `server.max_connections` is closed at once; a session with no message for
/// `limits.session_idle_timeout_s` ends with DEADLINE_EXCEEDED naming the key.
#[tokio::test]
async fn silent_connections_and_idle_sessions_are_closed() {
    let (_config, server) = server_with_config(
        "[server]\nhandshake_timeout_s = 1.0\nmax_connections = 3\n[limits]\nsession_idle_timeout_s = 1.0\n",
    );
    let addr = server.addr.clone();
    let closed_after = |mut stream: std::net::TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        // The server's HTTP/2 preface may come first; then EOF (or a reset).
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    let silent_1 = std::net::TcpStream::connect(&addr).unwrap();
    let silent_2 = std::net::TcpStream::connect(&addr).unwrap();
    let silent_3 = std::net::TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The fourth is over the limit of three.
    let over = std::net::TcpStream::connect(&addr).unwrap();
    let waited = closed_after(over);
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    let waited = closed_after(silent_1);
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "a silent connection was closed after {waited:?}"
    );
    drop((silent_2, silent_3));
    std::thread::sleep(Duration::from_millis(1500));

    // Room again; an idle session ends.
    let mut affect = AffectClient::new(server.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig {
            no_record: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut responses = affect
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();
    let status = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("limits.session_idle_timeout_s"));
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(tx);
}

/// EEG chunks whose analysis (a window every 10 ms) answers with far more than a small
/// HTTP/2 window holds, so that a client that does not read stalls the session.
fn flood_session(session_id: &str) -> (SessionConfig, Vec<SignalChunk>) {
    let rate = 256.0;
    let config = SessionConfig {
        session_id: session_id.into(),
        streams: vec![StreamInfo {
            stream_id: "eeg".into(),
            kind: SignalKind::Eeg as i32,
            nominal_rate_hz: rate,
            channels: ["F3", "F4"]
                .iter()
                .map(|l| ChannelInfo {
                    label: l.to_string(),
                    unit: "uV".into(),
                })
                .collect(),
        }],
        signal_config: Some(SignalConfig {
            window_s: 1.0,
            hop_s: 0.01,
            ..Default::default()
        }),
        ..Default::default()
    };
    let chunks = (0..40)
        .map(|i| SignalChunk {
            stream_id: "eeg".into(),
            first_timestamp: i as f64 * 2.0,
            samples: (0..(2.0 * rate) as usize * 2)
                .map(|k| ((k as f32) * 0.37).sin() * 20.0)
                .collect(),
            ..Default::default()
        })
        .collect();
    (config, chunks)
}

/// Opens a session on a connection with a 64 KiB HTTP/2 window and sends `chunks` without
/// ever reading a response. Returns the sender, to keep the stream open.
async fn stalled_client(
    server: &TestServer,
    config: SessionConfig,
    chunks: Vec<SignalChunk>,
) -> (
    tokio::sync::mpsc::Sender<StreamRequest>,
    tonic::Streaming<StreamResponse>,
) {
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .unwrap();
    // Small: a send completes only when the transport has taken the one before.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(config)),
    })
    .await
    .unwrap();
    let responses = AffectClient::new(channel)
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for (i, chunk) in chunks.into_iter().enumerate() {
        // The server stops reading once the session is held up (or has given up on the
        // client): then the rest would only wait.
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            tx.send(StreamRequest {
                client_seq: 2 + i as u64,
                message: Some(stream_request::Message::Chunk(chunk)),
            }),
        )
        .await;
        if sent.is_err() {
            break;
        }
    }
    (tx, responses)
}

/// Backpressure in bytes: a session holds at most `limits.max_session_queue_bytes` of its
/// client's messages (the old code held 256 messages, whatever their size). A client that
/// never reads stalls the session; its 4 MB chunks then stop being read off the stream
/// instead of queueing in the server.
#[tokio::test]
async fn a_stalled_session_holds_at_most_its_queue_bytes() {
    let (_config, server) = server_with_config(
        "[limits]\nclient_read_timeout_s = 600.0\nmax_session_queue_bytes = 8388608\n",
    );
    let (session, _) = flood_session("bounded");
    // 2 channels x 524,288 samples (4 MiB of f32): 2,048 s at 256 Hz, some 200,000
    // responses' worth of windows in all, so the client's 64 KiB window stalls it at once.
    let chunk = |i: usize| SignalChunk {
        stream_id: "eeg".into(),
        first_timestamp: i as f64 * 2048.0,
        samples: (0..2 * 524_288)
            .map(|k| ((k as f32) * 0.37).sin() * 20.0)
            .collect(),
        ..Default::default()
    };
    let mut session = session;
    session.signal_config = Some(SignalConfig {
        window_s: 1.0,
        hop_s: 0.25,
        ..Default::default()
    });
    let before = peak_rss_kib(server.child.id());
    let started = Instant::now();
    let (_tx, _responses) = stalled_client(&server, session, (0..64).map(chunk).collect()).await;
    let grown_mib = (peak_rss_kib(server.child.id()) - before) / 1024;
    eprintln!(
        "64 x 4 MiB chunks offered to a stalled session: peak RSS grew {grown_mib} MiB ({:?})",
        started.elapsed()
    );
    // 8 MiB queued, the chunk being analysed and its windows, the transport's buffers.
    assert!(grown_mib < 120, "peak RSS grew {grown_mib} MiB");
}

/// Finding 3: a client that sends but never reads. With `limits.client_read_timeout_s`
/// the session gives up on it and ends, completing its recording; SIGTERM then exits at
/// once. With a long patience, SIGTERM still exits by `server.shutdown_timeout_s`.
#[tokio::test]
async fn a_client_that_stops_reading_cannot_hold_the_session_or_the_shutdown() {
    let (_config, mut server) = server_with_config(
        "[server]\nshutdown_timeout_s = 3.0\n[limits]\nclient_read_timeout_s = 1.0\n",
    );
    let (session, chunks) = flood_session("stalled-1");
    let (_tx, _responses) = stalled_client(&server, session, chunks).await;
    // The session ends by itself, and its recording says why.
    let mut recordings = RecordingsClient::new(server.channel().await);
    let started = Instant::now();
    let row = loop {
        let row = recordings
            .get_session(GetSessionRequest {
                session_id: "stalled-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        if row.state == SessionState::Ended as i32 {
            break row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stalled session is still live: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        row.end_reason.contains("limits.client_read_timeout_s"),
        "{row:?}"
    );
    assert!(row.chunks > 0);
    let started = Instant::now();
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(15))
        .expect("exits after SIGTERM with a stalled client connected");
    eprintln!("exit after SIGTERM: {:?}", started.elapsed());

    // A patient server: the shutdown deadline ends it.
    let (_config, mut server) = server_with_config(
        "[server]\nshutdown_timeout_s = 2.0\n[limits]\nclient_read_timeout_s = 600.0\n",
    );
    let (session, chunks) = flood_session("stalled-2");
    let (_tx, _responses) = stalled_client(&server, session, chunks).await;
    let started = Instant::now();
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(15))
        .expect("exits by the shutdown deadline");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let log = server.stderr_until_closed().join("\n");
    assert!(
        log.contains("server.shutdown_timeout_s") || waited < Duration::from_secs(2),
        "{log}"
    );
}

/// Prometheus metrics at `/metrics` on `server.http_listen`: behind the same tokens as
/// gRPC, and counting calls by method and code, frames, acknowledgements, recorded bytes,
/// live sessions and refusals by limit.
#[tokio::test]
async fn metrics_count_calls_sessions_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "[limits]\nmax_live_sessions = 1\n");
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let url = server
        .metrics_url
        .clone()
        .expect("the metrics address is printed");
    let channel = server.channel().await;
    let mut affect = AffectClient::new(channel.clone());
    affect
        .analyze_signals(with_token("token-pc1", signals_request()))
        .await
        .unwrap();
    affect.analyze_signals(signals_request()).await.unwrap_err();
    // A recorded session with a frame, while a second is refused by the session cap.
    let (tx, mut responses) = recorded_session(&channel, "token-pc1", "measured").await;
    let (_refused_tx, refused_rx) = tokio::sync::mpsc::channel(1);
    _refused_tx
        .send(StreamRequest {
            client_seq: 1,
            message: Some(stream_request::Message::Config(SessionConfig {
                no_record: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let refused = affect
        .stream(with_token(
            "token-pc2",
            tokio_stream::wrappers::ReceiverStream::new(refused_rx),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let photo = std::fs::read(repo().join(".testdata/single_face.jpg")).unwrap();
    tx.send(StreamRequest {
        client_seq: 3,
        message: Some(stream_request::Message::Frame(Frame {
            timestamp: 2.0,
            image: Some(ImageInput {
                data: Some(image_input::Data::Encoded(photo)),
            }),
        })),
    })
    .await
    .unwrap();
    tx.send(StreamRequest {
        client_seq: 4,
        message: Some(stream_request::Message::End(EndSession {})),
    })
    .await
    .unwrap();
    while responses.message().await.unwrap().is_some() {}
    // A session that fails later (a client_seq that does not increase) counts by how it
    // ended, not by how it opened.
    let (tx, mut responses) = recorded_session(&channel, "token-pc1", "failing").await;
    tx.send(StreamRequest {
        client_seq: 2,
        message: Some(stream_request::Message::Marker(Marker {
            timestamp: 2.0,
            label: "again".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let failed = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended OK"),
            Err(status) => break status,
        }
    };
    assert_eq!(failed.code(), Code::InvalidArgument, "{failed:?}");
    drop(responses);

    let get = |token: Option<&str>| {
        let url = url.clone();
        let token = token.map(str::to_owned);
        std::thread::spawn(move || {
            let mut request = ureq::get(&url);
            if let Some(token) = token {
                request = request.set("authorization", &format!("Bearer {token}"));
            }
            match request.call() {
                Ok(response) => (response.status(), response.into_string().unwrap()),
                Err(ureq::Error::Status(code, response)) => (code, response.into_string().unwrap()),
                Err(e) => panic!("{e}"),
            }
        })
        .join()
        .unwrap()
    };
    let (status, body) = get(None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(Some("token-reader"));
    assert_eq!(status, 200);
    let value = |line_start: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in\n{body}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value(r#"affectd_rpc_requests_total{method="/affect.v1.Affect/AnalyzeSignals",code="OK"}"#),
        1.0
    );
    assert_eq!(
        value(
            r#"affectd_rpc_requests_total{method="/affect.v1.Affect/AnalyzeSignals",code="UNAUTHENTICATED"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"affectd_rejected_total{limit="limits.max_live_sessions"}"#),
        1.0
    );
    let stream = |code: &str| {
        value(&format!(
            r#"affectd_rpc_requests_total{{method="/affect.v1.Affect/Stream",code="{code}"}}"#
        ))
    };
    assert_eq!(stream("OK"), 1.0);
    assert_eq!(stream("RESOURCE_EXHAUSTED"), 1.0);
    assert_eq!(stream("INVALID_ARGUMENT"), 1.0);
    assert_eq!(
        value(r#"affectd_session_frames_total{outcome="analysed"}"#),
        1.0
    );
    assert!(
        value("affectd_recorded_bytes_total") > 80_000.0,
        "the frame"
    );
    assert!(value("affectd_ack_latency_seconds_count") >= 2.0);
    assert_eq!(value("affectd_live_sessions"), 0.0);
    assert!(value("affectd_open_connections") >= 1.0);
    assert!(body.contains("affectd_rpc_duration_seconds_bucket"));
    let missing = std::thread::spawn({
        let url = url.replace("/metrics", "/nope");
        move || match ureq::get(&url).call() {
            Err(ureq::Error::Status(code, _)) => code,
            other => panic!("{other:?}"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(missing, 404);
}

/// Admission of unary analyses: at most `limits.max_concurrent_analyses` run, at most
/// `limits.max_queued_analyses` wait (each at most `limits.analysis_queue_timeout_s`), and
/// one more is refused at once, naming the key. The old code ran every call at once.
#[tokio::test(flavor = "multi_thread")]
async fn unary_analyses_are_admitted_boundedly() {
    let (_config, server) = server_with_config(
        "[limits]\nmax_concurrent_analyses = 1\nmax_queued_analyses = 1\nanalysis_queue_timeout_s = 0.5\n",
    );
    // Five faces, enlarged to 3000x2000 so that one analysis outlasts sending the others.
    let photo = image::open(repo().join(".testdata/multi_face.jpg"))
        .unwrap()
        .resize_exact(3000, 2000, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    photo
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let affect = AffectClient::new(server.channel().await);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut affect = affect.clone();
            let jpeg = jpeg.clone();
            tokio::spawn(async move {
                affect
                    .analyze_frame(AnalyzeFrameRequest {
                        image: Some(ImageInput {
                            data: Some(image_input::Data::Encoded(jpeg)),
                        }),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().faces.len())
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(faces) => {
                assert!(faces >= 1);
                answered += 1;
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    status.message().contains("limits.max_queued_analyses"),
                    "{status:?}"
                );
                refused += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    status.message().contains("limits.analysis_queue_timeout_s"),
                    "{status:?}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        answered >= 1 && refused >= 1,
        "{answered} answered, {refused} refused"
    );
    // The turns are free again afterwards.
    let mut affect = affect.clone();
    affect
        .analyze_frame(AnalyzeFrameRequest {
            image: Some(ImageInput {
                data: Some(image_input::Data::Encoded(jpeg)),
            }),
            ..Default::default()
        })
        .await
        .expect("a turn once the others are done");
}

/// The dashboard is behind the same tokens as gRPC: without one, pages go to /login and the
/// API answers 401; /login takes a token and keeps it in an HttpOnly, SameSite=Strict
/// cookie; a session belongs to its owner there too (another `stream` token does not see
/// it or its frame or feed; a `read` token sees it but cannot ask for an explanation).
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_is_behind_the_same_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let channel = server.channel().await;
    let (_tx, _responses) = recorded_session(&channel, "token-pc1", "dash-owned").await;
    let base = server
        .metrics_url
        .clone()
        .expect("the HTTP listener")
        .trim_end_matches("/metrics")
        .to_owned();
    tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let status = |r: Result<ureq::Response, ureq::Error>| -> (u16, String, Option<String>, Option<String>) {
            match r {
                Ok(r) => (
                    r.status(),
                    r.header("location").map(str::to_owned).unwrap_or_default(),
                    r.header("set-cookie").map(str::to_owned),
                    r.into_string().ok(),
                ),
                Err(ureq::Error::Status(code, r)) => (
                    code,
                    r.header("location").map(str::to_owned).unwrap_or_default(),
                    r.header("set-cookie").map(str::to_owned),
                    r.into_string().ok(),
                ),
                Err(e) => panic!("{e}"),
            }
        };
        let get = |path: &str, auth: Option<(&str, String)>| {
            let mut request = agent.get(&format!("{base}{path}"));
            if let Some((name, value)) = auth {
                request = request.set(name, &value);
            }
            status(request.call())
        };
        let bearer = |token: &str| Some(("authorization", format!("Bearer {token}")));

        // No token.
        let (code, location, _, _) = get("/", None);
        assert_eq!((code, location.as_str()), (303, "/login"));
        let (code, location, _, _) = get("/sessions/dash-owned", None);
        assert_eq!((code, location.as_str()), (303, "/login"));
        let (code, _, _, body) = get("/api/sessions", None);
        assert_eq!(code, 401);
        assert!(body.unwrap().contains("sign in at /login"));
        let (code, _, _, _) = get("/api/sessions/dash-owned/feed", None);
        assert_eq!(code, 401);
        assert_eq!(get("/login", None).0, 200);

        // /login: a wrong token is refused; a right one becomes the cookie.
        let login = |token: &str| status(agent.post(&format!("{base}/login")).send_form(&[("token", token)]));
        let (code, _, cookie, _) = login("guess");
        assert_eq!(code, 401);
        assert!(cookie.is_none());
        // A form without the field is a 400 page that says what to give, not a bare 422.
        let (code, _, cookie, body) = status(agent.post(&format!("{base}/login")).send_form(&[]));
        assert_eq!(code, 400);
        assert!(cookie.is_none() && body.unwrap().contains("Give a token"));
        let (code, location, cookie, _) = login("token-pc1");
        assert_eq!((code, location.as_str()), (303, "/"));
        let cookie = cookie.expect("a cookie");
        assert!(cookie.starts_with("affectd_token=token-pc1;"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let pc1_cookie = Some(("cookie", "affectd_token=token-pc1".to_owned()));
        let (code, _, _, body) = get("/api/sessions", pc1_cookie.clone());
        assert_eq!(code, 200);
        assert!(body.unwrap().contains("\"session_id\":\"dash-owned\""));
        assert_eq!(get("/sessions/dash-owned", pc1_cookie).0, 200);

        // Another stream token: not its session.
        let (code, _, _, body) = get("/api/sessions", bearer("token-pc2"));
        assert_eq!(code, 200);
        assert!(!body.unwrap().contains("dash-owned"));
        for path in [
            "/api/sessions/dash-owned/feed",
            "/api/sessions/dash-owned/frame.jpg",
            "/sessions/dash-owned",
        ] {
            let (code, _, _, body) = get(path, bearer("token-pc2"));
            assert_eq!(code, 403, "{path}");
            assert!(body.unwrap().contains("another token"), "{path}");
        }
        // A reader sees it, and may not ask for an explanation.
        assert_eq!(get("/sessions/dash-owned", bearer("token-reader")).0, 200);
        let explained = status(
            agent
                .post(&format!("{base}/api/sessions/dash-owned/explain"))
                .set("authorization", "Bearer token-reader")
                .send_string("{}"),
        );
        assert_eq!(explained.0, 403, "{explained:?}");
    })
    .await
    .unwrap();
}
