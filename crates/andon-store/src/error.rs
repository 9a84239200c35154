//! What can go wrong in the store, phrased so that the person running Andon
//! knows what to do next. Backend errors are sorted into the few cases that
//! call for different actions (wait, free disk, restore, upgrade); the rest
//! keep their backend error as the source.

use std::path::PathBuf;

/// An error from the store. Messages are for the operator; `source()` carries
/// the backend's own error where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file next to the database (data directory, key file, lock file).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// SQLite could not open the database file.
    #[error("cannot open the database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// Another connection held the write lock for longer than the busy timeout.
    #[error(
        "the database stayed locked for more than {waited_ms} ms: another process is writing to it. \
         Stop other Andon processes that use the same data directory (only one server may own a \
         SQLite file), then retry"
    )]
    Busy { waited_ms: u64 },

    /// The disk (or the configured size cap) is full. The write was rolled back.
    #[error(
        "the disk holding the database is full: the write was rolled back and nothing was \
         recorded. Free some space, then retry"
    )]
    DiskFull,

    /// The backend reports damaged data.
    #[error(
        "the database is corrupt ({detail}); stop Andon and restore the data directory from a backup"
    )]
    Corrupt { detail: String },

    /// A schema migration failed; the database was left at the previous version.
    #[error("schema migration {version} failed; the database was left unchanged")]
    Migration {
        version: u32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The database was migrated by a newer Andon.
    #[error(
        "the database has schema version {found} but this andon only knows versions up to \
         {supported}: it was written by a newer andon. Upgrade andon before opening it"
    )]
    SchemaTooNew { found: u32, supported: u32 },

    /// A stored event no longer parses as an [`andon_core::Event`].
    #[error("event {seq} in the log cannot be decoded (written by a newer andon?)")]
    Decode {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },

    /// An event could not be turned into JSON (should not happen).
    #[error("an event could not be encoded as JSON")]
    Encode(#[source] serde_json::Error),

    /// A stored row is not what this version wrote (unknown role, bad number).
    #[error("the {table} table holds a row this andon cannot read: {detail}")]
    BadRow { table: &'static str, detail: String },

    /// Sealing or opening a secret failed: usually the key file changed.
    #[error("secrets: {detail}")]
    Crypto { detail: String },

    /// A row conflicts with an existing one (for example, a token hash reused).
    #[error("conflict: {detail}")]
    Conflict { detail: String },

    /// A conditional append ([`crate::Store::append_after`]) found the log
    /// longer than the caller had read: another server appended first.
    /// Nothing was written; read the new events, decide again, retry.
    #[error("the event log moved: expected last seq {expected}, found {found}")]
    LogMoved { expected: u64, found: u64 },

    /// Importing into a store that already has events at those positions.
    #[error(
        "the target store already holds events (last seq {last_seq}); migrate into an empty store"
    )]
    NotEmpty { last_seq: u64 },

    /// Imported events must continue the log exactly, without gaps.
    #[error(
        "imported events must continue the log without gaps: expected seq {expected}, found {found}"
    )]
    Gap { expected: u64, found: u64 },

    /// The store URL could not be understood.
    #[error("invalid store location: {detail}")]
    Config { detail: String },

    /// Any other SQLite error.
    #[error("SQLite request failed")]
    Sqlite(#[source] rusqlite::Error),

    /// Any other PostgreSQL error (connection refused, permission, ...).
    #[error("PostgreSQL request failed")]
    Postgres(#[source] tokio_postgres::Error),

    /// The PostgreSQL worker thread could not start.
    #[error("cannot start the PostgreSQL worker thread")]
    Spawn(#[source] std::io::Error),

    /// The PostgreSQL worker thread has stopped; the store must be reopened.
    #[error("the PostgreSQL worker thread has stopped; reopen the store")]
    Closed,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Sorts a SQLite error into the cases an operator acts on differently.
    pub(crate) fn from_sqlite(err: rusqlite::Error, busy_timeout_ms: u64) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
                waited_ms: busy_timeout_ms,
            },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                detail: err.to_string(),
            },
            Some(ErrorCode::ConstraintViolation) => StoreError::Conflict {
                detail: err.to_string(),
            },
            _ => StoreError::Sqlite(err),
        }
    }

    /// Sorts a PostgreSQL error by SQLSTATE.
    pub(crate) fn from_pg(err: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let Some(code) = err.code() else {
            return StoreError::Postgres(err);
        };
        if *code == SqlState::DISK_FULL {
            StoreError::DiskFull
        } else if *code == SqlState::UNIQUE_VIOLATION {
            StoreError::Conflict {
                detail: err
                    .as_db_error()
                    .map_or_else(|| err.to_string(), |db| db.message().to_owned()),
            }
        } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
            StoreError::Corrupt {
                detail: err.to_string(),
            }
        } else {
            StoreError::Postgres(err)
        }
    }
}
