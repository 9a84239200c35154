//! Monitoring after the release: the `alerts:` of each environment keep
//! watching the router's live counters of the version it serves, once no
//! release is in flight (during a release the judge watches).
//!
//! The decision — a limit crossed for `for`, resolved after `for` of
//! health, with hysteresis — is `andon_judge::AlertMonitor` (pure); this
//! loop feeds it, records `AlertFired` / `AlertResolved`, and acts once per
//! firing: inside the environment's `rollback_window` (counted from the
//! end of the release that put the version there) it rolls back to the
//! last known good version with the controller's one-route-update
//! rollback; after it, or with nothing to go back to, it opens an
//! incident linked to that release. Subscribers are notified of both by
//! the notification task (`AlertFired`, `IncidentOpened` and the rollback's
//! `DeployFinished` are notable events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andon_artifacts::Digest;
use andon_config::{AlertRules, Environment};
use andon_core::{DeployOutcome, DeployPhase, EnvKey, Event};
use andon_deploy::{Controller, RollbackRequest};
use andon_judge::{AlertChange, AlertConfig, AlertMonitor, AlertRule};

use crate::state::AppState;

/// How often the router's counters are read.
const SCRAPE: Duration = Duration::from_millis(500);
/// How often the environments and their rules are read again from
/// `andon.yaml` (trunk, and each on-demand environment's commit).
const CONFIG_REFRESH: Duration = Duration::from_secs(5);

struct Watch {
    rules: AlertRules,
    monitor: AlertMonitor,
    version: Option<Digest>,
}

/// Follows every environment with `alerts:` until the server stops.
pub(crate) async fn run(state: Arc<AppState>) {
    let Some(ctl) = state.controller.get() else {
        return;
    };
    let start = Instant::now();
    let mut watches: BTreeMap<EnvKey, Watch> = BTreeMap::new();
    let mut watched: Vec<(String, Environment)> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    let mut tick = tokio::time::interval(SCRAPE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|t| t.elapsed() >= CONFIG_REFRESH) {
            watched = environments(&state).await;
            refreshed = Some(Instant::now());
            watches.retain(|k, _| watched.iter().any(|(p, e)| *p == k.0 && e.name == k.1));
        }
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        for (project, env) in &watched {
            check(&state, ctl, &mut watches, project, env, now).await;
        }
    }
}

/// Environments with alert rules: the trunk config's (templates aside) and
/// the on-demand ones made from a template with rules.
async fn environments(state: &AppState) -> Vec<(String, Environment)> {
    let projects: Vec<String> = state
        .read_views()
        .projects
        .all()
        .map(|p| p.name.clone())
        .collect();
    let mut out = Vec::new();
    for project in projects {
        if let Ok((_, cfg)) = crate::deploy::trunk_config(state, &project).await {
            out.extend(
                cfg.environments
                    .into_iter()
                    .filter(|e| e.alerts.is_some() && !crate::environments::is_template(e))
                    .map(|e| (project.clone(), e)),
            );
        }
    }
    for spec in crate::environments::specs(state).await {
        if spec.environment.alerts.is_some() {
            out.push((spec.project, spec.environment));
        }
    }
    out
}

fn monitor(rules: &AlertRules) -> Option<AlertMonitor> {
    let cfg = AlertConfig::new(rules.max_error_rate, rules.max_p99, rules.for_);
    match AlertMonitor::new(cfg) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "alert rules cannot be watched");
            None
        }
    }
}

