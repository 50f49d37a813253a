//! The live session (`Affect.Stream`) on the real server, recorded to a real SQLite
//! database, and the Recordings service over it: what a session sends back, what it
//! records, that acknowledgements follow commits, that bad input ends a session without
//! losing what it accepted, and that an explanation reads the session's latest moment.

use std::io::Read;
use std::time::Duration;

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::recordings_client::RecordingsClient;
use affectd::proto::*;
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};

fn photo(name: &str) -> Vec<u8> {
    let path = repo().join(".testdata").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
}

const EEG_RATE: f64 = 256.0;

/// Two frontal channels: 10 Hz alpha (stronger on F3) and 20 Hz beta, plus a little of
/// both on the other channel, so that asymmetry and the arousal index are defined.
fn eeg(seconds: f64) -> Vec<f32> {
    let n = (seconds * EEG_RATE) as usize;
    let mut samples = Vec::with_capacity(2 * n);
    for i in 0..n {
        let t = i as f64 / EEG_RATE;
        let alpha = (2.0 * std::f64::consts::PI * 10.0 * t).sin();
        let beta = (2.0 * std::f64::consts::PI * 20.0 * t).sin();
        samples.push((20.0 * alpha + 5.0 * beta) as f32);
        samples.push((12.0 * alpha + 6.0 * beta) as f32);
    }
    samples
}

fn eeg_stream() -> StreamInfo {
    StreamInfo {
        stream_id: "eeg".into(),
        kind: SignalKind::Eeg as i32,
        nominal_rate_hz: EEG_RATE,
        channels: ["F3", "F4"]
            .iter()
            .map(|l| ChannelInfo {
                label: l.to_string(),
                unit: "uV".into(),
            })
            .collect(),
    }
}

/// The EEG cut into quarter-second chunks.
fn eeg_chunks(seconds: f64) -> Vec<SignalChunk> {
    let samples = eeg(seconds);
    let per_chunk = (EEG_RATE / 4.0) as usize * 2;
    samples
        .chunks(per_chunk)
        .enumerate()
        .map(|(i, c)| SignalChunk {
            stream_id: "eeg".into(),
            first_timestamp: 100.0 + i as f64 * 0.25,
            samples: c.to_vec(),
            ..Default::default()
        })
        .collect()
}

/// A client's side of one session.
struct Client {
    tx: mpsc::Sender<StreamRequest>,
    rx: Streaming<StreamResponse>,
    seq: u64,
    /// Every response read so far.
    seen: Vec<StreamResponse>,
}

impl Client {
    async fn open(
        affect: &mut AffectClient<tonic::transport::Channel>,
        config: SessionConfig,
    ) -> Result<Client, Status> {
        let (tx, requests) = mpsc::channel(1024);
        tx.send(StreamRequest {
            client_seq: 1,
            message: Some(stream_request::Message::Config(config)),
        })
        .await
        .unwrap();
        let rx = affect
            .stream(tokio_stream::wrappers::ReceiverStream::new(requests))
            .await?
            .into_inner();
        Ok(Client {
            tx,
            rx,
            seq: 1,
            seen: Vec::new(),
        })
    }

    /// A recorded session with the EEG stream.
    async fn eeg(affect: &mut AffectClient<tonic::transport::Channel>, session_id: &str) -> Client {
        Client::open(
            affect,
            SessionConfig {
                session_id: session_id.into(),
                streams: vec![eeg_stream()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    async fn chunks(&mut self, chunks: &[SignalChunk]) {
        for chunk in chunks {
            self.send(stream_request::Message::Chunk(chunk.clone()))
                .await;
        }
    }

    /// Waits until everything sent so far is acknowledged.
    async fn until_acked(&mut self) {
        let last = self.seq;
        self.until(
            |m| matches!(&m.message, Some(stream_response::Message::Ack(a)) if a.client_seq == last),
        )
        .await;
    }

    async fn send(&mut self, message: stream_request::Message) -> u64 {
        self.seq += 1;
        self.tx
            .send(StreamRequest {
                client_seq: self.seq,
                message: Some(message),
            })
            .await
            .unwrap();
        self.seq
    }

    async fn frame(&mut self, timestamp: f64, image: Vec<u8>) -> u64 {
        self.send(stream_request::Message::Frame(Frame {
            timestamp,
            image: Some(ImageInput {
                data: Some(image_input::Data::Encoded(image)),
            }),
        }))
        .await
    }

    /// Every response until the stream ends, and how it ended.
    async fn drain(mut self) -> (Vec<StreamResponse>, Result<(), Status>) {
        drop(self.tx);
        let mut all = self.seen;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), self.rx.message()).await {
                Err(_) => panic!("the session did not end within 120 s: {all:#?}"),
                Ok(Ok(Some(m))) => all.push(m),
                Ok(Ok(None)) => return (all, Ok(())),
                Ok(Err(status)) => return (all, Err(status)),
            }
        }
    }

    /// Responses until one matches, which is returned last.
    async fn until(
        &mut self,
        mut wanted: impl FnMut(&StreamResponse) -> bool,
    ) -> Vec<StreamResponse> {
        let mut seen = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(120), self.rx.message())
                .await
                .expect("a response within 120 s")
                .expect("the stream is healthy")
                .expect("the stream is open");
            let done = wanted(&m);
            self.seen.push(m.clone());
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}

fn messages(all: &[StreamResponse]) -> Vec<&stream_response::Message> {
    all.iter().filter_map(|r| r.message.as_ref()).collect()
}

fn acks(all: &[StreamResponse]) -> Vec<u64> {
    messages(all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Ack(a) => Some(a.client_seq),
            _ => None,
        })
        .collect()
}

