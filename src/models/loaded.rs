//! The models a running server holds: every ONNX model verified, loaded into ONNX Runtime
//! and run once at start-up; large GGUF models verified on disk (loaded on first use).
//! Whatever fails is kept with its reason, so `GetServerInfo` can say why a capability is
//! unavailable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::manifest::{Format, Manifest, ModelEntry};
use super::verify::{self, VerifyError};
use crate::config::OnnxConfig;
use crate::onnx::{self, OnnxError, OnnxModel, Runtime};
use crate::vision::FaceModels;
use crate::vision::backend::Inference;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Verified, loaded and ran once.
    Loaded,
    /// Verified on disk; loaded on first use.
    Available,
    Missing,
    Corrupt,
    LoadFailed,
}

pub struct ModelState {
    pub entry: ModelEntry,
    pub path: PathBuf,
    pub status: Status,
    /// Why the model is not usable, and what to do about it.
    pub reason: String,
    pub load_ms: f64,
    pub model: Option<Arc<OnnxModel>>,
}

pub struct ModelSet {
    pub runtime: Result<Runtime, OnnxError>,
    pub models: Vec<ModelState>,
}

pub const DETECTOR: &str = "face-detector-retinaface";
pub const MESH: &str = "face-landmarks-478";
pub const BLENDSHAPES: &str = "face-blendshapes-52";
pub const EXPRESSION: &str = "expression-fer7";

/// What a user can ask for, and the models it needs.
pub const CAPABILITIES: &[(&str, &[&str])] = &[
    ("face_detection", &["face-detector-retinaface"]),
    (
        "face_landmarks",
        &["face-detector-retinaface", "face-landmarks-478"],
    ),
    (
        "face_blendshapes",
        &[
            "face-detector-retinaface",
            "face-landmarks-478",
            "face-blendshapes-52",
        ],
    ),
    (
        "face_expression",
        &["face-detector-retinaface", "expression-fer7"],
    ),
];

impl ModelSet {
    /// Verifies every model; loads and warms up the ONNX ones when ONNX Runtime is usable.
    pub fn load(
        manifest: &Manifest,
        runtime: Result<Runtime, OnnxError>,
        options: &OnnxConfig,
    ) -> Self {
        Self::load_formats(manifest, runtime, options, &[Format::Onnx, Format::Gguf])
    }

    /// Like [`ModelSet::load`], for the models of the given formats only (the face CLI
    /// need not hash half a gigabyte of GGUF).
    pub fn load_formats(
        manifest: &Manifest,
        runtime: Result<Runtime, OnnxError>,
        options: &OnnxConfig,
        formats: &[Format],
    ) -> Self {
        let models = manifest
            .models
            .iter()
            .filter(|entry| formats.contains(&entry.format))
            .map(|entry| {
                load_one(
                    manifest,
                    entry,
                    runtime.as_ref().ok(),
                    runtime.as_ref().err(),
                    options,
                )
            })
            .collect();
        Self { runtime, models }
    }

    pub fn get(&self, id: &str) -> Option<&ModelState> {
        self.models.iter().find(|m| m.entry.id == id)
    }

    fn inference(&self, id: &str) -> Option<Arc<dyn Inference>> {
        self.get(id)
            .and_then(|m| m.model.clone())
            .map(|m| m as Arc<dyn Inference>)
    }

    /// The face networks that loaded; None without a detector.
    pub fn face_models(&self) -> Option<FaceModels> {
        Some(FaceModels {
            detector: self.inference(DETECTOR)?,
            mesh: self.inference(MESH),
            blendshapes: self.inference(BLENDSHAPES),
            expression: self.inference(EXPRESSION),
        })
    }

    /// Whether a capability can serve, and if not, why.
    pub fn capability(&self, needs: &[&str]) -> Result<(), String> {
        let reasons: Vec<String> = needs
            .iter()
            .filter_map(|id| match self.get(id) {
                Some(m) if m.status == Status::Loaded || m.status == Status::Available => None,
                Some(m) => Some(format!("model {id}: {}", m.reason)),
                None => Some(format!("model {id} is not in the manifest")),
            })
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }

