//! Finding 8 of the hardening issue, on the real server: recording quotas, a disk that
//! fills for real (a small tmpfs), retention, and a bound on concurrent exports. In each,
//! nothing acknowledged is lost and the server stays up.

use std::time::{Duration, Instant};

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::recordings_client::RecordingsClient;
use affectd::proto::*;
use tonic::Code;

fn photo() -> Vec<u8> {
    let path = repo().join(".testdata/single_face.jpg");
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/setup.sh --dev", path.display()))
}

/// Sends frames into a recorded session until it ends; returns the last acknowledged
/// client_seq and how the stream ended.
async fn frames_until_refused(
    server: &TestServer,
    session_id: &str,
    max_frames: u64,
) -> (u64, Result<(), tonic::Status>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig {
            session_id: session_id.into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut responses = AffectClient::new(server.channel().await)
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let image = photo();
    let sender = tokio::spawn(async move {
        for seq in 2..max_frames + 2 {
            let frame = StreamRequest {
                client_seq: seq,
                message: Some(stream_request::Message::Frame(Frame {
                    timestamp: seq as f64 / 30.0,
                    image: Some(ImageInput {
                        data: Some(image_input::Data::Encoded(image.clone())),
                    }),
                })),
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        // Everything sent: end, so that a session that never hits its limit ends too.
        let _ = tx
            .send(StreamRequest {
                client_seq: max_frames + 2,
                message: Some(stream_request::Message::End(EndSession {})),
            })
            .await;
    });
    let mut acked = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(120), responses.message()).await {
            Err(_) => panic!("no end within 120 s"),
            Ok(Ok(Some(m))) => {
                if let Some(stream_response::Message::Ack(a)) = m.message {
                    acked = a.client_seq;
                }
            }
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(status)) => break Err(status),
        }
    };
    sender.abort();
    (acked, ended)
}

async fn recording(server: &TestServer, session_id: &str) -> SessionSummary {
    RecordingsClient::new(server.channel().await)
        .get_session(GetSessionRequest {
            session_id: session_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
}

/// `store.max_session_bytes`: the batch that would pass it is not written; the session
/// ends with RESOURCE_EXHAUSTED naming the key; every acknowledged frame is recorded.
#[tokio::test]
async fn a_session_over_its_quota_stops_with_everything_acknowledged_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    std::fs::write(&config, "[store]\nmax_session_bytes = 1000000\n").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let (acked, ended) = frames_until_refused(&server, "quota", 200).await;
    let status = ended.expect_err("the quota ends the session");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("store.max_session_bytes"),
        "{status:?}"
    );
    let row = recording(&server, "quota").await;
    assert_eq!(
        row.frames,
        acked - 1,
        "frames 2..={acked} were acknowledged"
    );
    assert!(row.stored_bytes <= 1_000_000, "{row:?}");
    assert!(
        row.end_reason.contains("store.max_session_bytes"),
        "{row:?}"
    );
    assert_eq!(row.state, SessionState::Ended as i32);
}

/// Mounts a tmpfs of `megabytes` at a new folder; unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let folder = tempfile::tempdir().unwrap().keep();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&folder)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test fills a real small disk and needs to mount a tmpfs (root, or CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk(folder)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A disk that fills for real: with no free-space margin SQLite finds it full and the
/// session ends with RESOURCE_EXHAUSTED saying so; with `store.min_free_disk_bytes` the
/// session stops before that, naming the key. Either way every acknowledged frame is
/// recorded, the database still reads, and the server answers and records again.
#[tokio::test]
async fn a_full_disk_ends_the_session_cleanly_and_the_server_stays_up() {
    let disk = SmallDisk::mount(12);
    let config = disk.0.join("affectd.toml");
    for (margin, session_id, expected) in [
        (
            0u64,
            "full-disk",
            "disk holding the session database is full",
        ),
        (4_000_000, "margin", "store.min_free_disk_bytes"),
    ] {
        // A fresh database each time: the first run leaves the disk full.
        let database = disk.0.join(format!("{session_id}.sqlite"));
        for entry in std::fs::read_dir(&disk.0).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e != "toml") {
                let _ = std::fs::remove_file(path);
            }
        }
        std::fs::write(
            &config,
            format!("[store]\nmin_free_disk_bytes = {margin}\n"),
        )
        .unwrap();
        let server = TestServer::start(|cmd| {
            cmd.arg("--config")
                .arg(&config)
                .env("AFFECTD_DATABASE", &database);
        });
        let (acked, ended) = frames_until_refused(&server, session_id, 1000).await;
        let status = ended.expect_err("the disk ends the session");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains(expected), "{status:?}");
        let row = recording(&server, session_id).await;
        assert!(
            row.frames >= acked - 1,
            "acknowledged {} frames, recorded {}",
            acked - 1,
            row.frames
        );
        assert!(
            acked > 10,
            "only {acked} acknowledged before the disk filled"
        );
        // Still serving: another session, unrecorded.
        let info = AffectClient::new(server.channel().await)
            .get_server_info(GetServerInfoRequest {})
            .await;
        assert!(info.is_ok());
        let (_, unrecorded) = {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tx.send(StreamRequest {
                client_seq: 1,
                message: Some(stream_request::Message::Config(SessionConfig {
                    no_record: true,
                    ..Default::default()
                })),
            })
            .await
            .unwrap();
            (
                tx,
                AffectClient::new(server.channel().await)
                    .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await,
            )
        };
        assert!(unrecorded.is_ok(), "{unrecorded:?}");
    }
}

