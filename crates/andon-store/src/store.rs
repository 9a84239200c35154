//! The [`Store`] trait every backend implements, and the records that are not
//! events.

use std::collections::BTreeMap;

use andon_core::{Envelope, Event, Role};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Andon's single source of truth: an append-only event log (state is a
/// projection of it) plus the two tables that must not be events because
/// they hold secrets: API tokens (hashed) and secrets (encrypted).
///
/// Methods are synchronous. From async code, call the slow ones (`append`,
/// large `read`s) through `tokio::task::spawn_blocking`; short calls may be
/// made directly, they block the calling thread for about one disk flush.
/// Every backend works from any thread, inside or outside a tokio runtime.
pub trait Store: Send + Sync + 'static {
    /// Appends `events` atomically (all or none) with consecutive seq numbers
    /// and the current time, and returns their envelopes. Durable when it
    /// returns: a kill -9 right after loses nothing. An empty batch is a no-op.
    fn append(&self, actor: &str, events: Vec<Event>) -> Result<Vec<Envelope>, StoreError>;

    /// [`Store::append`], but only if the log's last seq is still
    /// `expected_last`; otherwise nothing is written and the answer is
    /// [`StoreError::LogMoved`]. Servers sharing a store decide events
    /// (next run id, next deploy id) from their fold of the log: this makes
    /// the decision and the write one atomic step, so the log never holds
    /// two decisions made from the same prefix.
    fn append_after(
        &self,
        expected_last: u64,
        actor: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Serialises deciders across servers: between `lock_log` and
    /// [`Store::unlock_log`], no other handle's `lock_log` returns. A server
    /// takes it around "fold the log to its end, decide, `append_after`",
    /// so its decision is made from the whole log and its conditional
    /// append cannot be refused. On PostgreSQL a session advisory lock
    /// (released by the database if the session dies); on SQLite a no-op,
    /// as one server owns the file. Hold it for milliseconds: every other
    /// decider in the cluster waits.
    fn lock_log(&self) -> Result<(), StoreError>;

    /// Releases [`Store::lock_log`]. Errors are ignored by design: a lost
    /// session has released the lock already.
    fn unlock_log(&self);

    /// Events with `seq > after`, ascending, at most `limit` of them.
    fn read(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// Every event of one run (those whose [`Event::run_id`] is `run_id`),
    /// ascending; served by an index, for run pages.
    fn run_events(&self, run_id: u64) -> Result<Vec<Envelope>, StoreError>;

    /// The seq of the last event, 0 when the log is empty.
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// Appends envelopes verbatim (seq, time and actor preserved), for
    /// `andon migrate-store`. Atomic. The envelopes must continue this log
    /// exactly: [`StoreError::NotEmpty`] if the store already holds an event
    /// at or after the first one's seq, [`StoreError::Gap`] if seqs skip.
    fn import(&self, envs: &[Envelope]) -> Result<(), StoreError>;

    /// Inserts a token, or replaces the one with the same id.
    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// The token whose secret hashes to `hash` (see [`hash_token`]), revoked
    /// or not: the caller checks [`TokenRecord::revoked`].
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// All tokens, oldest first.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token. True if this call revoked it; false if there is no
    /// such token or it was already revoked.
    fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    /// Sets a secret, encrypted at rest. `scope` is usually a project name.
    fn set_secret(&self, scope: &str, name: &str, value: &str) -> Result<(), StoreError>;

    /// Deletes a secret; true if it existed.
    fn delete_secret(&self, scope: &str, name: &str) -> Result<bool, StoreError>;

    /// The secrets of one scope, decrypted, by name.
    fn secrets(&self, scope: &str) -> Result<BTreeMap<String, String>, StoreError>;

    /// The names of one scope's secrets, sorted, without decrypting anything.
    fn secret_names(&self, scope: &str) -> Result<Vec<String>, StoreError>;

    /// Every scope that has at least one secret, sorted.
    fn secret_scopes(&self) -> Result<Vec<String>, StoreError>;

    /// Leader election between servers sharing a store: true if this handle
    /// holds (or just took) the leadership, which it keeps until dropped.
    /// Cheap enough to call every few seconds. On PostgreSQL it also checks
    /// that the session holding the lock is still alive: `false` after
    /// `true` means the leadership was lost.
    fn try_lead(&self) -> Result<bool, StoreError>;

    /// Records where the leader serves its API, for followers to forward
    /// leader-only requests to. Written only while this handle leads
    /// (through the session that holds the lock on PostgreSQL): false, and
    /// nothing written, otherwise.
    fn advertise_leader(&self, api: &str, instance: &str) -> Result<bool, StoreError>;

    /// The last leader's record. It may name a leader that has since died:
    /// callers treat it as a hint and check [`Store::try_lead`] for themselves.
    fn leader(&self) -> Result<Option<LeaderRecord>, StoreError>;
}

/// Where the (last known) leader serves, from [`Store::leader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Base URL of its HTTP API, as it advertises it (`--advertise`).
    pub api: String,
    /// Its instance id (`ANDON_INSTANCE` of its job processes), so a
    /// successor on the same machine can end the jobs it left behind.
    pub instance: String,
    /// When it took the leadership, by the database's clock.
    pub since_ms: i64,
}

