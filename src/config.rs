//! One configuration struct, layered: built-in defaults < TOML file < `AFFECTD_*`
//! environment variables < command-line flags.
//!
//! The file is the base; clap reads each flag and, when the flag is absent, its
//! `AFFECTD_*` variable (clap's `env` feature), so a flag always beats the environment.
//! [`Overrides`] carries the result of that and is applied on top of the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default gRPC listen address: loopback only, so a lab PC is not exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:50052";

/// A config value in seconds (validated finite and >= 0) as a Duration; one too large for
/// a Duration means "never". The one conversion every `*_s` key goes through.
pub fn duration(seconds: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(seconds).unwrap_or(std::time::Duration::MAX)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub models: ModelsConfig,
    pub onnx: OnnxConfig,
    pub vision: VisionConfig,
    /// Expression dynamics of tracked faces: baseline, episodes (see
    /// `vision::dynamics::spotting`).
    pub expression: crate::vision::dynamics::DynamicsConfig,
    pub llm: LlmConfig,
    pub store: StoreConfig,
    pub fusion: FusionConfig,
    /// What one request or session may ask (see `admission::Limits`).
    pub limits: crate::admission::Limits,
    /// Bearer tokens and their roles (see `auth`); none = authentication off.
    pub auth: crate::auth::AuthConfig,
}

/// One number per modality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerModality {
    pub face: f64,
    pub eeg: f64,
    pub cardiac: f64,
    pub eda: f64,
    pub respiration: f64,
}

impl PerModality {
    pub fn get(&self, m: crate::fusion::Modality) -> f64 {
        use crate::fusion::Modality as M;
        match m {
            M::Face => self.face,
            M::Eeg => self.eeg,
            M::Cardiac => self.cardiac,
            M::Eda => self.eda,
            M::Respiration => self.respiration,
        }
    }
}

/// `fusion-v1`'s settings (see `fusion::fuse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {
    /// Prior weight of each modality, multiplied by its reliability. Priors, not trained:
    /// the face (the expression pipeline) counts most, breathing least.
    pub weights: PerModality,
    /// How long after a stimulus each modality shows it, s: the face and EEG at once; skin
    /// conductance 2 s (SCR onset latency 1-3 s: Dawson, Schell & Filion 2007; Boucsein
    /// 2012); heart rate 2 s (the affective HR response unfolds over 1-4 s: Bradley,
    /// Codispoti, Cuthbert & Lang 2001); breathing 3 s (Boiten, Frijda & Wientjes 1994).
    pub latency_s: PerModality,
    /// Time constant of the exponential smoothing, s.
    pub smoothing_s: f64,
    /// A modality that stops reporting loses its weight with this time constant, s.
    pub dropout_s: f64,
    /// A modality this far behind the others is taken to have stopped, s.
    pub stale_s: f64,
    /// Seconds of each physiological quantity used as the participant's baseline.
    pub baseline_s: f64,
    /// How the cardiac modality reads arousal: "rules" (heart rate and RMSSD change from
    /// the participant's baseline) or "synheart-stress" (synheart-emotion's WESAD stress
    /// model on the last 60 s of beats; needs `affectd models fetch synheart-stress-ecg-60s`).
    pub cardiac_encoder: CardiacEncoder,
}

/// The cardiac arousal encoder (see `fusion::estimate` and `fusion::stress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardiacEncoder {
    #[default]
    Rules,
    SynheartStress,
}

