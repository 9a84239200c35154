//! The SQLite backend: one file, WAL, `synchronous=FULL`.
//!
//! # Why one connection behind a std `Mutex`
//!
//! SQLite allows one writer at a time anyway, so a pool would only add
//! connections that wait on each other inside SQLite instead of inside our
//! process. The lock is a `std::sync::Mutex`, not tokio's: it is held only
//! for the duration of a few synchronous SQLite calls and nothing is ever
//! awaited while holding it, which is exactly the case where the tokio docs
//! (and mini-redis's `db.rs`) recommend the std mutex: it is cheaper, and a
//! task can never hold it across a yield point. The cost is that a call
//! blocks its thread for about one fsync; async callers use `spawn_blocking`
//! for appends.
//!
//! # Durability
//!
//! WAL with `synchronous=FULL` fsyncs the WAL at every commit, so an append
//! that returned survives kill -9 and power loss. The log's `seq` is
//! computed inside a `BEGIN IMMEDIATE` transaction (the write lock is taken
//! before reading the last seq), so concurrent appenders, even in other
//! processes, cannot produce gaps or duplicates.
//!
//! # One server per file
//!
//! [`Store::try_lead`] takes an exclusive `flock` on `DATA/leader.lock`: a
//! second server pointed at the same data directory gets `false` and must
//! not run the scheduler. (SQLite itself would let it append; the lock is
//! what tells it not to act as the owner.)

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use andon_core::Envelope;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::crypto::SecretKey;
use crate::migrations;
use crate::store::{
    LeaderRecord, NewRow, TokenRecord, check_import, decode, now_ms, parse_role, to_i64,
};
use crate::{Event, Store, StoreError};

/// Name of the leadership lock file inside the data directory.
pub(crate) const LEADER_LOCK: &str = "leader.lock";

/// Knobs for [`SqliteStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a write waits for another connection's write lock before
    /// failing with [`StoreError::Busy`]. Default 5 s.
    pub busy_timeout: Duration,
    /// Caps the database at this many pages (4 KiB each); writes beyond fail
    /// with [`StoreError::DiskFull`]. Default: no cap.
    pub max_pages: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            max_pages: None,
        }
    }
}

/// The SQLite [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    key: SecretKey,
    data_dir: PathBuf,
    busy_ms: u64,
    /// Held for the life of the store once [`Store::try_lead`] succeeds.
    leader: Mutex<Option<Flock<File>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with the secrets
    /// key and leader lock in `data_dir`. Applies pending migrations.
    pub fn open(path: &Path, data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, data_dir, &SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit options.
    pub fn open_with(
        path: &Path,
        data_dir: &Path,
        options: &SqliteOptions,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let key = SecretKey::load_or_create(data_dir)?;
        let busy_ms = u64::try_from(options.busy_timeout.as_millis()).unwrap_or(u64::MAX);
        let err = |e| StoreError::from_sqlite(e, busy_ms);

        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.busy_timeout(options.busy_timeout).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Config {
                detail: format!(
                    "{}: SQLite refused WAL mode (got `{mode}`); put the database on a local disk",
                    path.display()
                ),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(err)?;
        if let Some(pages) = options.max_pages {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(err)?;
        }
        migrate(&mut conn, busy_ms)?;

        Ok(SqliteStore {
            conn: Mutex::new(conn),
            key,
            data_dir: data_dir.to_owned(),
            busy_ms,
            leader: Mutex::new(None),
        })
    }

    /// The connection. A poisoned lock is recovered: a panic elsewhere cannot
    /// leave a transaction open (rusqlite rolls back on drop), so the
    /// connection is still consistent.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(e, self.busy_ms)
    }

    fn query_envelopes(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Envelope>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at_ms, actor, body) = row.map_err(|e| self.err(e))?;
            out.push(decode(seq, at_ms, actor, &body)?);
        }
        Ok(out)
    }
}

/// Applies pending migrations in one `IMMEDIATE` transaction, so two
/// processes opening a fresh file at once cannot both apply them.
fn migrate(conn: &mut Connection, busy_ms: u64) -> Result<(), StoreError> {
    let err = |e| StoreError::from_sqlite(e, busy_ms);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version       INTEGER PRIMARY KEY,
             applied_at_ms INTEGER NOT NULL
         )",
    )
    .map_err(err)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    for m in migrations::pending(migrations::SQLITE, current)? {
        tx.execute_batch(m.sql)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
                    params![m.version, now_ms()],
                )
            })
            .map_err(|e| StoreError::Migration {
                version: m.version,
                source: Box::new(e),
            })?;
    }
    tx.commit().map_err(err)
}

impl SqliteStore {
    /// Appends under the write lock (`BEGIN IMMEDIATE`), first checking the
    /// last seq against `expected` when given.
    fn append_checked(
        &self,
        expected: Option<u64>,
        actor: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Envelope>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Serialize before taking the lock: the lock is for IO only.
        let rows = NewRow::encode(events)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let last: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let found = u64::try_from(last).unwrap_or(0);
        if let Some(expected) = expected.filter(|e| *e != found) {
            return Err(StoreError::LogMoved { expected, found });
        }
        let at_ms = now_ms();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (seq, at_ms, actor, type, run_id, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| self.err(e))?;
            for (seq, row) in (last + 1..).zip(&rows) {
                insert
                    .execute(params![seq, at_ms, actor, row.kind, row.run_id, row.body])
                    .map_err(|e| self.err(e))?;
            }
        }
        // Dropping `tx` on any error above rolls the whole batch back.
        tx.commit().map_err(|e| self.err(e))?;
        drop(conn);
        let first = u64::try_from(last).unwrap_or(0) + 1;
        Ok((first..)
            .zip(rows)
            .map(|(seq, row)| Envelope {
                seq,
                at_ms,
                actor: actor.to_owned(),
                event: row.event,
            })
            .collect())
    }
}

