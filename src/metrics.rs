//! What the server measures, in one place: every metric's name, labels and meaning (the
//! README's Metrics section lists the same). The code records through the `metrics`
//! facade; without an installed recorder (the CLI, unit tests) recording does nothing.
//! `affectd serve` installs the Prometheus recorder and serves `/metrics`.

use std::time::Duration;

/// Calls by method and gRPC code (counter; labels `method`, `code`).
pub const RPC_REQUESTS: &str = "affectd_rpc_requests_total";
/// Seconds from a call's arrival to its response headers (histogram; label `method`): the
/// whole call for unary calls, the time to open for streaming ones.
pub const RPC_DURATION: &str = "affectd_rpc_duration_seconds";
/// Live sessions (gauge).
pub const LIVE_SESSIONS: &str = "affectd_live_sessions";
/// Open connections (gauge).
pub const OPEN_CONNECTIONS: &str = "affectd_open_connections";
/// Session frames by outcome, `analysed` or `skipped` (counter; label `outcome`).
pub const SESSION_FRAMES: &str = "affectd_session_frames_total";
/// Seconds from the worker taking a batch of messages to the acknowledgement that covers
/// it, i.e. after the commit (histogram).
pub const ACK_LATENCY: &str = "affectd_ack_latency_seconds";
/// Batches queued for the session writers, all sessions (gauge).
pub const WRITER_QUEUE: &str = "affectd_writer_queue_batches";
/// Bytes recorded (counter; payloads, see `store::Record::payload_bytes`).
pub const RECORDED_BYTES: &str = "affectd_recorded_bytes_total";
/// Explain calls waiting for their turn (gauge).
pub const EXPLAIN_QUEUE: &str = "affectd_explain_queue_depth";
/// Seconds an Explain call waited for its turn (histogram).
pub const EXPLAIN_WAIT: &str = "affectd_explain_wait_seconds";
/// AnalyzeFrame and AnalyzeSignals calls waiting for their turn (gauge).
pub const ANALYSIS_QUEUE: &str = "affectd_analysis_queue_depth";
/// Seconds an AnalyzeFrame or AnalyzeSignals call waited for its turn (histogram).
pub const ANALYSIS_WAIT: &str = "affectd_analysis_wait_seconds";
/// Generation speed of each explanation, tokens per second (histogram).
pub const EXPLAIN_TOKENS_PER_S: &str = "affectd_explain_tokens_per_second";
/// Requests and sessions refused or ended by a limit (counter; label `limit`, its config
/// key).
pub const REJECTED: &str = "affectd_rejected_total";

/// The gRPC methods counted by name; any other path is counted as `unknown`, so that a
/// client cannot grow the label set.
const METHODS: &[&str] = &[
    "/affect.v1.Affect/AnalyzeFrame",
    "/affect.v1.Affect/AnalyzeSignals",
    "/affect.v1.Affect/Explain",
    "/affect.v1.Affect/Stream",
    "/affect.v1.Affect/ClockSync",
    "/affect.v1.Affect/Calibrate",
    "/affect.v1.Affect/GetServerInfo",
    "/affect.v1.Recordings/ListSessions",
    "/affect.v1.Recordings/GetSession",
    "/affect.v1.Recordings/ExportSession",
    "/affect.v1.Recordings/DeleteSession",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The `method` label of a request path.
pub fn method_label(path: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == path)
        .copied()
        .unwrap_or("unknown")
}

pub fn rpc_count(method: &'static str, code: &'static str) {
    metrics::counter!(RPC_REQUESTS, "method" => method, "code" => code).increment(1);
}

pub fn rpc_duration(method: &'static str, elapsed: Duration) {
    metrics::histogram!(RPC_DURATION, "method" => method).record(elapsed.as_secs_f64());
}

/// Counts a refusal when `message` names the config key of a limit ("config key
/// limits.max_live_sessions"). Only keys of the known limit tables count, so that text a
/// client sent cannot grow the label set.
pub fn rejected_by(message: &str) {
    let Some(at) = message.find("config key ") else {
        return;
    };
    let key: String = message[at + "config key ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == '.')
        .collect();
    let key = key.trim_end_matches('.');
    if let Some(known) = LIMIT_KEYS.iter().find(|k| **k == key) {
        metrics::counter!(REJECTED, "limit" => *known).increment(1);
    }
}

const LIMIT_KEYS: &[&str] = &[
    "limits.max_streams_per_session",
    "limits.max_marker_label_bytes",
    "limits.max_samples_per_request",
    "limits.max_windows_per_request",
    "limits.vision_queue_frames",
    "limits.max_sample_rate_hz",
    "limits.max_channels_per_stream",
    "limits.max_values_held_per_stream",
    "limits.max_gap_fill_values",
    "limits.max_name_bytes",
    "limits.max_metadata_entries",
    "limits.max_metadata_value_bytes",
    "limits.max_live_sessions",
    "limits.first_message_timeout_s",
    "limits.session_idle_timeout_s",
    "limits.client_read_timeout_s",
    "limits.max_concurrent_explanations",
    "limits.max_queued_explanations",
    "limits.explain_queue_timeout_s",
    "limits.max_concurrent_exports",
    "limits.max_concurrent_analyses",
    "limits.max_queued_analyses",
    "limits.analysis_queue_timeout_s",
    "server.max_message_bytes",
    "server.max_connections",
    "server.handshake_timeout_s",
    "store.max_session_bytes",
    "store.max_database_bytes",
    "store.min_free_disk_bytes",
    "vision.max_image_pixels",
    "vision.max_decoding_bytes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_key_is_a_config_key() {
        let config = crate::config::Config::default().to_toml();
        let table: toml::Table = toml::from_str(&config).unwrap();
        for key in LIMIT_KEYS {
            let (section, name) = key.split_once('.').unwrap();
            assert!(
                table
                    .get(section)
                    .and_then(|s| s.as_table())
                    .is_some_and(|s| s.contains_key(name)),
                "{key} is not in the config"
            );
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            method_label("/affect.v1.Affect/Stream"),
            "/affect.v1.Affect/Stream"
        );
        assert_eq!(method_label("/affect.v1.Affect/Random123"), "unknown");
    }
}
