//! The [`Controller`]: the one handle the server holds, for every
//! environment of every project.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_artifacts::{ArtifactStore, Digest};
use andon_core::{Deploys, Event};

use crate::api::{
    Command, ControllerConfig, DeployObserver, DeployRequest, DriftReport, EnvSpec, InstanceInfo,
    RecoveryReport, RollbackRequest,
};
use crate::drift::Manifest;
use crate::env::EnvSlot;
use crate::error::DeployError;
use crate::instance::{Ctx, Instance};
use crate::router_api::RouterApi;
use crate::routes::RouteBook;

/// Deploys versions to environments and keeps them running.
///
/// Cheap to clone: every clone drives the same environments. Releases run
/// in their own tasks; the methods return once a change is accepted (or,
/// for [`Controller::rollback`], done).
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: ControllerConfig,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) ctx: Ctx,
    pub(crate) routes: Arc<RouteBook>,
    /// Services whose traffic goes through an HAProxy (the rest: the router).
    pub(crate) traffic: Mutex<BTreeMap<String, crate::traffic::Bound>>,
    /// By `project/environment`.
    envs: Mutex<BTreeMap<String, Arc<EnvSlot>>>,
    /// Every instance started or adopted and not yet stopped, by id.
    pub(crate) instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    manifests: Mutex<HashMap<Digest, Arc<Manifest>>>,
    /// The drift last reported per instance, so a report is an event once.
    drift_seen: Mutex<BTreeMap<String, String>>,
    /// Source of instance ids: starts at the clock so that ids stay unique
    /// across controller restarts (directories of adopted instances remain).
    pub(crate) seq: AtomicU64,
    pub(crate) closing: AtomicBool,
}

impl Inner {
    pub(crate) fn emit(&self, e: Event) {
        self.ctx.observer.event(e);
    }

    pub(crate) fn slot(&self, project: &str, environment: &str) -> Option<Arc<EnvSlot>> {
        self.envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{project}/{environment}"))
            .cloned()
    }

    pub(crate) fn slot_or_create(&self, project: &str, environment: &str) -> Arc<EnvSlot> {
        self.envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{project}/{environment}"))
            .or_insert_with(|| Arc::new(EnvSlot::new(project, environment)))
            .clone()
    }

    /// Drops a torn-down environment's slot (see `teardown`).
    pub(crate) fn forget_slot(&self, project: &str, environment: &str) {
        self.envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&format!("{project}/{environment}"));
    }

    fn slots(&self) -> Vec<Arc<EnvSlot>> {
        self.envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn all_instances(&self) -> Vec<Arc<Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    async fn manifest(&self, digest: Digest) -> Result<Arc<Manifest>, DeployError> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
        {
            return Ok(m.clone());
        }
        let store = self.artifacts.clone();
        let m = tokio::task::spawn_blocking(move || Manifest::of_artifact(&store, &digest))
            .await
            .map_err(|e| DeployError::io(self.artifacts.root())(std::io::Error::other(e)))??;
        let m = Arc::new(m);
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, m.clone());
        Ok(m)
    }
}

impl Controller {
    /// A controller for the router at `cfg.router_admin`. Does no IO: the
    /// router's current table is read on the first change.
    pub fn new(
        cfg: ControllerConfig,
        artifacts: ArtifactStore,
        observer: Arc<dyn DeployObserver>,
    ) -> Result<Self, DeployError> {
        // Instances and the router are on loopback or a private network: a
        // proxy from the environment must not get in between.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(DeployError::Http)?;
        let api = RouterApi::new(http.clone(), &cfg.router_admin, cfg.router_token.clone());
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let ctx = Ctx {
            observer,
            http,
            stop_timeout: cfg.stop_timeout,
        };
        Ok(Controller {
            inner: Arc::new(Inner {
                routes: Arc::new(RouteBook::new(api)),
                traffic: Mutex::new(BTreeMap::new()),
                cfg,
                artifacts,
                ctx,
                envs: Mutex::new(BTreeMap::new()),
                instances: Mutex::new(BTreeMap::new()),
                manifests: Mutex::new(HashMap::new()),
                drift_seen: Mutex::new(BTreeMap::new()),
                seq: AtomicU64::new(start << 8),
                closing: AtomicBool::new(false),
            }),
        })
    }

