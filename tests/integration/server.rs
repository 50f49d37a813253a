//! The real server on an ephemeral loopback port: health, reflection, GetServerInfo,
//! UNIMPLEMENTED and FAILED_PRECONDITION answers, the recordings database, clock sync, graceful shutdown.

use std::time::Duration;

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::recordings_client::RecordingsClient;
use affectd::proto::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const VENDORED: [&str; 4] = [
    "face-detector-retinaface",
    "face-landmarks-478",
    "face-blendshapes-52",
    "expression-fer7",
];

async fn info(server: &TestServer) -> GetServerInfoResponse {
    AffectClient::new(server.channel().await)
        .get_server_info(GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn capability<'a>(info: &'a GetServerInfoResponse, name: &str) -> &'a Capability {
    info.capabilities
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no capability {name}"))
}

fn model<'a>(info: &'a GetServerInfoResponse, id: &str) -> &'a ModelInfo {
    info.models
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("no model {id}"))
}

#[tokio::test]
async fn health_reports_serving() {
    let server = TestServer::start(|_| {});
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "affect.v1.Affect", "affect.v1.Recordings"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service `{service}`");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

async fn reflect(server: &TestServer, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(server.channel().await);
    let outbound = tokio_stream::iter(vec![ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut inbound = client
        .server_reflection_info(outbound)
        .await
        .unwrap()
        .into_inner();
    inbound
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_and_describes_services() {
    let server = TestServer::start(|_| {});
    let MessageResponse::ListServicesResponse(list) =
        reflect(&server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "affect.v1.Affect",
        "affect.v1.Recordings",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &server,
        MessageRequest::FileContainingSymbol("affect.v1.Affect".into()),
    )
    .await
    else {
        panic!("expected descriptors");
    };
    use prost::Message;
    let described: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .unwrap()
                .name()
                .to_owned()
        })
        .collect();
    assert!(
        described.contains(&"affect/v1/affect.proto".to_owned()),
        "{described:?}"
    );
}

#[tokio::test]
async fn server_info_reports_verified_models() {
    let server = TestServer::start(|_| {});
    let info = info(&server).await;
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.proto_package, "affect.v1");
    assert!(
        info.onnxruntime_version.starts_with("1."),
        "{}",
        info.onnxruntime_version
    );
    assert!(info.onnxruntime_library.contains("libonnxruntime"));

    let manifest = std::fs::read_to_string(repo().join("models/manifest.toml")).unwrap();
    for id in VENDORED {
        let m = model(&info, id);
        assert_eq!(m.status, ModelStatus::Loaded as i32, "{id}: {}", m.reason);
        assert_eq!(m.source, "vendored");
        assert!(
            manifest.contains(&m.sha256),
            "{id} reports the manifest's sha256"
        );
        assert!(m.load_ms > Some(0.0));
    }
    // The test cache is empty: GGUF models are missing, and the reason says what to run.
    let llm = model(&info, "qwen2.5-coder-0.5b-instruct-q4km");
    assert_eq!(llm.status, ModelStatus::Missing as i32);
    assert!(
        llm.reason.contains("affectd models fetch"),
        "{}",
        llm.reason
    );
    assert_eq!(llm.source, "registry");

    for name in [
        "face_detection",
        "face_landmarks",
        "face_blendshapes",
        "face_expression",
        "signals",
        "live_sessions",
        "recordings",
    ] {
        assert!(capability(&info, name).available, "{name}");
    }
    let explanation = capability(&info, "explanation");
    // An empty model cache and no openai_url: no chat backend, and the reason says why.
    assert!(
        !explanation.available
            && explanation.reason.contains("models fetch")
            && explanation.reason.contains("openai_url"),
        "{}",
        explanation.reason
    );
    let backends: Vec<&str> = info.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(backends, ["candle", "openai"]);
    assert_eq!(info.max_message_bytes, 16 * 1024 * 1024);
}

#[tokio::test]
async fn recordings_answer_from_the_session_database() {
    let server = TestServer::start(|_| {});
    let mut recordings = RecordingsClient::new(server.channel().await);
    let listed = recordings
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sessions.is_empty() && listed.next_page_token.is_empty());
    let status = recordings
        .get_session(GetSessionRequest {
            session_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = recordings
        .export_session(ExportSessionRequest {
            session_id: "nobody".into(),
            format: ExportFormat::Xdf as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = recordings
        .list_sessions(ListSessionsRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// A database that cannot be opened leaves the server up; recorded sessions are refused
/// with the reason, unrecorded ones still run.
#[tokio::test]
async fn an_unusable_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", blocker.join("sessions.sqlite"));
    });
    let mut recordings = RecordingsClient::new(server.channel().await);
    let status = recordings
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("sessions.sqlite"),
        "{}",
        status.message()
    );
    let mut affect = AffectClient::new(server.channel().await);
    let config = |no_record| StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig {
            no_record,
            ..Default::default()
        })),
    };
    let status = affect
        .stream(tokio_stream::iter(vec![config(false)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("no_record"),
        "{}",
        status.message()
    );
    let mut responses = affect
        .stream(tokio_stream::iter(vec![config(true)]))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(m) = responses.message().await.unwrap() {
        last = m.message;
    }
    assert!(matches!(last, Some(stream_response::Message::Ended(_))));
}

#[tokio::test]
async fn unknown_rpc_answers_unimplemented() {
    let server = TestServer::start(|_| {});
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<GetServerInfoRequest, GetServerInfoResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/affect.v1.Affect/NoSuchMethod");
    let status = grpc
        .unary(tonic::Request::new(GetServerInfoRequest {}), path, codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn clock_sync_returns_server_times() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let reply = affect
        .clock_sync(ClockSyncRequest {
            client_send_time: 12.5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(reply.client_send_time, 12.5);
    assert!(
        before <= reply.server_receive_time && reply.server_receive_time <= reply.server_send_time
    );
    assert!(reply.server_send_time <= after);
    let nan = affect
        .clock_sync(ClockSyncRequest {
            client_send_time: f64::NAN,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(nan.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn corrupt_model_makes_its_capability_unavailable() {
    let models = models_copy();
    corrupt_one_byte(&models.path().join("expression_fer7.onnx"));
    let dir = models.path().to_owned();
    let server = TestServer::start(|cmd| {
        cmd.arg("--models-dir").arg(&dir);
    });
    let info = info(&server).await;
    let fer = model(&info, "expression-fer7");
    assert_eq!(fer.status, ModelStatus::Corrupt as i32);
    assert!(
        fer.reason.contains("expression_fer7.onnx") && fer.reason.contains(&fer.sha256),
        "{}",
        fer.reason
    );
    assert!(fer.reason.contains("found "), "both hashes: {}", fer.reason);
    let expression = capability(&info, "face_expression");
    assert!(!expression.available && expression.reason.contains("sha256 mismatch"));
    assert!(capability(&info, "face_detection").available);
}

#[tokio::test]
async fn missing_detector_answers_failed_precondition() {
    let models = models_copy();
    std::fs::remove_file(models.path().join("face_detector_retinaface.onnx")).unwrap();
    let dir = models.path().to_owned();
    let server = TestServer::start(|cmd| {
        cmd.arg("--models-dir").arg(&dir);
    });
    let info = info(&server).await;
    assert_eq!(
        model(&info, "face-detector-retinaface").status,
        ModelStatus::Missing as i32
    );
    let status = AffectClient::new(server.channel().await)
        .analyze_frame(AnalyzeFrameRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("face_detector_retinaface.onnx"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn missing_onnxruntime_is_reported_with_the_fix() {
    let server = TestServer::start(|cmd| {
        cmd.env(
            "AFFECTD_ONNXRUNTIME_LIBRARY",
            "/nonexistent/libonnxruntime.so",
        );
    });
    let info = info(&server).await;
    assert!(info.onnxruntime_version.is_empty());
    let detector = model(&info, "face-detector-retinaface");
    assert_eq!(detector.status, ModelStatus::LoadFailed as i32);
    assert!(
        detector.reason.contains("pip install onnxruntime==1.31.1"),
        "{}",
        detector.reason
    );
    assert!(!capability(&info, "face_detection").available);
}

#[tokio::test]
async fn a_library_that_is_not_onnxruntime_is_refused_with_the_fix() {
    // libz is not ONNX Runtime: loading works, the API symbol is missing.
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libz.so.1 exists on Debian");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_ONNXRUNTIME_LIBRARY", libz);
    });
    let info = info(&server).await;
    let detector = model(&info, "face-detector-retinaface");
    assert_eq!(detector.status, ModelStatus::LoadFailed as i32);
    assert!(
        detector.reason.contains("OrtGetApiBase") && detector.reason.contains("pip install"),
        "{}",
        detector.reason
    );
}

fn graceful_stop(signal: &str) {
    let mut server = TestServer::start(|cmd| {
        cmd.args(["--log-level", "info"]);
    });
    server.signal(signal);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(status.success(), "{signal}: {status}");
    let log = server.stderr_until_closed();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("SIG{signal} received"))),
        "logs the signal: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "finishes cleanly: {log:?}"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    graceful_stop("TERM");
}

#[test]
fn sigint_shuts_down_gracefully() {
    graceful_stop("INT");
}

#[test]
fn port_in_use_is_reported() {
    let first = TestServer::start(|_| {});
    let cache = tempfile::tempdir().unwrap();
    let out = affectd(cache.path())
        .args(["serve", "--listen", &first.addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already in use") && stderr.contains(&first.addr),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreadable_models_dir_names_the_path() {
    let cache = tempfile::tempdir().unwrap();
    let out = affectd(cache.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--models-dir",
            "/nonexistent/models",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/models/manifest.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn json_logs_are_json() {
    let mut server = TestServer::start(|cmd| {
        cmd.args(["--log-format", "json", "--log-level", "info"]);
    });
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(10)).unwrap();
    let lines = server.stderr_until_closed();
    assert!(!lines.is_empty());
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

/// A real old ONNX Runtime (1.22.1 from its PyPI wheel) is refused with the command to run.
#[tokio::test]
async fn an_old_onnxruntime_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let python = repo().join(".venv/bin/python");
    let status = std::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "onnxruntime==1.22.1",
            "-d",
        ])
        .arg(dir.path())
        .status()
        .expect("run scripts/setup.sh first");
    assert!(status.success(), "pip download onnxruntime==1.22.1");
    let wheel = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
    let lib = dir.path().join("libonnxruntime.so.1.22.1");
    let mut member = archive
        .by_name("onnxruntime/capi/libonnxruntime.so.1.22.1")
        .unwrap();
    std::io::copy(&mut member, &mut std::fs::File::create(&lib).unwrap()).unwrap();

    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_ONNXRUNTIME_LIBRARY", &lib);
    });
    let info = info(&server).await;
    let detector = model(&info, "face-detector-retinaface");
    assert_eq!(detector.status, ModelStatus::LoadFailed as i32);
    assert!(detector.reason.contains("1.22.1"), "{}", detector.reason);
    assert!(
        detector.reason.contains("pip install onnxruntime==1.31.1"),
        "{}",
        detector.reason
    );
    let status = AffectClient::new(server.channel().await)
        .analyze_frame(AnalyzeFrameRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

/// A StreamRequest as raw as a foreign client may send it: the marker's label as bytes, so
/// that it can be invalid UTF-8 (prost's own types cannot carry that).
#[derive(Clone, PartialEq, prost::Message)]
struct RawMarker {
    #[prost(double, tag = "1")]
    timestamp: f64,
    #[prost(bytes = "vec", tag = "2")]
    label: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawStreamRequest {
    #[prost(uint64, tag = "1")]
    client_seq: u64,
    #[prost(message, optional, tag = "2")]
    config: Option<SessionConfig>,
    #[prost(message, optional, tag = "4")]
    chunk: Option<SignalChunk>,
    #[prost(message, optional, tag = "5")]
    marker: Option<RawMarker>,
}

/// Opens a Stream with raw requests and returns how it ended: the status, and whether a
/// SessionEnded came first.
async fn raw_stream(server: &TestServer, requests: Vec<RawStreamRequest>) -> (Code, String, bool) {
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawStreamRequest, StreamResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/affect.v1.Affect/Stream");
    // Keep the client's side open until the server ends the session.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for r in requests {
        tx.send(r).await.unwrap();
    }
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut responses = match grpc.streaming(request, path, codec).await {
        Ok(r) => r.into_inner(),
        Err(status) => return (status.code(), status.message().to_string(), false),
    };
    let mut ended = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), responses.message()).await {
            Ok(Ok(Some(r))) => {
                ended |= matches!(r.message, Some(stream_response::Message::Ended(_)));
            }
            Ok(Ok(None)) => return (Code::Ok, String::new(), ended),
            Ok(Err(status)) => return (status.code(), status.message().to_string(), ended),
            Err(_) => panic!("the session did not end within 30 s"),
        }
    }
}

/// A message inside a Stream that cannot be read is the client's error: it ends the session
/// with INVALID_ARGUMENT (does not decode) or RESOURCE_EXHAUSTED (over the size limit,
/// naming server.max_message_bytes), never with OK and a SessionEnded as if all were well.
#[tokio::test]
async fn an_unreadable_message_in_a_stream_ends_it_with_the_client_s_error() {
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_MAX_MESSAGE_BYTES", "65536");
    });
    let config = RawStreamRequest {
        client_seq: 1,
        config: Some(SessionConfig {
            participant: "raw".into(),
            streams: vec![StreamInfo {
                stream_id: "eeg".into(),
                kind: SignalKind::Eeg as i32,
                nominal_rate_hz: 256.0,
                channels: vec![ChannelInfo {
                    label: "Cz".into(),
                    unit: "uV".into(),
                }],
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let bad_utf8 = RawStreamRequest {
        client_seq: 2,
        marker: Some(RawMarker {
            timestamp: 1.0,
            label: vec![b'o', b'k', 0xff, 0xfe],
        }),
        ..Default::default()
    };
    let (code, message, ended) = raw_stream(&server, vec![config.clone(), bad_utf8]).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("not a valid StreamRequest"), "{message}");
    assert!(!ended);

    let oversized = RawStreamRequest {
        client_seq: 2,
        chunk: Some(SignalChunk {
            stream_id: "eeg".into(),
            samples: vec![0.0; 40_000], // 160 KB
            ..Default::default()
        }),
        ..Default::default()
    };
    let (code, message, ended) = raw_stream(&server, vec![config, oversized]).await;
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(message.contains("server.max_message_bytes"), "{message}");
    assert!(!ended);
    // The recordings say why they ended.
    let mut recordings = RecordingsClient::new(server.channel().await);
    let sessions = recordings
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        assert!(
            s.end_reason.contains("could not be read"),
            "{}",
            s.end_reason
        );
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawIdRequest {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
}

/// A unary request that does not decode (invalid UTF-8 in a string field) is the client's
/// error: INVALID_ARGUMENT, not INTERNAL, on every service.
#[tokio::test]
async fn a_unary_request_that_does_not_decode_is_invalid_argument() {
    let server = TestServer::start(|_| {});
    for path in [
        "/affect.v1.Recordings/GetSession",
        "/affect.v1.Recordings/DeleteSession",
        "/affect.v1.Affect/Calibrate",
    ] {
        let mut grpc = tonic::client::Grpc::new(server.channel().await);
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<RawIdRequest, GetSessionResponse>::default();
        let status = grpc
            .unary(
                tonic::Request::new(RawIdRequest {
                    id: vec![b'a', 0xc3, 0x28],
                }),
                http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(status.message().contains("decode"), "{}", status.message());
    }
}

/// GetServerInfo names folders by their config keys, never by the server's absolute paths:
/// the model files, the reasons (a missing GGUF in the cache), the ONNX Runtime library.
#[tokio::test]
async fn server_info_discloses_no_absolute_paths() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let info = affect
        .get_server_info(GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let text = format!("{info:?}");
    let repo_path = repo().display().to_string();
    for secret in ["/tmp/", repo_path.as_str(), "/root", "/home/"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let detector = info
        .models
        .iter()
        .find(|m| m.id == "face-detector-retinaface")
        .unwrap();
    assert!(
        detector.file.starts_with("<models.dir>/"),
        "{}",
        detector.file
    );
    assert!(
        info.onnxruntime_library
            .starts_with("<onnx.library folder>/"),
        "{}",
        info.onnxruntime_library
    );
    let candle = info.backends.iter().find(|b| b.name == "candle").unwrap();
    assert!(
        candle.reason.contains("<models.cache_dir>/"),
        "{}",
        candle.reason
    );
}

/// Admission: at most `limits.max_live_sessions` live sessions (one more is
/// RESOURCE_EXHAUSTED naming the key, and is accepted again once one ends), and a Stream
/// that sends no config within `limits.first_message_timeout_s` is refused.
#[tokio::test]
async fn live_sessions_are_capped_and_a_silent_stream_times_out() {
    let dir = tempfile::tempdir().unwrap().keep();
    let config = dir.join("affectd.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_live_sessions = 2\nfirst_message_timeout_s = 1.0\n",
    )
    .unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let open = |affect: &mut AffectClient<tonic::transport::Channel>| {
        let mut affect = affect.clone();
        async move {
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
            let reply = affect
                .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            (tx, reply)
        }
    };
    let (first_tx, first) = open(&mut affect).await;
    let (_second_tx, second) = open(&mut affect).await;
    let mut first = first.unwrap().into_inner();
    second.unwrap();
    let (_third_tx, third) = open(&mut affect).await;
    let status = third.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("limits.max_live_sessions"));
    // One ends: there is room again.
    first_tx
        .send(StreamRequest {
            client_seq: 2,
            message: Some(stream_request::Message::End(EndSession {})),
        })
        .await
        .unwrap();
    while first.message().await.unwrap().is_some() {}
    let (_fourth_tx, fourth) = open(&mut affect).await;
    fourth.expect("a place freed by the ended session");

    // A stream that never sends its config.
    let (_silent_tx, rx) = tokio::sync::mpsc::channel::<StreamRequest>(1);
    let started = std::time::Instant::now();
    let status = affect
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("limits.first_message_timeout_s"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// Out of descriptors (connections that never speak, a low `ulimit -n`), the accept loop
/// backs off instead of spinning a core, and serves again once connections close.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_descriptors_the_server_backs_off_and_recovers() {
    let server = TestServer::start(|_| {});
    let pid = server.child.id();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open_fds + 16;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = (cpu_seconds(pid) - before) / 3.0;
    println!(
        "out of descriptors: the server used {:.0}% of a core",
        busy * 100.0
    );
    assert!(
        busy < 0.3,
        "the server spun: {:.0}% of a core",
        busy * 100.0
    );
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(2), async {
            let mut affect = AffectClient::new(server.channel().await);
            affect.get_server_info(GetServerInfoRequest {}).await
        })
        .await;
        if matches!(answer, Ok(Ok(_))) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `server.max_concurrent_streams` bounds the calls on one connection: with 1, a unary
/// call on the connection of a live Stream waits for it, while another connection is
/// served; and an invalid value in the config is refused at start-up, naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn calls_per_connection_are_capped_by_the_config() {
    let dir = tempfile::tempdir().unwrap().keep();
    let config = dir.join("affectd.toml");
    std::fs::write(&config, "[server]\nmax_concurrent_streams = 1\n").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let shared = server.channel().await;
    let mut affect = AffectClient::new(shared.clone());
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
    let mut session = affect
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let same_connection = tokio::time::timeout(
        Duration::from_secs(1),
        AffectClient::new(shared.clone()).get_server_info(GetServerInfoRequest {}),
    )
    .await;
    assert!(
        same_connection.is_err(),
        "a second call ran on a one-stream connection"
    );
    AffectClient::new(server.channel().await)
        .get_server_info(GetServerInfoRequest {})
        .await
        .expect("another connection is served");
    tx.send(StreamRequest {
        client_seq: 2,
        message: Some(stream_request::Message::End(EndSession {})),
    })
    .await
    .unwrap();
    while session.message().await.unwrap().is_some() {}
    AffectClient::new(shared)
        .get_server_info(GetServerInfoRequest {})
        .await
        .expect("the connection is free again");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\nfirst_message_timeout_s = -1.0\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("limits.first_message_timeout_s"),
        "{stderr}"
    );
}