fn faces(all: &[StreamResponse]) -> Vec<&FaceFrameResult> {
    messages(all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Faces(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn warnings(all: &[StreamResponse]) -> Vec<&SessionWarning> {
    messages(all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Warning(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn signal_warnings(all: &[StreamResponse]) -> Vec<&SignalWarning> {
    messages(all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::SignalWarning(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn ended(all: &[StreamResponse]) -> &SessionEnded {
    match messages(all).last() {
        Some(stream_response::Message::Ended(e)) => e,
        other => panic!("the last message is not SessionEnded: {other:?}"),
    }
}

async fn export(
    recordings: &mut RecordingsClient<tonic::transport::Channel>,
    session_id: &str,
    format: ExportFormat,
) -> (String, Vec<u8>) {
    let mut stream = recordings
        .export_session(ExportSessionRequest {
            session_id: session_id.into(),
            format: format as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    let mut name = String::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        if name.is_empty() {
            name = chunk.file_name.clone();
        }
        bytes.extend(chunk.data);
    }
    (name, bytes)
}

async fn export_csv(
    recordings: &mut RecordingsClient<tonic::transport::Channel>,
    session_id: &str,
) -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
    let (name, bytes) = export(recordings, session_id, ExportFormat::Csv).await;
    assert_eq!(name, format!("{session_id}.zip"));
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap()
}

/// pyxdf 1.17's reading of an XDF file (load_xdf defaults): per stream its name, type,
/// labels, nominal rate, time stamps and values.
fn pyxdf_read(bytes: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.xdf");
    std::fs::write(&path, bytes).unwrap();
    let script = r#"
import json, sys
import pyxdf
streams, header = pyxdf.load_xdf(sys.argv[1])
out = []
for s in streams:
    info = s["info"]
    desc = info["desc"][0] if info["desc"] and info["desc"][0] else {}
    labels = [c["label"][0] for c in desc["channels"][0]["channel"]] if desc else []
    series = s["time_series"]
    values = series.tolist() if hasattr(series, "tolist") else series
    # NaN (XDF's missing value) as JSON null.
    values = [[None if isinstance(v, float) and v != v else v for v in row] for row in values]
    out.append({"name": info["name"][0], "type": info["type"][0], "labels": labels,
                "nominal_srate": float(info["nominal_srate"][0]),
                "time_stamps": s["time_stamps"].tolist(), "values": values})
print(json.dumps(out))
"#;
    let out = std::process::Command::new(repo().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyxdf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn read_entry(zip: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut entry = zip
        .by_name(name)
        .unwrap_or_else(|_| panic!("{name} is in the export"));
    let mut out = Vec::new();
    entry.read_to_end(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_analyses_records_acknowledges_and_exports() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let config = SessionConfig {
        session_id: "p01-run1".into(),
        participant: "p01".into(),
        streams: vec![eeg_stream()],
        metadata: [("task".to_string(), "faces".to_string())].into(),
        ..Default::default()
    };
    let mut client = Client::open(&mut affect, config).await.unwrap();
    let started = client
        .until(|m| matches!(m.message, Some(stream_response::Message::Started(_))))
        .await;
    let Some(stream_response::Message::Started(started)) = &started[0].message else {
        panic!("the first message is not SessionStarted: {started:?}");
    };
    assert_eq!(started.session_id, "p01-run1");
    assert!(started.recording);

    let face = photo("single_face.jpg");
    let mut frame_seqs = Vec::new();
    let chunks = eeg_chunks(8.0);
    for (i, chunk) in chunks.iter().enumerate() {
        client
            .send(stream_request::Message::Chunk(chunk.clone()))
            .await;
        if i % 8 == 0 {
            // One frame every 2 s of signal, each waiting for its result, so none is skipped.
            let seq = client.frame(100.0 + i as f64 * 0.25, face.clone()).await;
            frame_seqs.push(seq);
            client
                .until(|m| matches!(&m.message, Some(stream_response::Message::Faces(f)) if f.client_seq == seq))
                .await;
        }
    }
    let marker_seq = client
        .send(stream_request::Message::Marker(Marker {
            timestamp: 103.0,
            label: "stimulus onset, \"happy\" block".into(),
            duration_s: 2.0,
        }))
        .await;
    let end_seq = client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();

    let ended = ended(&all);
    assert_eq!(ended.session_id, "p01-run1");
    assert_eq!(
        (
            ended.frames,
            ended.chunks,
            ended.markers,
            ended.frames_analysed
        ),
        (4, chunks.len() as u64, 1, 4)
    );
    assert_eq!(ended.reason, "EndSession received");
    // Acknowledgements rise and cover every recorded message.
    let acks = acks(&all);
    assert!(acks.windows(2).all(|w| w[0] < w[1]), "{acks:?}");
    assert_eq!(*acks.last().unwrap(), marker_seq);
    assert!(end_seq > marker_seq);
    assert!(warnings(&all).is_empty(), "{:?}", warnings(&all));
    assert!(
        signal_warnings(&all).is_empty(),
        "{:?}",
        signal_warnings(&all)
    );

    // Feature windows: exactly what AnalyzeSignals computes from the same chunks.
    let windows: Vec<FeatureWindow> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Features(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    let reference = affect
        .analyze_signals(AnalyzeSignalsRequest {
            streams: vec![eeg_stream()],
            chunks: chunks.clone(),
            config: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(windows.len() >= 5, "{} windows", windows.len());
    assert_eq!(windows, reference.windows);

    // Fused estimates: one per 1-s hop of the timeline, from the face and the EEG, each
    // naming its modalities with weights summing to 1.
    let fused: Vec<FusedEstimate> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Fused(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert!(fused.len() >= 7, "{} fused estimates", fused.len());
    for (i, f) in fused.iter().enumerate() {
        assert_eq!(f.method, "fusion-v1");
        assert!((f.end_time - f.start_time - 1.0).abs() < 1e-9, "{f:?}");
        if i > 0 {
            assert!((f.start_time - fused[i - 1].end_time).abs() < 1e-9);
        }
        let weights: f64 = f.contributions.iter().map(|c| c.weight).sum();
        assert!((weights - 1.0).abs() < 1e-6, "{f:?}");
        let p: f32 = f.labels.iter().map(|l| l.probability).sum();
        assert!((p - 1.0).abs() < 1e-4, "{f:?}");
        assert!(f.arousal.is_some_and(|a| (0.0..=1.0).contains(&a)));
    }
    let used = |m: Modality| {
        fused
            .iter()
            .any(|f| f.contributions.iter().any(|c| c.modality == m as i32))
    };
    assert!(used(Modality::Face) && used(Modality::Eeg), "{fused:?}");

    // The recording.
    let summary = recordings
        .get_session(GetSessionRequest {
            session_id: "p01-run1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(summary.participant, "p01");
    assert_eq!(
        (summary.frames, summary.chunks, summary.markers),
        (4, chunks.len() as u64, 1)
    );
    assert!(summary.ended_at >= Some(summary.started_at) && summary.started_at > 0.0);
    assert_eq!(summary.state, SessionState::Ended as i32);
    assert_eq!(summary.end_reason, "EndSession received");
    assert_eq!(summary.streams, vec![eeg_stream()]);
    assert_eq!(
        summary.metadata.get("task").map(String::as_str),
        Some("faces")
    );
    let listed = recordings
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions, vec![summary.clone()]);
    assert!(listed.next_page_token.is_empty());

    let mut zip = export_csv(&mut recordings, "p01-run1").await;
    // Every sample, as sent.
    let eeg_csv = String::from_utf8(read_entry(&mut zip, "eeg.csv")).unwrap();
    let mut lines = eeg_csv.lines();
    assert_eq!(lines.next(), Some("timestamp,F3,F4"));
    let sent = eeg(8.0);
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), sent.len() / 2);
    for (i, row) in rows.iter().enumerate() {
        assert!((row[0] - (100.0 + i as f64 / EEG_RATE)).abs() < 1e-6);
        assert_eq!(row[1] as f32, sent[2 * i]);
        assert_eq!(row[2] as f32, sent[2 * i + 1]);
    }
    // Round trip: affectd's own CSV reader reads the export back at the session's rate
    // (the time column is written at 6 decimals) with every sample equal.
    let back =
        affectd::signals::readers::csv::parse(eeg_csv.as_bytes(), &Default::default()).unwrap();
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    let stream = &back.streams[0];
    assert_eq!((stream.rate_hz, stream.first_timestamp), (EEG_RATE, 100.0));
    assert_eq!(stream.channels.len(), 2);
    for (c, channel) in stream.channels.iter().enumerate() {
        assert_eq!(channel.samples.len(), sent.len() / 2);
        for (i, v) in channel.samples.iter().enumerate() {
            assert_eq!(*v as f32, sent[2 * i + c]);
        }
    }
    let markers = String::from_utf8(read_entry(&mut zip, "markers.csv")).unwrap();
    assert_eq!(
        markers,
        "timestamp,duration_s,label\n103.000000,2,\"stimulus onset, \"\"happy\"\" block\"\n"
    );
    let faces_csv = String::from_utf8(read_entry(&mut zip, "faces.csv")).unwrap();
    assert_eq!(faces_csv.lines().count(), 1 + 4, "{faces_csv}");
    assert!(faces_csv.lines().next().unwrap().contains("AU12_r"));
    let features_csv = String::from_utf8(read_entry(&mut zip, "features.csv")).unwrap();
    assert_eq!(features_csv.lines().count(), 1 + windows.len());
    // fused.csv: the estimates as sent.
    let fused_csv = String::from_utf8(read_entry(&mut zip, "fused.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(fused_csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), fused.len());
    for (row, f) in rows.iter().zip(&fused) {
        assert_eq!(
            row[column("start_time")].parse::<f64>().unwrap(),
            f.start_time
        );
        let arousal: f64 = row[column("arousal")].parse().unwrap();
        assert!((arousal - f.arousal.unwrap()).abs() < 1e-6);
        assert_eq!(&row[column("method")], "fusion-v1");
        // Not computed is empty, never 0: no respiration stream.
        assert_eq!(&row[column("respiration.weight")], "");
    }
    for seq in &frame_seqs {
        assert_eq!(read_entry(&mut zip, &format!("frames/{seq:08}.jpg")), face);
    }

    // XDF: the samples and markers as sent, read by pyxdf (what MNE and EEGLAB use) and
    // by affectd's own reader.
    let (name, xdf) = export(&mut recordings, "p01-run1", ExportFormat::Xdf).await;
    assert_eq!(name, "p01-run1.xdf");
    let streams = pyxdf_read(&xdf);
    let streams = streams.as_array().unwrap();
    assert_eq!(streams.len(), 4);
    // The fused estimates as a stream, one sample per hop at its start.
    let fused_stream = streams.iter().find(|s| s["name"] == "Fused").unwrap();
    assert_eq!(
        fused_stream["labels"],
        serde_json::json!([
            "valence",
            "arousal",
            "face.weight",
            "eeg.weight",
            "cardiac.weight",
            "eda.weight",
            "respiration.weight"
        ])
    );
    let fused_stamps: Vec<f64> = fused_stream["time_stamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(
        fused_stamps,
        fused.iter().map(|f| f.start_time).collect::<Vec<_>>()
    );
    for (row, f) in fused_stream["values"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&fused)
    {
        assert!((row[1].as_f64().unwrap() - f.arousal.unwrap()).abs() < 1e-6);
        // A modality that did not contribute is NaN (null here).
        assert!(row[6].is_null(), "{row:?}");
    }
    let eeg_stream = streams.iter().find(|s| s["name"] == "eeg").unwrap();
    assert_eq!(eeg_stream["type"], "EEG");
    assert_eq!(eeg_stream["labels"], serde_json::json!(["F3", "F4"]));
    assert_eq!(eeg_stream["nominal_srate"], EEG_RATE);
    let stamps = eeg_stream["time_stamps"].as_array().unwrap();
    let values = eeg_stream["values"].as_array().unwrap();
    assert_eq!(stamps.len(), sent.len() / 2);
    for (i, (t, row)) in stamps.iter().zip(values).enumerate() {
        assert!((t.as_f64().unwrap() - (100.0 + i as f64 / EEG_RATE)).abs() < 1e-6);
        assert_eq!(row[0].as_f64().unwrap() as f32, sent[2 * i]);
        assert_eq!(row[1].as_f64().unwrap() as f32, sent[2 * i + 1]);
    }
    let marker_stream = streams.iter().find(|s| s["name"] == "Markers").unwrap();
    assert_eq!(marker_stream["time_stamps"], serde_json::json!([103.0]));
    assert_eq!(
        marker_stream["values"],
        serde_json::json!([["stimulus onset, \"happy\" block"]])
    );
    let ours = affectd::formats::xdf::load(&xdf).unwrap();
    assert_eq!(ours.len(), 4);
    assert_eq!(ours[0].labels, ["F3", "F4"]);
    assert_eq!(ours[0].units, ["uV", "uV"]);
    for (t, p) in ours[0].time_stamps.iter().zip(stamps) {
        assert!((t - p.as_f64().unwrap()).abs() < 1e-9);
    }

    // Deleting it.
    assert!(
        recordings
            .delete_session(DeleteSessionRequest {
                session_id: "p01-run1".into()
            })
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
    let gone = recordings
        .get_session(GetSessionRequest {
            session_id: "p01-run1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

/// A rejected message ends the session with INVALID_ARGUMENT naming it; everything
/// accepted before it stays recorded and the recording is closed.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_ends_the_session_without_losing_what_was_accepted() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let config = |id: &str| SessionConfig {
        session_id: id.into(),
        streams: vec![eeg_stream()],
        ..Default::default()
    };

    type Bad = Box<dyn Fn() -> stream_request::Message>;
    let cases: Vec<(&str, Bad, &str)> = vec![
        (
            "ragged",
            Box::new(|| {
                stream_request::Message::Chunk(SignalChunk {
                    stream_id: "eeg".into(),
                    first_timestamp: 200.0,
                    samples: vec![1.0, 2.0, 3.0],
                    ..Default::default()
                })
            }),
            "whole number",
        ),
        (
            "unknown-stream",
            Box::new(|| {
                stream_request::Message::Chunk(SignalChunk {
                    stream_id: "eda".into(),
                    samples: vec![1.0],
                    ..Default::default()
                })
            }),
            "unknown stream_id",
        ),
        (
            "bad-image",
            Box::new(|| {
                stream_request::Message::Frame(Frame {
                    timestamp: 1.0,
                    image: Some(ImageInput {
                        data: Some(image_input::Data::Encoded(b"not an image".to_vec())),
                    }),
                })
            }),
            "frame",
        ),
        (
            "empty-label",
            Box::new(|| {
                stream_request::Message::Marker(Marker {
                    timestamp: 1.0,
                    ..Default::default()
                })
            }),
            "label",
        ),
        (
            "second-config",
            Box::new(|| stream_request::Message::Config(SessionConfig::default())),
            "config may only be the first",
        ),
    ];
    for (id, bad, words) in cases {
        let mut client = Client::open(&mut affect, config(id)).await.unwrap();
        for chunk in eeg_chunks(1.0) {
            client.send(stream_request::Message::Chunk(chunk)).await;
        }
        let marker = client
            .send(stream_request::Message::Marker(Marker {
                timestamp: 100.5,
                label: "go".into(),
                duration_s: 0.0,
            }))
            .await;
        let bad_seq = client.send(bad()).await;
        let (all, end) = client.drain().await;
        let status = end.expect_err(id);
        assert_eq!(status.code(), Code::InvalidArgument, "{id}: {status:?}");
        assert!(
            status.message().contains(words) && status.message().contains(&bad_seq.to_string()),
            "{id}: {}",
            status.message()
        );
        assert_eq!(acks(&all).last(), Some(&marker), "{id}");
        let summary = recordings
            .get_session(GetSessionRequest {
                session_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert_eq!((summary.chunks, summary.markers), (4, 1), "{id}");
        assert!(
            summary.ended_at > Some(0.0),
            "{id}: the recording is closed"
        );
    }

    // Sequence numbers must increase.
    let client = Client::open(&mut affect, config("seq")).await.unwrap();
    client
        .tx
        .send(StreamRequest {
            client_seq: 1,
            message: Some(stream_request::Message::Marker(Marker {
                timestamp: 0.0,
                label: "x".into(),
                duration_s: 0.0,
            })),
        })
        .await
        .unwrap();
    let (_, end) = client.drain().await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("must increase"),
        "{}",
        status.message()
    );

    // A first message that is not the config.
    let (tx, requests) = mpsc::channel(4);
    tx.send(StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::End(EndSession {})),
    })
    .await
    .unwrap();
    let status = affect
        .stream(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("config"), "{}", status.message());

    // Bad configurations.
    for (bad, words) in [
        (
            SessionConfig {
                session_id: "../x".into(),
                ..Default::default()
            },
            "session_id",
        ),
        (
            SessionConfig {
                streams: vec![eeg_stream(), eeg_stream()],
                ..Default::default()
            },
            "twice",
        ),
        (
            SessionConfig {
                streams: vec![StreamInfo {
                    nominal_rate_hz: 0.0,
                    ..eeg_stream()
                }],
                ..Default::default()
            },
            "rate",
        ),
    ] {
        let status = match Client::open(&mut affect, bad).await {
            Err(status) => status,
            Ok(client) => client.drain().await.1.unwrap_err(),
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(words), "{}", status.message());
    }

    // A recorded id cannot be reused; a live one cannot be opened twice.
    let status = match Client::open(&mut affect, config("ragged")).await {
        Err(status) => status,
        Ok(client) => client.drain().await.1.unwrap_err(),
    };
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let mut live = Client::open(&mut affect, config("live")).await.unwrap();
    live.until(|m| matches!(m.message, Some(stream_response::Message::Started(_))))
        .await;
    let status = match Client::open(&mut affect, config("live")).await {
        Err(status) => status,
        Ok(client) => client.drain().await.1.unwrap_err(),
    };
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("live"), "{}", status.message());
    // ... and a live recording cannot be deleted.
    let status = recordings
        .delete_session(DeleteSessionRequest {
            session_id: "live".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let (all, end) = live.drain().await;
    end.unwrap();
    assert_eq!(
        ended(&all).reason,
        "the client closed its side of the stream"
    );
}

/// Frames sent faster than they can be analysed: each gets exactly one result or one
/// FRAME_SKIPPED warning, and every frame is recorded either way.
#[tokio::test(flavor = "multi_thread")]
async fn frames_under_load_are_recorded_and_each_answered_once() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let mut client = Client::open(
        &mut affect,
        SessionConfig {
            session_id: "burst".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let face = photo("multi_face.jpg");
    let mut seqs = Vec::new();
    for i in 0..16 {
        seqs.push(client.frame(i as f64 / 30.0, face.clone()).await);
    }
    let (all, end) = client.drain().await;
    end.unwrap();
    let analysed: Vec<u64> = faces(&all).iter().map(|f| f.client_seq).collect();
    let skipped: Vec<u64> = warnings(&all)
        .iter()
        .filter(|w| w.kind == SessionWarningKind::FrameSkipped as i32)
        .map(|w| w.client_seq)
        .collect();
    println!("{} analysed, {} skipped", analysed.len(), skipped.len());
    let mut answered: Vec<u64> = analysed.iter().chain(&skipped).copied().collect();
    answered.sort();
    assert_eq!(answered, seqs);
    assert!(!analysed.is_empty());
    assert!(analysed.windows(2).all(|w| w[0] < w[1]), "in order");
    for f in faces(&all) {
        assert_eq!(f.faces.len(), 5, "multi_face.jpg has 5 faces");
    }
    assert_eq!(ended(&all).frames_analysed, analysed.len() as u64);
    let summary = recordings
        .get_session(GetSessionRequest {
            session_id: "burst".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(summary.frames, 16);
    let mut zip = export_csv(&mut recordings, "burst").await;
    let faces_csv = String::from_utf8(read_entry(&mut zip, "faces.csv")).unwrap();
    assert_eq!(faces_csv.lines().count(), 1 + 5 * analysed.len());
}

/// An unrecorded session sends no acknowledgements and leaves no recording; a client
/// that vanishes mid-session still leaves a closed recording of what it sent.
#[tokio::test(flavor = "multi_thread")]
async fn unrecorded_sessions_and_vanishing_clients() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);

    let mut client = Client::open(
        &mut affect,
        SessionConfig {
            session_id: "dry".into(),
            no_record: true,
            streams: vec![eeg_stream()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for chunk in eeg_chunks(5.0) {
        client.send(stream_request::Message::Chunk(chunk)).await;
    }
    let (all, end) = client.drain().await;
    end.unwrap();
    assert!(acks(&all).is_empty());
    assert!(
        messages(&all)
            .iter()
            .any(|m| matches!(m, stream_response::Message::Features(_)))
    );
    let Some(stream_response::Message::Started(started)) = &all[0].message else {
        panic!()
    };
    assert!(!started.recording);
    let status = recordings
        .get_session(GetSessionRequest {
            session_id: "dry".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // A client that goes away without a word.
    let mut client = Client::eeg(&mut affect, "vanished").await;
    let chunks = eeg_chunks(2.0);
    client.chunks(&chunks).await;
    client.until_acked().await;
    drop(client);
    drop(affect);
    // The server notices, closes the recording, and forgets the live session.
    let mut summary = None;
    for _ in 0..100 {
        let s = recordings
            .get_session(GetSessionRequest {
                session_id: "vanished".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        if s.ended_at.is_some() {
            summary = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = summary.expect("the recording is closed after the client vanished");
    assert_eq!(summary.chunks, chunks.len() as u64);
}

/// `affectd sessions` reads the same database offline: list, show, export, delete, and
/// errors that say what to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_sessions_command_lists_exports_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut client = Client::open(
        &mut affect,
        SessionConfig {
            session_id: "cli-1".into(),
            participant: "p07".into(),
            streams: vec![eeg_stream()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for chunk in eeg_chunks(2.0) {
        client.send(stream_request::Message::Chunk(chunk)).await;
    }
    client
        .send(stream_request::Message::Marker(Marker {
            timestamp: 101.0,
            label: "go".into(),
            duration_s: 0.0,
        }))
        .await;
    client.drain().await.1.unwrap();

    let sessions = |args: &[&str]| {
        let mut cmd = affectd(dir.path());
        cmd.env("AFFECTD_DATABASE", &database)
            .arg("sessions")
            .args(args)
            .current_dir(dir.path());
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = sessions(&["list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("cli-1\tp07\t20"), "{out}");
    assert!(
        out.contains("\tended\tframes=0 chunks=8 markers=1"),
        "{out}"
    );
    let (ok, out, _) = sessions(&["show", "cli-1"]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["streams"][0]["channels"],
        serde_json::json!(["F3", "F4"])
    );
    assert_eq!(
        shown["end_reason"],
        "the client closed its side of the stream"
    );

    let (ok, _, err) = sessions(&["export", "cli-1"]);
    assert!(ok, "{err}");
    let xdf = std::fs::read(dir.path().join("cli-1.xdf")).unwrap();
    let streams = affectd::formats::xdf::load(&xdf).unwrap();
    assert_eq!(streams[0].time_stamps.len(), 2 * EEG_RATE as usize);
    let zip_path = dir.path().join("out/cli-1.zip");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let (ok, _, err) = sessions(&[
        "export",
        "cli-1",
        "--format",
        "csv",
        "-o",
        zip_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    assert!(zip.by_name("eeg.csv").is_ok());

    let (ok, _, err) = sessions(&["export", "nobody"]);
    assert!(!ok && err.contains("no recorded session `nobody`"), "{err}");
    let (ok, _, _) = sessions(&["delete", "cli-1"]);
    assert!(ok);
    let (_, out, _) = sessions(&["list"]);
    assert!(out.is_empty(), "{out}");
    let (ok, _, err) = sessions(&["delete", "cli-1"]);
    assert!(!ok && err.contains("sessions list"), "{err}");

    let mut cmd = affectd(dir.path());
    let out = cmd
        .env("AFFECTD_DATABASE", dir.path().join("none.sqlite"))
        .args(["sessions", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no session database at"),
        "{err}"
    );
}

/// Stopping the server (SIGTERM) ends live sessions first: each client gets SessionEnded,
/// everything it sent is recorded, the recording is closed, and the server exits cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_ends_live_sessions_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let mut server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut client = Client::eeg(&mut affect, "interrupted").await;
    let chunks = eeg_chunks(3.0);
    client.chunks(&chunks).await;
    client.until_acked().await;
    server.signal("TERM");
    // The client keeps its side open; the server ends the session anyway.
    let all = client
        .until(|m| matches!(m.message, Some(stream_response::Message::Ended(_))))
        .await;
    assert_eq!(ended(&all).reason, "the server is shutting down");
    assert_eq!(ended(&all).chunks, chunks.len() as u64);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(20));
        (status, server)
    })
    .await
    .unwrap();
    let (status, _server) = status;
    assert!(status.expect("exits within 20 s").success());
    drop(client);

    let out = affectd(dir.path())
        .env("AFFECTD_DATABASE", &database)
        .args(["sessions", "show", "interrupted"])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["end_reason"], "the server is shutting down");
    assert_eq!(shown["chunks"], chunks.len());
}

/// A tiny xorshift generator: the protocol fuzz below is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn tiny_png() -> Vec<u8> {
    let image =
        image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// Random sessions of valid and invalid messages against the real server. Whatever the
/// sequence: the server answers INVALID_ARGUMENT at the first bad message (naming its
/// client_seq) or SessionEnded, exactly the messages accepted before it are recorded and
/// acknowledged, and the recording is closed.
#[tokio::test(flavor = "multi_thread")]
async fn random_message_sequences_keep_every_accepted_message() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let png = tiny_png();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..40 {
        let id = format!("fuzz-{case}");
        let mut client = Client::open(
            &mut affect,
            SessionConfig {
                session_id: id.clone(),
                streams: vec![eeg_stream()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (mut frames, mut chunks, mut markers) = (0u64, 0u64, 0u64);
        let mut last_accepted = 1u64;
        let mut bad: Option<u64> = None;
        let mut t = 100.0;
        for _ in 0..(3 + rng.below(40)) {
            let pick = rng.below(100);
            let (message, valid) = match pick {
                0..=39 => {
                    let n = 1 + rng.below(200) as usize;
                    if rng.below(5) == 0 {
                        t += 0.05; // a small gap: a warning, not an error
                    }
                    let chunk = SignalChunk {
                        stream_id: "eeg".into(),
                        first_timestamp: t,
                        samples: (0..2 * n).map(|_| rng.below(1000) as f32 - 500.0).collect(),
                        ..Default::default()
                    };
                    t += n as f64 / EEG_RATE;
                    (stream_request::Message::Chunk(chunk), true)
                }
                40..=54 => (
                    stream_request::Message::Marker(Marker {
                        timestamp: t,
                        label: format!("m{}", rng.below(1000)),
                        duration_s: rng.below(3) as f64,
                    }),
                    true,
                ),
                55..=64 => (
                    stream_request::Message::Frame(Frame {
                        timestamp: t,
                        image: Some(ImageInput {
                            data: Some(image_input::Data::Encoded(png.clone())),
                        }),
                    }),
                    true,
                ),
                65..=69 => (
                    stream_request::Message::Explain(ExplainRequest::default()),
                    true,
                ),
                70..=71 => (
                    stream_request::Message::Chunk(SignalChunk {
                        stream_id: "eeg".into(),
                        first_timestamp: t,
                        samples: vec![1.0; 3],
                        ..Default::default()
                    }),
                    false,
                ),
                72 => (
                    stream_request::Message::Chunk(SignalChunk {
                        stream_id: "nope".into(),
                        samples: vec![1.0; 2],
                        ..Default::default()
                    }),
                    false,
                ),
                73 => (
                    stream_request::Message::Marker(Marker {
                        timestamp: f64::NAN,
                        label: "x".into(),
                        duration_s: 0.0,
                    }),
                    false,
                ),
                74 => (
                    stream_request::Message::Frame(Frame {
                        timestamp: t,
                        image: Some(ImageInput {
                            data: Some(image_input::Data::Encoded(png[..png.len() / 2].to_vec())),
                        }),
                    }),
                    false,
                ),
                _ => (
                    stream_request::Message::Marker(Marker {
                        timestamp: t,
                        label: "ok".into(),
                        duration_s: 0.0,
                    }),
                    true,
                ),
            };
            let kind = std::mem::discriminant(&message);
            let seq = client.send(message).await;
            if bad.is_some() {
                continue;
            }
            if !valid {
                bad = Some(seq);
                continue;
            }
            last_accepted = seq;
            let probe = stream_request::Message::Chunk(SignalChunk::default());
            let frame = stream_request::Message::Frame(Frame::default());
            let marker = stream_request::Message::Marker(Marker::default());
            if kind == std::mem::discriminant(&probe) {
                chunks += 1;
            } else if kind == std::mem::discriminant(&frame) {
                frames += 1;
            } else if kind == std::mem::discriminant(&marker) {
                markers += 1;
            }
        }
        let (all, end) = client.drain().await;
        println!(
            "{id}: {frames} frames, {chunks} chunks, {markers} markers accepted; first bad message: {bad:?}"
        );
        match bad {
            Some(seq) => {
                let status = end.expect_err(&id);
                assert_eq!(status.code(), Code::InvalidArgument, "{id}: {status:?}");
                assert!(
                    status.message().contains(&format!("client_seq {seq}")),
                    "{id}: {}",
                    status.message()
                );
            }
            None => {
                end.unwrap();
                let e = ended(&all);
                assert_eq!(
                    (e.frames, e.chunks, e.markers),
                    (frames, chunks, markers),
                    "{id}"
                );
            }
        }
        assert_eq!(acks(&all).last(), Some(&last_accepted), "{id}");
        let summary = recordings
            .get_session(GetSessionRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert_eq!(
            (summary.frames, summary.chunks, summary.markers),
            (frames, chunks, markers),
            "{id}"
        );
        assert!(summary.ended_at > Some(0.0), "{id}");
        // Every accepted frame was answered once (analysed or skipped).
        let answered = faces(&all).len()
            + warnings(&all)
                .iter()
                .filter(|w| w.kind == SessionWarningKind::FrameSkipped as i32)
                .count();
        assert_eq!(answered as u64, frames, "{id}");
    }
}

/// A recording that cannot be written (here: another process holds SQLite's write lock
/// past the 10 s busy timeout) ends the session with INTERNAL, naming the last
/// acknowledged client_seq; exactly the acknowledged messages are in the database. A
/// server killed mid-session leaves its recording open; the next start closes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_recording_ends_the_session_and_acks_stay_true() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let mut server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut client = Client::eeg(&mut affect, "locked-out").await;
    let chunks = eeg_chunks(3.0);
    client.chunks(&chunks[..4]).await;
    let acked = client.seq;
    client.until_acked().await;

    let lock = rusqlite::Connection::open(&database).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    client.chunks(&chunks[4..]).await;
    let (all, end) = client.drain().await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("recording failed")
            && status
                .message()
                .contains(&format!("messages up to client_seq {acked} are recorded")),
        "{}",
        status.message()
    );
    assert_eq!(acks(&all).last(), Some(&acked));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    let show = |id: &str| -> serde_json::Value {
        let out = affectd(dir.path())
            .env("AFFECTD_DATABASE", &database)
            .args(["sessions", "show", id])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let shown = show("locked-out");
    assert_eq!(shown["chunks"], 4);

    // Killed mid-session: the recording stays open until the next start closes it.
    let mut client = Client::eeg(&mut affect, "killed").await;
    client
        .send(stream_request::Message::Chunk(chunks[0].clone()))
        .await;
    client.until_acked().await;
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(show("killed")["ended_at"].is_null());
    let _restarted = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let shown = show("killed");
    assert!(shown["ended_at"].as_f64().unwrap() > 0.0);
    assert!(
        shown["end_reason"]
            .as_str()
            .unwrap()
            .contains("not ended by its server"),
        "{shown}"
    );
    assert_eq!(shown["chunks"], 1);
    // The failed one was closed too.
    assert!(show("locked-out")["ended_at"].as_f64().unwrap() > 0.0);
}

/// Tests that need a language model (a llama.cpp server or a fetched GGUF); the quick tier skips `llm::`.
mod llm {
    use super::*;

    /// ClockSync reports and Explain's session source need a live session; a recorded one
    /// that has ended is not live.
    #[tokio::test(flavor = "multi_thread")]
    async fn clock_reports_and_explanations_need_a_live_session() {
        // The candle backend is available (its model loads on first use, which these requests
        // never reach), so the answers are about the session.
        let model = crate::common::llama::gemma();
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_CANDLE_MODEL", &model);
        });
        let mut affect = AffectClient::new(server.channel().await);
        let mut recordings = RecordingsClient::new(server.channel().await);
        let probe = |id: &str| ClockSyncRequest {
            client_send_time: 5.0,
            session_id: id.into(),
            measured_offset_s: Some(1234.5),
            measured_rtt_s: Some(0.002),
        };
        let status = affect.clock_sync(probe("nobody")).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        let mut client = Client::open(
            &mut affect,
            SessionConfig {
                session_id: "clocked".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        client
            .until(|m| matches!(m.message, Some(stream_response::Message::Started(_))))
            .await;
        affect.clock_sync(probe("clocked")).await.unwrap();
        let status = affect
            .clock_sync(ClockSyncRequest {
                measured_offset_s: Some(f64::NAN),
                ..probe("clocked")
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);

        // No frame analysed yet: nothing to explain.
        let status = affect
            .explain(ExplainRequest {
                source: Some(explain_request::Source::SessionId("clocked".into())),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("no analysed frame"),
            "{}",
            status.message()
        );

        client
            .send(stream_request::Message::Marker(Marker {
                timestamp: 1.0,
                label: "m".into(),
                duration_s: 0.0,
            }))
            .await;
        let (_, end) = client.drain().await;
        end.unwrap();
        let status = affect
            .explain(ExplainRequest {
                source: Some(explain_request::Source::SessionId("clocked".into())),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("live"), "{}", status.message());

        let mut zip = export_csv(&mut recordings, "clocked").await;
        let clock = String::from_utf8(read_entry(&mut zip, "clock_offsets.csv")).unwrap();
        let rows: Vec<&str> = clock.lines().collect();
        assert_eq!(rows[0], "server_time,offset_s,rtt_s");
        assert_eq!(rows.len(), 2, "{clock}");
        assert!(rows[1].ends_with(",1234.5,0.002"), "{clock}");
        // In XDF the reported offset maps the client clock onto the server's (pyxdf's
        // default clock synchronisation).
        let (_, xdf) = export(&mut recordings, "clocked", ExportFormat::Unspecified).await;
        let streams = pyxdf_read(&xdf);
        let markers = streams
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "Markers")
            .expect("a Markers stream");
        let t = markers["time_stamps"][0].as_f64().unwrap();
        assert!((t - (1.0 + 1234.5)).abs() < 1e-6, "{t}");
    }

    /// Explanations inside a session, and from the Explain RPC naming a live session, read
    /// the session's latest frame and windows. The backend is a real llama.cpp server
    /// (Gemma 3 270M); the tests hold the server to the contract, not to what the model says.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_session_explains_its_latest_moment() {
        let llama = crate::common::llama::llama_server();
        let url = llama.url.clone();
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_OPENAI_URL", &url);
        });
        let mut affect = AffectClient::new(server.channel().await);
        let mut recordings = RecordingsClient::new(server.channel().await);
        let mut client = Client::eeg(&mut affect, "explained").await;
        for chunk in eeg_chunks(6.0) {
            client.send(stream_request::Message::Chunk(chunk)).await;
        }
        let frame = client.frame(105.0, photo("single_face.jpg")).await;
        client
            .until(|m| matches!(&m.message, Some(stream_response::Message::Faces(f)) if f.client_seq == frame))
            .await;

        let request = ExplainRequest {
            backend: "openai".into(),
            max_tokens: 24,
            ..Default::default()
        };
        let asked = client
            .send(stream_request::Message::Explain(request.clone()))
            .await;
        // A bad request fails alone: a warning names it, and the session goes on.
        let bad = client
            .send(stream_request::Message::Explain(ExplainRequest {
                labels: (0..40).map(|i| format!("l{i}")).collect(),
                ..request.clone()
            }))
            .await;
        let marker = client
            .send(stream_request::Message::Marker(Marker {
                timestamp: 106.0,
                label: "after".into(),
                duration_s: 0.0,
            }))
            .await;
        let seen = client
            .until(|m| matches!(&m.message, Some(stream_response::Message::Warning(w)) if w.client_seq == bad))
            .await;
        let mut tokens = String::new();
        let mut result = None;
        for m in &seen {
            if let Some(stream_response::Message::Explain(event)) = &m.message {
                assert_eq!(m.client_seq, Some(asked));
                match &event.event {
                    Some(explain_response::Event::Token(t)) => tokens.push_str(t),
                    Some(explain_response::Event::Result(r)) => result = Some(r.clone()),
                    None => panic!("an empty explain event"),
                }
            }
        }
        let result =
            result.expect("the first explanation's result came before the second's warning");
        assert!(!tokens.is_empty());
        assert_eq!(result.backend, "openai");
        assert!(result.parsed || (!result.raw_text.is_empty() && result.judgements.is_empty()));
        let warning = warnings(&seen).last().copied().unwrap().clone();
        assert_eq!(warning.kind, SessionWarningKind::ExplainFailed as i32);
        assert!(
            warning.message.starts_with("InvalidArgument"),
            "{}",
            warning.message
        );

        // The Explain RPC can name the live session too.
        let mut stream = affect
            .explain(ExplainRequest {
                source: Some(explain_request::Source::SessionId("explained".into())),
                ..request
            })
            .await
            .unwrap()
            .into_inner();
        let (_, rpc_result) = tokens_then_result(&mut stream).await;
        assert_eq!(rpc_result.backend, "openai");

        let (all, end) = client.drain().await;
        end.unwrap();
        assert!(acks(&all).contains(&marker) || acks(&all).last() > Some(&marker));
        let mut zip = export_csv(&mut recordings, "explained").await;
        let csv = read_entry(&mut zip, "explanations.csv");
        let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_slice())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        // One row per judgement, or one unparsed row carrying the raw text.
        assert!(!rows.is_empty());
        for row in &rows {
            assert_eq!(&row[0], asked.to_string());
            assert_eq!(&row[1], result.parsed.to_string());
            if !result.parsed {
                assert_eq!(&row[8], result.raw_text);
            }
        }
    }
}

async fn summary_of(
    recordings: &mut RecordingsClient<tonic::transport::Channel>,
    session_id: &str,
) -> SessionSummary {
    recordings
        .get_session(GetSessionRequest {
            session_id: session_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
}

/// A session whose client ends it after two chunks, checking the end is recorded as the
/// client's and not as an interruption.
async fn end_and_check_it_ended_normally(
    mut client: Client,
    recordings: &mut RecordingsClient<tonic::transport::Channel>,
    session_id: &str,
) {
    client.chunks(&eeg_chunks(1.0)).await;
    client.until_acked().await;
    client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();
    assert_eq!(ended(&all).reason, "EndSession received");
    let summary = summary_of(recordings, session_id).await;
    assert_eq!(summary.state, SessionState::Ended as i32, "{summary:?}");
    assert_eq!(summary.end_reason, "EndSession received");
}

/// `affectd explain` and `affectd eval explain` record nothing, so they must not touch the
/// session database: a server's live recording in it stays open, and ends when its client
/// ends it. (They used to run the server's start-up, which closed every open recording as
/// left over from an earlier run.)
#[tokio::test(flavor = "multi_thread")]
async fn commands_that_do_not_record_leave_a_running_servers_recordings_alone() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let mut client = Client::eeg(&mut affect, "live-run").await;
    client.chunks(&eeg_chunks(2.0)).await;
    client.until_acked().await;

    let photos = tempfile::tempdir().unwrap();
    std::fs::write(
        photos.path().join("0-f1-su-ph.jpg"),
        photo("0-f1-su-ph.jpg"),
    )
    .unwrap();
    let photo_path = photos.path().join("0-f1-su-ph.jpg");
    let cache = tempfile::tempdir().unwrap();
    let runs: [Vec<&std::ffi::OsStr>; 2] = [
        // No openai server is configured: it fails, but only after what used to close
        // the recordings.
        vec![
            "explain".as_ref(),
            photo_path.as_os_str(),
            "--backend".as_ref(),
            "openai".as_ref(),
            "--quiet".as_ref(),
        ],
        vec![
            "eval".as_ref(),
            "explain".as_ref(),
            photos.path().as_os_str(),
            "--no-llm".as_ref(),
        ],
    ];
    for args in runs {
        let out = affectd(cache.path())
            .env("AFFECTD_DATABASE", &database)
            .args(&args)
            .output()
            .unwrap();
        let summary = summary_of(&mut recordings, "live-run").await;
        assert_eq!(
            (summary.state, summary.ended_at),
            (SessionState::Live as i32, None),
            "after `affectd {args:?}` ({}): {summary:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    end_and_check_it_ended_normally(client, &mut recordings, "live-run").await;
}

/// One server per database: a second `affectd serve` on it stops at start-up, naming the
/// database and the running server's pid, and the first server's recording goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_database_is_refused_and_the_first_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let first = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(first.channel().await);
    let mut recordings = RecordingsClient::new(first.channel().await);
    let mut client = Client::eeg(&mut affect, "first-run").await;
    client.chunks(&eeg_chunks(2.0)).await;
    client.until_acked().await;

    let cache = tempfile::tempdir().unwrap();
    let mut second = affectd(cache.path())
        .env("AFFECTD_DATABASE", &database)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server on the same database kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&database.display().to_string()),
        "names the database: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "names the running server: {stderr}"
    );
    end_and_check_it_ended_normally(client, &mut recordings, "first-run").await;
}

/// What could not be computed is absent everywhere, never 0: a window of ECG with one beat
/// has no heart rate on the wire (the optional field is unset) and an empty cell in the
/// export's features.csv, where a heart rate of 0 bpm used to be written.
#[tokio::test(flavor = "multi_thread")]
async fn values_that_were_not_computed_are_absent_on_the_wire_and_in_the_export() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let rate = 250.0;
    let ecg = StreamInfo {
        stream_id: "ecg".into(),
        kind: SignalKind::Ecg as i32,
        nominal_rate_hz: rate,
        channels: vec![ChannelInfo {
            label: "ECG".into(),
            unit: "uV".into(),
        }],
    };
    let mut client = Client::open(
        &mut affect,
        SessionConfig {
            session_id: "one-beat".into(),
            streams: vec![ecg],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // 8 s of low noise with one R-like spike at 3 s.
    let samples: Vec<f32> = (0..(8.0 * rate) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let spike = (1.0 - (t - 3.0).abs() / 0.02).max(0.0) * 1500.0;
            (5.0 * (i as f64 * 0.37).sin() + spike) as f32
        })
        .collect();
    client
        .chunks(&[SignalChunk {
            stream_id: "ecg".into(),
            first_timestamp: 0.0,
            samples,
            ..Default::default()
        }])
        .await;
    client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();
    let windows: Vec<&CardiacFeatures> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Features(FeatureWindow {
                features: Some(feature_window::Features::Cardiac(c)),
                ..
            }) => Some(c),
            _ => None,
        })
        .collect();
    assert!(
        windows
            .iter()
            .any(|c| c.heart_rate_bpm.is_none() && c.beat_times.len() < 2),
        "a window with fewer than two beats and no heart rate: {windows:?}"
    );
    assert!(windows.iter().all(|c| c.heart_rate_bpm != Some(0.0)));

    let mut zip = export_csv(&mut recordings, "one-beat").await;
    let text = String::from_utf8(read_entry(&mut zip, "features.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), windows.len());
    for (row, window) in rows.iter().zip(&windows) {
        let cell = &row[column("heart_rate_bpm")];
        match window.heart_rate_bpm {
            None => assert_eq!(cell, "", "{row:?}"),
            Some(bpm) => assert_eq!(cell.parse::<f64>().unwrap(), bpm),
        }
        assert_ne!(&row[column("rmssd_ms")], "0");
    }
}

/// EEG whose state alternates every 10 s between "rest" (strong alpha) and "task" (strong
/// beta, weaker alpha), starting at rest, in quarter-second chunks from client time 100.
fn rest_and_task_chunks(from_s: f64, to_s: f64) -> Vec<SignalChunk> {
    let per_chunk = (EEG_RATE / 4.0) as usize;
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let mut chunks = Vec::new();
    let mut t0 = from_s;
    while t0 < to_s - 1e-9 {
        let mut samples = Vec::with_capacity(2 * per_chunk);
        for i in 0..per_chunk {
            let t = t0 + i as f64 / EEG_RATE;
            let task = ((t / 10.0) as u64) % 2 == 1;
            let (a, b) = if task { (8.0, 14.0) } else { (20.0, 4.0) };
            let alpha = (2.0 * std::f64::consts::PI * 10.0 * t).sin();
            let beta = (2.0 * std::f64::consts::PI * 20.0 * t).sin();
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let jitter = (noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            samples.push((a * alpha + b * beta + 2.0 * jitter) as f32);
            samples.push((0.7 * a * alpha + b * beta - 2.0 * jitter) as f32);
        }
        chunks.push(SignalChunk {
            stream_id: "eeg".into(),
            first_timestamp: 100.0 + t0,
            samples,
            ..Default::default()
        });
        t0 += 0.25;
    }
    chunks
}

fn block(start: f64, label: &str) -> stream_request::Message {
    stream_request::Message::Marker(Marker {
        timestamp: 100.0 + start,
        label: label.into(),
        duration_s: 10.0,
    })
}

/// Waits for a fused estimate of a hop starting at `at` (client time) or later.
async fn until_fused(client: &mut Client, at: f64) {
    client
        .until(|m| matches!(&m.message, Some(stream_response::Message::Fused(f)) if f.start_time >= at))
        .await;
}

/// Calibrate trains on the session's labelled blocks so far and switches its fusion to the
/// calibrated model; without blocks, or with one class, it answers FAILED_PRECONDITION
/// saying what is missing, and the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn calibration_switches_a_live_session_and_refuses_what_it_cannot_learn() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let mut client = Client::eeg(&mut affect, "calibrated").await;
    let calibrate = |affect: &mut AffectClient<tonic::transport::Channel>, id: &str| {
        let mut affect = affect.clone();
        let id = id.to_string();
        async move { affect.calibrate(CalibrateRequest { session_id: id }).await }
    };

    let unknown = calibrate(&mut affect, "no-such-session").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // Nothing labelled yet. (No frames come: fusion waits for the face for 10 s of
    // signal, fusion.stale_s, then goes on without it.)
    client.chunks(&rest_and_task_chunks(0.0, 16.0)).await;
    until_fused(&mut client, 103.0).await;
    let none = calibrate(&mut affect, "calibrated").await.unwrap_err();
    assert_eq!(none.code(), Code::FailedPrecondition, "{none:?}");
    assert!(
        none.message().contains("no labelled blocks"),
        "{}",
        none.message()
    );

    // One class only. (Acknowledged means the session's worker has taken the marker in:
    // Calibrate, another RPC, must not overtake it.)
    client.send(block(0.0, "rest")).await;
    client.until_acked().await;
    let one = calibrate(&mut affect, "calibrated").await.unwrap_err();
    assert_eq!(one.code(), Code::FailedPrecondition, "{one:?}");
    assert!(one.message().contains("two classes"), "{}", one.message());

    // Two classes over 40 s: rest, task, rest, task.
    client.send(block(10.0, "task")).await;
    client.send(block(20.0, "rest")).await;
    client.send(block(30.0, "task")).await;
    client.chunks(&rest_and_task_chunks(16.0, 41.0)).await;
    until_fused(&mut client, 137.0).await;
    let figures = calibrate(&mut affect, "calibrated")
        .await
        .unwrap()
        .into_inner();
    println!("live calibration: {figures:?}");
    assert_eq!(figures.classes, ["rest", "task"]);
    assert!(figures.hops >= 30, "{figures:?}");
    assert_eq!(figures.chance_level, 0.5);
    assert!(
        figures.balanced_accuracy > figures.chance_95th_percentile,
        "{figures:?}"
    );
    assert!(figures.features.iter().any(|f| f.starts_with("eeg.")));
    assert_eq!(figures.method, "fusion-v1+calibrated-lda");

    // The session goes on, calibrated.
    client.chunks(&rest_and_task_chunks(41.0, 50.0)).await;
    client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();
    let fused: Vec<&FusedEstimate> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Fused(f) => Some(f),
            _ => None,
        })
        .collect();
    let last = fused.last().unwrap();
    assert_eq!(last.method, "fusion-v1+calibrated-lda");
    let labels: Vec<&str> = last.labels.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["rest", "task"]);
    assert!(fused.iter().any(|f| f.method == "fusion-v1"));
    // The model is recorded with the session.
    let mut zip = export_csv(&mut recordings, "calibrated").await;
    let models: serde_json::Value =
        serde_json::from_slice(&read_entry(&mut zip, "fusion_models.json")).unwrap();
    assert_eq!(models.as_array().unwrap().len(), 1);
    assert_eq!(models[0]["model"]["format"], "affectd-fusion-lda-v1");
    assert_eq!(
        models[0]["model"]["cross_validation"]["balanced_accuracy"],
        figures.balanced_accuracy
    );
}

/// `affectd sessions analyze` replays a recorded session through the same pipeline: its
/// faces, feature windows and fused estimates equal what the session sent live; with a
/// model from `affectd train-fusion` its labels are the calibrated classes; it draws the
/// summary plot.
#[tokio::test(flavor = "multi_thread")]
async fn offline_analysis_of_a_recorded_session_equals_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut client = Client::eeg(&mut affect, "replayed").await;
    let face = photo("single_face.jpg");
    client.send(block(0.0, "rest")).await;
    client.send(block(10.0, "task")).await;
    client.send(block(20.0, "rest")).await;
    client.send(block(30.0, "task")).await;
    for (i, chunk) in rest_and_task_chunks(0.0, 40.0).into_iter().enumerate() {
        let t = chunk.first_timestamp;
        client.send(stream_request::Message::Chunk(chunk)).await;
        if i % 2 == 0 {
            // Each frame waits for its result, so that none is skipped live.
            let seq = client.frame(t, face.clone()).await;
            client
                .until(|m| matches!(&m.message, Some(stream_response::Message::Faces(f)) if f.client_seq == seq))
                .await;
        }
    }
    client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();
    let live_fused: Vec<&FusedEstimate> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::Fused(f) => Some(f),
            _ => None,
        })
        .collect();
    let live_windows = messages(&all)
        .into_iter()
        .filter(|m| matches!(m, stream_response::Message::Features(_)))
        .count();
    assert!(live_fused.len() >= 35, "{}", live_fused.len());
    assert!(warnings(&all).is_empty(), "{:?}", warnings(&all));

    let run = |args: &[&str]| {
        let out = affectd(dir.path())
            .env("AFFECTD_DATABASE", &database)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "affectd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let records = |text: &str, kind: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["record"] == kind)
            .collect()
    };
    let timeline = run(&[
        "sessions",
        "analyze",
        "replayed",
        "--quiet",
        "--plot",
        "summary.png",
    ]);
    let fused = records(&timeline, "fused");
    assert_eq!(fused.len(), live_fused.len());
    for (offline, live) in fused.iter().zip(&live_fused) {
        assert_eq!(offline["start_time"].as_f64().unwrap(), live.start_time);
        assert_eq!(offline["method"], "fusion-v1");
        let close = |a: &serde_json::Value, b: Option<f64>| match (a.as_f64(), b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-6,
            (None, None) => true,
            _ => false,
        };
        assert!(
            close(&offline["arousal"], live.arousal),
            "{offline} vs {live:?}"
        );
        assert!(
            close(&offline["valence"], live.valence),
            "{offline} vs {live:?}"
        );
        let contributions = offline["contributions"].as_array().unwrap();
        assert_eq!(contributions.len(), live.contributions.len());
        for (o, l) in contributions.iter().zip(&live.contributions) {
            assert!((o["weight"].as_f64().unwrap() - l.weight).abs() < 1e-6);
        }
    }
    assert_eq!(records(&timeline, "features").len(), live_windows);
    assert_eq!(records(&timeline, "faces").len(), faces(&all).len());
    assert_eq!(records(&timeline, "marker").len(), 4);
    let plot = image::open(dir.path().join("summary.png")).unwrap();
    if let Ok(keep) = std::env::var("AFFECTD_KEEP_PLOT") {
        std::fs::copy(dir.path().join("summary.png"), keep).unwrap();
    }
    assert_eq!((plot.width(), plot.height()), (1600, 1000));

    // The CSV timeline holds the same rows.
    let csv_text = run(&[
        "sessions", "analyze", "replayed", "--quiet", "--format", "csv",
    ]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let record = header.iter().position(|h| h == "record").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    assert_eq!(
        rows.iter().filter(|r| &r[record] == "fused").count(),
        live_fused.len()
    );

    // A calibration from the recording, then its labels offline.
    let report = run(&["train-fusion", "replayed", "--model-out", "model.json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let cv = &report["cross_validation"];
    assert!(
        cv["balanced_accuracy"].as_f64().unwrap() > cv["chance_95th_percentile"].as_f64().unwrap(),
        "{report}"
    );
    let calibrated = run(&[
        "sessions",
        "analyze",
        "replayed",
        "--quiet",
        "--fusion-model",
        "model.json",
    ]);
    let fused = records(&calibrated, "fused");
    assert_eq!(fused[0]["method"], "fusion-v1+calibrated-lda");
    assert_eq!(fused[0]["label_names"], serde_json::json!(["rest", "task"]));

    // Errors that say what to do.
    let out = affectd(dir.path())
        .env("AFFECTD_DATABASE", &database)
        .args(["train-fusion", "replayed", "--labels", "no-such.csv"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such.csv"));
}

/// A live session of the constructed smile clip (`expression_dynamics::smile_frames`, 15 fps):
/// the session sends each episode as it starts and ends, records the ended ones, exports
/// them to CSV and XDF, and `sessions analyze` finds the same ones again.
#[tokio::test(flavor = "multi_thread")]
async fn expression_episodes_are_sent_recorded_exported_and_replayed() {
    use crate::expression_dynamics::{SMILES, smile_frames};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let mut recordings = RecordingsClient::new(server.channel().await);
    let mut client = Client::open(
        &mut affect,
        SessionConfig {
            session_id: "smiles".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = 500.0;
    for (i, frame) in smile_frames().into_iter().enumerate().step_by(2) {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&frame)
            .unwrap();
        // Each frame waits for its result, so that none is skipped.
        let seq = client.frame(start + i as f64 / 30.0, jpeg).await;
        client
            .until(|m| matches!(&m.message, Some(stream_response::Message::Faces(f)) if f.client_seq == seq))
            .await;
    }
    client
        .send(stream_request::Message::End(EndSession {}))
        .await;
    let (all, end) = client.drain().await;
    end.unwrap();
    let events: Vec<&ExpressionEvent> = messages(&all)
        .into_iter()
        .filter_map(|m| match m {
            stream_response::Message::ExpressionEvent(e) => Some(e),
            _ => None,
        })
        .collect();
    let kinds: Vec<expression_event::Kind> = events.iter().map(|e| e.kind()).collect();
    use expression_event::Kind::{Ended, Started};
    assert_eq!(
        kinds,
        [Started, Ended, Started, Ended, Started, Ended],
        "{events:#?}"
    );
    let ended: Vec<&&ExpressionEvent> = events.iter().filter(|e| e.kind() == Ended).collect();
    for (e, (onset, offset)) in ended.iter().zip(SMILES) {
        assert!((e.onset - start - onset).abs() <= 0.1, "{e:?}");
        assert!((e.offset.unwrap() - start - offset).abs() <= 0.1, "{e:?}");
        assert!(e.action_units.iter().any(|a| a.name == "AU12"), "{e:?}");
        assert_eq!(e.end(), EpisodeEnd::Returned);
    }
    // A started event is the same episode, open.
    assert_eq!(events[0].onset, ended[0].onset);
    assert!(events[0].offset.is_none() && events[0].end() == EpisodeEnd::Unspecified);

    // Recorded and exported.
    let mut zip = export_csv(&mut recordings, "smiles").await;
    let table = String::from_utf8(read_entry(&mut zip, "expression_events.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{table}");
    let onset_column = header.iter().position(|h| h == "onset").unwrap();
    for (row, e) in rows.iter().zip(&ended) {
        assert!((row[onset_column].parse::<f64>().unwrap() - e.onset).abs() < 1e-5);
    }
    let (_, xdf) = export(&mut recordings, "smiles", ExportFormat::Xdf).await;
    let streams = pyxdf_read(&xdf);
    let stream = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ExpressionEvents")
        .expect("an ExpressionEvents stream");
    assert_eq!(stream["type"], "Markers");
    let stamps = stream["time_stamps"].as_array().unwrap();
    assert_eq!(stamps.len(), 3);
    let first: serde_json::Value =
        serde_json::from_str(stream["values"][0][0].as_str().unwrap()).unwrap();
    assert_eq!(first["kind"], "ended");
    assert!(first["dynamics"].as_str().unwrap().starts_with("AU"));

    // Replayed offline, the same episodes.
    let out = affectd(dir.path())
        .env("AFFECTD_DATABASE", &database)
        .args(["sessions", "analyze", "smiles", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["record"] == "expression_event")
        .collect();
    assert_eq!(replayed.len(), 3);
    for (offline, live) in replayed.iter().zip(&ended) {
        assert_eq!(offline["onset"].as_f64().unwrap(), live.onset);
        assert_eq!(offline["offset"].as_f64().unwrap(), live.offset.unwrap());
    }
}