    /// Rebuilds the controller's state after a restart from the events
    /// folded into `deploys`: adopts live, healthy instances of each stable
    /// version, routes all traffic to them, rolls back any release that was
    /// in flight and stops everything else. Call once, before anything else.
    pub async fn recover(
        &self,
        deploys: &Deploys,
        envs: &[EnvSpec],
    ) -> Result<RecoveryReport, DeployError> {
        crate::recover::recover(&self.inner, deploys, envs).await
    }

    /// Starts a release and returns once it is accepted; its progress and
    /// end are events (`DeployFinished`). Refused when the environment has
    /// a release in flight or is frozen.
    pub async fn deploy(&self, req: DeployRequest) -> Result<(), DeployError> {
        crate::release::start(&self.inner, req).await
    }

    /// Pause, resume, promote or abort the release in flight. `Promote` on
    /// a frozen environment promotes the frozen canary.
    pub async fn command(
        &self,
        project: &str,
        environment: &str,
        cmd: Command,
    ) -> Result<(), DeployError> {
        let slot = self.inner.slot(project, environment).ok_or_else(|| {
            DeployError::UnknownEnvironment {
                project: project.to_string(),
                environment: environment.to_string(),
            }
        })?;
        if let Some(ctl) = slot.control() {
            let deploy_id = slot.inflight.borrow().unwrap_or_default();
            let env = slot.environment.clone();
            match cmd {
                Command::Pause => {
                    if ctl.send_if_modified(|c| !std::mem::replace(&mut c.paused, true)) {
                        self.inner.emit(Event::DeployPaused {
                            environment: env,
                            deploy_id,
                        });
                    }
                }
                Command::Resume => {
                    if ctl.send_if_modified(|c| std::mem::replace(&mut c.paused, false)) {
                        self.inner.emit(Event::DeployResumed {
                            environment: env,
                            deploy_id,
                        });
                    }
                }
                Command::Promote => ctl.send_modify(|c| c.promote = true),
                Command::Abort => ctl.send_modify(|c| c.abort = true),
            }
            return Ok(());
        }
        if cmd == Command::Promote && slot.frozen.load(Ordering::Relaxed) {
            return crate::rollback::promote_frozen(&self.inner, &slot).await;
        }
        Err(DeployError::NoDeployInFlight {
            project: project.to_string(),
            environment: environment.to_string(),
        })
    }

    /// Returns to `req.to` (default: the last known good version) with one
    /// route update, starting fresh instances of it if none run. Returns
    /// the version now serving, once it serves.
    pub async fn rollback(&self, req: RollbackRequest) -> Result<Digest, DeployError> {
        crate::rollback::rollback(&self.inner, req).await
    }

    /// The version [`Controller::rollback`] would return to without `to`:
    /// the stable version if a release is in flight or frozen, else the
    /// newest good version other than the stable one.
    pub async fn rollback_target(&self, project: &str, environment: &str) -> Option<Digest> {
        let slot = self.inner.slot(project, environment)?;
        if slot.inflight.borrow().is_some() {
            return *slot
                .release_stable
                .lock()
                .unwrap_or_else(|p| p.into_inner());
        }
        let st = slot.state.lock().await;
        st.rollback_target()
    }

    /// Tears an environment down: routes removed, requests drained, every
    /// instance stopped (each an `InstanceStopped` with `reason`), a release
    /// in flight aborted first. The caller records that it is gone.
    pub async fn teardown(
        &self,
        project: &str,
        environment: &str,
        reason: &str,
    ) -> Result<(), DeployError> {
        crate::teardown::teardown(&self.inner, project, environment, reason).await
    }

