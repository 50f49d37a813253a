//! AnalyzeSignals over gRPC on the real server: a real ECG recording and a synthetic EEG
//! stream in, features out; bad requests answered INVALID_ARGUMENT.

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::*;
use tonic::Code;

fn pyhrv_ecg() -> Vec<f32> {
    let path = repo().join(".testdata/SampleECG.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse().unwrap())
        .collect()
}

fn stream(id: &str, kind: SignalKind, rate: f64, labels: &[&str], unit: &str) -> StreamInfo {
    StreamInfo {
        stream_id: id.into(),
        kind: kind as i32,
        nominal_rate_hz: rate,
        channels: labels
            .iter()
            .map(|l| ChannelInfo {
                label: l.to_string(),
                unit: unit.into(),
            })
            .collect(),
    }
}

/// Two-channel frontal EEG at 250 Hz: F3 has more alpha than F4.
fn frontal_eeg(seconds: usize) -> Vec<f32> {
    (0..seconds * 250)
        .flat_map(|i| {
            let t = i as f64 / 250.0;
            let alpha = (2.0 * std::f64::consts::PI * 10.0 * t).sin();
            let beta = 4.0 * (2.0 * std::f64::consts::PI * 22.0 * t).sin();
            [(20.0 * alpha + beta) as f32, (10.0 * alpha + beta) as f32]
        })
        .collect()
}

#[tokio::test]
async fn ecg_and_eeg_streams_come_back_as_feature_windows() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let ecg = pyhrv_ecg();
    let eeg = frontal_eeg(10);
    let mut chunks = Vec::new();
    // ECG in 1 s chunks starting at t = 1000 s; EEG in one chunk at t = 1000.5 s.
    for (k, part) in ecg.chunks(1000).enumerate() {
        chunks.push(SignalChunk {
            stream_id: "ecg".into(),
            first_timestamp: 1000.0 + k as f64,
            samples: part.to_vec(),
            ..Default::default()
        });
    }
    chunks.push(SignalChunk {
        stream_id: "eeg".into(),
        first_timestamp: 1000.5,
        samples: eeg,
        ..Default::default()
    });
    let response = affect
        .analyze_signals(AnalyzeSignalsRequest {
            streams: vec![
                stream("ecg", SignalKind::Ecg, 1000.0, &["ECG"], "a.u."),
                stream("eeg", SignalKind::Eeg, 250.0, &["F3", "F4"], "uV"),
            ],
            chunks,
            config: Some(SignalConfig {
                baseline_s: 5.0,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();

    let ecg_windows: Vec<&FeatureWindow> = response
        .windows
        .iter()
        .filter(|w| w.stream_id == "ecg")
        .collect();
    let beats: usize = ecg_windows
        .iter()
        .map(|w| match &w.features {
            Some(feature_window::Features::Cardiac(c)) => {
                assert!(
                    c.beat_times
                        .iter()
                        .all(|t| *t >= w.start_time && *t < w.end_time)
                );
                c.beat_times.len()
            }
            other => panic!("ECG window without cardiac features: {other:?}"),
        })
        .sum();
    assert!(ecg_windows[0].start_time >= 1000.0);
    // Hop 1 s with a 4 s window: each beat is reported in up to 4 windows.
    assert!(beats >= 29 * 3, "{beats} beat reports");
    let with_change = ecg_windows.iter().filter(|w| matches!(&w.features, Some(feature_window::Features::Cardiac(c)) if c.heart_rate_change_bpm.is_some())).count();
    assert!(with_change > 0);

    let eeg_windows: Vec<&FeatureWindow> = response
        .windows
        .iter()
        .filter(|w| w.stream_id == "eeg")
        .collect();
    assert_eq!(
        eeg_windows.len(),
        7,
        "windows at 0..=6 s cover all 10 s; no tail is left"
    );
    assert_eq!(eeg_windows[0].start_time, 1000.5);
    assert_eq!(eeg_windows[0].end_time, 1004.5);
    let Some(feature_window::Features::Eeg(f)) = &eeg_windows[0].features else {
        panic!()
    };
    assert_eq!(f.band_powers.len(), 10);
    assert_eq!(f.asymmetry[0].pair, "F4-F3");
    assert!(
        (f.asymmetry[0].value - 0.25f64.ln()).abs() < 0.1,
        "{:?}",
        f.asymmetry
    );
    let estimate = eeg_windows[0].estimate.as_ref().unwrap();
    assert!(
        estimate.valence < 0.0 && estimate.reliability > 0.9,
        "{estimate:?}"
    );
    assert_eq!(estimate.method, "eeg-faa-beta-alpha-v1");

    // Signal analysis needs no models, so the capability is listed as available.
    let info = affect
        .get_server_info(GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        info.capabilities
            .iter()
            .any(|c| c.name == "signals" && c.available)
    );
}

#[tokio::test]
async fn bad_requests_are_invalid_arguments_that_name_the_problem() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let eeg = || stream("eeg", SignalKind::Eeg, 250.0, &["Cz"], "uV");
    let chunk = |samples: Vec<f32>| SignalChunk {
        stream_id: "eeg".into(),
        samples,
        ..Default::default()
    };
    let cases: Vec<(AnalyzeSignalsRequest, &str)> = vec![
        (AnalyzeSignalsRequest::default(), "at least one stream"),
        (
            AnalyzeSignalsRequest {
                streams: vec![StreamInfo {
                    nominal_rate_hz: 0.0,
                    ..eeg()
                }],
                ..Default::default()
            },
            "sample rate must be positive",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![StreamInfo {
                    nominal_rate_hz: -250.0,
                    ..eeg()
                }],
                ..Default::default()
            },
            "sample rate must be positive",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![StreamInfo { kind: 0, ..eeg() }],
                ..Default::default()
            },
            "kind must be one of",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![StreamInfo {
                    channels: vec![],
                    ..eeg()
                }],
                ..Default::default()
            },
            "has no channels",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![eeg(), eeg()],
                ..Default::default()
            },
            "described twice",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![stream("eeg", SignalKind::Eeg, 250.0, &["F3", "F4"], "uV")],
                chunks: vec![chunk(vec![1.0; 3])],
                ..Default::default()
            },
            "not a whole number of 2-channel samples",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![eeg()],
                chunks: vec![SignalChunk {
                    stream_id: "ecg".into(),
                    ..chunk(vec![1.0])
                }],
                ..Default::default()
            },
            "unknown stream_id",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![eeg()],
                chunks: vec![SignalChunk {
                    timestamps: vec![1.0, 0.5],
                    ..chunk(vec![1.0, 2.0])
                }],
                ..Default::default()
            },
            "strictly increasing",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![eeg()],
                config: Some(SignalConfig {
                    window_s: -1.0,
                    ..Default::default()
                }),
                ..Default::default()
            },
            "window_s",
        ),
        (
            AnalyzeSignalsRequest {
                streams: vec![eeg()],
                config: Some(SignalConfig {
                    eeg_bands: vec![Band {
                        name: "alpha".into(),
                        low_hz: 13.0,
                        high_hz: 8.0,
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "band \"alpha\"",
        ),
    ];
    for (request, words) in cases {
        let status = affect.analyze_signals(request).await.expect_err(words);
        assert_eq!(status.code(), Code::InvalidArgument, "{words}: {status:?}");
        assert!(
            status.message().contains(words),
            "{words}: {}",
            status.message()
        );
    }
    // The server is still serving.
    let ok = affect
        .analyze_signals(AnalyzeSignalsRequest {
            streams: vec![eeg()],
            chunks: vec![chunk(vec![f32::NAN; 2000])],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        ok.warnings
            .iter()
            .any(|w| w.kind == SignalWarningKind::NonFinite as i32)
    );
    assert!(ok.windows.iter().all(|w| !w.quality[0].usable));
}

/// A client's declared numbers size the analyzer's buffers: a rate, a channel count, a
/// window or a gap beyond the `[limits]` budget is refused before anything is allocated,
/// naming the config key, and the server goes on (it used to abort on the allocation).
#[tokio::test]
async fn declared_sizes_beyond_the_budget_are_refused_before_allocating() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await);
    let one_sample = |id: &str, first: f64, index: Option<u64>, channels: usize| SignalChunk {
        stream_id: id.into(),
        first_timestamp: first,
        samples: vec![0.0; channels],
        first_sample_index: index,
        ..Default::default()
    };
    let request =
        |streams: Vec<StreamInfo>, chunks: Vec<SignalChunk>, window_s: f64| AnalyzeSignalsRequest {
            streams,
            chunks,
            config: Some(SignalConfig {
                window_s,
                ..Default::default()
            }),
        };
    let many_labels: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
    let many: Vec<&str> = many_labels.iter().map(String::as_str).collect();
    let cases = [
        // The 43-byte request that aborted the process: EDA at 1e12 Hz, a 1e-11 s window.
        (
            request(
                vec![stream("eda", SignalKind::Eda, 1e12, &["x"], "uS")],
                vec![one_sample("eda", 0.0, None, 1)],
                1e-11,
            ),
            "limits.max_sample_rate_hz",
        ),
        (
            request(
                vec![stream("eeg", SignalKind::Eeg, 256.0, &many, "uV")],
                vec![one_sample("eeg", 0.0, None, 5000)],
                0.0,
            ),
            "limits.max_channels_per_stream",
        ),
        // Within the rate and channel caps, EDA's 60 s look-back at 64 ch x 10 kHz is not.
        (
            request(
                vec![stream("eda", SignalKind::Eda, 10_000.0, &many[..64], "uS")],
                vec![one_sample("eda", 0.0, None, 64)],
                0.0,
            ),
            "limits.max_values_held_per_stream",
        ),
        // A gap fill: two one-sample chunks whose index jumps 599 s at 100 kHz x 8 ch.
        (
            request(
                vec![stream("eeg", SignalKind::Eeg, 100_000.0, &many[..8], "uV")],
                vec![
                    one_sample("eeg", 0.0, Some(0), 8),
                    one_sample("eeg", 599.0, Some(59_900_000), 8),
                ],
                0.01,
            ),
            "limits.max_gap_fill_values",
        ),
    ];
    let long = "x".repeat(300);
    let cases = cases.into_iter().chain([(
        request(
            vec![stream(
                "eeg",
                SignalKind::Eeg,
                256.0,
                &[long.as_str()],
                "uV",
            )],
            vec![one_sample("eeg", 0.0, None, 1)],
            0.0,
        ),
        "limits.max_name_bytes",
    )]);
    for (request, key) in cases {
        let status = affect.analyze_signals(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(key),
            "{key}: {}",
            status.message()
        );
    }
    // The same budget guards a live session's config.
    let config = StreamRequest {
        client_seq: 1,
        message: Some(stream_request::Message::Config(SessionConfig {
            streams: vec![stream("eda", SignalKind::Eda, 1e12, &["x"], "uS")],
            signal_config: Some(SignalConfig {
                window_s: 1e-11,
                ..Default::default()
            }),
            no_record: true,
            ..Default::default()
        })),
    };
    let status = affect
        .stream(tokio_stream::iter([config]))
        .await
        .expect_err("refused at the config");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("limits.max_sample_rate_hz"));
    // Text a recording's summary carries (every ListSessions page) is bounded too: a 9 MB
    // participant, or metadata beyond its limits.
    let text_cases = [
        (
            SessionConfig {
                participant: "p".repeat(9 << 20),
                ..Default::default()
            },
            "limits.max_name_bytes",
        ),
        (
            SessionConfig {
                metadata: [("notes".to_string(), "n".repeat(5000))].into(),
                ..Default::default()
            },
            "limits.max_metadata_value_bytes",
        ),
        (
            SessionConfig {
                metadata: (0..65).map(|i| (format!("k{i}"), String::new())).collect(),
                ..Default::default()
            },
            "limits.max_metadata_entries",
        ),
    ];
    for (config, key) in text_cases {
        let request = StreamRequest {
            client_seq: 1,
            message: Some(stream_request::Message::Config(config)),
        };
        let status = affect
            .stream(tokio_stream::iter([request]))
            .await
            .expect_err("refused at the config");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(key),
            "{key}: {}",
            status.message()
        );
    }
    // Still serving.
    affect
        .get_server_info(GetServerInfoRequest {})
        .await
        .expect("the server is still up");
}

