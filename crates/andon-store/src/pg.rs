//! The PostgreSQL backend, for several servers sharing one database.
//!
//! # Why a private thread and runtime
//!
//! The [`Store`] trait is synchronous, the good PostgreSQL client
//! (`tokio-postgres`) is async, and the sync `postgres` crate runs its own
//! runtime, which panics ("Cannot start a runtime from within a runtime")
//! when called from a tokio worker. So each [`PgStore`] owns one std thread
//! that drives a current-thread tokio runtime and the connections; the
//! trait methods send it a job over a channel and wait for the answer. That
//! works from any context: plain threads, `spawn_blocking`, or (briefly
//! blocking) directly on a tokio worker. Requests from one handle are
//! served one at a time, in order, on one connection.
//!
//! # Appends across processes
//!
//! An append takes `LOCK TABLE events IN EXCLUSIVE MODE` inside its
//! transaction: it conflicts with other writers (in any process) but not with
//! readers. Seq is then `MAX(seq) + 1`, read after the lock is granted, and
//! the lock is released at commit, so seqs are gap-free and become visible in
//! order. Timestamps come from the database's clock, so servers with skewed
//! clocks still write one timeline.
//!
//! Servers that decide events from their fold of the log (the next run id)
//! take [`Store::lock_log`] (a session advisory lock on the main session),
//! fold what other servers appended, decide, and append with
//! [`Store::append_after`], whose check makes a decision from a stale fold
//! impossible even if the lock was lost with a dropped session.
//!
//! # Leadership
//!
//! [`Store::try_lead`] takes `pg_try_advisory_lock` on a dedicated session
//! (not the one serving queries, which may be reconnected at any time). The
//! lock lasts as long as that session: dropping the store, or the process
//! dying, releases it.
//!
//! # Secrets key
//!
//! Secrets are sealed in this process with `DATA/secret.key`: every server
//! sharing one database must have the same key file (copy it when adding a
//! server). TLS is not supported yet (`NoTls`): connect over a trusted
//! network or a Unix socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use andon_core::{Envelope, Event};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, Config, NoTls};

use crate::crypto::SecretKey;
use crate::pg_sql;
use crate::store::{LeaderRecord, NewRow, TokenRecord};
use crate::{Store, StoreError};

/// Advisory lock key for leadership: "andon" in ASCII, arbitrary but fixed.
const LEADER_LOCK_KEY: i64 = 0x0061_6e64_6f6e;

/// A job for the worker thread. It sends its own reply.
type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The PostgreSQL [`Store`].
#[derive(Debug)]
pub struct PgStore {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<thread::JoinHandle<()>>,
    key: SecretKey,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies pending
    /// migrations, and reads (or creates) the secrets key in `data_dir`.
    pub fn connect(url: &str, data_dir: &Path) -> Result<Self, StoreError> {
        let config: Config = url.parse().map_err(|e| StoreError::Config {
            // The parser's message never echoes the URL, so no password leaks.
            detail: format!("cannot parse the PostgreSQL URL: {e}"),
        })?;
        let key = SecretKey::load_or_create(data_dir)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let worker = thread::Builder::new()
            .name("andon-store-pg".into())
            .spawn(move || {
                let mut session = match Session::start(config) {
                    Ok(session) => session,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Ends when the PgStore (the only sender) is dropped.
                while let Ok(job) = inbox.recv() {
                    job(&mut session);
                }
                session.shutdown();
            })
            .map_err(StoreError::Spawn)?;
        let store = PgStore {
            jobs: Some(jobs),
            worker: Some(worker),
            key,
        };
        ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(store)
    }

    /// Deletes every event, token, secret and the leader record, for
    /// `andon migrate-store --force`. Irreversible; not part of [`Store`]
    /// so that no server code path can reach it.
    pub fn wipe(&self) -> Result<(), StoreError> {
        self.call(move |s| {
            s.run(async |c| {
                c.batch_execute("TRUNCATE events, tokens, secrets, leader")
                    .await
                    .map_err(StoreError::from_pg)
            })
        })
    }

    /// Runs `f` on the worker thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session| {
            let _ = reply.send(f(session));
        });
        self.jobs
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Drop for PgStore {
    /// Closes the connections before returning, so that a leadership held by
    /// this handle is free for another one as soon as the drop is done.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What the worker thread owns.
struct Session {
    rt: Runtime,
    config: Config,
    /// Serves every request; reconnected when found closed.
    main: Option<Client>,
    /// Holds the leadership lock, once taken.
    leader: Option<Client>,
    leading: bool,
    /// The connection futures, awaited at shutdown so sockets close cleanly.
    connections: Vec<tokio::task::JoinHandle<()>>,
}

impl Session {
    fn start(config: Config) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::Spawn)?;
        let mut session = Session {
            rt,
            config,
            main: None,
            leader: None,
            leading: false,
            connections: Vec::new(),
        };
        session.run(async |c| pg_sql::migrate(c).await)?;
        Ok(session)
    }

    fn connect(&mut self) -> Result<Client, StoreError> {
        let (client, connection) = self
            .rt
            .block_on(self.config.connect(NoTls))
            .map_err(StoreError::from_pg)?;
        // The connection future does the socket IO; on a current-thread
        // runtime it runs whenever the worker is inside `block_on`.
        self.connections.retain(|h| !h.is_finished());
        self.connections.push(self.rt.spawn(async move {
            let _ = connection.await;
        }));
        Ok(client)
    }

    /// Runs `f` with the main connection, reconnecting first if it was lost
    /// (a database restart fails the requests in flight, not later ones).
    fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.main.as_ref().is_none_or(Client::is_closed) {
            self.main = None;
            self.main = Some(self.connect()?);
        }
        let Session { rt, main, .. } = self;
        let client = main.as_mut().ok_or(StoreError::Closed)?;
        rt.block_on(f(client))
    }

    fn try_lead(&mut self) -> Result<bool, StoreError> {
        if self.leading {
            if let Some(leader) = &self.leader {
                let alive = !leader.is_closed()
                    && self.rt.block_on(leader.simple_query("SELECT 1")).is_ok();
                if alive {
                    return Ok(true);
                }
            }
            // The session died, and the lock with it: someone else may lead now.
            self.leading = false;
            self.leader = None;
        }
        if self.leader.as_ref().is_none_or(Client::is_closed) {
            self.leader = None;
            self.leader = Some(self.connect()?);
        }
        let Session { rt, leader, .. } = self;
        let leader = leader.as_ref().ok_or(StoreError::Closed)?;
        let row = rt
            .block_on(leader.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK_KEY]))
            .map_err(StoreError::from_pg)?;
        let held: bool = row.try_get(0).map_err(StoreError::from_pg)?;
        self.leading = held;
        Ok(held)
    }

    /// Writes the leader record through the session holding the lock: if
    /// that session is gone, so is the lock, and the write fails with it.
    fn advertise_leader(&mut self, api: &str, instance: &str) -> Result<bool, StoreError> {
        if !self.leading {
            return Ok(false);
        }
        let Session { rt, leader, .. } = self;
        let Some(leader) = leader.as_ref() else {
            return Ok(false);
        };
        rt.block_on(pg_sql::advertise_leader(leader, api, instance))?;
        Ok(true)
    }

    /// Closes both sessions and waits (briefly) for their sockets to close.
    fn shutdown(mut self) {
        self.main = None;
        self.leader = None;
        let connections = std::mem::take(&mut self.connections);
        self.rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                for connection in connections {
                    let _ = connection.await;
                }
            })
            .await;
        });
    }
}

