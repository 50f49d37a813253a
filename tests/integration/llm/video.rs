//! `affectd explain VIDEO --at T` against a real llama.cpp server: the prompt of a video
//! moment states the faces' recent expression episodes with their dynamics, and the
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
    let out = affectd(dir.path())
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
            "96",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