/// An API token as stored. The secret itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Restricts the token to one environment.
    pub environment: Option<String>,
    /// Hex SHA-256 of the secret, from [`hash_token`].
    pub hash: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

/// Hex SHA-256 of a token's secret: what [`TokenRecord::hash`] holds and what
/// [`Store::token_by_hash`] looks up. Tokens are long random strings, so a
/// plain (unsalted, fast) hash is enough: there is nothing to brute-force.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The columns of a new event row, computed before taking any lock.
pub(crate) struct NewRow {
    pub(crate) kind: &'static str,
    pub(crate) run_id: Option<i64>,
    pub(crate) body: String,
    pub(crate) event: Event,
}

impl NewRow {
    pub(crate) fn encode(events: Vec<Event>) -> Result<Vec<NewRow>, StoreError> {
        events
            .into_iter()
            .map(|event| {
                Ok(NewRow {
                    kind: event.kind(),
                    run_id: event.run_id().and_then(|id| i64::try_from(id).ok()),
                    body: serde_json::to_string(&event).map_err(StoreError::Encode)?,
                    event,
                })
            })
            .collect()
    }
}

/// Checks that `envs` continue a log whose last seq is `last_seq`.
pub(crate) fn check_import(last_seq: u64, envs: &[Envelope]) -> Result<(), StoreError> {
    let mut expected = last_seq.saturating_add(1);
    for (i, env) in envs.iter().enumerate() {
        if i == 0 && env.seq <= last_seq {
            return Err(StoreError::NotEmpty { last_seq });
        }
        if env.seq != expected {
            return Err(StoreError::Gap {
                expected,
                found: env.seq,
            });
        }
        expected = expected.saturating_add(1);
    }
    Ok(())
}

/// Rebuilds an envelope from its stored columns.
pub(crate) fn decode(
    seq: i64,
    at_ms: i64,
    actor: String,
    body: &str,
) -> Result<Envelope, StoreError> {
    let seq = u64::try_from(seq).map_err(|_| StoreError::BadRow {
        table: "events",
        detail: format!("negative seq {seq}"),
    })?;
    let event = serde_json::from_str(body).map_err(|source| StoreError::Decode { seq, source })?;
    Ok(Envelope {
        seq,
        at_ms,
        actor,
        event,
    })
}

/// A stored u64 column (seq, limit) as SQL's i64.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn parse_role(role: &str) -> Result<Role, StoreError> {
    role.parse().map_err(|detail| StoreError::BadRow {
        table: "tokens",
        detail,
    })
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn env(seq: u64) -> Envelope {
        Envelope {
            seq,
            at_ms: 0,
            actor: "a".into(),
            event: Event::ProjectRemoved {
                project: "p".into(),
            },
        }
    }

    #[test]
    fn import_must_continue_the_log() {
        assert!(check_import(0, &[env(1), env(2)]).is_ok());
        assert!(check_import(2, &[env(3)]).is_ok());
        assert!(check_import(2, &[]).is_ok());
        assert!(matches!(
            check_import(2, &[env(1)]),
            Err(StoreError::NotEmpty { last_seq: 2 })
        ));
        assert!(matches!(
            check_import(0, &[env(1), env(3)]),
            Err(StoreError::Gap {
                expected: 2,
                found: 3
            })
        ));
        assert!(matches!(
            check_import(0, &[env(2)]),
            Err(StoreError::Gap { .. })
        ));
    }
}
