//! Tearing an environment down (`andon env down`, or the end of its TTL),
//! and reading the live counters of the version an environment serves
//! (monitoring after a release).
//!
//! Teardown goes in the same order as retiring a version: out of the route
//! table first (new requests get the router's 404, never a dead backend),
//! then drained, then every instance stopped. A release in flight is
//! aborted first so that its task cannot start instances behind our back.

use std::sync::Arc;

use andon_artifacts::Digest;
use andon_judge::VersionStats;

use crate::controller::Inner;
use crate::error::DeployError;
use crate::routes::{self, Reach};

/// Removes `project/environment` from the router and stops everything it
/// runs. Idempotent: an environment the controller does not know only has
/// its routes removed.
pub(crate) async fn teardown(
    inner: &Arc<Inner>,
    project: &str,
    environment: &str,
    reason: &str,
) -> Result<(), DeployError> {
    let service = format!("{project}/{environment}");
    // Removing a service drops its routes whatever the reach says.
    let reach = Reach {
        host: None,
        catch_all: false,
    };
    let slot = inner.slot(project, environment);
    if let Some(slot) = &slot {
        if let Some(ctl) = slot.control() {
            ctl.send_modify(|c| c.abort = true);
        }
        let _ = slot.inflight.subscribe().wait_for(Option::is_none).await;
    }
    let mut guard = match &slot {
        Some(s) => Some(s.state.lock().await),
        None => None,
    };
    let before = inner.routes.current(&service).await?;
    if before.is_some() {
        inner.routes.set(&service, None, &reach).await?;
    }
    if let Some(st) = guard.as_deref_mut() {
        if let Some(t) = st.warm.as_mut().and_then(|w| w.timer.take()) {
            t.abort();
        }
        *st = crate::env::EnvState::default();
    }
    let keys: Vec<(&str, Digest)> = before
        .iter()
        .flat_map(|s| s.versions.iter())
        .filter_map(|v| {
            let role = [
                routes::STABLE,
                routes::CANARY,
                routes::BASELINE,
                routes::GREEN,
                routes::PREVIOUS,
                routes::NEXT,
            ]
            .into_iter()
            .find(|r| *r == v.name)?;
            Some((role, v.version.parse().ok()?))
        })
        .collect();
    inner.drain(&service, &keys).await;
    let doomed: Vec<_> = inner
        .instances
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|i| i.ident.project == project && i.ident.environment == environment)
        .cloned()
        .collect();
    inner.stop_all(doomed, reason).await;
    drop(guard);
    inner.forget_slot(project, environment);
    let dir = inner.env_dir(project, environment);
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    Ok(())
}

/// The router's cumulative counters of the version serving all traffic
/// (the `stable` role), or `None` when the environment serves nothing.
pub(crate) async fn live_stats(
    inner: &Inner,
    project: &str,
    environment: &str,
) -> Result<Option<(Digest, VersionStats)>, DeployError> {
    let stats = inner.routes.api().stats().await?;
    let service = format!("{project}/{environment}");
    Ok(stats
        .live(&service, routes::STABLE)
        .and_then(|c| Some((c.version.parse().ok()?, c.stats))))
}
