//! ONNX Runtime, loaded at run time from the `onnxruntime` PyPI wheel (`ort` with
//! `load-dynamic`), so that nothing is downloaded at build time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

/// The ONNX Runtime release the project's setup installs (`ort` 2.0.0-rc.15 targets 1.31).
pub const ONNXRUNTIME_PIP_VERSION: &str = "1.31.1";

#[derive(Debug, thiserror::Error, Clone)]
pub enum OnnxError {
    #[error(
        "ONNX Runtime library not found (looked at: {looked}).\n  Run `scripts/setup.sh` (installs onnxruntime=={ONNXRUNTIME_PIP_VERSION} from PyPI into .venv), or set AFFECTD_ONNXRUNTIME_LIBRARY (or ORT_DYLIB_PATH) to libonnxruntime.so"
    )]
    NotFound { looked: String },
    #[error(
        "cannot use ONNX Runtime at {path}: {message}.\n  affectd needs ONNX Runtime 1.31 or newer: run `.venv/bin/pip install onnxruntime=={ONNXRUNTIME_PIP_VERSION}` (or `scripts/setup.sh`)"
    )]
    Load { path: PathBuf, message: String },
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
}

/// The loaded runtime: where it came from, its version, and its one per-process
/// environment (sessions are built from it).
#[derive(Clone)]
pub struct Runtime {
    pub library: PathBuf,
    pub version: String,
    pub environment: Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

static RUNTIME: OnceLock<Result<Runtime, OnnxError>> = OnceLock::new();

/// Finds `libonnxruntime.so`: the configured path, then `ORT_DYLIB_PATH`, then the
/// project's `.venv` made by `scripts/setup.sh`.
pub fn locate_library(configured: &Path) -> Result<PathBuf, OnnxError> {
    let mut looked = Vec::new();
    if !configured.as_os_str().is_empty() {
        if configured.is_file() {
            return Ok(configured.to_owned());
        }
        return Err(OnnxError::Load {
            path: configured.to_owned(),
            message: "configured onnx.library does not exist".into(),
        });
    }
    if let Some(env) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(env);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("ORT_DYLIB_PATH={}", p.display()));
    }
    let venv_lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    looked.push(format!(
        "{}/python3*/site-packages/onnxruntime/capi",
        venv_lib.display()
    ));
    if let Ok(entries) = std::fs::read_dir(&venv_lib) {
        for python in entries.flatten() {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            if let Ok(files) = std::fs::read_dir(&capi) {
                let mut libs: Vec<PathBuf> = files
                    .flatten()
                    .map(|f| f.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("libonnxruntime.so.1"))
                    })
                    .collect();
                libs.sort();
                if let Some(lib) = libs.pop() {
                    return Ok(lib);
                }
            }
        }
    }
    Err(OnnxError::NotFound {
        looked: looked.join(", "),
    })
}

/// Loads ONNX Runtime once per process. Later calls return the first result: the library
/// cannot be swapped inside a running process.
pub fn init(configured: &Path) -> Result<Runtime, OnnxError> {
    RUNTIME
        .get_or_init(|| {
            let library = locate_library(configured)?;
            let load_error = |message: String| OnnxError::Load {
                path: library.clone(),
                message,
            };
            let builder = ort::init_from(&library).map_err(|e| load_error(e.to_string()))?;
            let environment = builder
                .with_name("affectd")
                .build()
                .map_err(|e| load_error(e.to_string()))?;
            let version = version_from_file_name(&library)
                .or_else(|| build_version(ort::info()))
                .unwrap_or_else(|| "unknown (ort checked it is 1.31 or newer)".into());
            tracing::info!(library = %library.display(), %version, "ONNX Runtime loaded");
            Ok(Runtime {
                library,
                version,
                environment,
            })
        })
        .clone()
}

/// The runtime, if [`init`] succeeded.
pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME.get().and_then(|r| r.as_ref().ok())
}

/// "libonnxruntime.so.1.31.1" -> "1.31.1" (the wheel names its library this way; ort
/// keeps the library's own GetVersionString private).
fn version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.split(".so.").nth(1)?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

/// "ORT Build Info: git-branch=rel-1.31.1, ..." -> "1.31.1"; None for other branches.
fn build_version(info: &str) -> Option<String> {
    let branch = info.split("git-branch=").nth(1)?;
    let branch = branch.split([',', ' ']).next()?;
    let version = branch.strip_prefix("rel-")?;
    Some(version.to_owned())
}

