//! The Python client package (`clients/python`) against the real server: its pytest suite,
//! the wheel installed into a fresh venv running the examples, the PsychoPy example and
//! snippet in PsychoPy's own venv; Python's grpcio-reflection (v1alpha); and the committed
//! Python stubs against the proto files.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

pub fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/setup.sh --dev` (scripts/test.sh does)",
        python.display()
    );
    python
}

fn run(args: &[&str]) -> String {
    run_python(
        &python(),
        args,
        &repo(),
        Some(&repo().join("clients/python")),
    )
}

/// Runs `python` with `args` in `cwd` (PYTHONPATH set to `path`, or removed) and returns its
/// stdout; a failure panics with both outputs.
pub fn run_python<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    python: &std::path::Path,
    args: &[S],
    cwd: &std::path::Path,
    path: Option<&std::path::Path>,
) -> String {
    let mut cmd = Command::new(python);
    cmd.args(args).current_dir(cwd);
    match path {
        Some(path) => cmd.env("PYTHONPATH", path),
        None => cmd.env_remove("PYTHONPATH"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Builds the client's wheel from this checkout into `out` and returns its path.
pub fn build_wheel(out: &std::path::Path) -> PathBuf {
    run_python(
        &python(),
        &[
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
        ]
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([out.as_os_str(), repo().join("clients/python").as_os_str()])
        .collect::<Vec<_>>(),
        &repo(),
        None,
    );
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a wheel")
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

/// Runs the package's pytest suite (clients/python/tests) with `marker` ("not llm" here, "llm"
/// under `llm::`): each test module starts its own real servers from this build's binary.
pub fn pytest(marker: &str, candle_model: Option<&std::path::Path>) {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "pytest", "clients/python/tests", "-q", "-m", marker])
        .args(["-p", "no:cacheprovider"])
        .env("AFFECTD_BIN", BIN)
        .env("PYTHONPATH", repo().join("clients/python"))
        .current_dir(repo());
    for (key, _) in std::env::vars() {
        if key.starts_with("AFFECTD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AFFECTD_BIN", BIN);
    if let Some(model) = candle_model {
        cmd.env("AFFECTD_TEST_CANDLE_MODEL", model);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "pytest -m {marker:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
}

/// The client, the live session, recordings, asyncio, bad input and the LSL bridge with real
/// liblsl on loopback (everything that needs no language model).
#[test]
fn the_python_package_against_a_real_server() {
    pytest("not llm", None);
}

/// The wheel, built from clients/python, installed into a fresh venv (its dependencies from
/// PyPI or pip's cache), runs the examples with no checkout on its path.
#[test]
fn the_wheel_installs_into_a_fresh_venv_and_runs_the_examples() {
    let work = tempfile::tempdir().unwrap();
    let wheel = build_wheel(&work.path().join("wheels"));
    let venv = work.path().join("venv");
    assert!(
        Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
    );
    run_python(
        &venv.join("bin/python"),
        &[
            "-m".as_ref(),
            "pip".as_ref(),
            "install".as_ref(),
            "-q".as_ref(),
            "--disable-pip-version-check".as_ref(),
            wheel.as_os_str(),
        ],
        work.path(),
        None,
    );
    let server = TestServer::start(|_| {});
    // Not in the checkout, with no PYTHONPATH: the installed package is used.
    let run_in_venv = |args: &[&str]| run_python(&venv.join("bin/python"), args, work.path(), None);
    let examples = repo().join("clients/python/examples");
    let out = run_in_venv(&[
        "-c",
        "import affectd, importlib.resources as r; print(affectd.__file__); \
         print('typed', r.files('affectd').joinpath('py.typed').is_file())",
    ]);
    assert!(
        out.contains("venv/lib") && out.contains("typed True"),
        "{out}"
    );
    let out = run_in_venv(&[
        examples.join("server_info.py").to_str().unwrap(),
        &server.addr,
    ]);
    assert!(out.contains("clock offset"), "{out}");
    let image = repo().join(".testdata/single_face.jpg");
    let out = run_in_venv(&[
        examples.join("live_session.py").to_str().unwrap(),
        &server.addr,
        image.to_str().unwrap(),
    ]);
    assert!(out.contains("acknowledged up to client_seq 29"), "{out}");
    // The console script is installed (pylsl is an extra: it says how to get it).
    let lsl = Command::new(venv.join("bin/affectd-lsl"))
        .args(["--eeg", "type=EEG", "--resolve-timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(lsl.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&lsl.stderr).contains("pip install 'affectd[lsl]'"),
        "{}",
        String::from_utf8_lossy(&lsl.stderr)
    );
}
