//! sha256 verification. Every load goes through here; a mismatch names the file and both
//! hashes.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: file not found (expected sha256 {expected}, found none)")]
    Missing { path: PathBuf, expected: String },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: sha256 mismatch: expected {expected}, found {actual}")]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hashes a file in 1 MiB blocks (GGUF files are hundreds of MB).
pub fn sha256_file(path: &Path) -> Result<String, VerifyError> {
    let mut file = std::fs::File::open(path).map_err(|source| open_error(path, source))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|source| VerifyError::Read {
            path: path.to_owned(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn open_error(path: &Path, source: std::io::Error) -> VerifyError {
    VerifyError::Read {
        path: path.to_owned(),
        source,
    }
}

fn check(path: &Path, expected: &str, actual: String) -> Result<(), VerifyError> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// Verifies a file on disk without keeping it in memory.
pub fn verify_file(path: &Path, expected: &str) -> Result<(), VerifyError> {
    if !path.exists() {
        return Err(VerifyError::Missing {
            path: path.to_owned(),
            expected: expected.to_owned(),
        });
    }
    let actual = sha256_file(path)?;
    check(path, expected, actual)
}

/// Reads a file and verifies it, returning the bytes (for ONNX models loaded from memory,
/// so the bytes that were hashed are the bytes that run).
pub fn read_verified(path: &Path, expected: &str) -> Result<Vec<u8>, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            VerifyError::Missing {
                path: path.to_owned(),
                expected: expected.to_owned(),
            }
        } else {
            open_error(path, source)
        }
    })?;
    check(path, expected, sha256_hex(&bytes))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vector() {
        assert_eq!(sha256_hex(b"abc"), ABC);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), ABC);
        verify_file(&p, ABC).unwrap();
        assert_eq!(read_verified(&p, ABC).unwrap(), b"abc");
    }

    #[test]
    fn one_flipped_byte_is_reported_with_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.onnx");
        std::fs::write(&p, b"abd").unwrap();
        let err = verify_file(&p, ABC).unwrap_err().to_string();
        assert!(err.contains("model.onnx") && err.contains(ABC), "{err}");
        assert!(err.contains(&sha256_hex(b"abd")), "{err}");
        assert!(matches!(
            read_verified(&p, ABC),
            Err(VerifyError::Mismatch { .. })
        ));
    }

    #[test]
    fn missing_file_is_named() {
        let err = verify_file(Path::new("/nope/x.onnx"), ABC)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nope/x.onnx") && err.contains("not found"),
            "{err}"
        );
        assert!(matches!(
            read_verified(Path::new("/nope/x.onnx"), ABC),
            Err(VerifyError::Missing { .. })
        ));
    }
}