impl Default for FusionConfig {
    fn default() -> Self {
        Self {
            weights: PerModality {
                face: 1.0,
                eeg: 1.0,
                cardiac: 1.0,
                eda: 1.0,
                respiration: 0.5,
            },
            latency_s: PerModality {
                face: 0.0,
                eeg: 0.0,
                cardiac: 2.0,
                eda: 2.0,
                respiration: 3.0,
            },
            smoothing_s: 1.0,
            dropout_s: 3.0,
            stale_s: 10.0,
            baseline_s: 60.0,
            cardiac_encoder: CardiacEncoder::Rules,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database that records live sessions (created when absent).
    /// [env: AFFECTD_DATABASE]
    pub database: PathBuf,
    /// Most bytes one session may record (frames, samples, results); 0 = no limit.
    pub max_session_bytes: u64,
    /// Most bytes the database may take on disk; 0 = no limit.
    pub max_database_bytes: u64,
    /// Recording stops (with a clear error) rather than leave less free on the database's
    /// disk; 0 = until SQLite finds the disk full.
    pub min_free_disk_bytes: u64,
    /// Ended recordings are deleted this many days after they ended (checked at start-up
    /// and then every hour, or sooner for short retentions); 0 = kept until deleted.
    pub retention_days: f64,
}

impl StoreConfig {
    pub fn budget(&self) -> crate::store::DiskBudget {
        crate::store::DiskBudget {
            max_session_bytes: self.max_session_bytes,
            max_database_bytes: self.max_database_bytes,
            min_free_disk_bytes: self.min_free_disk_bytes,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database: default_data_dir().join("sessions.sqlite"),
            max_session_bytes: 0,
            max_database_bytes: 0,
            min_free_disk_bytes: 256 << 20,
            retention_days: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the gRPC server binds to.
    pub listen: SocketAddr,
    /// Largest gRPC message accepted or sent, bytes (frames and signal chunks).
    pub max_message_bytes: usize,
    /// Seconds between HTTP/2 pings on an idle connection (a peer gone without a word is
    /// then found); 0 = none.
    pub http2_keepalive_interval_s: f64,
    /// Seconds a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout_s: f64,
    /// Concurrent calls (streams) on one connection.
    pub max_concurrent_streams: u32,
    /// Open connections at once; one more is closed at once (and logged).
    pub max_connections: usize,
    /// Seconds a new connection may take to finish its TLS handshake and send its first
    /// HTTP/2 bytes; a connection that stays silent longer is closed.
    pub handshake_timeout_s: f64,
    /// Seconds live sessions get to end after SIGTERM/SIGINT; then the process exits, and
    /// sessions still open are closed with that reason.
    pub shutdown_timeout_s: f64,
    /// PEM certificate chain for TLS; empty = plaintext (loopback only, unless --insecure).
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: PathBuf,
    /// PEM CA certificate(s) for mutual TLS: when set, clients must present a certificate
    /// signed by one of them.
    pub tls_client_ca_file: PathBuf,
    /// Serve gRPC server reflection (grpcurl, grpcui); false hides the schema.
    pub reflection: bool,
    /// Address of the HTTP listener (Prometheus `/metrics`); empty = none.
    /// [env: AFFECTD_HTTP_LISTEN]
    pub http_listen: String,
}

impl ServerConfig {
    /// The HTTP listener's address; None when it is off.
    pub fn http_address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.http_listen.is_empty() {
            return Ok(None);
        }
        self.http_listen
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::Value {
                name: "server.http_listen",
                message: format!(
                    "{:?} is not an address and port ({e}); e.g. 127.0.0.1:50052, or empty for none",
                    self.http_listen
                ),
            })
    }

    /// Whether TLS is configured.
    pub fn tls(&self) -> bool {
        !self.tls_cert_file.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. "info" or "affectd=debug,tower=warn".
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder holding `manifest.toml` and the vendored ONNX models.
    pub dir: PathBuf,
    /// Folder where `affectd models fetch` puts large models (GGUF).
    pub cache_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    /// Largest image accepted, in pixels (width x height); larger ones are refused before
    /// decoding (decompression bombs).
    pub max_image_pixels: u64,
    /// Decoded image bytes in flight across all requests and sessions; a decode that does
    /// not fit waits for room.
    pub max_decoding_bytes: u64,
    /// Longest side of the detector's downscaled copy, pixels.
    pub detector_max_side: u32,
    /// Minimum face detection score, `[0,1]`.
    pub min_face_score: f32,
    /// In streams and videos, look for new faces every this many frames; faces are tracked
    /// from their landmarks between (1 = no tracking).
    pub detect_every_n_frames: u32,
}

impl Default for VisionConfig {
    fn default() -> Self {
        let detector = crate::vision::detector::DetectorConfig::default();
        Self {
            max_image_pixels: crate::vision::image::DEFAULT_MAX_PIXELS,
            max_decoding_bytes: crate::vision::image::DEFAULT_MAX_DECODING_BYTES,
            detector_max_side: detector.max_side,
            min_face_score: detector.min_score,
            detect_every_n_frames: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Backend for Explain requests that name none: "candle" (in process) or "openai".
    pub default_backend: String,
    /// The candle backend's GGUF: a model id from models/manifest.toml or a path to a
    /// .gguf file (Qwen2 or Gemma 3 architecture). Empty: the manifest's default
    /// explanation model. [env: AFFECTD_CANDLE_MODEL]
    pub candle_model: String,
    /// Base URL of an OpenAI-compatible chat server (llama.cpp llama-server, Ollama, vLLM),
    /// e.g. http://127.0.0.1:8080. Empty: the openai backend is not configured.
    pub openai_url: String,
    /// Model name sent to that server.
    pub openai_model: String,
    /// Name of an environment variable holding its API key (empty: none).
    pub openai_api_key_env: String,
    /// Whether that model takes images (a vision-language model).
    pub openai_images: bool,
    /// Longest wait for the next token, seconds (the first one included).
    pub timeout_s: f64,
    /// Extra attempts after a connection failure or a 5xx answer.
    pub retries: u32,
    /// The prompt template: a built-in one (`sovtp@2`, the default, or `sovtp@1`) or a
    /// file NAME@VERSION.txt of your own.
    pub template: String,
    /// Repetition guard: a token that would repeat an n-gram of this many generated tokens
    /// is not sampled (0: off).
    pub no_repeat_ngram: usize,
    /// The weight of the model's label probabilities against the face's measured
    /// expression distribution in the combined label, `[0,1]` (`explain::combine`).
    pub model_weight: f32,
    /// How the openai backend sends the answer's JSON schema: `auto`, `json_schema`,
    /// `json_object` or `none` (see `llm::openai`).
    pub openai_response_format: crate::llm::openai::SchemaMode,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            default_backend: "candle".into(),
            candle_model: String::new(),
            openai_url: String::new(),
            openai_model: "default".into(),
            openai_api_key_env: String::new(),
            openai_images: false,
            timeout_s: 120.0,
            retries: 1,
            template: "sovtp@2".into(),
            no_repeat_ngram: 8,
            model_weight: 0.25,
            openai_response_format: crate::llm::openai::SchemaMode::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxConfig {
    /// Path to `libonnxruntime.so`. Empty: `ORT_DYLIB_PATH`, then the project's `.venv`.
    pub library: PathBuf,
    /// Threads ONNX Runtime may use inside one model run.
    pub intra_threads: usize,
    /// Sessions per model: how many runs of one model can proceed at once (faces of a frame,
    /// concurrent requests). Default: the number of CPU cores (at most 4).
    pub sessions_per_model: usize,
    /// Let idle worker threads spin (lower latency with intra_threads > 1 on an otherwise
    /// idle machine; wasted CPU when several streams share the cores).
    pub spinning: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            max_message_bytes: 16 * 1024 * 1024,
            http2_keepalive_interval_s: 30.0,
            http2_keepalive_timeout_s: 20.0,
            max_concurrent_streams: 256,
            max_connections: 1024,
            handshake_timeout_s: 10.0,
            shutdown_timeout_s: 30.0,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            tls_client_ca_file: PathBuf::new(),
            reflection: true,
            http_listen: DEFAULT_HTTP_LISTEN.into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: default_models_dir(),
            cache_dir: default_cache_dir(),
        }
    }
}

impl Default for OnnxConfig {
    fn default() -> Self {
        Self {
            library: PathBuf::new(),
            intra_threads: 1,
            sessions_per_model: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            spinning: false,
        }
    }
}

/// The vendored models ship in the source tree; a binary built from it finds them there.
/// An installed binary points `models.dir` elsewhere.
pub fn default_models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

/// `$XDG_CACHE_HOME/affectd`, else `~/.cache/affectd`, else `./.cache/affectd`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("affectd");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("affectd");
    }
    PathBuf::from(".cache/affectd")
}

/// `$XDG_DATA_HOME/affectd`, else `~/.local/share/affectd`, else `./affectd-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("affectd");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/affectd");
    }
    PathBuf::from("affectd-data")
}

