//! Model store: the manifest, sha256 verification, and fetching large models.

pub mod fetch;
pub mod loaded;
pub mod manifest;
pub mod verify;

pub use manifest::{Format, Manifest, ModelEntry, Source};

/// What a check of one model on disk found.
#[derive(Debug)]
pub struct CheckedModel<'a> {
    pub entry: &'a ModelEntry,
    pub path: std::path::PathBuf,
    pub result: Result<(), verify::VerifyError>,
}

impl CheckedModel<'_> {
    /// A fetchable model that was never fetched is normal, not a failure.
    pub fn is_unfetched(&self) -> bool {
        self.entry.source != Source::Vendored
            && matches!(self.result, Err(verify::VerifyError::Missing { .. }))
    }
}

/// Verifies the given models (all when `ids` is empty).
pub fn check<'a>(
    manifest: &'a Manifest,
    ids: &[String],
) -> Result<Vec<CheckedModel<'a>>, manifest::ManifestError> {
    let entries: Vec<&ModelEntry> = if ids.is_empty() {
        manifest.models.iter().collect()
    } else {
        ids.iter()
            .map(|id| manifest.get(id))
            .collect::<Result<_, _>>()?
    };
    Ok(entries
        .into_iter()
        .map(|entry| {
            let path = manifest.path_of(entry);
            let result = verify::verify_file(&path, &entry.sha256);
            CheckedModel {
                entry,
                path,
                result,
            }
        })
        .collect())
}
