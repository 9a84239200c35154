//! Shared server state: the store, the projections folded from it, and the
//! channels that carry new events and log lines to live subscribers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use andon_core::{Deploys, Envelope, Event, Projects, Runs};
use andon_store::Store;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::logs::LogHub;

/// Everything the API shows, folded from the event log. Rebuilt from the
/// store at start; updated under the append lock so it is always the fold of
/// a prefix of the log.
#[derive(Default)]
pub(crate) struct Views {
    pub(crate) runs: Runs,
    pub(crate) projects: Projects,
    pub(crate) deploys: Deploys,
    pub(crate) last_seq: u64,
    /// The id the next `IncidentOpened` gets.
    pub(crate) next_incident_id: u64,
    /// The cord, DORA, incidents, boards and notification attempts.
    pub(crate) flow: crate::flow::FlowViews,
}

impl Views {
    pub(crate) fn apply(&mut self, env: &Envelope) {
        self.runs.apply(env);
        self.projects.apply(env);
        self.deploys.apply(env);
        self.flow.apply(env);
        if let Event::IncidentOpened { incident_id, .. } = &env.event {
            self.next_incident_id = self.next_incident_id.max(incident_id + 1);
        }
        self.last_seq = env.seq;
    }
}

pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) views: RwLock<Views>,
    /// Serialises append + fold + publish so subscribers and projections see
    /// events in sequence order. A std mutex: nothing is awaited under it.
    append_lock: Mutex<()>,
    pub(crate) bus: broadcast::Sender<Arc<Envelope>>,
    pub(crate) logs: LogHub,
    pub(crate) data_dir: PathBuf,
    pub(crate) artifacts: andon_artifacts::ArtifactStore,
    pub(crate) queue: mpsc::UnboundedSender<u64>,
    pub(crate) cancels: Mutex<HashMap<u64, CancellationToken>>,
    pub(crate) parallelism: usize,
    pub(crate) auth: crate::auth::AuthCache,
    /// Feature flags: folded here too, published for lock-free evaluation.
    pub(crate) flags: crate::flags::FlagHub,
    /// The release controller, when a router is configured. Set once after
    /// the state exists, because its observer holds a weak reference to it.
    pub(crate) controller: std::sync::OnceLock<andon_deploy::Controller>,
    /// Jobs waiting for remote agents, and the leases agents hold.
    pub(crate) agents: crate::agents::Agents,
    /// Leadership and forwarding when several servers share the store.
    pub(crate) cluster: crate::cluster::Cluster,
}

pub(crate) struct StateParts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) artifacts: andon_artifacts::ArtifactStore,
    pub(crate) queue: mpsc::UnboundedSender<u64>,
    pub(crate) parallelism: usize,
    /// Whether other servers may append to the same store (PostgreSQL).
    pub(crate) shared: bool,
}

/// Reactions retried after the log moved (possible only if the cluster lock
/// was lost with a database session), before giving up.
const MAX_APPEND_RETRIES: u32 = 10;

/// [`Store::lock_log`] for the length of one decision, when the store is
/// shared; released on drop.
struct LogLock<'a>(Option<&'a dyn Store>);

impl<'a> LogLock<'a> {
    fn take(state: &'a AppState) -> Result<Self, andon_store::StoreError> {
        if !state.cluster.shared {
            return Ok(LogLock(None));
        }
        state.store.lock_log()?;
        Ok(LogLock(Some(&*state.store)))
    }
}

impl Drop for LogLock<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.0 {
            store.unlock_log();
        }
    }
}

impl AppState {
    /// Folds the whole log into fresh projections.
    pub(crate) fn load(parts: StateParts) -> Result<Self, andon_store::StoreError> {
        let mut views = Views {
            next_incident_id: 1,
            ..Views::default()
        };
        let flags = crate::flags::FlagHub::default();
        let mut after = 0;
        loop {
            let batch = parts.store.read(after, 10_000)?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for env in &batch {
                views.apply(env);
            }
            flags.apply(&batch);
        }
        let (bus, _) = broadcast::channel(4096);
        Ok(AppState {
            logs: LogHub::new(parts.data_dir.join("logs")),
            auth: crate::auth::AuthCache::default(),
            flags,
            store: parts.store,
            views: RwLock::new(views),
            append_lock: Mutex::new(()),
            bus,
            data_dir: parts.data_dir,
            artifacts: parts.artifacts,
            queue: parts.queue,
            cancels: Mutex::new(HashMap::new()),
            parallelism: parts.parallelism,
            controller: std::sync::OnceLock::new(),
            agents: crate::agents::Agents::from_env(),
            cluster: crate::cluster::Cluster::new(parts.shared),
        })
    }

    /// Appends events, folds them into the views and publishes them. The
    /// only way state changes.
    pub(crate) fn append(
        &self,
        actor: &str,
        events: Vec<Event>,
    ) -> Result<(), andon_store::StoreError> {
        self.append_with(actor, |_| (events, ()))
    }

