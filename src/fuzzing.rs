//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature): the transport
//! path a Stream call takes, without a network, so that libFuzzer can drive the session
//! protocol and the session core with encoded client messages.

use std::path::Path;
use std::sync::Arc;

use tokio_stream::StreamExt;

use crate::config::Config;
use crate::engine::Engine;
use crate::models::loaded::ModelSet;
use crate::proto::{StreamRequest, StreamResponse};

/// An engine with no models (frames are recorded and answered "not analysed") and a real
/// session database at `database`.
pub fn engine(database: &Path) -> Arc<Engine> {
    let mut config = Config::default();
    config.store.database = database.to_owned();
    config.store.min_free_disk_bytes = 0;
    let manifest = crate::models::Manifest::load(&config.models.dir, &config.models.cache_dir)
        .expect("the vendored manifest");
    let models = ModelSet {
        runtime: Err(crate::onnx::OnnxError::NotFound {
            looked: "nowhere (fuzzing)".into(),
        }),
        models: Vec::new(),
    };
    let explainer = crate::explain::Explainer::new(&config, &manifest, &models);
    let store = crate::store::Store::open(database).map_err(|e| e.to_string());
    Arc::new(Engine::from_parts(config, models, explainer, store, None))
}

/// One client's messages through a Stream call's path (the config first, then the
/// session), as decoded or failed to decode; every response until the stream ends.
pub async fn stream(
    engine: Arc<Engine>,
    messages: Vec<Result<StreamRequest, tonic::Status>>,
) -> Vec<Result<StreamResponse, tonic::Status>> {
    match crate::server::open_stream(engine, None, tokio_stream::iter(messages)).await {
        Err(status) => vec![Err(status)],
        Ok(responses) => responses.collect().await,
    }
}

/// Deletes a recording the fuzzer made (so that the database stays small).
pub fn forget(engine: &Engine, session_id: &str) {
    if let Ok(store) = engine.store() {
        let _ = store.delete(session_id);
    }
}
