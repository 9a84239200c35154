//! Starting, publishing, draining and stopping groups of instances: the
//! moves every strategy is made of.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use andon_artifacts::Digest;
use andon_core::Event;
use tokio::time::Instant;

use crate::controller::Inner;
use crate::env::{EnvSlot, Group};
use crate::error::DeployError;
use crate::instance::{Identity, Instance};
use crate::process::{self, Launch};
use crate::routes::{self, Reach, Role};

/// After a route update, requests that loaded the previous table may not be
/// counted in flight yet (a few microseconds between choosing a version and
/// counting it): wait this long before trusting an in-flight count of zero.
const UNCOUNTED_WINDOW: Duration = Duration::from_millis(30);
/// How often in-flight counts are read while draining.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Grace for instances whose role stays live (a rolling update, or the same
/// version deployed again): their requests in flight cannot be told apart,
/// so they get this long, then SIGTERM (a well-behaved service finishes
/// what it has on SIGTERM).
const LIVE_ROLE_GRACE: Duration = Duration::from_millis(250);

impl Inner {
    /// `DATA/instances/<project>/<environment>`: per project, because two
    /// projects may both have a `production`, and recovery stops every
    /// process it finds in the directory that the log does not know.
    pub(crate) fn env_dir(&self, project: &str, environment: &str) -> std::path::PathBuf {
        self.cfg
            .data_dir
            .join("instances")
            .join(project)
            .join(environment)
    }