    /// Decides the events to append from the current views, under the same
    /// lock as the append: ids allocated here (next run, next deploy) can
    /// never be handed out twice, even by several servers sharing the store.
    ///
    /// With a shared store the lock is cluster-wide ([`Store::lock_log`]):
    /// other servers' events are folded first, so `decide` sees the whole
    /// log, and the append is conditional on the log still ending there
    /// ([`Store::append_after`]). So the views are always the fold of a
    /// prefix of the log, on every server.
    pub(crate) fn append_with<T>(
        &self,
        actor: &str,
        decide: impl FnOnce(&Views) -> (Vec<Event>, T),
    ) -> Result<T, andon_store::StoreError> {
        let _guard = self.lock_appends();
        let log = LogLock::take(self)?;
        // Another server's appends, folded on the way: reacted to as well.
        let mut folded = if self.cluster.shared {
            self.catch_up_locked()?
        } else {
            Vec::new()
        };
        let (events, out, expected) = {
            let views = self.read_views();
            let (events, out) = decide(&views);
            (events, out, views.last_seq)
        };
        let appended = if events.is_empty() {
            Ok(Vec::new())
        } else {
            self.store.append_after(expected, actor, events)
        };
        let result = match appended {
            Ok(envs) => {
                self.publish(&envs);
                folded.extend(envs);
                Ok(out)
            }
            Err(e) => {
                // Only if the cluster lock was lost with a database session
                // (or a foreign process wrote the SQLite file): the decision
                // was made from a stale fold and is dropped, not retried.
                if matches!(e, andon_store::StoreError::LogMoved { .. }) {
                    tracing::error!(error = %e, "an append raced another server; retry the request");
                    if let Ok(caught) = self.catch_up_locked() {
                        folded.extend(caught);
                    }
                }
                Err(e)
            }
        };
        drop(log);
        self.react(&folded);
        result
    }

    fn lock_appends(&self) -> std::sync::MutexGuard<'_, ()> {
        self.append_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Folds and publishes the events other servers appended since the
    /// views' end, reacting to them if this server leads.
    pub(crate) fn catch_up(&self) -> Result<(), andon_store::StoreError> {
        let _guard = self.lock_appends();
        let envs = self.catch_up_locked()?;
        self.react(&envs);
        Ok(())
    }

    /// [`AppState::catch_up`] without the reactions, for callers that hold
    /// the append lock and react themselves. Returns what it folded.
    fn catch_up_locked(&self) -> Result<Vec<Envelope>, andon_store::StoreError> {
        let mut all = Vec::new();
        loop {
            let after = self.read_views().last_seq;
            let batch = self.store.read(after, 1000)?;
            if batch.is_empty() {
                return Ok(all);
            }
            self.publish(&batch);
            all.extend(batch);
        }
    }

    /// Appends the flow rules' follow-up events (actor `andon`), catching up
    /// if the log moved; returns what was folded: other servers' events
    /// first, then these. Called by [`crate::flow::after_append`], under the
    /// append lock.
    pub(crate) fn append_reaction(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<Envelope>, andon_store::StoreError> {
        let _log = LogLock::take(self)?;
        let mut folded = Vec::new();
        let mut retries = 0;
        loop {
            if self.cluster.shared {
                let caught = self.catch_up_locked()?;
                self.pick_up(&caught);
                folded.extend(caught);
            }
            let expected = self.read_views().last_seq;
            match self.store.append_after(expected, "andon", events.clone()) {
                Ok(envs) => {
                    self.publish(&envs);
                    folded.extend(envs);
                    return Ok(folded);
                }
                Err(andon_store::StoreError::LogMoved { .. }) if retries < MAX_APPEND_RETRIES => {
                    retries += 1;
                    let caught = self.catch_up_locked()?;
                    self.pick_up(&caught);
                    folded.extend(caught);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Folds `envs` into the views and the flags, then sends them to live
    /// subscribers, in seq order.
    fn publish(&self, envs: &[Envelope]) {
        if envs.is_empty() {
            return;
        }
        {
            let mut views = self.write_views();
            for env in envs {
                views.apply(env);
            }
        }
        self.flags.apply(envs);
        for env in envs {
            // No subscribers is fine: nobody is watching.
            let _ = self.bus.send(Arc::new(env.clone()));
        }
    }

    /// The leader's reactions to events it folded, its own or another
    /// server's: each runs exactly once in the cluster, on the leader.
    fn react(&self, envs: &[Envelope]) {
        if envs.is_empty() || !self.cluster.is_leader() {
            return;
        }
        self.pick_up(envs);
        // The cord and the board answer with events of their own.
        crate::flow::after_append(self, envs);
    }

    /// Hands queued runs to the leader's worker, wherever they were queued.
    fn pick_up(&self, envs: &[Envelope]) {
        if !self.cluster.is_leader() {
            return;
        }
        for env in envs {
            if let Event::RunQueued { run_id, .. } = &env.event {
                // Closed only while the server stops.
                let _ = self.queue.send(*run_id);
            }
        }
    }

    pub(crate) fn read_views(&self) -> std::sync::RwLockReadGuard<'_, Views> {
        self.views
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_views(&self) -> std::sync::RwLockWriteGuard<'_, Views> {
        self.views
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tags this server's job processes (`ANDON_INSTANCE`), so reaping
    /// orphans after a crash never touches another server's jobs on the
    /// same machine: the data directory is unique per server.
    pub(crate) fn instance_id(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// Where the server keeps its mirror of a project's repository.
    pub(crate) fn mirror_path(&self, project: &str) -> PathBuf {
        self.data_dir.join("repos").join(format!("{project}.git"))
    }
}
