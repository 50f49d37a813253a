//! Signals-only ingest under load: N concurrent recorded live sessions, each streaming EEG
//! chunks as fast as acknowledgements allow, against a server this program starts (the
//! release binary by default). The acknowledged samples x channels per second are what the
//! server sustains with recording on (an ack follows the SQLite commit).
//!
//! A Rust client, not `benches/load.py --signals-only`: on the 2-core machine the Python
//! client saturates one core (GIL) while the server uses a fifth of one, so the Python figure
//! measures the client. The server's own CPU time per million samples is printed too, which
//! says what it would sustain on the cores it was given.
//!
//!     cargo bench --bench ingest -- [--binary PATH] [--sessions 8] [--seconds 60]
//!         [--channels 64] [--chunk-samples 1000] [--in-flight 8] [--runs 3]
//!
//! The binary is the bench profile's `affectd` (optimised; cargo builds it). Under `cargo
//! test --benches` (no `--bench`) it is a 2-second smoke run of two sessions.
//!
//! No peer runs live sessions, so there is no ratio.

use std::collections::VecDeque;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use affectd::proto::affect_client::AffectClient;
use affectd::proto::{
    ChannelInfo, SessionConfig, SignalChunk, SignalKind, StreamInfo, StreamRequest, stream_request,
    stream_response,
};

struct Options {
    binary: String,
    sessions: usize,
    seconds: f64,
    channels: usize,
    chunk_samples: usize,
    in_flight: u64,
    runs: usize,
}

