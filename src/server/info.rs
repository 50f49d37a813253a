//! `GetServerInfo`: version, models with their verified status, capabilities, backends.

use crate::engine::{Engine, unix_now};
use crate::models::loaded::{CAPABILITIES, Status};
use crate::proto::{BackendInfo, Capability, GetServerInfoResponse, ModelInfo, ModelStatus};

/// Server paths in what GetServerInfo says (model files, reasons, the ONNX Runtime library)
/// become the config key of their folder: `<models.cache_dir>/x.gguf`. Any client can ask
/// for the server's info; its file system layout is none of their business, and the key
/// still says where to look.
struct Redactor(Vec<(String, &'static str)>);

impl Redactor {
    fn new(engine: &Engine) -> Redactor {
        let config = &engine.config;
        let mut folders: Vec<(String, &'static str)> = vec![
            (
                config.models.cache_dir.display().to_string(),
                "<models.cache_dir>",
            ),
            (config.models.dir.display().to_string(), "<models.dir>"),
        ];
        if let Some(folder) = config.store.database.parent() {
            folders.push((folder.display().to_string(), "<store.database folder>"));
        }
        if let Ok(rt) = &engine.models.runtime
            && let Some(folder) = rt.library.parent()
        {
            folders.push((folder.display().to_string(), "<onnx.library folder>"));
        }
        if let Some(home) = std::env::var_os("HOME") {
            folders.push((home.to_string_lossy().into_owned(), "~"));
        }
        // The most specific folder first (a cache inside the home folder).
        folders.retain(|(f, _)| f.len() > 1);
        folders.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Redactor(folders)
    }

    fn text(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |t, (folder, key)| {
            t.replace(folder.as_str(), key)
        })
    }
}

/// The server's info; file paths redacted unless `show_paths` (an admin token's call).
pub fn server_info(engine: &Engine, show_paths: bool) -> GetServerInfoResponse {
    let mut info = unredacted(engine);
    if show_paths {
        return info;
    }
    let redact = Redactor::new(engine);
    for m in &mut info.models {
        m.file = redact.text(&m.file);
        m.reason = redact.text(&m.reason);
    }
    for c in &mut info.capabilities {
        c.reason = redact.text(&c.reason);
    }
    for b in &mut info.backends {
        b.reason = redact.text(&b.reason);
        b.default_model = redact.text(&b.default_model);
    }
    info.onnxruntime_library = redact.text(&info.onnxruntime_library);
    info
}

fn unredacted(engine: &Engine) -> GetServerInfoResponse {
    let models = &engine.models;
    let model_infos = models
        .models
        .iter()
        .map(|m| ModelInfo {
            id: m.entry.id.clone(),
            task: m.entry.task.clone(),
            file: m.path.display().to_string(),
            sha256: m.entry.sha256.clone(),
            source: m.entry.source.as_str().into(),
            license: m.entry.license.clone(),
            status: match m.status {
                Status::Loaded => ModelStatus::Loaded,
                Status::Available => ModelStatus::Available,
                Status::Missing => ModelStatus::Missing,
                Status::Corrupt => ModelStatus::Corrupt,
                Status::LoadFailed => ModelStatus::LoadFailed,
            } as i32,
            reason: m.reason.clone(),
            size_bytes: m.entry.size_bytes,
            load_ms: (m.status == Status::Loaded).then_some(m.load_ms),
        })
        .collect();

    let mut capabilities: Vec<Capability> = CAPABILITIES
        .iter()
        .map(|(name, needs)| {
            let result = models.capability(needs);
            Capability {
                name: (*name).into(),
                available: result.is_ok(),
                reason: result.err().unwrap_or_default(),
                models: needs.iter().map(|s| (*s).into()).collect(),
            }
        })
        .collect();
    // Signal analysis needs no model files.
    capabilities.push(Capability {
        name: "signals".into(),
        available: true,
        reason: String::new(),
        models: Vec::new(),
    });
    // Explanations need a chat backend: candle's model on disk, or an openai server.
    let config = &engine.config;
    let candle = engine.explainer.candle();
    let openai_ready = engine.explainer.openai().is_some();
    let candle_ready = candle.is_ok();
    let candle_reason = candle.as_ref().err().cloned().unwrap_or_default();
    capabilities.push(Capability {
        name: "explanation".into(),
        available: openai_ready || candle_ready,
        reason: if openai_ready || candle_ready {
            String::new()
        } else {
            format!("no chat backend: candle: {candle_reason}; openai: [llm] openai_url is not set")
        },
        models: Vec::new(),
    });
    // Live sessions run without any model (frames are then recorded but not analysed);
    // recording them needs the database.
    capabilities.push(Capability {
        name: "live_sessions".into(),
        available: true,
        reason: String::new(),
        models: Vec::new(),
    });
    capabilities.push(Capability {
        name: "recordings".into(),
        available: engine.store.is_ok(),
        reason: engine.store.as_ref().err().cloned().unwrap_or_default(),
        models: Vec::new(),
    });

    let default_llm = models
        .models
        .iter()
        .find(|m| m.entry.task == "explanation-llm" && m.entry.default)
        .map(|m| m.entry.id.clone())
        .unwrap_or_default();
    let backends = vec![
        BackendInfo {
            name: "candle".into(),
            available: candle_ready,
            reason: candle_reason,
            default_model: candle
                .as_ref()
                .map(|b| b.model().to_string())
                .unwrap_or(default_llm),
            accepts_images: candle.as_ref().is_ok_and(|b| b.accepts_images()),
        },
        BackendInfo {
            name: "openai".into(),
            available: openai_ready,
            reason: if openai_ready {
                String::new()
            } else {
                "not configured: set [llm] openai_url (or AFFECTD_OPENAI_URL)".into()
            },
            default_model: if openai_ready {
                config.llm.openai_model.clone()
            } else {
                String::new()
            },
            accepts_images: openai_ready && config.llm.openai_images,
        },
    ];

    let (onnxruntime_version, onnxruntime_library) = match &models.runtime {
        Ok(rt) => (rt.version.clone(), rt.library.display().to_string()),
        Err(_) => (String::new(), String::new()),
    };

    GetServerInfoResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        proto_package: "affect.v1".into(),
        models: model_infos,
        capabilities,
        backends,
        onnxruntime_version,
        onnxruntime_library,
        server_time: unix_now(),
        max_message_bytes: config.server.max_message_bytes as u64,
    }
}