/// Finding 2 of the hardening issue: a hop of one sample over a long recording used to
/// copy every window's samples before encoding any (8 s of 8-channel EEG at 1 kHz: 8,000
/// windows of 256 KB, 2 GB). Windows are now encoded as they complete, the windows a
/// request or chunk may produce are capped (`limits.max_windows_per_request`, checked
/// before computing), and an answer over `server.max_message_bytes` is RESOURCE_EXHAUSTED
/// saying what to do.
#[tokio::test]
async fn a_hop_of_one_sample_costs_one_window_of_memory_and_is_capped() {
    let server = TestServer::start(|_| {});
    let mut affect = AffectClient::new(server.channel().await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let eeg = |seconds: usize| AnalyzeSignalsRequest {
        streams: vec![stream(
            "eeg",
            SignalKind::Eeg,
            1000.0,
            &["F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"],
            "uV",
        )],
        chunks: vec![SignalChunk {
            stream_id: "eeg".into(),
            samples: (0..seconds * 1000 * 8)
                .map(|i| ((i as f32) * 0.013).sin() * 20.0)
                .collect(),
            ..Default::default()
        }],
        config: Some(SignalConfig {
            window_s: 4.0,
            hop_s: 0.001,
            ..Default::default()
        }),
    };
    let before = peak_rss_kib(server.child.id());
    let answer = affect.analyze_signals(eeg(8)).await;
    let grown_mib = (peak_rss_kib(server.child.id()) - before) / 1024;
    eprintln!("8 s at a one-sample hop: peak RSS grew {grown_mib} MiB");
    assert!(grown_mib < 400, "peak RSS grew {grown_mib} MiB");
    match answer {
        Ok(windows) => assert!(windows.into_inner().windows.len() > 4000),
        Err(status) => {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("server.max_message_bytes"));
        }
    }
    let status = affect.analyze_signals(eeg(30)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("limits.max_windows_per_request"),
        "{status:?}"
    );
}
