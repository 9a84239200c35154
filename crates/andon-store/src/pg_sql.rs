//! The SQL the PostgreSQL backend runs, one async function per operation.
//! Called only from the worker thread in [`crate::pg`].

use andon_core::Envelope;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Row};

use crate::StoreError;
use crate::migrations;
use crate::store::{
    LeaderRecord, NewRow, TokenRecord, check_import, decode, now_ms, parse_role, to_i64,
};

/// Serializes migrators across processes (transaction-scoped advisory lock;
/// any fixed number distinct from the leadership key).
const MIGRATION_LOCK_KEY: i64 = 0x6164_6f6e_0001;

/// Serializes deciders across servers (see `Store::lock_log`).
const LOG_LOCK_KEY: i64 = 0x6164_6f6e_0002;

/// Milliseconds since the epoch by the database's clock.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::from_pg(e)
}

pub(crate) async fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(pg)?;
    tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version       INTEGER PRIMARY KEY,
             applied_at_ms BIGINT NOT NULL
         )",
    )
    .await
    .map_err(pg)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)
        .and_then(|r| col(&r, 0, "schema_migrations"))?;
    for m in migrations::pending(migrations::POSTGRES, current)? {
        let failed = |e: tokio_postgres::Error| StoreError::Migration {
            version: m.version,
            source: Box::new(e),
        };
        tx.batch_execute(m.sql).await.map_err(failed)?;
        let version = i32::try_from(m.version).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
            &[&version, &now_ms()],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(pg)
}

/// Appends `rows`; with `expected`, only if the log's last seq is still that
/// (checked under the table lock, so no other append can slip in between).
pub(crate) async fn append(
    c: &mut Client,
    expected: Option<u64>,
    actor: &str,
    rows: Vec<NewRow>,
) -> Result<Vec<Envelope>, StoreError> {
    let tx = c.transaction().await.map_err(pg)?;
    // Conflicts with other appenders in every process, not with readers.
    tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE")
        .await
        .map_err(pg)?;
    let head = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(seq), 0)::BIGINT, {DB_NOW_MS} FROM events"),
            &[],
        )
        .await
        .map_err(pg)?;
    let (last, at_ms): (i64, i64) = (col(&head, 0, "events")?, col(&head, 1, "events")?);
    let found = u64::try_from(last).unwrap_or(0);
    if let Some(expected) = expected.filter(|e| *e != found) {
        // Dropping `tx` rolls back and releases the table lock.
        return Err(StoreError::LogMoved { expected, found });
    }
    let insert = tx
        .prepare(
            "INSERT INTO events (seq, at_ms, actor, type, run_id, body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(pg)?;
    for (seq, row) in (last + 1..).zip(&rows) {
        tx.execute(
            &insert,
            &[&seq, &at_ms, &actor, &row.kind, &row.run_id, &row.body],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
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

/// Column `i` of `row`, without panicking on a type this version did not write.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize, table: &'static str) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::BadRow {
        table,
        detail: e.to_string(),
    })
}

fn envelopes(rows: Vec<Row>) -> Result<Vec<Envelope>, StoreError> {
    rows.iter()
        .map(|r| {
            decode(
                col(r, 0, "events")?,
                col(r, 1, "events")?,
                col(r, 2, "events")?,
                col(r, 3, "events")?,
            )
        })
        .collect()
}

pub(crate) async fn read(
    c: &mut Client,
    after: u64,
    limit: usize,
) -> Result<Vec<Envelope>, StoreError> {
    let rows = c
        .query(
            "SELECT seq, at_ms, actor, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&to_i64(after), &to_i64(limit as u64)],
        )
        .await
        .map_err(pg)?;
    envelopes(rows)
}

pub(crate) async fn run_events(c: &mut Client, run_id: u64) -> Result<Vec<Envelope>, StoreError> {
    let rows = c
        .query(
            "SELECT seq, at_ms, actor, body FROM events WHERE run_id = $1 ORDER BY seq",
            &[&to_i64(run_id)],
        )
        .await
        .map_err(pg)?;
    envelopes(rows)
}

pub(crate) async fn last_seq(c: &mut Client) -> Result<u64, StoreError> {
    let last: i64 = c
        .query_one("SELECT COALESCE(MAX(seq), 0)::BIGINT FROM events", &[])
        .await
        .map_err(pg)
        .and_then(|r| col(&r, 0, "events"))?;
    Ok(u64::try_from(last).unwrap_or(0))
}

