//! Moments over time against a real llama.cpp server: `affectd explain VIDEO --at T` and a
//! recorded session's moment (`Explain` with `recorded`, `affectd sessions explain`). The
//! prompt states the faces' recent expression episodes with their dynamics, and the
//! answer's evidence may cite them (`ep1.AU12`).

use crate::common::llama::*;
use crate::common::*;
use crate::expression_dynamics::{encode, smile_frames};

#[test]
fn a_video_moment_s_prompt_states_the_recent_episode_in_words_and_numbers() {
    let llama = llama_server();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("smiles.mp4");
    let frames = smile_frames();
    let (w, h) = frames[0].dimensions();
    encode(frames.into_iter(), w, h, &clip);
    // 1.2 s into the first smile (3.0-4.5 s).
    let result = json_output(
        affectd(dir.path())
            .env("AFFECTD_OPENAI_URL", &llama.url)
            .arg("explain")
            .arg(&clip)
            .args([
                "--at",
                "4.2",
                "--backend",
                "openai",
                "--quiet",
                "--max-tokens",
                "16",
            ]),
    );
    let user = result["prompt"]["user"].as_str().unwrap();
    println!("{user}");
    assert!(
        user.contains("ep1 (began 1.20 s ago, peaked 1.17 s ago, still going on): AU12 rose from 0.00 to 4.51 in 33 ms"),
        "{user}"
    );
    assert_eq!(result["template_id"], "sovtp@2");
    // Whatever the small model answered, nothing was invented: a parsed answer's
    // citations were checked against the prompt, an unparsed one has no judgement.
    if result["parsed"] == true {
        for j in result["judgements"].as_array().unwrap() {
            for c in j["citations"].as_array().unwrap() {
                assert!(c["verdict"].is_string(), "{c}");
            }
        }
    } else {
        assert!(result["judgements"].as_array().unwrap().is_empty());
    }
}

/// A recorded moment: the smiles clip streamed as a live session (15 fps, each frame
/// answered before the next), then explained at 5.0 s into it, after the first smile ended,
/// over gRPC and by `affectd sessions explain`: the prompt states the episode that had ended
/// by then, read from the recording.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_moment_is_explained_with_the_episodes_recorded_by_then() {
    use affectd::proto::affect_client::AffectClient;
    use affectd::proto::*;
    let llama = llama_server();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database)
            .env("AFFECTD_OPENAI_URL", &llama.url);
    });
    let mut affect = AffectClient::new(server.channel().await);
    let start = 500.0;
    crate::expression_dynamics::record_smiles(&mut affect, "smiles", start).await;

    let recorded = |time: f64, session_id: &str| ExplainRequest {
        source: Some(explain_request::Source::Recorded(RecordedMoment {
            session_id: session_id.into(),
            time,
        })),
        backend: "openai".into(),
        max_tokens: 8,
        ..Default::default()
    };
    let mut stream = affect
        .explain(recorded(start + 5.0, "smiles"))
        .await
        .unwrap()
        .into_inner();
    let mut result = None;
    while let Some(r) = stream.message().await.unwrap() {
        if let Some(explain_response::Event::Result(done)) = r.event {
            result = Some(done);
        }
    }
    let result = result.expect("a result");
    assert_eq!(result.backend, "openai");
    // Before the first frame, or a session that was never recorded: the client's error.
    let early = affect
        .explain(recorded(start - 100.0, "smiles"))
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::InvalidArgument, "{early:?}");
    assert!(
        early.message().contains("no analysed frame at or before"),
        "{early:?}"
    );
    let unknown = affect.explain(recorded(start, "nobody")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");

    let result = crate::expression_dynamics::explain_recorded_smiles(
        dir.path(),
        &database,
        ("AFFECTD_OPENAI_URL", llama.url.as_ref()),
        "openai",
    );
    let user = result["prompt"]["user"].as_str().unwrap();
    println!("{user}");
    assert!(user.contains("ep1 (began 2.00 s ago"), "{user}");
    assert!(user.contains("AU12 rose from"), "{user}");
}
