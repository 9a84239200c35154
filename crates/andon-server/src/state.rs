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
}

pub(crate) struct StateParts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) artifacts: andon_artifacts::ArtifactStore,
    pub(crate) queue: mpsc::UnboundedSender<u64>,
    pub(crate) parallelism: usize,
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
    /// never be handed out twice.
    pub(crate) fn append_with<T>(
        &self,
        actor: &str,
        decide: impl FnOnce(&Views) -> (Vec<Event>, T),
    ) -> Result<T, andon_store::StoreError> {
        let _guard = self
            .append_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (events, out) = decide(&self.read_views());
        if events.is_empty() {
            return Ok(out);
        }
        let envs = self.store.append(actor, events)?;
        {
            let mut views = self.write_views();
            for env in &envs {
                views.apply(env);
            }
        }
        self.flags.apply(&envs);
        for env in &envs {
            // No subscribers is fine: nobody is watching.
            let _ = self.bus.send(Arc::new(env.clone()));
        }
        // The cord and the board answer with events of their own.
        crate::flow::after_append(self, &envs);
        Ok(out)
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
