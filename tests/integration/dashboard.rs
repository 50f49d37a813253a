//! The dashboard in a real browser: `tests/browser/dashboard.py` drives Debian's Chromium
//! (headless, through Playwright from PyPI) against a real server while a session streams
//! frames, EEG, EDA and ECG. Its checks are listed in that script; it saves screenshots of
//! the live and review pages under `target/dashboard/` (the README shows copies).

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs the browser script against `server` with `extra` arguments; panics with its output
/// when a check fails.
fn browser_checks(server: &TestServer, extra: &[&str]) -> String {
    let python = crate::python_client::python();
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `scripts/setup.sh --dev` (it installs Debian's chromium)"
    );
    let http = server
        .metrics_url
        .clone()
        .expect("the HTTP listener")
        .trim_end_matches("/metrics")
        .to_owned();
    let shots: PathBuf = repo().join("target/dashboard");
    let out = Command::new(python)
        .arg(repo().join("tests/browser/dashboard.py"))
        .args(["--http", &http, "--grpc", &server.addr, "--screenshots"])
        .arg(&shots)
        .args(extra)
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_dashboard_in_chromium_live_review_and_bad_requests() {
    let server = TestServer::start(|_| {});
    let out = browser_checks(&server, &[]);
    for check in [
        "the marked frame updates at least 5 times a second",
        "every band has points in the band-power chart",
        "download export.xdf: 200",
        "an unknown session is a 404 page that says so",
        "no script errors in the pages",
    ] {
        assert!(out.contains(&format!("ok   {check}")), "{check}:\n{out}");
    }
    for shot in ["live.png", "review.png"] {
        let path = repo().join("target/dashboard").join(shot);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 10_000),
            "{}",
            path.display()
        );
    }
}

/// The explain button on the default model (Qwen2.5-Coder 0.5B on candle).
#[cfg(feature = "candle")]
mod llm {
    use super::*;

    #[test]
    fn the_explain_button_streams_tokens_then_a_judgement() {
        let model = crate::common::llama::qwen();
        let server = TestServer::start(|cmd| {
            cmd.env("AFFECTD_CANDLE_MODEL", &model);
        });
        let out = browser_checks(&server, &["--explain-only"]);
        assert!(
            out.contains("ok   the explain button yields a judgement"),
            "{out}"
        );
    }
}
