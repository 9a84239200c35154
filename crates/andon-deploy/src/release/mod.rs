//! A release in flight: one task per deploy, holding its environment's lock
//! from start to end, running one strategy and, whatever happens, leaving
//! the environment in one of three states: the new version stable, the old
//! version stable (rolled back, nothing new left running), or frozen.
//!
//! Every strategy is written as "the happy path with `?`": any [`Halt`]
//! (judge fail, abort, smoke failure, instances not ready, router error)
//! falls through to [`Release::fail`], which sends all traffic back to the
//! stable version in one route update and then cleans up.

mod blue_green;
mod canary;
mod fail;
mod recreate;
mod rolling;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use andon_artifacts::Digest;
use andon_config::{Environment, ProcessTarget, Strategy, Target};
use andon_core::{DeployOutcome, Event};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::DeployRequest;
use crate::controller::Inner;
use crate::env::{Ctl, EnvSlot, EnvState, Group, LaunchSpec};
use crate::error::DeployError;
use crate::groups::role;
use crate::routes::{Reach, Role, STABLE};
use crate::smoke;

/// Why a release stops before it completes.
#[derive(Debug)]
pub(crate) enum Halt {
    Abort,
    /// The judge failed the canary; the verdict sentence.
    Judge(String),
    Smoke(String),
    NotReady(String),
    Error(DeployError),
}

impl From<DeployError> for Halt {
    fn from(e: DeployError) -> Self {
        Halt::Error(e)
    }
}

/// Whether a hold ended because its time was up or because of `promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Elapsed,
    Promoted,
}

/// Checks a deploy request and starts its task; returns once accepted.
pub(crate) async fn start(inner: &Arc<Inner>, req: DeployRequest) -> Result<(), DeployError> {
    if inner.closing.load(Ordering::Relaxed) {
        return Err(DeployError::ShuttingDown);
    }
    let env = &req.environment;
    let Some(target) = &crate::runtime::as_process(&env.target) else {
        return Err(DeployError::UnsupportedTarget {
            environment: env.name.clone(),
        });
    };
    if let Some(name) = target
        .secrets
        .iter()
        .find(|n| !req.secrets.contains_key(*n))
    {
        return Err(DeployError::MissingSecret {
            environment: env.name.clone(),
            name: name.clone(),
        });
    }
    if matches!(env.target, Target::Container(_)) {
        inner.check_image(&req.version).await?;
    } else if !inner.artifacts.has(&req.version) {
        return Err(andon_artifacts::Error::NotFound(req.version).into());
    }
    if let Some(rules) = &env.judge {
        andon_judge::Judge::new(canary::judge_config(rules))?;
    }
    let slot = inner.slot_or_create(&req.project, &env.name);
    if slot.frozen.load(Ordering::Relaxed) {
        return Err(DeployError::Frozen {
            project: req.project.clone(),
            environment: env.name.clone(),
        });
    }
    let mut busy = None;
    let claimed = slot.inflight.send_if_modified(|cur| match cur {
        Some(id) => {
            busy = Some(*id);
            false
        }
        None => {
            *cur = Some(req.deploy_id);
            true
        }
    });
    if !claimed {
        return Err(DeployError::Busy {
            project: req.project.clone(),
            environment: env.name.clone(),
            deploy_id: busy.unwrap_or_default(),
        });
    }
    let (ctl, _) = watch::channel(Ctl::default());
    *slot.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctl.clone());
    let task = tokio::spawn(run(inner.clone(), slot.clone(), req, ctl));
    *slot.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    Ok(())
}