    fn next_instance_id(&self, version: &Digest) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", &version.hex()[..8])
    }

    /// Starts `count` fresh instances of the group's version (phoenix: each
    /// from a fresh extraction of the verified artifact). Instances started
    /// before an error stay in the group, for the caller to stop.
    pub(crate) async fn launch(
        &self,
        slot: &EnvSlot,
        group: &mut Group,
        count: usize,
    ) -> Result<(), DeployError> {
        let base = self.env_dir(&slot.project, &slot.environment);
        tokio::fs::create_dir_all(&base)
            .await
            .map_err(DeployError::io(&base))?;
        for _ in 0..count {
            if self.closing.load(Ordering::Relaxed) {
                return Err(DeployError::ShuttingDown);
            }
            let id = self.next_instance_id(&group.version);
            let dir = base.join(&id);
            let port = process::free_port()?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let version = group.version.to_string();
            let launch: crate::runtime::Launch = if group.launch.container.is_some() {
                // A container's files come from its image, not from here.
                self.container_launch(slot, group, &id, addr)
            } else {
                let store = self.artifacts.clone();
                let (digest, into) = (group.version, dir.clone());
                tokio::task::spawn_blocking(move || store.extract_to(&digest, &into))
                    .await
                    .map_err(|e| DeployError::io(&dir)(std::io::Error::other(e)))??;
                Launch {
                    command: group.launch.target.command.clone(),
                    env: process::instance_env(
                        &group.launch.target.env,
                        &group.launch.listed_secrets(),
                        port,
                        &version,
                        &id,
                        &slot.environment,
                        &dir,
                    ),
                    log: base.join(format!("{id}.log")),
                    dir: dir.clone(),
                }
                .into()
            };
            let ident = Identity {
                id: id.clone(),
                project: slot.project.clone(),
                environment: slot.environment.clone(),
                version: group.version,
                deploy_id: group.deploy_id,
                addr,
                pidfile: base.join(format!("{id}.pid")),
                dir,
                health: group.launch.target.health.clone(),
            };
            let inst = Instance::start(&self.ctx, ident, launch).await?;
            self.register(&inst);
            group.instances.push(inst);
        }
        Ok(())
    }

    pub(crate) fn register(&self, inst: &Arc<Instance>) {
        self.instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(inst.ident.id.clone(), inst.clone());
    }

    /// Until the group's instances from index `from` on are ready, within one deadline.
    pub(crate) async fn wait_ready(&self, group: &Group, from: usize) -> Result<(), String> {
        let timeout = group.launch.target.ready_timeout;
        let deadline = Instant::now() + timeout;
        for inst in group.instances.iter().skip(from) {
            let left = deadline.saturating_duration_since(Instant::now());
            inst.wait_ready(left.max(Duration::from_millis(1))).await?;
        }
        Ok(())
    }

    /// Starts `count` more instances and waits for them; the message says
    /// why they are not serving.
    pub(crate) async fn grow(
        &self,
        slot: &EnvSlot,
        group: &mut Group,
        count: usize,
    ) -> Result<(), String> {
        let from = group.instances.len();
        self.launch(slot, group, count)
            .await
            .map_err(|e| crate::error::chain(&e))?;
        self.wait_ready(group, from).await
    }

    /// Stops instances (concurrently) and forgets them.
    pub(crate) async fn stop_all(&self, instances: Vec<Arc<Instance>>, reason: &str) {
        let mut set = tokio::task::JoinSet::new();
        let grace = self.cfg.stop_timeout;
        for inst in instances {
            let reason = reason.to_string();
            set.spawn(async move {
                inst.stop(&reason, grace).await;
                inst.ident.id.clone()
            });
        }
        while let Some(done) = set.join_next().await {
            if let Ok(id) = done {
                self.instances
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
        }
    }

    /// Waits until the router has no request in flight to these roles
    /// (taken out of the table just before), within `drain_timeout`.
    pub(crate) async fn drain(&self, service: &str, keys: &[(&str, Digest)]) {
        if keys.is_empty() {
            return;
        }
        tokio::time::sleep(UNCOUNTED_WINDOW).await;
        let deadline = Instant::now() + self.cfg.drain_timeout;
        loop {
            let stats = match self.traffic(service).stats().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read in-flight counts; stopping after a grace period");
                    tokio::time::sleep(LIVE_ROLE_GRACE).await;
                    return;
                }
            };
            let mut busy = false;
            let mut live_role = false;
            for (role, version) in keys {
                let v = version.to_string();
                if stats.is_live(service, role, &v) {
                    live_role = true;
                } else if stats.inflight(service, role, &v) > 0 {
                    busy = true;
                }
            }
            if !busy {
                if live_role {
                    tokio::time::sleep(LIVE_ROLE_GRACE).await;
                }
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    service,
                    "drain timeout: stopping instances with requests in flight"
                );
                return;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Drains these roles, then stops the groups.
    pub(crate) async fn retire(
        &self,
        service: &str,
        keys: &[(&str, Digest)],
        groups: Vec<Group>,
        reason: &str,
    ) {
        self.drain(service, keys).await;
        let all = groups.into_iter().flat_map(|g| g.instances).collect();
        self.stop_all(all, reason).await;
    }

    /// Sends the environment's service as `roles` (or removes it when
    /// empty and `remove` is set) and reports the new weights.
    pub(crate) async fn publish(
        &self,
        slot: &EnvSlot,
        reach: &Reach,
        deploy_id: u64,
        roles: &[Role],
    ) -> Result<(), DeployError> {
        let spec = routes::service(roles);
        self.traffic(&slot.service)
            .set(&slot.service, Some(spec), reach)
            .await?;
        let mut weights: BTreeMap<String, u8> = BTreeMap::new();
        for r in roles.iter().filter(|r| r.weight > 0) {
            let w = weights.entry(r.version.to_string()).or_default();
            *w = w.saturating_add(u8::try_from(r.weight.min(100)).unwrap_or(100));
        }
        self.emit(Event::TrafficShifted {
            environment: slot.environment.clone(),
            deploy_id,
            weights,
        });
        Ok(())
    }
}

/// A role taking `weight` percent on a group's instances.
pub(crate) fn role(name: &'static str, group: &Group, weight: u32) -> Role {
    Role {
        name,
        version: group.version,
        weight,
        endpoints: group.endpoints(),
    }
}
