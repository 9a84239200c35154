//! Content-addressed artifact store: build once, deploy the same bytes everywhere.
//!
//! Every artifact is kept as a deterministic tar stream named by the sha256 of
//! its bytes (`sha256:<hex>`). A single file and a directory are stored the same
//! way, so extracting restores names and the executable bit, and the same tree
//! always gives the same digest: entries are sorted, times, owners and
//! permission noise are zeroed. Reads verify the digest, so a corrupted blob is
//! refused instead of deployed.
//!
//! # Layout
//! - [`digest`]: [`Digest`], parsing and printing `sha256:<64 hex>`.
//! - [`store`]: [`ArtifactStore`], atomic writes and verified reads under
//!   `ROOT/sha256/ab/cdef…` (the server's ROOT is `DATA/artifacts`).
//! - `tarball`: the deterministic tar writer (private).
//! - [`error`]: the [`Error`] type.

pub mod digest;
pub mod error;
pub mod store;
mod tarball;

pub use digest::Digest;
pub use error::Error;
pub use store::ArtifactStore;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
