//! Going back by hand, the end of a rollback window, and the way out of a
//! freeze.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use andon_artifacts::Digest;
use andon_core::{DeployOutcome, Event};
use tokio::task::JoinHandle;

use crate::api::RollbackRequest;
use crate::controller::Inner;
use crate::env::{EnvSlot, EnvState, Group, LaunchSpec};
use crate::error::DeployError;
use crate::groups::role;
use crate::routes::{BASELINE, CANARY, PREVIOUS, Reach, STABLE};

fn unknown(slot: &EnvSlot) -> DeployError {
    DeployError::UnknownEnvironment {
        project: slot.project.clone(),
        environment: slot.environment.clone(),
    }
}

/// `andon rollback`: all traffic to `to` (default: the last known good
/// version) in one route update, starting fresh instances of it unless blue
/// is still warm. A release in flight is aborted first (it goes back to its
/// stable version by itself); a frozen one is rolled back because a person
/// decided to.
pub(crate) async fn rollback(
    inner: &Arc<Inner>,
    req: RollbackRequest,
) -> Result<Digest, DeployError> {
    let slot = inner.slot(&req.project, &req.environment).ok_or_else(|| {
        DeployError::UnknownEnvironment {
            project: req.project.clone(),
            environment: req.environment.clone(),
        }
    })?;
    let aborted = match slot.control() {
        Some(ctl) => {
            ctl.send_modify(|c| c.abort = true);
            true
        }
        None => false,
    };
    let _ = slot.inflight.subscribe().wait_for(Option::is_none).await;
    let mut st = slot.state.lock().await;
    let reach = st
        .config
        .as_ref()
        .map(Reach::of)
        .ok_or_else(|| unknown(&slot))?;
    let current = st.stable.clone();
    let target = if aborted {
        req.to.or(current.as_ref().map(|g| g.version))
    } else {
        req.to.or_else(|| st.rollback_target())
    }
    .ok_or_else(|| DeployError::NothingToRollBack {
        project: slot.project.clone(),
        environment: slot.environment.clone(),
    })?;
    let frozen = st.frozen.take();
    slot.frozen.store(false, Ordering::Relaxed);

    let mut retired: Vec<Group> = Vec::new();
    let mut keys: Vec<(&str, Digest)> = Vec::new();
    if let Some(f) = frozen {
        keys.push((CANARY, f.canary.version));
        retired.push(f.canary);
        if let Some(b) = f.baseline {
            keys.push((BASELINE, b.version));
            retired.push(b);
        }
    }
    let same = current.as_ref().is_some_and(|g| g.version == target);
    let new_stable = if same {
        current.clone()
    } else {
        let warm = st.warm.take_if(|w| w.group.version == target);
        match warm {
            Some(mut w) => {
                if let Some(t) = w.timer.take() {
                    t.abort();
                }
                Some(w.group)
            }
            None => {
                let launch = launch_for(&st, target).ok_or_else(|| unknown(&slot))?;
                let n = usize::try_from(launch.target.instances.max(1)).unwrap_or(1);
                let mut g = Group::new(target, launch, req.deploy_id);
                if let Err(why) = inner.grow(&slot, &mut g, n).await {
                    inner.stop_all(g.instances, "rollback failed").await;
                    finish(inner, &slot, req.deploy_id, DeployOutcome::Failed, &why);
                    return Err(DeployError::NotReady(why));
                }
                Some(g)
            }
        }
    };
    if let Some(g) = &new_stable
        && let Err(e) = inner
            .publish(&slot, &reach, req.deploy_id, &[role(STABLE, g, 100)])
            .await
    {
        if !same {
            inner.stop_all(g.instances.clone(), "rollback failed").await;
        }
        finish(
            inner,
            &slot,
            req.deploy_id,
            DeployOutcome::Failed,
            &crate::error::chain(&e),
        );
        return Err(e);
    }
    if !same && let Some(old) = current {
        keys.push((STABLE, old.version));
        keys.push((PREVIOUS, old.version));
        st.good.retain(|g| *g != old.version);
        retired.push(old);
    }
    // A warm blue of another version is of no use any more.
    if let Some(mut w) = st.warm.take() {
        if let Some(t) = w.timer.take() {
            t.abort();
        }
        keys.push((PREVIOUS, w.group.version));
        retired.push(w.group);
    }
    if let Some(g) = &new_stable {
        st.launches.insert(target, g.launch.clone());
    }
    st.stable = new_stable;
    st.mark_good(target);
    let why = format!("rolled back by deploy {}", req.deploy_id);
    inner.retire(&slot.service, &keys, retired, &why).await;
    let detail = format!("traffic back on {}", crate::release::short(&target));
    finish(
        inner,
        &slot,
        req.deploy_id,
        DeployOutcome::Succeeded,
        &detail,
    );
    inner.ctx.observer.notify(
        &format!("{}/{}: rolled back", slot.project, slot.environment),
        &detail,
    );
    Ok(target)
}

