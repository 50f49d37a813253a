//! The Python package's tests that need a language model: explanations through the client
//! (blocking and asyncio), the READMEs' snippets, and the PsychoPy example and snippet run in
//! PsychoPy's own venv (`.venv-psychopy`, made by `scripts/setup.sh --dev`) with PsychoPy's
//! core.Clock and no window.

use crate::common::llama::qwen;
use crate::common::*;
use crate::python_client::{build_wheel, pytest, run_python};

#[test]
fn the_python_package_explains_and_its_readme_snippets_run() {
    pytest("llm", Some(&qwen()));
}

#[test]
fn the_psychopy_example_and_snippet_run_headless_in_psychopy() {
    let psychopy = repo().join(".venv-psychopy/bin/python");
    assert!(
        psychopy.exists(),
        "{} is missing: run `scripts/setup.sh --dev` (it installs PsychoPy from PyPI)",
        psychopy.display()
    );
    let work = tempfile::tempdir().unwrap();
    // This checkout's client, installed into PsychoPy's venv as a user would.
    let wheel = build_wheel(work.path());
    run_python(
        &psychopy,
        &[
            "-m".as_ref(),
            "pip".as_ref(),
            "install".as_ref(),
            "-q".as_ref(),
            "--disable-pip-version-check".as_ref(),
            "--force-reinstall".as_ref(),
            "--no-deps".as_ref(),
            wheel.as_os_str(),
        ],
        work.path(),
        None,
    );

    let model = qwen();
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_CANDLE_MODEL", &model);
    });
    let photo = repo().join(".testdata/single_face.jpg");
    let run = |args: &[&std::ffi::OsStr]| run_python(&psychopy, args, work.path(), None);
    let example = repo().join("clients/python/examples/psychopy_affect.py");
    let out = run(&[
        example.as_os_str(),
        "--address".as_ref(),
        server.addr.as_ref(),
        "--headless".as_ref(),
        "--frames-from".as_ref(),
        photo.as_os_str(),
        "--stimulus-s".as_ref(),
        "0.5".as_ref(),
        "--output".as_ref(),
        work.path().as_os_str(),
        photo.as_os_str(),
        repo().join(".testdata/0-f15-hao-ph.jpg").as_os_str(),
    ]);
    println!("{out}");
    assert!(
        out.contains("clock: psychopy.core.Clock; frames: yes"),
        "{out}"
    );
    assert_eq!(out.matches("trial ").count(), 2, "{out}");
    assert!(out.contains(": 2 markers,"), "{out}");
    let exported = out.split("exported to ").nth(1).unwrap().trim();
    assert!(std::fs::metadata(exported).unwrap().len() > 0);

    let snippets = repo().join("clients/python/tests/run_snippets.py");
    let readme = repo().join("README.md");
    let out = run(&[
        snippets.as_os_str(),
        readme.as_os_str(),
        server.addr.as_ref(),
        photo.as_os_str(),
        "--tag".as_ref(),
        "psychopy".as_ref(),
    ]);
    assert!(out.contains("ran the snippets"), "{out}");
}