    pub fn capabilities(&self) -> HashMap<&'static str, Result<(), String>> {
        CAPABILITIES
            .iter()
            .map(|(name, needs)| (*name, self.capability(needs)))
            .collect()
    }
}

/// The face networks for offline use (the CLI, tests, benches): the ONNX models only.
/// A model that fails is logged; without the detector this is an error that says what to run.
pub fn load_face_models(config: &crate::config::Config) -> Result<FaceModels, String> {
    let manifest =
        Manifest::load(&config.models.dir, &config.models.cache_dir).map_err(|e| e.to_string())?;
    let runtime = onnx::init(&config.onnx.library);
    if let Err(e) = &runtime {
        return Err(e.to_string());
    }
    let set = ModelSet::load_formats(&manifest, runtime, &config.onnx, &[Format::Onnx]);
    for state in &set.models {
        if state.entry.load && state.status != Status::Loaded {
            tracing::warn!(model = %state.entry.id, "{}", state.reason);
        }
    }
    set.face_models().ok_or_else(|| {
        "the face detector is unavailable (see the warnings above); run `affectd models verify`"
            .into()
    })
}

fn load_one(
    manifest: &Manifest,
    entry: &ModelEntry,
    runtime: Option<&Runtime>,
    runtime_error: Option<&OnnxError>,
    options: &OnnxConfig,
) -> ModelState {
    let path = manifest.path_of(entry);
    let mut state = ModelState {
        entry: entry.clone(),
        path: path.clone(),
        status: Status::Available,
        reason: String::new(),
        load_ms: 0.0,
        model: None,
    };
    let started = Instant::now();
    let verified = match entry.format {
        Format::Onnx => verify::read_verified(&path, &entry.sha256).map(Some),
        Format::Gguf => verify::verify_file(&path, &entry.sha256).map(|()| None),
    };
    let bytes = match verified {
        Ok(bytes) => bytes,
        Err(e) => {
            state.status = match e {
                VerifyError::Missing { .. } => Status::Missing,
                VerifyError::Mismatch { .. } => Status::Corrupt,
                VerifyError::Read { .. } => Status::LoadFailed,
            };
            let fetched = entry.source == super::manifest::Source::Registry;
            state.reason = match &e {
                VerifyError::Missing { .. } if fetched => {
                    format!("{e}; run `affectd models fetch {}`", entry.id)
                }
                _ => e.to_string(),
            };
            // A fetched model is optional until something asks for it (the explanation
            // backend, fusion.cardiac_encoder), which then says so.
            if fetched && matches!(e, VerifyError::Missing { .. }) {
                tracing::info!(model = %entry.id, "{}", state.reason);
            } else {
                tracing::warn!(model = %entry.id, "{}", state.reason);
            }
            return state;
        }
    };
    let Some(bytes) = bytes else {
        return state; // GGUF: verified on disk, loaded by its backend on first use.
    };
    if !entry.load {
        return state; // verified; kept as the source of a derived model
    }
    let Some(runtime) = runtime else {
        state.status = Status::LoadFailed;
        state.reason =
            runtime_error.map_or_else(|| "ONNX Runtime is not loaded".into(), |e| e.to_string());
        return state;
    };
    let loaded = (0..options.sessions_per_model.max(1))
        .map(|_| {
            let mut session = onnx::session_from_bytes(runtime, &entry.id, &bytes, options)?;
            onnx::warm_up(&entry.id, &mut session)?;
            Ok(session)
        })
        .collect::<Result<Vec<_>, OnnxError>>()
        .and_then(|sessions| OnnxModel::new(&entry.id, sessions));
    match loaded {
        Ok(model) => {
            state.status = Status::Loaded;
            state.load_ms = started.elapsed().as_secs_f64() * 1e3;
            state.model = Some(Arc::new(model));
            tracing::info!(model = %entry.id, load_ms = format!("{:.1}", state.load_ms), "model loaded and warmed up");
        }
        Err(e) => {
            state.status = Status::LoadFailed;
            state.reason = e.to_string();
            tracing::warn!(model = %entry.id, "{}", state.reason);
        }
    }
    state
}
