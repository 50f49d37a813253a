//! Explain over gRPC on the real server, with the openai backend pointed at a real
//! llama.cpp server (llama-cpp-python, built by scripts/setup.sh --dev) serving Gemma 3
//! 270M. That model is a small base model: it rarely writes the JSON contract, so the
//! tests hold the server to what it must do either way (a validated judgement, or the raw
//! text marked unparsed after one repair attempt), never to what the model says.

use crate::common::llama::*;
use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::*;
use tonic::Code;

fn photo(name: &str) -> Vec<u8> {
    let path = repo().join(".testdata").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
}

fn explain_request(image: Vec<u8>, max_tokens: u32) -> ExplainRequest {
    ExplainRequest {
        source: Some(explain_request::Source::Image(ImageInput {
            data: Some(image_input::Data::Encoded(image)),
        })),
        backend: "openai".into(),
        max_tokens,
        temperature: 0.0,
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_requests_and_dead_backends_get_their_status() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_OPENAI_URL", &dead);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let image = photo("single_face.jpg");
    let cases: Vec<(ExplainRequest, Code, &str)> = vec![
        (
            ExplainRequest {
                labels: (0..33).map(|i| format!("l{i}")).collect(),
                ..explain_request(image.clone(), 8)
            },
            Code::InvalidArgument,
            "at most 32",
        ),
        (
            ExplainRequest {
                labels: vec!["".into()],
                ..explain_request(image.clone(), 8)
            },
            Code::InvalidArgument,
            "label",
        ),
        (
            explain_request(b"not an image".to_vec(), 8),
            Code::InvalidArgument,
            "image",
        ),
        (
            explain_request(photo("free-mountain-vector-01.jpg"), 8),
            Code::InvalidArgument,
            "no face",
        ),
        (
            ExplainRequest {
                face_ids: vec![9],
                ..explain_request(image.clone(), 8)
            },
            Code::InvalidArgument,
            "no face 9",
        ),
        (
            ExplainRequest {
                backend: "gpt".into(),
                ..explain_request(image.clone(), 8)
            },
            Code::InvalidArgument,
            "unknown",
        ),
        (
            // The test server's model cache is empty: no GGUF for candle.
            ExplainRequest {
                backend: "candle".into(),
                ..explain_request(image.clone(), 8)
            },
            Code::Unavailable,
            "backend candle is unavailable",
        ),
        (
            // The request's model field cannot pick another model yet; it is refused,
            // not ignored.
            ExplainRequest {
                model: "some-other-model".into(),
                ..explain_request(image.clone(), 8)
            },
            Code::Unimplemented,
            "choosing the model per request is not built",
        ),
        (
            ExplainRequest {
                source: Some(explain_request::Source::SessionId("s1".into())),
                ..explain_request(image.clone(), 8)
            },
            Code::NotFound,
            "no live session `s1`",
        ),
    ];
    for (request, code, words) in cases {
        let status = affect.explain(request).await.expect_err(words);
        assert_eq!(status.code(), code, "{words}: {status:?}");
        assert!(
            status.message().contains(words),
            "{words}: {}",
            status.message()
        );
    }
    // A backend nobody answers at: UNAVAILABLE, named, delivered on the stream.
    let mut stream = affect
        .explain(explain_request(image, 8))
        .await
        .unwrap()
        .into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without the backend's error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains(&format!("openai at {dead}")),
        "{}",
        status.message()
    );
}

/// Tests that need a language model (a llama.cpp server or a fetched GGUF); the quick tier skips `llm::`.
mod llm {
    use super::*;

