//! What can go wrong with the store, with the path or digest involved.

use std::path::PathBuf;

use crate::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest `{0}`: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("artifact {0} is not in the store")]
    NotFound(Digest),
    /// The blob on disk no longer hashes to its name: disk corruption or
    /// tampering. Never served, never deployed.
    #[error("artifact {expected} is corrupted: {path} hashes to {actual}")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        path: PathBuf,
    },
    #[error("{path}: cannot store a {kind} (only files, directories and symlinks)")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("invalid name `{0}` inside an artifact: it must be a relative path without `..`")]
    InvalidName(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