pub(crate) async fn import(c: &mut Client, envs: &[Envelope]) -> Result<(), StoreError> {
    let bodies = envs
        .iter()
        .map(|e| serde_json::to_string(&e.event).map_err(StoreError::Encode))
        .collect::<Result<Vec<_>, _>>()?;
    let tx = c.transaction().await.map_err(pg)?;
    tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE")
        .await
        .map_err(pg)?;
    let last: i64 = tx
        .query_one("SELECT COALESCE(MAX(seq), 0)::BIGINT FROM events", &[])
        .await
        .map_err(pg)
        .and_then(|r| col(&r, 0, "events"))?;
    check_import(u64::try_from(last).unwrap_or(0), envs)?;
    let insert = tx
        .prepare(
            "INSERT INTO events (seq, at_ms, actor, type, run_id, body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(pg)?;
    for (env, body) in envs.iter().zip(&bodies) {
        let run_id = env.event.run_id().and_then(|id| i64::try_from(id).ok());
        tx.execute(
            &insert,
            &[
                &to_i64(env.seq),
                &env.at_ms,
                &env.actor,
                &env.event.kind(),
                &run_id,
                body,
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

pub(crate) async fn put_token(c: &mut Client, t: &TokenRecord) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO tokens (id, name, role, environment, hash, created_at_ms, revoked)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET
             name = excluded.name, role = excluded.role,
             environment = excluded.environment, hash = excluded.hash,
             created_at_ms = excluded.created_at_ms, revoked = excluded.revoked",
        &[
            &t.id,
            &t.name,
            &t.role.as_str(),
            &t.environment,
            &t.hash,
            &t.created_at_ms,
            &t.revoked,
        ],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

const TOKEN_COLUMNS: &str = "id, name, role, environment, hash, created_at_ms, revoked";

fn token(r: &Row) -> Result<TokenRecord, StoreError> {
    const T: &str = "tokens";
    Ok(TokenRecord {
        id: col(r, 0, T)?,
        name: col(r, 1, T)?,
        role: parse_role(col(r, 2, T)?)?,
        environment: col(r, 3, T)?,
        hash: col(r, 4, T)?,
        created_at_ms: col(r, 5, T)?,
        revoked: col(r, 6, T)?,
    })
}

pub(crate) async fn token_by_hash(
    c: &mut Client,
    hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
            &[&hash],
        )
        .await
        .map_err(pg)?;
    row.as_ref().map(token).transpose()
}

pub(crate) async fn tokens(c: &mut Client) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at_ms, id"),
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(token).collect()
}

pub(crate) async fn revoke_token(c: &mut Client, id: &str) -> Result<bool, StoreError> {
    c.execute(
        "UPDATE tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked",
        &[&id],
    )
    .await
    .map(|n| n > 0)
    .map_err(pg)
}

pub(crate) async fn set_secret(
    c: &mut Client,
    scope: &str,
    name: &str,
    sealed: &[u8],
) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO secrets (scope, name, sealed, updated_at_ms) VALUES ($1, $2, $3, {DB_NOW_MS})
             ON CONFLICT (scope, name) DO UPDATE SET
                 sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms"
        ),
        &[&scope, &name, &sealed],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

pub(crate) async fn delete_secret(
    c: &mut Client,
    scope: &str,
    name: &str,
) -> Result<bool, StoreError> {
    c.execute(
        "DELETE FROM secrets WHERE scope = $1 AND name = $2",
        &[&scope, &name],
    )
    .await
    .map(|n| n > 0)
    .map_err(pg)
}

pub(crate) async fn sealed_secrets(
    c: &mut Client,
    scope: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let rows = c
        .query(
            "SELECT name, sealed FROM secrets WHERE scope = $1",
            &[&scope],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| Ok((col(r, 0, "secrets")?, col(r, 1, "secrets")?)))
        .collect()
}

pub(crate) async fn secret_names(c: &mut Client, scope: &str) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT name FROM secrets WHERE scope = $1 ORDER BY name",
            &[&scope],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(|r| col(r, 0, "secrets")).collect()
}

pub(crate) async fn secret_scopes(c: &mut Client) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query("SELECT DISTINCT scope FROM secrets ORDER BY scope", &[])
        .await
        .map_err(pg)?;
    rows.iter().map(|r| col(r, 0, "secrets")).collect()
}

pub(crate) async fn advertise_leader(
    c: &Client,
    api: &str,
    instance: &str,
) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO leader (id, api, instance, since_ms) VALUES (1, $1, $2, {DB_NOW_MS})
             ON CONFLICT (id) DO UPDATE SET
                 api = excluded.api, instance = excluded.instance,
                 since_ms = excluded.since_ms"
        ),
        &[&api, &instance],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

pub(crate) async fn leader(c: &mut Client) -> Result<Option<LeaderRecord>, StoreError> {
    let row = c
        .query_opt(
            "SELECT api, instance, since_ms FROM leader WHERE id = 1",
            &[],
        )
        .await
        .map_err(pg)?;
    row.map(|r| {
        Ok(LeaderRecord {
            api: col(&r, 0, "leader")?,
            instance: col(&r, 1, "leader")?,
            since_ms: col(&r, 2, "leader")?,
        })
    })
    .transpose()
}

pub(crate) async fn lock_log(c: &mut Client) -> Result<(), StoreError> {
    c.query_one("SELECT pg_advisory_lock($1)", &[&LOG_LOCK_KEY])
        .await
        .map(|_| ())
        .map_err(pg)
}

pub(crate) async fn unlock_log(c: &mut Client) -> Result<(), StoreError> {
    c.query_one("SELECT pg_advisory_unlock($1)", &[&LOG_LOCK_KEY])
        .await
        .map(|_| ())
        .map_err(pg)
}