    /// Explain waits its turn without holding the server: one generates, one waits, one more
    /// is refused at once (RESOURCE_EXHAUSTED naming limits.max_queued_explanations), the
    /// waiter is refused when its wait runs out (UNAVAILABLE naming
    /// limits.explain_queue_timeout_s), and AnalyzeFrame and ListSessions answer meanwhile.
    /// Explanations generate on threads of their own.
    #[tokio::test(flavor = "multi_thread")]
    async fn explanations_queue_boundedly_and_the_rest_of_the_server_answers() {
        let model = qwen();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("affectd.toml");
        std::fs::write(
            &config,
            "[limits]\nmax_concurrent_explanations = 1\nmax_queued_explanations = 1\nexplain_queue_timeout_s = 2.0\n",
        )
        .unwrap();
        let mut server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_CANDLE_MODEL", &model)
                .arg("--config")
                .arg(&config);
        });
        let mut affect = AffectClient::new(server.channel().await);
        let request = || ExplainRequest {
            backend: "candle".into(),
            max_tokens: 400,
            ..explain_request(photo("single_face.jpg"), 400)
        };
        // The first takes the turn: its stream opens.
        let mut generating = affect.explain(request()).await.unwrap().into_inner();
        // It generates on the explanation pool's own thread (one per turn), not on a
        // thread of the shared blocking pool that frame and signal analyses use. Names,
        // not threads, are counted: on Linux a thread that the pool's thread starts (ONNX
        // Runtime's or a library's, not named by it) inherits its name: seen once as three
        // `explain-0` threads beside `candle-bp-0`.
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect();
        let pool: std::collections::BTreeSet<&str> = threads
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("explain-"))
            .collect();
        assert_eq!(pool, ["explain-0"].into(), "{threads:?}");
        // The second waits (its call does not return until it has a turn).
        let waiter = {
            let mut affect = affect.clone();
            let request = request();
            tokio::spawn(async move { affect.explain(request).await.map(|_| ()) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let refused = affect.explain(request()).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("limits.max_queued_explanations"));
        // The rest of the server answers while the model is busy.
        let started = std::time::Instant::now();
        let frame = affect
            .analyze_frame(AnalyzeFrameRequest {
                image: Some(ImageInput {
                    data: Some(image_input::Data::Encoded(photo("single_face.jpg"))),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(frame.faces.len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let waited = waiter.await.unwrap().unwrap_err();
        assert_eq!(waited.code(), Code::Unavailable, "{waited:?}");
        assert!(waited.message().contains("limits.explain_queue_timeout_s"));
        // The first goes on to its result.
        let (_tokens, result) = tokens_then_result(&mut generating).await;
        assert_eq!(result.backend, "candle");
        // Its turn is free again.
        let mut next = affect.explain(request()).await.unwrap().into_inner();
        let first = next.message().await;
        assert!(
            matches!(first, Ok(Some(_))),
            "the next explanation's first event: {first:?}; the server process: {:?}",
            server.child.try_wait()
        );
    }

    /// Explanations asked inside a live session take the same turn as Explain calls: while
    /// an Explain call generates and no one may queue (limits.max_queued_explanations = 0),
    /// a session's request is refused at once with a warning naming the key, and the
    /// session goes on.
    #[tokio::test(flavor = "multi_thread")]
    async fn session_explanations_take_their_turn_with_explain_calls() {
        let model = qwen();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("affectd.toml");
        std::fs::write(
            &config,
            "[limits]\nmax_concurrent_explanations = 1\nmax_queued_explanations = 0\n",
        )
        .unwrap();
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_CANDLE_MODEL", &model)
                .arg("--config")
                .arg(&config);
        });
        let mut affect = AffectClient::new(server.channel().await);
        let mut generating = affect
            .explain(ExplainRequest {
                backend: "candle".into(),
                ..explain_request(photo("single_face.jpg"), 400)
            })
            .await
            .unwrap()
            .into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let messages = [
            stream_request::Message::Config(SessionConfig {
                no_record: true,
                ..Default::default()
            }),
            stream_request::Message::Frame(Frame {
                timestamp: 1.0,
                image: Some(ImageInput {
                    data: Some(image_input::Data::Encoded(photo("single_face.jpg"))),
                }),
            }),
        ];
        for (i, message) in messages.into_iter().enumerate() {
            tx.send(StreamRequest {
                client_seq: i as u64 + 1,
                message: Some(message),
            })
            .await
            .unwrap();
        }
        let mut session = affect
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        // After the frame's faces, ask for an explanation.
        loop {
            let m = session.message().await.unwrap().unwrap();
            if matches!(m.message, Some(stream_response::Message::Faces(_))) {
                break;
            }
        }
        tx.send(StreamRequest {
            client_seq: 3,
            message: Some(stream_request::Message::Explain(ExplainRequest {
                backend: "candle".into(),
                max_tokens: 8,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let warning = loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(60), session.message())
                .await
                .expect("an answer to the session's explanation")
                .unwrap()
                .unwrap();
            match m.message {
                Some(stream_response::Message::Warning(w)) if w.client_seq == 3 => break w,
                Some(stream_response::Message::Explain(e)) => {
                    panic!("the session generated while an Explain call held the turn: {e:?}")
                }
                _ => {}
            }
        };
        assert!(
            warning.message.contains("limits.max_queued_explanations"),
            "{warning:?}"
        );
        let (_tokens, result) = tokens_then_result(&mut generating).await;
        assert_eq!(result.backend, "candle");
        drop(tx);
        while session.message().await.unwrap().is_some() {}
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tokens_stream_then_a_validated_or_unparsed_result() {
        let llama = llama_server();
        let url = llama.url.clone();
        let (_server, mut affect, info) = server_with("AFFECTD_OPENAI_URL", &url).await;
        assert!(
            info.backends
                .iter()
                .any(|b| b.name == "openai" && b.available)
        );
        assert!(
            info.capabilities
                .iter()
                .any(|c| c.name == "explanation" && c.available)
        );

        let mut stream = affect
            .explain(explain_request(photo("single_face.jpg"), 48))
            .await
            .unwrap()
            .into_inner();
        let (tokens, result) = tokens_then_result(&mut stream).await;
        println!("{result:#?}");
        assert!(!tokens.is_empty());
        assert_eq!(result.template_id, "sovtp@2");
        assert_eq!(result.backend, "openai");
        let timings = result.timings.unwrap();
        assert!(
            timings.generated_tokens > 0
                && timings.time_to_first_token_ms > 0.0
                && timings.total_ms >= timings.time_to_first_token_ms
        );
        if result.parsed {
            assert!(!result.judgements.is_empty());
            let labels = [
                "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
            ];
            for j in &result.judgements {
                assert!(labels.contains(&j.label.as_str()), "{j:?}");
                assert!((0.0..=1.0).contains(&j.confidence) && (-1.0..=1.0).contains(&j.valence));
            }
        } else {
            // No label invented: nothing but the model's words and why they failed.
            assert!(result.judgements.is_empty());
            assert!(!result.raw_text.is_empty());
            assert!(!result.parse_error.is_empty());
            assert_eq!(
                result.repair_attempts, 1,
                "one repair attempt before giving up"
            );
            assert!(result.raw_text.contains("--- repair attempt ---"));
        }
        // Every streamed token is in the raw text (the repair attempt's too).
        assert_eq!(
            tokens.replace(char::is_whitespace, ""),
            result
                .raw_text
                .replace("--- repair attempt ---", "")
                .replace(char::is_whitespace, "")
        );
    }

    /// The answer's JSON schema goes to the server as `response_format`: llama-cpp-python
    /// refuses OpenAI's `json_schema` form (naming response_format), takes the
    /// `json_object` form with the schema, and its grammar holds even this small base model
    /// to the answer's shape: the face id, a label from the set, the evidence keys, the
    /// SoVTP stages. The labels' probabilities come from the server's logprobs.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_answer_schema_goes_to_the_server_and_its_grammar_holds_the_model_to_it() {
        let llama = llama_server();
        let (_server, mut affect, _) = server_with("AFFECTD_OPENAI_URL", &llama.url).await;
        let mut stream = affect
            .explain(explain_request(photo("single_face.jpg"), 0))
            .await
            .unwrap()
            .into_inner();
        let (_, result) = tokens_then_result(&mut stream).await;
        println!("{result:#?}");
        assert!(!result.constrained, "the server, not affectd, decodes");
        // The first answer, repaired or not, has the schema's shape.
        let first = result
            .raw_text
            .split("--- repair attempt ---")
            .next()
            .unwrap();
        let answer: serde_json::Value = serde_json::from_str(first.trim())
            .unwrap_or_else(|e| panic!("the first answer is not one JSON object ({e}): {first}"));
        for stage in ["scene", "body", "others", "cues", "check"] {
            assert!(answer["stages"][stage].is_string(), "{answer}");
        }
        let judgement = &answer["judgements"][0];
        assert_eq!(judgement["face_id"], 1, "{answer}");
        let labels = [
            "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
        ];
        assert!(
            labels.contains(&judgement["label"].as_str().unwrap()),
            "{answer}"
        );
        for item in judgement["evidence"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap();
            assert!(
                key.starts_with("AU") || key.starts_with("expr.") || key.starts_with("face."),
                "{answer}"
            );
        }
        if result.parsed {
            let j = &result.judgements[0];
            assert_eq!(j.label_probability_method, "first-token", "{j:?}");
            assert_eq!(j.label_probabilities.len(), 7);
            let sum: f32 = j.label_probabilities.iter().map(|p| p.probability).sum();
            assert!((sum - 1.0).abs() < 1e-3, "{sum}");
            // Every citation was checked against the prompt's values.
            assert_eq!(
                j.citations.len(),
                judgement["evidence"].as_array().unwrap().len()
            );
            assert!(
                j.citations
                    .iter()
                    .all(|c| c.verdict != 0 && c.value.is_some())
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_that_leaves_stops_generation() {
        let llama = llama_server();
        let pid = llama.child.id();
        let url = llama.url.clone();
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_OPENAI_URL", &url);
        });
        let mut affect = AffectClient::new(server.channel().await);
        let mut stream = affect
            .explain(explain_request(photo("single_face.jpg"), 2000))
            .await
            .unwrap()
            .into_inner();
        // Two tokens, then hang up.
        for _ in 0..2 {
            stream.message().await.unwrap().unwrap();
        }
        drop(stream);
        let idle_after =
            tokio::task::spawn_blocking(move || wait_until_idle(pid, "the llama.cpp server"))
                .await
                .unwrap();
        println!("llama.cpp server idle {idle_after:?} after the client left");
    }

    /// The in-process backend on the default model (Qwen2.5-Coder 0.5B): the same stream and
    /// result contract, the label masked to the request's set, and a client that leaves stops
    /// the server's own CPU work.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_candle_backend_streams_a_judgement_and_stops_when_the_client_leaves() {
        let model = qwen();
        let (server, mut affect, info) =
            server_with("AFFECTD_CANDLE_MODEL", &model.to_string_lossy()).await;
        let candle = info.backends.iter().find(|b| b.name == "candle").unwrap();
        assert!(candle.available, "{}", candle.reason);
        assert_eq!(
            candle.default_model,
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        );

        let labels = vec![
            "happy".to_string(),
            "sad".to_string(),
            "neutral".to_string(),
        ];
        let mut stream = affect
            .explain(ExplainRequest {
                backend: String::new(), // the default: candle
                labels: labels.clone(),
                // 0: the answer schema's own budget.
                ..explain_request(photo("0-f15-hao-ph.jpg"), 0)
            })
            .await
            .unwrap()
            .into_inner();
        let (tokens, result) = tokens_then_result(&mut stream).await;
        println!("{result:#?}");
        assert_eq!(result.backend, "candle");
        assert_eq!(result.model, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
        let timings = result.timings.unwrap();
        assert!(timings.prompt_tokens > 200 && timings.generated_tokens > 0);
        assert!(
            timings.prompt_tokens_per_s > Some(0.0) && timings.generation_tokens_per_s > Some(0.0)
        );
        assert!(!tokens.is_empty());
        // Decoded under the answer's schema with its own budget: valid the first time, by
        // construction, whatever the model's judgement.
        assert!(result.constrained);
        assert!(
            result.parsed && result.repair_attempts == 0,
            "{}",
            result.parse_error
        );
        assert!(result.stages.is_some());
        for j in &result.judgements {
            assert!(labels.contains(&j.label), "{j:?}");
            assert_eq!(j.face_id, 1);
            // The model's probability of each allowed label, scored where the label went.
            assert_eq!(j.label_probability_method, "sequence");
            let named: Vec<&str> = j
                .label_probabilities
                .iter()
                .map(|p| p.label.as_str())
                .collect();
            assert_eq!(named, ["happy", "sad", "neutral"]);
            let sum: f32 = j.label_probabilities.iter().map(|p| p.probability).sum();
            assert!((sum - 1.0).abs() < 1e-3, "{sum}");
            // Every citation was checked against a value the prompt carried (the schema
            // only allows keys it carried).
            assert!(
                j.citations
                    .iter()
                    .all(|c| c.value.is_some() && c.verdict != 0),
                "{j:?}"
            );
            // The combination is reported beside the model's label.
            assert!(labels.contains(&j.combined_label), "{j:?}");
        }
        // The label value in the raw text is one of the allowed labels.
        for (i, _) in result.raw_text.match_indices("\"label\":\"") {
            let rest = &result.raw_text[i + 9..];
            let value = &rest[..rest.find('"').unwrap_or(rest.len())];
            assert!(labels.iter().any(|l| l == value), "label value {value:?}");
        }

        // Hang up after two tokens: the server's CPU use falls.
        let pid = server.child.id();
        let mut stream = affect
            .explain(ExplainRequest {
                // The server's default backend: candle.
                backend: String::new(),
                ..explain_request(photo("0-f15-hao-ph.jpg"), 2000)
            })
            .await
            .unwrap()
            .into_inner();
        for _ in 0..2 {
            stream.message().await.unwrap().unwrap();
        }
        drop(stream);
        let idle_after = tokio::task::spawn_blocking(move || wait_until_idle(pid, "the server"))
            .await
            .unwrap();
        println!("server idle {idle_after:?} after the client left");
    }
}