/// `store.retention_days`: an ended recording is deleted once that old.
#[tokio::test]
async fn recordings_past_their_retention_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    // About 1.7 s.
    std::fs::write(&config, "[store]\nretention_days = 0.00002\n").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let (_, ended) = frames_until_refused(&server, "short-lived", 2).await;
    ended.unwrap();
    assert_eq!(recording(&server, "short-lived").await.frames, 2);
    let started = Instant::now();
    loop {
        let status = RecordingsClient::new(server.channel().await)
            .get_session(GetSessionRequest {
                session_id: "short-lived".into(),
            })
            .await;
        if status.as_ref().is_err_and(|s| s.code() == Code::NotFound) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still there: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `limits.max_concurrent_exports`: while one export is being sent (its client reads
/// slowly), one more is refused with RESOURCE_EXHAUSTED naming the key.
#[tokio::test]
async fn concurrent_exports_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    std::fs::write(&config, "[limits]\nmax_concurrent_exports = 1\n").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    // About 8 MB of frames.
    let (_, ended) = frames_until_refused(&server, "big", 100).await;
    ended.unwrap();
    let mut recordings = RecordingsClient::new(server.channel().await);
    let request = || ExportSessionRequest {
        session_id: "big".into(),
        format: ExportFormat::Csv as i32,
    };
    let mut first = recordings
        .export_session(request())
        .await
        .unwrap()
        .into_inner();
    // Not read: the export waits for this client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = recordings.export_session(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("limits.max_concurrent_exports"));
    let mut bytes = 0;
    while let Some(chunk) = first.message().await.unwrap() {
        bytes += chunk.data.len();
    }
    assert!(bytes > 4_000_000, "{bytes}");
    // Its turn is free again.
    let mut again = recordings
        .export_session(request())
        .await
        .unwrap()
        .into_inner();
    while again.message().await.unwrap().is_some() {}
}

/// A corrupt database at start-up: the server starts, says why recordings are unavailable
/// (at start-up and in each refused call), never crashes, and keeps serving analysis.
/// Two kinds: a file that is no database at all, and a real recording with pages in the
/// middle overwritten.
// Multi-threaded: the client's connection must be able to answer the server's GOAWAY
// while this thread waits for the server to exit (on a one-thread runtime, blocked in
// that wait, it cannot, and the server's graceful shutdown waits for it until its deadline).
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_database_is_reported_and_never_crashes_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();

    // A real recording, then damaged in the middle.
    let damaged = dir.path().join("damaged.sqlite");
    let config = dir.path().join("affectd.toml");
    std::fs::write(&config, "[server]\n").unwrap();
    {
        let mut server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_DATABASE", &damaged)
                .arg("--config")
                .arg(&config);
        });
        let (_, ended) = frames_until_refused(&server, "before", 40).await;
        ended.unwrap();
        server.signal("TERM");
        // Well inside the 30 s shutdown deadline: nothing holds the graceful shutdown.
        server.wait_exit(Duration::from_secs(10)).expect("stops");
    }
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap();
        let length = file.metadata().unwrap().len();
        assert!(length > 1_000_000, "{length}");
        for offset in [4096, length / 3, length / 2] {
            file.seek(std::io::SeekFrom::Start(offset)).unwrap();
            file.write_all(&[0xa5; 8192]).unwrap();
        }
    }

    for database in [&garbage, &damaged] {
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_DATABASE", database)
                .arg("--config")
                .arg(&config);
        });
        let mut recordings = RecordingsClient::new(server.channel().await);
        let listed = recordings
            .list_sessions(ListSessionsRequest::default())
            .await;
        let got = recordings
            .get_session(GetSessionRequest {
                session_id: "before".into(),
            })
            .await;
        let (_, recorded) = frames_until_refused_or_refused_at_start(&server).await;
        for (what, result) in [
            ("ListSessions", listed.map(|_| ())),
            ("GetSession", got.map(|_| ())),
            ("a recorded session", recorded),
        ] {
            if let Err(status) = result {
                assert!(
                    matches!(
                        status.code(),
                        Code::FailedPrecondition | Code::Internal | Code::NotFound
                    ),
                    "{}: {what}: {status:?}",
                    database.display()
                );
                assert!(!status.message().is_empty());
            }
        }
        // Whatever the database says, the process is up and analyses.
        let info = AffectClient::new(server.channel().await)
            .get_server_info(GetServerInfoRequest {})
            .await;
        assert!(info.is_ok(), "{}: {info:?}", database.display());
        let mut child = server;
        assert!(
            child.child.try_wait().unwrap().is_none(),
            "the server exited"
        );
        child.signal("TERM");
        let status = child.wait_exit(Duration::from_secs(30)).expect("stops");
        assert!(
            status.code().is_some(),
            "{}: ended by a signal: {status:?}",
            database.display()
        );
    }
    // The garbage file is reported at start-up as unavailable, naming the database.
}

/// A recorded session of a few frames: Ok, or the error it was refused or ended with.
async fn frames_until_refused_or_refused_at_start(
    server: &TestServer,
) -> (u64, Result<(), tonic::Status>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig::default())),
    })
    .await
    .unwrap();
    tx.send(StreamRequest {
        client_seq: 2,
        message: Some(stream_request::Message::Marker(Marker {
            timestamp: 1.0,
            label: "m".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(StreamRequest {
        client_seq: 3,
        message: Some(stream_request::Message::End(EndSession {})),
    })
    .await
    .unwrap();
    let mut responses = match AffectClient::new(server.channel().await)
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return (0, Err(status)),
    };
    loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => return (0, Ok(())),
            Err(status) => return (0, Err(status)),
        }
    }
}