async fn run(inner: Arc<Inner>, slot: Arc<EnvSlot>, req: DeployRequest, ctl: watch::Sender<Ctl>) {
    let mut st = slot.state.lock().await;
    let Some(target) = crate::runtime::as_process(&req.environment.target) else {
        return;
    };
    if let Some(stable) = &st.stable
        && req.stable.is_some_and(|s| s != stable.version)
    {
        tracing::info!(environment = %slot.service, runs = %stable.version, "the caller's stable version differs from what runs; using what runs");
    }
    *slot
        .release_stable
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = st.stable.as_ref().map(|g| g.version);
    // A new release ends the previous rollback window.
    crate::rollback::end_warm(&inner, &slot, &mut st, true).await;
    st.config = Some(req.environment.clone());
    inner.bind_traffic(&slot.service, &req.environment.traffic);
    let launch = Arc::new(LaunchSpec {
        target: target.clone(),
        secrets: req.secrets.clone(),
        container: crate::runtime::container_of(&req.environment.target),
    });
    let mut rel = Release {
        reach: Reach::of(&req.environment),
        inner: inner.clone(),
        slot: slot.clone(),
        ctl_rx: ctl.subscribe(),
        ctl,
        target,
        launch,
        fresh: Vec::new(),
        previous: None,
        req,
    };
    let result = match rel.req.environment.strategy.clone() {
        Strategy::Recreate => recreate::run(&mut rel, &mut st).await,
        Strategy::Rolling { max_unavailable } => {
            rolling::run(&mut rel, &mut st, max_unavailable).await
        }
        Strategy::BlueGreen { smoke_for } => blue_green::run(&mut rel, &mut st, smoke_for).await,
        Strategy::Canary { steps } => canary::run(&mut rel, &mut st, &steps).await,
    };
    match result {
        Ok(()) => rel.succeed(&mut st),
        Err(halt) => rel.fail(&mut st, halt).await,
    }
    drop(st);
    *slot
        .release_stable
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = None;
    *slot.control.lock().unwrap_or_else(|p| p.into_inner()) = None;
    slot.inflight.send_replace(None);
}

pub(crate) struct Release {
    pub(crate) inner: Arc<Inner>,
    pub(crate) slot: Arc<EnvSlot>,
    pub(crate) req: DeployRequest,
    pub(crate) target: ProcessTarget,
    pub(crate) launch: Arc<LaunchSpec>,
    pub(crate) reach: Reach,
    pub(crate) ctl: watch::Sender<Ctl>,
    pub(crate) ctl_rx: watch::Receiver<Ctl>,
    /// Groups this release started, with their role: what a failure stops.
    pub(crate) fresh: Vec<(&'static str, Group)>,
    /// Recreate only: the version stopped before the new one started, to
    /// start again if the new one fails.
    pub(crate) previous: Option<(Digest, Arc<LaunchSpec>)>,
}

impl Release {
    pub(crate) fn env(&self) -> &Environment {
        &self.req.environment
    }

    /// Instances the environment should run.
    pub(crate) fn n(&self) -> usize {
        usize::try_from(self.target.instances.max(1)).unwrap_or(1)
    }

    pub(crate) fn emit(&self, e: Event) {
        self.inner.emit(e);
    }

    /// Adds an empty group for `role` to the fresh ones; its index.
    pub(crate) fn add_group(
        &mut self,
        role: &'static str,
        version: Digest,
        launch: Arc<LaunchSpec>,
    ) -> usize {
        self.fresh
            .push((role, Group::new(version, launch, self.req.deploy_id)));
        self.fresh.len() - 1
    }

    pub(crate) fn group(&self, idx: usize) -> &Group {
        &self.fresh[idx].1
    }

    /// Starts instances in several groups at once and waits for all of them.
    pub(crate) async fn grow(&mut self, wants: &[(usize, usize)]) -> Result<(), Halt> {
        let inner = self.inner.clone();
        let mut froms = Vec::new();
        for (idx, count) in wants {
            let g = &mut self.fresh[*idx].1;
            froms.push((*idx, g.instances.len()));
            inner.launch(&self.slot, g, *count).await?;
        }
        let ready = async {
            for (idx, from) in froms {
                inner.wait_ready(&self.fresh[idx].1, from).await?;
            }
            Ok(())
        };
        // An abort does not wait for a slow start (up to `ready_timeout`).
        let mut ctl = self.ctl_rx.clone();
        tokio::select! {
            r = ready => r.map_err(Halt::NotReady),
            _ = ctl.wait_for(|c| c.abort) => Err(Halt::Abort),
        }
    }

