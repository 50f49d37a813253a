//! The chat backends the configuration describes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::LlmConfig;
use crate::llm::ChatBackend;
use crate::llm::openai::{OpenAiBackend, OpenAiConfig};
use crate::models::Manifest;
use crate::models::loaded::ModelSet;

/// The candle backend for the configured GGUF (`[llm] candle_model`: a manifest id or a
/// path; empty: the manifest's default explanation model), or why there is none. The
/// model is checked on disk here and loaded on the first request.
pub fn candle_backend(
    llm: &LlmConfig,
    manifest: &Manifest,
    models: &ModelSet,
) -> Result<Arc<dyn ChatBackend>, String> {
    let chosen = llm.candle_model.trim();
    let (path, name) = if chosen.ends_with(".gguf") || chosen.contains('/') {
        let path = PathBuf::from(chosen);
        if !path.is_file() {
            return Err(format!(
                "[llm] candle_model {} is not a file",
                path.display()
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (path, name)
    } else {
        let entry = if chosen.is_empty() {
            manifest
                .default_for("explanation-llm")
                .ok_or("the model manifest names no default explanation-llm")?
        } else {
            manifest.get(chosen).map_err(|e| e.to_string())?
        };
        if let Some(state) = models.get(&entry.id)
            && state.status != crate::models::loaded::Status::Available
        {
            return Err(format!("model {}: {}", entry.id, state.reason));
        }
        (manifest.path_of(entry), entry.id.clone())
    };
    in_process(path, name)
}

#[cfg(feature = "candle")]
fn in_process(model_path: PathBuf, model_name: String) -> Result<Arc<dyn ChatBackend>, String> {
    use crate::llm::candle::{CandleBackend, CandleConfig, DEFAULT_PREFILL_CHUNK};
    Ok(Arc::new(CandleBackend::new(CandleConfig {
        model_path,
        model_name,
        prefill_chunk: DEFAULT_PREFILL_CHUNK,
    })))
}

#[cfg(not(feature = "candle"))]
fn in_process(_model_path: PathBuf, _model_name: String) -> Result<Arc<dyn ChatBackend>, String> {
    Err("this affectd was built without the `candle` feature (the in-process LLM engine); rebuild with default features, or use the openai backend".into())
}

/// The openai backend from the configuration; None when `llm.openai_url` is empty.
pub fn openai_backend(llm: &LlmConfig) -> Option<Arc<dyn ChatBackend>> {
    if llm.openai_url.is_empty() {
        return None;
    }
    let api_key = (!llm.openai_api_key_env.is_empty())
        .then(|| std::env::var(&llm.openai_api_key_env).ok())
        .flatten();
    Some(Arc::new(OpenAiBackend::new(OpenAiConfig {
        base_url: llm.openai_url.clone(),
        model: llm.openai_model.clone(),
        api_key,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs_f64(llm.timeout_s),
        retries: llm.retries,
        accepts_images: llm.openai_images,
        schema_mode: llm.openai_response_format,
    })))
}