    /// The router's cumulative counters of the version serving all of an
    /// environment's traffic, for alert rules after the release.
    pub async fn live_stats(
        &self,
        project: &str,
        environment: &str,
    ) -> Result<Option<(Digest, andon_judge::VersionStats)>, DeployError> {
        crate::teardown::live_stats(&self.inner, project, environment).await
    }

    /// Base URL of the router's proxy listener (where users reach environments).
    pub fn router_url(&self) -> &str {
        &self.inner.cfg.router_url
    }

    /// The release in flight in an environment, if any.
    pub fn deploy_in_flight(&self, project: &str, environment: &str) -> Option<u64> {
        self.inner
            .slot(project, environment)
            .and_then(|s| *s.inflight.borrow())
    }

    /// Until the environment has no release in flight.
    pub async fn wait_idle(&self, project: &str, environment: &str) {
        if let Some(slot) = self.inner.slot(project, environment) {
            let _ = slot.inflight.subscribe().wait_for(Option::is_none).await;
        }
    }

    /// Every instance running (or restarting), sorted by id.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.inner
            .all_instances()
            .iter()
            .map(|i| i.info())
            .collect()
    }

    /// The image id (the version to deploy) of a container target's
    /// `image` (a name or an id) on the Docker engine (`docker_host`).
    pub async fn image_id(&self, image: &str) -> Result<Digest, DeployError> {
        self.inner.image_id(image).await
    }

    /// Re-hashes every instance directory against its artifact's manifest
    /// (a container instance: asks the engine what changed in it).
    /// Returns the instances that drifted; each new finding is also an
    /// `InstanceDrift` event. Never repairs: a deploy replaces instances.
    pub async fn check_drift(&self) -> Vec<DriftReport> {
        let mut out = Vec::new();
        for inst in self.inner.all_instances() {
            // A container is compared with its image by the engine.
            let found = if let Some(c) = inst.status().container {
                c.drift(&inst.ident.version).await
            } else {
                let manifest = match self.inner.manifest(inst.ident.version).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(instance = %inst.ident.id, error = %e, "cannot read the artifact manifest");
                        continue;
                    }
                };
                let dir = inst.ident.dir.clone();
                tokio::task::spawn_blocking(move || manifest.compare(&dir))
                    .await
                    .ok()
                    .flatten()
            };
            let Some(detail) = found else {
                self.inner
                    .drift_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&inst.ident.id);
                continue;
            };
            let new = self
                .inner
                .drift_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(inst.ident.id.clone(), detail.clone())
                .as_ref()
                != Some(&detail);
            if new {
                self.inner.emit(Event::InstanceDrift {
                    environment: inst.ident.environment.clone(),
                    instance_id: inst.ident.id.clone(),
                    detail: detail.clone(),
                });
            }
            out.push(DriftReport {
                instance_id: inst.ident.id.clone(),
                environment: inst.ident.environment.clone(),
                version: inst.ident.version,
                detail,
            });
        }
        out
    }

    /// Stops every release task. With `stop_instances`, every instance is
    /// stopped too (SIGTERM, then SIGKILL after `stop_timeout`); without,
    /// they keep running for the next controller to adopt, and releases in
    /// flight are rolled back by its [`Controller::recover`].
    pub async fn shutdown(&self, stop_instances: bool) {
        self.inner.closing.store(true, Ordering::Relaxed);
        for slot in self.inner.slots() {
            if let Some(t) = slot.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                t.abort();
            }
            {
                let mut st = slot.state.lock().await;
                if let Some(t) = st.warm.as_mut().and_then(|w| w.timer.take()) {
                    t.abort();
                }
            }
            *slot.control.lock().unwrap_or_else(|p| p.into_inner()) = None;
            slot.inflight.send_replace(None);
        }
        let all = self.inner.all_instances();
        if stop_instances {
            self.inner.stop_all(all, "controller shut down").await;
        } else {
            for i in all {
                i.abandon();
            }
        }
    }
}
