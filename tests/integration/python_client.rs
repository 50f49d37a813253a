//! The README's Python example and Python's grpcio-reflection (v1alpha) against the real
//! server, and the committed Python stubs against the proto files.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/setup.sh --dev` (scripts/test.sh does)",
        python.display()
    );
    python
}

fn run(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .env("PYTHONPATH", repo().join("clients/python"))
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn readme_python_example_reads_server_info() {
    let server = TestServer::start(|_| {});
    let out = run(&["clients/python/examples/server_info.py", &server.addr]);
    assert!(
        out.contains(&format!("affectd {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(
        out.contains("face-detector-retinaface           LOADED"),
        "{out}"
    );
    assert!(out.contains("clock offset"), "{out}");
}

#[test]
fn python_grpcio_reflection_v1alpha_describes_the_service() {
    let server = TestServer::start(|_| {});
    let out = run(&[
        "clients/python/examples/reflection_v1alpha.py",
        &server.addr,
    ]);
    assert!(
        out.contains("affect.v1.Affect") && out.contains("file: affect/v1/affect.proto"),
        "{out}"
    );
}

#[test]
fn committed_python_stubs_match_the_protos() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(repo().join("clients/python/generate.sh"))
        .arg(out.path())
        .env("PYTHON", python())
        .status()
        .unwrap();
    assert!(status.success());
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let committed = repo().join("clients/python/affectd/proto").join(name);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&committed).unwrap_or_default(),
            "{} is stale: run clients/python/generate.sh",
            committed.display()
        );
    }
}

#[test]
fn python_live_session_example_streams_and_is_recorded() {
    let server = TestServer::start(|_| {});
    let image = repo().join(".testdata/single_face.jpg");
    let out = run(&[
        "clients/python/examples/live_session.py",
        &server.addr,
        image.to_str().unwrap(),
    ]);
    println!("{out}");
    assert!(out.contains("recording=True"), "{out}");
    assert!(
        out.contains("face results: 3 (faces in the last: 1)"),
        "{out}"
    );
    assert!(
        out.contains("ended: EndSession received; frames 3, chunks 24, markers 1"),
        "{out}"
    );
    // config + 24 chunks + 3 frames + 1 marker = client_seq 29; EndSession (30) is not
    // a recorded message.
    assert!(out.contains("acknowledged up to client_seq 29"), "{out}");
    assert!(!out.contains("warning:"), "{out}");
}