/// Values from flags or `AFFECTD_*` variables; `None` leaves the file's value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on [env: AFFECTD_LISTEN] [default: 127.0.0.1:50051]
    #[arg(long, env = "AFFECTD_LISTEN", global = true, hide_env = true)]
    pub listen: Option<SocketAddr>,
    /// HTTP address for /metrics; empty = none [env: AFFECTD_HTTP_LISTEN] [default: 127.0.0.1:50052]
    #[arg(long, env = "AFFECTD_HTTP_LISTEN", global = true, hide_env = true)]
    pub http_listen: Option<String>,
    /// Largest gRPC message, bytes [env: AFFECTD_MAX_MESSAGE_BYTES]
    #[arg(
        long,
        env = "AFFECTD_MAX_MESSAGE_BYTES",
        global = true,
        hide_env = true
    )]
    pub max_message_bytes: Option<usize>,
    /// Log format [env: AFFECTD_LOG_FORMAT]
    #[arg(
        long,
        value_enum,
        env = "AFFECTD_LOG_FORMAT",
        global = true,
        hide_env = true
    )]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info or affectd=debug [env: AFFECTD_LOG_LEVEL]
    #[arg(long, env = "AFFECTD_LOG_LEVEL", global = true, hide_env = true)]
    pub log_level: Option<String>,
    /// Folder with manifest.toml and vendored models [env: AFFECTD_MODELS_DIR]
    #[arg(long, env = "AFFECTD_MODELS_DIR", global = true, hide_env = true)]
    pub models_dir: Option<PathBuf>,
    /// Cache folder for fetched models [env: AFFECTD_CACHE_DIR]
    #[arg(long, env = "AFFECTD_CACHE_DIR", global = true, hide_env = true)]
    pub cache_dir: Option<PathBuf>,
    /// Path to libonnxruntime.so [env: AFFECTD_ONNXRUNTIME_LIBRARY]
    #[arg(
        long,
        env = "AFFECTD_ONNXRUNTIME_LIBRARY",
        global = true,
        hide_env = true
    )]
    pub onnxruntime_library: Option<PathBuf>,
    /// Let ONNX Runtime worker threads spin while waiting [env: AFFECTD_ONNX_SPINNING]
    #[arg(long, env = "AFFECTD_ONNX_SPINNING", global = true, hide_env = true)]
    pub onnx_spinning: Option<bool>,
    /// ONNX Runtime threads per model run [env: AFFECTD_ONNX_THREADS]
    #[arg(long, env = "AFFECTD_ONNX_THREADS", global = true, hide_env = true)]
    pub onnx_threads: Option<usize>,
    /// OpenAI-compatible chat server for Explain, e.g. http://127.0.0.1:8080 [env: AFFECTD_OPENAI_URL]
    #[arg(long, env = "AFFECTD_OPENAI_URL", global = true, hide_env = true)]
    pub openai_url: Option<String>,
    /// Default Explain backend: candle or openai [env: AFFECTD_LLM_BACKEND]
    #[arg(long, env = "AFFECTD_LLM_BACKEND", global = true, hide_env = true)]
    pub llm_backend: Option<String>,
    /// The candle backend's GGUF: a manifest model id or a .gguf path [env: AFFECTD_CANDLE_MODEL]
    #[arg(long, env = "AFFECTD_CANDLE_MODEL", global = true, hide_env = true)]
    pub candle_model: Option<String>,
    /// SQLite database recording live sessions [env: AFFECTD_DATABASE]
    #[arg(long, env = "AFFECTD_DATABASE", global = true, hide_env = true)]
    pub database: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}, column {column}, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid setting {name}: {message}")]
    Value { name: &'static str, message: String },
}