impl Store for PgStore {
    fn append(&self, actor: &str, events: Vec<Event>) -> Result<Vec<Envelope>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = NewRow::encode(events)?;
        let actor = actor.to_owned();
        self.call(move |s| s.run(async |c| pg_sql::append(c, None, &actor, rows).await))
    }

    fn append_after(
        &self,
        expected_last: u64,
        actor: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Envelope>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = NewRow::encode(events)?;
        let actor = actor.to_owned();
        self.call(move |s| {
            s.run(async |c| pg_sql::append(c, Some(expected_last), &actor, rows).await)
        })
    }

    fn lock_log(&self) -> Result<(), StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::lock_log(c).await))
    }

    fn unlock_log(&self) {
        let _ = self.call(move |s| s.run(async |c| pg_sql::unlock_log(c).await));
    }

    fn read(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::read(c, after, limit).await))
    }

    fn run_events(&self, run_id: u64) -> Result<Vec<Envelope>, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::run_events(c, run_id).await))
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::last_seq(c).await))
    }

    fn import(&self, envs: &[Envelope]) -> Result<(), StoreError> {
        let envs = envs.to_vec();
        self.call(move |s| s.run(async |c| pg_sql::import(c, &envs).await))
    }

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.call(move |s| s.run(async |c| pg_sql::put_token(c, &token).await))
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_owned();
        self.call(move |s| s.run(async |c| pg_sql::token_by_hash(c, &hash).await))
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::tokens(c).await))
    }

    fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |s| s.run(async |c| pg_sql::revoke_token(c, &id).await))
    }

    fn set_secret(&self, scope: &str, name: &str, value: &str) -> Result<(), StoreError> {
        let sealed = self.key.seal(scope, name, value)?;
        let (scope, name) = (scope.to_owned(), name.to_owned());
        self.call(move |s| s.run(async |c| pg_sql::set_secret(c, &scope, &name, &sealed).await))
    }

    fn delete_secret(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let (scope, name) = (scope.to_owned(), name.to_owned());
        self.call(move |s| s.run(async |c| pg_sql::delete_secret(c, &scope, &name).await))
    }

    fn secrets(&self, scope: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let owned = scope.to_owned();
        let sealed =
            self.call(move |s| s.run(async |c| pg_sql::sealed_secrets(c, &owned).await))?;
        sealed
            .into_iter()
            .map(|(name, sealed)| {
                let value = self.key.open(scope, &name, &sealed)?;
                Ok((name, value))
            })
            .collect()
    }

    fn secret_names(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        let scope = scope.to_owned();
        self.call(move |s| s.run(async |c| pg_sql::secret_names(c, &scope).await))
    }

    fn secret_scopes(&self) -> Result<Vec<String>, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::secret_scopes(c).await))
    }

    fn try_lead(&self) -> Result<bool, StoreError> {
        self.call(Session::try_lead)
    }

    fn advertise_leader(&self, api: &str, instance: &str) -> Result<bool, StoreError> {
        let (api, instance) = (api.to_owned(), instance.to_owned());
        self.call(move |s| s.advertise_leader(&api, &instance))
    }

    fn leader(&self) -> Result<Option<LeaderRecord>, StoreError> {
        self.call(move |s| s.run(async |c| pg_sql::leader(c).await))
    }
}
