//! Shared helpers: start the real `affectd` binary on an ephemeral loopback port.
#![allow(dead_code)]

pub mod llama;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_affectd");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs an `affectd` command that prints one JSON value, checks it succeeded (showing its
/// stderr when not) and returns the value.
pub fn json_output(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("affectd runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON value on stdout")
}

/// A file of the test data that scripts/fetch-testdata.sh puts in .testdata/.
pub fn testdata(name: &str) -> PathBuf {
    let path = repo().join(".testdata").join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-testdata.sh",
        path.display()
    );
    path
}

/// An `affectd` command with a clean environment: no AFFECTD_* variables leak in from the
/// developer's shell, and the cache points at `cache` (tests never touch ~/.cache).
pub fn affectd(cache: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("AFFECTD_") || key == "ORT_DYLIB_PATH" {
            cmd.env_remove(key);
        }
    }
    cmd.env("AFFECTD_CACHE_DIR", cache)
        .env("AFFECTD_DATABASE", cache.join("sessions.sqlite"))
        .env("AFFECTD_LOG_LEVEL", "warn")
        // Tests run servers side by side: no fixed HTTP port.
        .env("AFFECTD_HTTP_LISTEN", "127.0.0.1:0");
    cmd
}

pub struct TestServer {
    pub child: Child,
    pub addr: String,
    pub stderr: mpsc::Receiver<String>,
    /// `http://ADDR/metrics`, when the server serves it.
    pub metrics_url: Option<String>,
    _cache: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts `affectd serve` on 127.0.0.1:0 and waits for its "listening on" line.
    pub fn start(configure: impl FnOnce(&mut Command)) -> TestServer {
        let cache = tempfile::tempdir().unwrap();
        let mut cmd = affectd(cache.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        configure(&mut cmd);
        Self::spawn(cmd, Some(cache))
    }

    pub fn spawn(mut cmd: Command, cache: Option<tempfile::TempDir>) -> TestServer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn affectd");
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[affectd] {line}");
                let _ = err_tx.send(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let metrics_url = std::sync::Arc::new(std::sync::Mutex::new(None));
        let metrics_line = metrics_url.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Printed before the "listening" line.
                if let Some(url) = line.strip_prefix("affectd metrics on ") {
                    *metrics_line.lock().unwrap() = Some(url.to_owned());
                }
                if let Some(addr) = line.strip_prefix("affectd listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                let log: Vec<String> = err_rx.try_iter().collect();
                panic!("affectd did not start ({status}):\n{}", log.join("\n"));
            }
        };
        let metrics_url = metrics_url.lock().unwrap().clone();
        TestServer {
            child,
            addr,
            metrics_url,
            stderr: err_rx,
            _cache: cache,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to affectd")
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Every stderr line until the process closes it (call after it exited).
    pub fn stderr_until_closed(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        lines
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's peak resident memory (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A copy of the vendored models folder that a test may damage.
pub fn models_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("models")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Flips one byte in the middle of a file.
pub fn corrupt_one_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// The streamed text and the one result that ends an Explain stream (no token may follow
/// it, and no event is empty).
pub async fn tokens_then_result(
    stream: &mut tonic::Streaming<affectd::proto::ExplainResponse>,
) -> (String, affectd::proto::ExplainResult) {
    let mut tokens = String::new();
    let mut result = None;
    while let Some(event) = stream.message().await.unwrap() {
        match event.event {
            Some(affectd::proto::explain_response::Event::Token(t)) => {
                assert!(result.is_none(), "a token after the result");
                tokens.push_str(&t);
            }
            Some(affectd::proto::explain_response::Event::Result(r)) => result = Some(r),
            None => panic!("an empty event"),
        }
    }
    (tokens, result.expect("exactly one result ends the stream"))
}

/// A server with one environment variable set, a client of it, and its ServerInfo.
pub async fn server_with(
    key: &str,
    value: &str,
) -> (
    TestServer,
    affectd::proto::affect_client::AffectClient<tonic::transport::Channel>,
    affectd::proto::GetServerInfoResponse,
) {
    let server = TestServer::start(|cmd| {
        cmd.env(key, value);
    });
    let mut affect = affectd::proto::affect_client::AffectClient::new(server.channel().await);
    let info = affect
        .get_server_info(affectd::proto::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    (server, affect, info)
}

/// A server started with `--config` of a file holding `toml`; the folder holding the file
/// is returned with it (keep it while the server runs).
pub fn server_with_config(toml: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    std::fs::write(&config, toml).unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    (dir, server)
}
