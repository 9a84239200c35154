//! Errors that stop the router from starting.

use std::path::PathBuf;

use crate::table::TableError;

/// Why [`crate::run`] could not start. Per-request failures never surface here: they are
/// answered (404, 502, 503, 504) and counted.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A proxy thread could not be started.
    #[error("cannot start the proxy threads")]
    Start(#[source] std::io::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The saved route table could not be read.
    #[error("cannot read saved routes {path}")]
    ReadRoutes {
        /// `DATA/routes.json`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The saved route table is not valid JSON of the expected shape.
    #[error("saved routes {path} are not a valid route table")]
    ParseRoutes {
        /// `DATA/routes.json`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The saved route table breaks a routing rule.
    #[error("saved routes {path} are invalid")]
    InvalidRoutes {
        /// `DATA/routes.json`.
        path: PathBuf,
        /// The rule broken.
        #[source]
        source: TableError,
    },
}
