//! What every service shares.

use std::sync::Arc;

use crate::config::Config;
use crate::llm::ChatBackend;
use crate::models::loaded::ModelSet;
use crate::session::Registry;
use crate::store::Store;
use crate::vision::FaceModels;

pub struct ServerState {
    pub config: Config,
    pub models: ModelSet,
    /// The face networks that loaded (None without a detector).
    pub face_models: Option<FaceModels>,
    /// The OpenAI-compatible backend, built once at start-up (None when not configured).
    pub openai: Option<Arc<dyn ChatBackend>>,
    /// The in-process backend (its model loads on first use), or why there is none.
    pub candle: Result<Arc<dyn ChatBackend>, String>,
    /// The session recording database, or why it could not be opened.
    pub store: Result<Store, String>,
    /// Live sessions.
    pub sessions: Registry,
}