/// How to start `version` again: as it was last started here, else with
/// the environment's current target and the stable version's secrets.
fn launch_for(st: &EnvState, version: Digest) -> Option<Arc<LaunchSpec>> {
    if let Some(l) = st.launches.get(&version) {
        return Some(l.clone());
    }
    let config_target = &st.config.as_ref()?.target;
    let target = &crate::runtime::as_process(config_target)?;
    let secrets = st
        .stable
        .as_ref()
        .map(|g| g.launch.secrets.clone())
        .unwrap_or_default();
    Some(Arc::new(LaunchSpec {
        target: target.clone(),
        secrets,
        container: crate::runtime::container_of(config_target),
    }))
}

fn finish(inner: &Inner, slot: &EnvSlot, deploy_id: u64, outcome: DeployOutcome, reason: &str) {
    inner.emit(Event::DeployFinished {
        project: slot.project.clone(),
        environment: slot.environment.clone(),
        deploy_id,
        outcome,
        reason: Some(reason.to_string()),
    });
}

/// `promote` on a frozen environment: the person chose to go forward.
pub(crate) async fn promote_frozen(
    inner: &Arc<Inner>,
    slot: &Arc<EnvSlot>,
) -> Result<(), DeployError> {
    let mut st = slot.state.lock().await;
    let Some(f) = st.frozen.take() else {
        return Err(DeployError::NoDeployInFlight {
            project: slot.project.clone(),
            environment: slot.environment.clone(),
        });
    };
    let reach = st
        .config
        .as_ref()
        .map(Reach::of)
        .ok_or_else(|| unknown(slot))?;
    let mut canary = f.canary;
    let n = usize::try_from(canary.launch.target.instances.max(1)).unwrap_or(1);
    let missing = n.saturating_sub(canary.instances.len());
    let grown = if missing > 0 {
        inner.grow(slot, &mut canary, missing).await
    } else {
        Ok(())
    };
    let published = match grown {
        Ok(()) => inner
            .publish(slot, &reach, f.deploy_id, &[role(STABLE, &canary, 100)])
            .await
            .map_err(|e| crate::error::chain(&e)),
        Err(why) => Err(why),
    };
    if let Err(why) = published {
        // Still frozen: nothing changed for users.
        st.frozen = Some(crate::env::Frozen {
            deploy_id: f.deploy_id,
            canary,
            baseline: f.baseline,
        });
        return Err(DeployError::NotReady(why));
    }
    slot.frozen.store(false, Ordering::Relaxed);
    let mut retired = Vec::new();
    let mut keys = Vec::new();
    if let Some(old) = st.stable.replace(canary.clone()) {
        keys.push((STABLE, old.version));
        retired.push(old);
    }
    if let Some(b) = f.baseline {
        keys.push((BASELINE, b.version));
        retired.push(b);
    }
    st.mark_good(canary.version);
    st.launches.insert(canary.version, canary.launch.clone());
    let why = format!("replaced by deploy {}", f.deploy_id);
    inner.retire(&slot.service, &keys, retired, &why).await;
    finish(
        inner,
        slot,
        f.deploy_id,
        DeployOutcome::Succeeded,
        "promoted by hand after a freeze",
    );
    Ok(())
}

/// Ends the rollback window after `after`, unless something ended it first.
pub(crate) fn schedule_warm_end(
    inner: Arc<Inner>,
    slot: Arc<EnvSlot>,
    after: Duration,
    deploy_id: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let mut st = slot.state.lock().await;
        if st
            .warm
            .as_ref()
            .is_some_and(|w| w.until_deploy == deploy_id)
        {
            end_warm(&inner, &slot, &mut st, false).await;
        }
    })
}

/// Stops blue kept warm after a blue/green switch. `abort_timer` is false
/// when called from the timer itself (a task must not abort itself).
pub(crate) async fn end_warm(
    inner: &Arc<Inner>,
    slot: &EnvSlot,
    st: &mut EnvState,
    abort_timer: bool,
) {
    let Some(mut warm) = st.warm.take() else {
        return;
    };
    if let Some(t) = warm.timer.take()
        && abort_timer
    {
        t.abort();
    }
    if let (Some(stable), Some(config)) = (&st.stable, &st.config) {
        let reach = Reach::of(config);
        let roles = [role(STABLE, stable, 100)];
        if let Err(e) = inner.publish(slot, &reach, stable.deploy_id, &roles).await {
            tracing::error!(error = %e, "cannot take the warm version out of the routes");
        }
    }
    let v = warm.group.version;
    let keys = [(PREVIOUS, v), (STABLE, v)];
    inner
        .retire(
            &slot.service,
            &keys,
            vec![warm.group],
            "rollback window ended",
        )
        .await;
}
