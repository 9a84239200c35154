//! Andon's single source of truth: an append-only event log (every state
//! change is an event; state is a projection of it), plus the two tables that
//! must not be events because they hold secrets: API tokens (hashed) and
//! secrets (encrypted at rest).
//!
//! Invariant: only this crate writes SQL.
//!
//! Two backends behind one synchronous [`Store`] trait: SQLite (one file, the
//! default) and PostgreSQL (several servers sharing one database, with
//! leader election). [`open`] picks one from a location string.
//!
//! # Layout
//! - `store`: the [`Store`] trait, [`TokenRecord`], [`LeaderRecord`],
//!   [`hash_token`].
//! - `sqlite`: [`SqliteStore`] (WAL, `synchronous=FULL`, one connection
//!   behind a std mutex) and its [`SqliteOptions`].
//! - `pg`: [`PgStore`], a private thread driving `tokio-postgres`; `pg_sql`
//!   holds its queries.
//! - `migrations`: embedded, numbered schema migrations for both backends
//!   (SQL files in `migrations/`).
//! - `crypto`: the secrets key file and sealing of secret values.
//! - `copy`: [`copy_events`], for `andon migrate-store`.
//! - `error`: [`StoreError`].

mod copy;
mod crypto;
mod error;
mod migrations;
mod pg;
mod pg_sql;
mod sqlite;
mod store;

use std::path::Path;
use std::sync::Arc;

pub use andon_core::{Envelope, Event};
pub use copy::copy_events;
pub use error::StoreError;
pub use pg::PgStore;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{LeaderRecord, Store, TokenRecord, hash_token};

/// File name of the SQLite database inside the data directory, when the
/// location does not name one.
pub const DEFAULT_SQLITE_FILE: &str = "andon.db";

/// Opens the store at `location`:
/// - `postgres://...` or `postgresql://...`: PostgreSQL;
/// - `sqlite:PATH` or a bare `PATH`: SQLite (a relative path is relative to
///   the working directory);
/// - empty (or `sqlite:` alone): SQLite at `DATA/andon.db`.
///
/// `data_dir` holds the secrets key (`secret.key`, created mode 0600 on first
/// open) and, for SQLite, the leadership lock file (`leader.lock`).
pub fn open(location: &str, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(location, data_dir)?));
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    let path = if path.is_empty() {
        data_dir.join(DEFAULT_SQLITE_FILE)
    } else {
        Path::new(path).to_owned()
    };
    Ok(Arc::new(SqliteStore::open(&path, data_dir)?))
}

#[cfg(test)]
mod tests {
    /// Callers box these into `anyhow` and share stores across threads.
    #[test]
    fn errors_and_stores_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<crate::StoreError>();
        send_sync::<crate::SqliteStore>();
        send_sync::<crate::PgStore>();
        send_sync::<std::sync::Arc<dyn crate::Store>>();
    }
}