async fn check(
    state: &AppState,
    ctl: &Controller,
    watches: &mut BTreeMap<EnvKey, Watch>,
    project: &str,
    env: &Environment,
    now: u64,
) {
    let Some(rules) = &env.alerts else { return };
    let key: EnvKey = (project.to_string(), env.name.clone());
    let (serving, firing) = {
        let views = state.read_views();
        let serving = views
            .deploys
            .env(project, &env.name)
            .is_some_and(|v| v.current_deploy.is_none() && v.stable.is_some());
        let firing = views
            .deploys
            .alerts_firing
            .get(&key)
            .cloned()
            .unwrap_or_default();
        (serving, firing)
    };
    if watches.get(&key).is_none_or(|w| w.rules != *rules) {
        let Some(mut m) = monitor(rules) else { return };
        for r in firing.iter().filter_map(|r| AlertRule::parse(r)) {
            m.assume_firing(r);
        }
        watches.insert(
            key.clone(),
            Watch {
                rules: rules.clone(),
                monitor: m,
                version: None,
            },
        );
    }
    let Some(w) = watches.get_mut(&key) else {
        return;
    };
    if !serving {
        // A release in flight (the judge watches it) or nothing deployed.
        w.monitor.restart_window();
        w.version = None;
        return;
    }
    let (version, stats) = match ctl.live_stats(project, &env.name).await {
        Ok(Some(live)) => live,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the router's counters");
            return;
        }
    };
    if w.version != Some(version) {
        w.monitor.restart_window();
        w.version = Some(version);
    }
    let mut fired: Option<(AlertRule, String)> = None;
    let mut events = Vec::new();
    for change in w.monitor.observe(now, &stats) {
        match change {
            AlertChange::Fired { rule, sentence } => {
                events.push(Event::AlertFired {
                    project: project.to_string(),
                    environment: env.name.clone(),
                    rule: rule.as_str().to_string(),
                    sentence: sentence.clone(),
                });
                fired.get_or_insert((rule, sentence));
            }
            AlertChange::Resolved { rule, sentence } => events.push(Event::AlertResolved {
                project: project.to_string(),
                environment: env.name.clone(),
                rule: rule.as_str().to_string(),
                sentence,
            }),
        }
    }
    if events.is_empty() {
        return;
    }
    if let Err(e) = state.append("andon", events) {
        tracing::error!(error = %e, "could not record an alert");
        return;
    }
    if let Some((rule, sentence)) = fired {
        act(state, ctl, project, env, rule, &sentence).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Rolls back inside the rollback window, else opens an incident.
async fn act(
    state: &AppState,
    ctl: &Controller,
    project: &str,
    env: &Environment,
    rule: AlertRule,
    sentence: &str,
) {
    let release = state
        .read_views()
        .deploys
        .deploys
        .values()
        .rev()
        .find(|d| {
            d.project == project
                && d.environment == env.name
                && d.phase == DeployPhase::Finished(DeployOutcome::Succeeded)
        })
        .map(|d| (d.id, d.finished_at_ms.unwrap_or(d.requested_at_ms)));
    let window_ms = i64::try_from(env.rollback_window.as_millis()).unwrap_or(i64::MAX);
    let inside = release.is_some_and(|(_, at)| now_ms().saturating_sub(at) <= window_ms);
    let why = format!("alert {}: {sentence}", rule.as_str());
    if inside {
        match rollback(state, ctl, project, &env.name, &why).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%project, environment = %env.name, error = %e, "no rollback on an alert; opening an incident")
            }
        }
    }
    let title = format!("{}: {sentence}", env.name);
    let opened = state.append_with("andon", |views| {
        (
            vec![Event::IncidentOpened {
                project: project.to_string(),
                incident_id: views.next_incident_id,
                environment: env.name.clone(),
                deploy_id: release.map(|(id, _)| id),
                title: title.clone(),
            }],
            (),
        )
    });
    if let Err(e) = opened {
        tracing::error!(error = %e, "could not open an incident");
    }
}

async fn rollback(
    state: &AppState,
    ctl: &Controller,
    project: &str,
    environment: &str,
    why: &str,
) -> Result<(), String> {
    let target = ctl
        .rollback_target(project, environment)
        .await
        .ok_or_else(|| "no earlier good version".to_string())?;
    let deploy_id = state
        .append_with("andon", |views| {
            let id = views.deploys.next_id();
            (
                vec![Event::DeployRequested {
                    project: project.to_string(),
                    environment: environment.to_string(),
                    deploy_id: id,
                    version: target.to_string(),
                    strategy: "rollback".into(),
                    run_id: None,
                    commit: None,
                    reason: Some(why.to_string()),
                }],
                id,
            )
        })
        .map_err(|e| e.to_string())?;
    ctl.rollback(RollbackRequest {
        project: project.to_string(),
        environment: environment.to_string(),
        deploy_id,
        to: Some(target),
    })
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}