    /// Grows a group to `want` instances.
    pub(crate) async fn grow_to(&mut self, wants: &[(usize, usize)]) -> Result<(), Halt> {
        let more: Vec<_> = wants
            .iter()
            .map(|(idx, want)| {
                (
                    *idx,
                    want.saturating_sub(self.fresh[*idx].1.instances.len()),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        self.grow(&more).await
    }

    /// Removes a fresh group (it now belongs to the environment).
    pub(crate) fn take(&mut self, idx: usize) -> Group {
        let (_, g) = &mut self.fresh[idx];
        let taken = g.clone();
        g.instances.clear();
        taken
    }

    pub(crate) async fn publish(&self, roles: &[Role]) -> Result<(), Halt> {
        self.inner
            .publish(&self.slot, &self.reach, self.req.deploy_id, roles)
            .await
            .map_err(Halt::Error)
    }

    /// Runs the smoke test (if any) against `role`, through the router
    /// (with HAProxy traffic: against one of its instances).
    pub(crate) async fn smoke(&self, role: &str, idx: usize) -> Result<(), Halt> {
        let Some(command) = self.env().judge.as_ref().and_then(|j| j.smoke.clone()) else {
            return Ok(());
        };
        let dir = self
            .group(idx)
            .instances
            .first()
            .map(|i| i.ident.dir.clone())
            .unwrap_or_else(|| self.inner.cfg.data_dir.clone());
        // HAProxy has no header that forces a version: the script is
        // given one instance of the new version directly.
        let url = match &self.env().traffic {
            andon_config::Traffic::Router => self.inner.cfg.router_url.clone(),
            andon_config::Traffic::Haproxy(_) => self
                .group(idx)
                .instances
                .first()
                .map_or_else(String::new, |i| format!("http://{}", i.ident.addr)),
        };
        smoke::run(&command, &dir, &url, role, smoke::SMOKE_TIMEOUT)
            .await
            .map_err(Halt::Smoke)
    }

    /// `Err(Abort)` when aborted; `Promoted` when promote was asked.
    pub(crate) fn checkpoint(&mut self) -> Result<Held, Halt> {
        let c = *self.ctl_rx.borrow_and_update();
        if c.abort {
            return Err(Halt::Abort);
        }
        Ok(if c.promote {
            Held::Promoted
        } else {
            Held::Elapsed
        })
    }

    /// Waits `d` (time paused does not count), ending early on promote.
    pub(crate) async fn hold(&mut self, d: Duration) -> Result<Held, Halt> {
        let mut held = Duration::ZERO;
        let mut last = Instant::now();
        loop {
            let c = *self.ctl_rx.borrow_and_update();
            if c.abort {
                return Err(Halt::Abort);
            }
            if c.promote {
                return Ok(Held::Promoted);
            }
            let now = Instant::now();
            if !c.paused {
                held += now - last;
            }
            last = now;
            if held >= d && !c.paused {
                return Ok(Held::Elapsed);
            }
            let tick = if c.paused {
                Duration::from_secs(3600)
            } else {
                d.saturating_sub(held).max(Duration::from_millis(1))
            };
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = self.ctl_rx.changed() => {}
            }
        }
    }

    /// The new version serves all traffic: record it.
    fn succeed(&mut self, st: &mut EnvState) {
        st.mark_good(self.req.version);
        st.launches.insert(self.req.version, self.launch.clone());
        self.emit(Event::DeployFinished {
            project: self.req.project.clone(),
            environment: self.slot.environment.clone(),
            deploy_id: self.req.deploy_id,
            outcome: DeployOutcome::Succeeded,
            reason: None,
        });
    }
}

/// `sha256:abcdef123456` for titles.
pub(crate) fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// The first release of an environment (or after a recreate stopped the
/// old version): start, smoke-test while dark, then take all traffic.
pub(crate) async fn first(rel: &mut Release, st: &mut EnvState) -> Result<(), Halt> {
    let g = rel.add_group(crate::routes::GREEN, rel.req.version, rel.launch.clone());
    let n = rel.n();
    rel.grow(&[(g, n)]).await?;
    rel.checkpoint()?;
    if rel.env().judge.as_ref().is_some_and(|j| j.smoke.is_some()) {
        rel.publish(&[role(crate::routes::GREEN, rel.group(g), 0)])
            .await?;
        rel.smoke(crate::routes::GREEN, g).await?;
    }
    rel.publish(&[role(STABLE, rel.group(g), 100)]).await?;
    st.stable = Some(rel.take(g));
    Ok(())
}