/// Builds a session from verified model bytes.
pub fn session_from_bytes(
    runtime: &Runtime,
    model_id: &str,
    bytes: &[u8],
    options: &crate::config::OnnxConfig,
) -> Result<Session, OnnxError> {
    let model_error = |e: ort::Error| OnnxError::Model {
        model: model_id.to_owned(),
        message: e.to_string(),
    };
    Session::builder(&runtime.environment)
        .map_err(model_error)?
        .with_intra_threads(options.intra_threads)
        .map_err(|e| model_error(e.into()))?
        // Spinning workers would steal the CPU from the other models' runs and from
        // concurrent requests on a small lab machine.
        .with_intra_op_spinning(options.spinning)
        .map_err(|e| model_error(e.into()))?
        .commit_from_memory(bytes)
        .map_err(model_error)
}

/// Runs the model once on zero inputs of its declared shapes (dynamic dimensions become 1
/// for the batch and 128 elsewhere), so that a model that loads but cannot run is caught at
/// start-up rather than on a user's first frame.
pub fn warm_up(model_id: &str, session: &mut Session) -> Result<(), OnnxError> {
    let model_error = |message: String| OnnxError::Model {
        model: model_id.to_owned(),
        message,
    };
    let mut inputs = Vec::new();
    for input in session.inputs() {
        let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
            return Err(model_error(format!(
                "input `{}` is not a tensor",
                input.name()
            )));
        };
        if *ty != TensorElementType::Float32 {
            return Err(model_error(format!(
                "input `{}` is {ty:?}, expected float32",
                input.name()
            )));
        }
        let dims: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d > 0 {
                    d as usize
                } else if i == 0 {
                    1
                } else {
                    128
                }
            })
            .collect();
        let len = dims.iter().product();
        let tensor =
            Tensor::from_array((dims, vec![0f32; len])).map_err(|e| model_error(e.to_string()))?;
        inputs.push((input.name().to_owned(), tensor.into_dyn()));
    }
    let outputs = session
        .run(inputs)
        .map_err(|e| model_error(e.to_string()))?;
    if outputs.len() == 0 {
        return Err(model_error("the model produced no outputs".into()));
    }
    Ok(())
}

/// A loaded ONNX model behind the vision stages' [`Inference`](crate::vision::backend::Inference) trait. A session runs one
/// call at a time (`ort` needs `&mut` to run), so each model keeps a small pool of
/// sessions: faces of one frame, and concurrent requests, run in parallel up to its size.
pub struct OnnxModel {
    id: String,
    input: String,
    sessions: Vec<std::sync::Mutex<Session>>,
    next: std::sync::atomic::AtomicUsize,
}

impl OnnxModel {
    pub fn new(id: &str, sessions: Vec<Session>) -> Result<Self, OnnxError> {
        let first = sessions.first().ok_or_else(|| OnnxError::Model {
            model: id.to_owned(),
            message: "no session".into(),
        })?;
        let input = first
            .inputs()
            .first()
            .map(|i| i.name().to_owned())
            .ok_or_else(|| OnnxError::Model {
                model: id.to_owned(),
                message: "the model has no inputs".into(),
            })?;
        Ok(Self {
            id: id.to_owned(),
            input,
            sessions: sessions.into_iter().map(std::sync::Mutex::new).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

impl crate::vision::backend::Inference for OnnxModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn run(
        &self,
        input: ndarray::ArrayD<f32>,
    ) -> Result<Vec<(String, ndarray::ArrayD<f32>)>, crate::vision::backend::InferenceError> {
        let fail = |message: String| crate::vision::backend::InferenceError::Run {
            model: self.id.clone(),
            message,
        };
        let tensor = Tensor::from_array(input).map_err(|e| fail(e.to_string()))?;
        // A free session if there is one, else wait for the next in round-robin order.
        let mut session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .unwrap_or_else(|| {
                let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % self.sessions.len();
                self.sessions[i]
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            });
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        for (name, value) in outputs.iter() {
            // Outputs of other element types (a classifier's int64 label) are not read.
            if !matches!(
                value.dtype(),
                ValueType::Tensor {
                    ty: TensorElementType::Float32,
                    ..
                }
            ) {
                continue;
            }
            let array = value
                .try_extract_array::<f32>()
                .map_err(|e| fail(e.to_string()))?;
            out.push((name.to_owned(), array.to_owned()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_build_version() {
        assert_eq!(
            build_version(
                "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release"
            )
            .as_deref(),
            Some("1.31.1")
        );
        assert_eq!(build_version("nothing"), None);
        assert_eq!(build_version("ORT Build Info: git-branch=HEAD, x"), None);
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so")),
            None
        );
    }

    #[test]
    fn missing_configured_library_is_explained() {
        let err = locate_library(Path::new("/no/libonnxruntime.so"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/no/libonnxruntime.so") && err.contains("pip install"),
            "{err}"
        );
    }
}