fn options() -> Options {
    let mut o = Options {
        binary: env!("CARGO_BIN_EXE_affectd").into(),
        sessions: 8,
        seconds: 60.0,
        channels: 64,
        chunk_samples: 1000,
        in_flight: 8,
        runs: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches`: check that it runs, briefly.
        (o.sessions, o.seconds, o.runs, o.chunk_samples) = (2, 2.0, 1, 250);
        return o;
    }
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .unwrap_or_else(|| panic!("{} needs a value", args[i]))
                .clone()
        };
        let number = |what: &str| -> f64 {
            value()
                .parse()
                .unwrap_or_else(|_| panic!("{what}: expected a number"))
        };
        match args[i].as_str() {
            "--binary" => o.binary = value(),
            "--sessions" => o.sessions = number("--sessions") as usize,
            "--seconds" => o.seconds = number("--seconds"),
            "--channels" => o.channels = number("--channels") as usize,
            "--chunk-samples" => o.chunk_samples = number("--chunk-samples") as usize,
            "--in-flight" => o.in_flight = number("--in-flight") as u64,
            "--runs" => o.runs = number("--runs") as usize,
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// The server, started on a free port with its own database; stopped on drop.
struct Server {
    child: Child,
    address: String,
    _folder: TempFolder,
}

struct TempFolder(std::path::PathBuf);
impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start(binary: &str) -> Server {
        let folder = std::env::temp_dir().join(format!("affectd-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AFFECTD_")) {
            command.env_remove(key);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AFFECTD_CACHE_DIR", &folder)
            .env("AFFECTD_DATABASE", folder.join("sessions.sqlite"))
            .env("AFFECTD_LOG_LEVEL", "warn")
            .env("AFFECTD_HTTP_LISTEN", "")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} ({e}); run `cargo build --release`"));
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Some(address) = line.strip_prefix("affectd listening on ") {
                break address.trim().to_string();
            }
        };
        Server {
            child,
            address,
            _folder: TempFolder(folder),
        }
    }

    /// User + system CPU seconds the server has used (from /proc).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0 // USER_HZ is 100 on Linux
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one session measured.
#[derive(Default)]
struct Tally {
    acked_values: u64,
    /// Feature windows received, and the latest window's end (s of signal).
    windows: u64,
    analysed_to_s: f64,
    sent_s: f64,
    latencies: Vec<Duration>,
}

/// One session: config, then chunks with at most `in_flight` unacknowledged, until `stop`.
async fn session(address: String, index: usize, o: Arc<Options>, stop: Instant) -> Tally {
    let mut client = AffectClient::connect(format!("http://{address}"))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (requests, outgoing) =
        tokio::sync::mpsc::channel::<StreamRequest>(o.in_flight as usize + 2);
    let stream = StreamInfo {
        stream_id: "eeg".into(),
        kind: SignalKind::Eeg as i32,
        nominal_rate_hz: 1000.0,
        channels: (0..o.channels)
            .map(|c| ChannelInfo {
                label: format!("E{}", c + 1),
                unit: "uV".into(),
            })
            .collect(),
    };
    requests
        .send(StreamRequest {
            client_seq: 1,
            message: Some(stream_request::Message::Config(SessionConfig {
                participant: format!("room{index}"),
                streams: vec![stream],
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    // The call answers its headers after the config: it is queued before the call opens.
    let mut responses = client
        .stream(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    // Gaussian-ish noise (a sum of uniforms), ~10 uV: features are computed on real numbers.
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ index as u64;
    let samples: Vec<f32> = (0..o.channels * o.chunk_samples)
        .map(|_| {
            (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .sum::<f32>()
                * 17.0
        })
        .collect();
    let values = samples.len() as u64;
    let mut tally = Tally::default();
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let (mut seq, mut acked) = (1u64, 0u64);
    let mut first_sample_index = 0u64;
    loop {
        while seq - acked < o.in_flight && Instant::now() < stop {
            seq += 1;
            let chunk = SignalChunk {
                stream_id: "eeg".into(),
                first_timestamp: first_sample_index as f64 / 1000.0,
                samples: samples.clone(),
                timestamps: Vec::new(),
                first_sample_index: Some(first_sample_index),
            };
            first_sample_index += o.chunk_samples as u64;
            requests
                .send(StreamRequest {
                    client_seq: seq,
                    message: Some(stream_request::Message::Chunk(chunk)),
                })
                .await
                .unwrap();
            sent.push_back((seq, Instant::now()));
        }
        if acked == seq && Instant::now() >= stop {
            break;
        }
        let response = responses
            .message()
            .await
            .unwrap_or_else(|e| panic!("session {index} failed: {e}"))
            .unwrap_or_else(|| panic!("session {index} ended early"));
        if let Some(stream_response::Message::Features(window)) = &response.message {
            tally.windows += 1;
            tally.analysed_to_s = tally.analysed_to_s.max(window.end_time);
        }
        if let Some(stream_response::Message::Ack(ack)) = response.message {
            let now = Instant::now();
            while let Some(&(s, at)) = sent.front() {
                if s > ack.client_seq {
                    break;
                }
                sent.pop_front();
                tally.latencies.push(now - at);
                if now <= stop {
                    tally.acked_values += values;
                }
            }
            acked = ack.client_seq;
        }
    }
    drop(requests);
    tally.sent_s = first_sample_index as f64 / 1000.0;
    tally
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted
        .get(((q * sorted.len() as f64) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let o = Arc::new(options());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "{} sessions x {} s, {} ch x {} samples per chunk, {} in flight; {} cores; commit {commit}; {}",
        o.sessions,
        o.seconds,
        o.channels,
        o.chunk_samples,
        o.in_flight,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.binary
    );
    let mut rates = Vec::new();
    for run in 1..=o.runs {
        let server = Server::start(&o.binary);
        let cpu_before = server.cpu_seconds();
        let started = Instant::now();
        let stop = started + Duration::from_secs_f64(o.seconds);
        let tallies = runtime.block_on(async {
            let tasks: Vec<_> = (0..o.sessions)
                .map(|i| tokio::spawn(session(server.address.clone(), i, o.clone(), stop)))
                .collect();
            let mut tallies = Vec::new();
            for task in tasks {
                tallies.push(task.await.expect("a session task panicked"));
            }
            tallies
        });
        let elapsed = o.seconds;
        let server_cpu = server.cpu_seconds() - cpu_before;
        let values: u64 = tallies.iter().map(|t| t.acked_values).sum();
        let windows: u64 = tallies.iter().map(|t| t.windows).sum();
        let analysed_share = tallies
            .iter()
            .map(|t| t.analysed_to_s / t.sent_s.max(1e-9))
            .fold(f64::INFINITY, f64::min);
        let mut latencies: Vec<Duration> = tallies.into_iter().flat_map(|t| t.latencies).collect();
        latencies.sort();
        let rate = values as f64 / elapsed;
        rates.push(rate);
        println!(
            "run {run}: {:.2} M samples x channels per s acknowledged; ack p50 {:.1} ms, p99 {:.1} ms; server CPU {:.2} s per s ({:.3} CPU s per M values); RSS {:.0} MiB; wall {:.1} s; {windows} feature windows, the least analysed session's windows reach {:.0}% of the signal it sent",
            rate / 1e6,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            server_cpu / started.elapsed().as_secs_f64(),
            server_cpu / (values as f64 / 1e6),
            server.rss_mib(),
            started.elapsed().as_secs_f64(),
            analysed_share * 100.0,
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median {:.2} M/s (range {:.2}-{:.2} over {} runs)",
        rates[rates.len() / 2] / 1e6,
        rates[0] / 1e6,
        rates[rates.len() - 1] / 1e6,
        rates.len()
    );
}