impl Config {
    /// Reads a TOML file. Unknown keys are errors, so that a typo does not silently fall
    /// back to a default.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses TOML text; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |key: String, span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |s| line_and_column(text, s.start));
            ConfigError::Invalid {
                path: path.to_owned(),
                key,
                line,
                column,
                message,
            }
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| invalid(String::from("(syntax)"), e.span(), e.message().to_owned()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            invalid(key, inner.span(), inner.message().to_owned())
        })
    }

    /// Applies flag/env overrides on top of this (file or default) configuration.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(v) = o.listen {
            self.server.listen = v;
        }
        if let Some(v) = &o.http_listen {
            self.server.http_listen = v.clone();
        }
        if let Some(v) = o.max_message_bytes {
            self.server.max_message_bytes = v;
        }
        if let Some(v) = o.log_format {
            self.log.format = v;
        }
        if let Some(v) = &o.log_level {
            self.log.level = v.clone();
        }
        if let Some(v) = &o.models_dir {
            self.models.dir = v.clone();
        }
        if let Some(v) = &o.cache_dir {
            self.models.cache_dir = v.clone();
        }
        if let Some(v) = &o.onnxruntime_library {
            self.onnx.library = v.clone();
        }
        if let Some(v) = o.onnx_threads {
            self.onnx.intra_threads = v;
        }
        if let Some(v) = o.onnx_spinning {
            self.onnx.spinning = v;
        }
        if let Some(v) = &o.openai_url {
            self.llm.openai_url = v.clone();
        }
        if let Some(v) = &o.candle_model {
            self.llm.candle_model = v.clone();
        }
        if let Some(v) = &o.database {
            self.store.database = v.clone();
        }
        if let Some(v) = &o.llm_backend {
            self.llm.default_backend = v.clone();
        }
    }

    /// Default < file (when given) < overrides, then checked.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.expression
            .validate()
            .map_err(|message| ConfigError::Value {
                name: "expression",
                message,
            })?;
        if self.server.max_message_bytes < 64 * 1024 {
            return Err(ConfigError::Value {
                name: "server.max_message_bytes",
                message: format!(
                    "{} is below the 65536-byte minimum a camera frame needs",
                    self.server.max_message_bytes
                ),
            });
        }
        let seconds = [
            (
                "server.http2_keepalive_interval_s",
                self.server.http2_keepalive_interval_s,
            ),
            (
                "server.http2_keepalive_timeout_s",
                self.server.http2_keepalive_timeout_s,
            ),
            (
                "server.handshake_timeout_s",
                self.server.handshake_timeout_s,
            ),
            ("server.shutdown_timeout_s", self.server.shutdown_timeout_s),
            (
                "limits.first_message_timeout_s",
                self.limits.first_message_timeout_s,
            ),
            (
                "limits.session_idle_timeout_s",
                self.limits.session_idle_timeout_s,
            ),
            (
                "limits.client_read_timeout_s",
                self.limits.client_read_timeout_s,
            ),
            ("store.retention_days", self.store.retention_days),
            (
                "limits.calibration_history_s",
                self.limits.calibration_history_s,
            ),
            (
                "limits.explain_queue_timeout_s",
                self.limits.explain_queue_timeout_s,
            ),
            (
                "limits.analysis_queue_timeout_s",
                self.limits.analysis_queue_timeout_s,
            ),
        ];
        for (name, value) in seconds {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError::Value {
                    name,
                    message: format!("{value} is not a finite number of seconds >= 0"),
                });
            }
        }
        let counts = [
            (
                "server.max_concurrent_streams",
                self.server.max_concurrent_streams as usize,
            ),
            ("limits.max_live_sessions", self.limits.max_live_sessions),
            ("server.max_connections", self.server.max_connections),
            (
                "limits.max_concurrent_exports",
                self.limits.max_concurrent_exports,
            ),
            (
                "limits.max_dashboard_feeds",
                self.limits.max_dashboard_feeds,
            ),
            (
                "limits.max_concurrent_explanations",
                self.limits.max_concurrent_explanations,
            ),
            (
                "limits.max_channels_per_stream",
                self.limits.max_channels_per_stream,
            ),
            (
                "limits.max_session_queue_bytes",
                self.limits.max_session_queue_bytes,
            ),
            (
                "limits.max_concurrent_analyses",
                self.limits.max_concurrent_analyses,
            ),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(ConfigError::Value {
                    name,
                    message: "must be at least 1".into(),
                });
            }
        }
        let server = &self.server;
        server.http_address()?;
        let tls_files = [
            server.tls_cert_file.as_os_str().is_empty(),
            server.tls_key_file.as_os_str().is_empty(),
        ];
        if tls_files[0] != tls_files[1] {
            return Err(ConfigError::Value {
                name: "server.tls_cert_file",
                message: "set both server.tls_cert_file and server.tls_key_file, or neither".into(),
            });
        }
        if !server.tls() && !server.tls_client_ca_file.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                name: "server.tls_client_ca_file",
                message:
                    "mutual TLS needs TLS: set server.tls_cert_file and server.tls_key_file too"
                        .into(),
            });
        }
        if !(self.limits.max_sample_rate_hz.is_finite() && self.limits.max_sample_rate_hz > 0.0) {
            return Err(ConfigError::Value {
                name: "limits.max_sample_rate_hz",
                message: format!("{} is not a positive rate", self.limits.max_sample_rate_hz),
            });
        }
        if !(0.0..=1.0).contains(&self.vision.min_face_score) {
            return Err(ConfigError::Value {
                name: "vision.min_face_score",
                message: format!("{} is outside [0,1]", self.vision.min_face_score),
            });
        }
        if self.vision.detector_max_side < 32
            || self.vision.max_image_pixels == 0
            || self.vision.detect_every_n_frames == 0
        {
            return Err(ConfigError::Value {
                name: "vision",
                message: "detector_max_side must be >= 32, max_image_pixels and detect_every_n_frames >= 1".into(),
            });
        }
        if self.onnx.sessions_per_model == 0 {
            return Err(ConfigError::Value {
                name: "onnx.sessions_per_model",
                message: "must be at least 1".into(),
            });
        }
        if self.onnx.intra_threads == 0 {
            return Err(ConfigError::Value {
                name: "onnx.intra_threads",
                message: "must be at least 1".into(),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Value {
                name: "log.level",
                message: format!("`{}` is not a tracing filter: {e}", self.log.level),
            });
        }
        if !["candle", "openai"].contains(&self.llm.default_backend.as_str()) {
            return Err(ConfigError::Value {
                name: "llm.default_backend",
                message: format!(
                    "`{}` is not a backend; use candle or openai",
                    self.llm.default_backend
                ),
            });
        }
        if !(self.llm.timeout_s.is_finite() && self.llm.timeout_s > 0.0) {
            return Err(ConfigError::Value {
                name: "llm.timeout_s",
                message: "must be a positive number of seconds".into(),
            });
        }
        let f = &self.fusion;
        for (name, value) in [
            ("fusion.smoothing_s", f.smoothing_s),
            ("fusion.dropout_s", f.dropout_s),
            ("fusion.stale_s", f.stale_s),
            ("fusion.baseline_s", f.baseline_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::Value {
                    name,
                    message: format!("must be a positive number of seconds, got {value}"),
                });
            }
        }
        for m in crate::fusion::Modality::ALL {
            let (w, l) = (f.weights.get(m), f.latency_s.get(m));
            if !(w.is_finite() && w >= 0.0 && l.is_finite() && (0.0..=30.0).contains(&l)) {
                return Err(ConfigError::Value {
                    name: "fusion.weights / fusion.latency_s",
                    message: format!(
                        "{}: the weight must be >= 0 and the latency in [0, 30] s, got {w} and {l}",
                        m.name()
                    ),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.llm.model_weight) {
            return Err(ConfigError::Value {
                name: "llm.model_weight",
                message: format!("must be in [0,1], got {}", self.llm.model_weight),
            });
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(Config::default().server.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn file_values_are_read() {
        let c = parse("[server]\nlisten = \"127.0.0.1:6000\"\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(c.server.listen.port(), 6000);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = parse("[log]\nlevel = \"info\"\n\n[server]\nlisten = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.listen"), "{text}");
        assert!(text.contains("line 5"), "{text}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("lisen"), "{text}");
    }

    #[test]
    fn syntax_error_names_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn bad_address_is_rejected_with_key() {
        let err = parse("[server]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn overrides_beat_file() {
        let mut c =
            parse("[server]\nlisten = \"127.0.0.1:6000\"\n[onnx]\nintra_threads = 2\n").unwrap();
        c.apply(&Overrides {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        });
        assert_eq!(c.server.listen.port(), 7000);
        assert_eq!(
            c.onnx.intra_threads, 2,
            "untouched keys keep the file's value"
        );
    }

    #[test]
    fn validation_rejects_nonsense() {
        let mut c = Config::default();
        c.onnx.intra_threads = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("onnx.intra_threads")
        );
        let mut c = Config::default();
        c.log.level = "info,=[".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Config::default();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }
}