impl Store for SqliteStore {
    fn append(&self, actor: &str, events: Vec<Event>) -> Result<Vec<Envelope>, StoreError> {
        self.append_checked(None, actor, events)
    }

    fn append_after(
        &self,
        expected_last: u64,
        actor: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.append_checked(Some(expected_last), actor, events)
    }

    fn lock_log(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn unlock_log(&self) {}

    fn read(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.query_envelopes(
            "SELECT seq, at_ms, actor, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![to_i64(after), to_i64(limit as u64)],
        )
    }

    fn run_events(&self, run_id: u64) -> Result<Vec<Envelope>, StoreError> {
        self.query_envelopes(
            "SELECT seq, at_ms, actor, body FROM events WHERE run_id = ?1 ORDER BY seq",
            params![to_i64(run_id)],
        )
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = self
            .conn()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn import(&self, envs: &[Envelope]) -> Result<(), StoreError> {
        let bodies = envs
            .iter()
            .map(|e| serde_json::to_string(&e.event).map_err(StoreError::Encode))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let last: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        check_import(u64::try_from(last).unwrap_or(0), envs)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (seq, at_ms, actor, type, run_id, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| self.err(e))?;
            for (env, body) in envs.iter().zip(&bodies) {
                let run_id = env.event.run_id().and_then(|id| i64::try_from(id).ok());
                insert
                    .execute(params![
                        to_i64(env.seq),
                        env.at_ms,
                        env.actor,
                        env.event.kind(),
                        run_id,
                        body
                    ])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO tokens (id, name, role, environment, hash, created_at_ms, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET
                     name = excluded.name, role = excluded.role,
                     environment = excluded.environment, hash = excluded.hash,
                     created_at_ms = excluded.created_at_ms, revoked = excluded.revoked",
                params![
                    token.id,
                    token.name,
                    token.role.as_str(),
                    token.environment,
                    token.hash,
                    token.created_at_ms,
                    token.revoked
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, name, role, environment, hash, created_at_ms, revoked
                 FROM tokens WHERE hash = ?1",
                params![hash],
                token_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(token_record).transpose()
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, name, role, environment, hash, created_at_ms, revoked
                 FROM tokens ORDER BY created_at_ms, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], token_row).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(token_record(row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        self.conn()
            .execute(
                "UPDATE tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                params![id],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    fn set_secret(&self, scope: &str, name: &str, value: &str) -> Result<(), StoreError> {
        let sealed = self.key.seal(scope, name, value)?;
        self.conn()
            .execute(
                "INSERT INTO secrets (scope, name, sealed, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (scope, name) DO UPDATE SET
                     sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms",
                params![scope, name, sealed, now_ms()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn delete_secret(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM secrets WHERE scope = ?1 AND name = ?2",
                params![scope, name],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    fn secrets(&self, scope: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let sealed: Vec<(String, Vec<u8>)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached("SELECT name, sealed FROM secrets WHERE scope = ?1")
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![scope], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?
        };
        sealed
            .into_iter()
            .map(|(name, sealed)| {
                let value = self.key.open(scope, &name, &sealed)?;
                Ok((name, value))
            })
            .collect()
    }

    fn secret_names(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT name FROM secrets WHERE scope = ?1 ORDER BY name")
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![scope], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    fn secret_scopes(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT DISTINCT scope FROM secrets ORDER BY scope")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    fn try_lead(&self) -> Result<bool, StoreError> {
        let mut held = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_some() {
            return Ok(true);
        }
        let path = self.data_dir.join(LEADER_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                *held = Some(lock);
                Ok(true)
            }
            Err((_, Errno::EWOULDBLOCK)) => Ok(false),
            Err((_, errno)) => Err(StoreError::io(&path, std::io::Error::from(errno))),
        }
    }

    fn advertise_leader(&self, api: &str, instance: &str) -> Result<bool, StoreError> {
        let leading = self
            .leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !leading {
            return Ok(false);
        }
        self.conn()
            .execute(
                "INSERT INTO leader (id, api, instance, since_ms) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET
                     api = excluded.api, instance = excluded.instance,
                     since_ms = excluded.since_ms",
                params![api, instance, now_ms()],
            )
            .map(|_| true)
            .map_err(|e| self.err(e))
    }

    fn leader(&self) -> Result<Option<LeaderRecord>, StoreError> {
        self.conn()
            .query_row(
                "SELECT api, instance, since_ms FROM leader WHERE id = 1",
                [],
                |r| {
                    Ok(LeaderRecord {
                        api: r.get(0)?,
                        instance: r.get(1)?,
                        since_ms: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

type TokenRow = (String, String, String, Option<String>, String, i64, bool);

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn token_record(
    (id, name, role, environment, hash, created_at_ms, revoked): TokenRow,
) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id,
        name,
        role: parse_role(&role)?,
        environment,
        hash,
        created_at_ms,
        revoked,
    })
}
