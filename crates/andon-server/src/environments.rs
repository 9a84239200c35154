//! Environments made on demand (`andon env up NAME --from REF`): a review
//! app per branch, made from a template entry of `andon.yaml` and routed
//! by host name; torn down by hand or when its TTL passes.
//!
//! A template is an `environments:` entry whose `host` holds `{name}`
//! (e.g. `{name}.preview.localhost`): such an entry cannot serve as itself
//! (its host is a pattern), so the placeholder is what marks it, and no
//! new configuration key is needed. Its `ttl`, if any, is the default TTL.
//!
//! Everything here is driven from the log: `EnvironmentUp` records the
//! request (with the run whose artifact it gets), and [`upkeep`] deploys
//! environments whose run has passed and tears down those whose TTL has
//! passed — also after a restart, since both facts are in the fold.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_core::{EnvKey, Event, OnDemandView, RunStatus};
use andon_deploy::{DeployRequest, EnvSpec};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::{AppState, Views};

/// How often the upkeep looks for environments to deploy or tear down.
const TICK: Duration = Duration::from_millis(250);
/// Longest on-demand environment name: it becomes a DNS label.
const MAX_NAME: usize = 40;

/// Whether `env` is a template for environments made on demand.
pub(crate) fn is_template(env: &andon_config::Environment) -> bool {
    env.host.as_deref().is_some_and(|h| h.contains("{name}"))
}

/// A name usable as a DNS label and a directory name: lowercase letters,
/// digits and inner dashes.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{name}` cannot name an environment made on demand: use 1 to {MAX_NAME} lowercase letters, digits and inner dashes (it becomes a host name)"
        )))
    }
}

/// The template to use: the one named, else the only one.
pub(crate) fn template<'a>(
    cfg: &'a andon_config::Config,
    named: Option<&str>,
) -> Result<&'a andon_config::Environment, ApiError> {
    let all: Vec<&andon_config::Environment> =
        cfg.environments.iter().filter(|e| is_template(e)).collect();
    match (named, all.as_slice()) {
        (Some(n), _) => all.iter().copied().find(|e| e.name == n).ok_or_else(|| {
            ApiError::NotFound(format!(
                "andon.yaml has no template `{n}` (a template is an environment whose host has `{{name}}`)"
            ))
        }),
        (None, [one]) => Ok(one),
        (None, []) => Err(ApiError::Conflict(
            "andon.yaml has no template for environments made on demand: add an environment with `host: \"{name}.preview.localhost\"` (and e.g. `ttl: 2h`)".into(),
        )),
        (None, _) => {
            let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
            Err(ApiError::BadRequest(format!(
                "andon.yaml has several templates ({}); say which with `template`",
                names.join(", ")
            )))
        }
    }
}

/// The environment `name` as made from `template`.
pub(crate) fn render(
    template: &andon_config::Environment,
    project: &str,
    name: &str,
    ttl: Option<Duration>,
) -> andon_config::Environment {
    let mut env = template.clone();
    env.name = name.to_string();
    env.host = template
        .host
        .as_ref()
        .map(|h| h.replace("{name}", name).replace("{project}", project));
    env.after = None;
    env.ttl = ttl.or(template.ttl);
    env
}

/// The environment an on-demand view describes, from `andon.yaml` at its commit.
async fn rendered(
    state: &AppState,
    v: &OnDemandView,
) -> Result<andon_config::Environment, ApiError> {
    let cfg = crate::deploy::config_at(state, &v.project, &v.commit).await?;
    let t = template(&cfg, Some(&v.template))?;
    Ok(render(
        t,
        &v.project,
        &v.name,
        v.ttl_ms.map(Duration::from_millis),
    ))
}

/// Specs of the on-demand environments, for recovery after a restart:
/// without them their instances would be stopped as unconfigured.
pub(crate) async fn specs(state: &AppState) -> Vec<EnvSpec> {
    let views: Vec<OnDemandView> = state
        .read_views()
        .deploys
        .on_demand
        .values()
        .cloned()
        .collect();
    let mut out = Vec::new();
    for v in views {
        match rendered(state, &v).await {
            Ok(env) => {
                let secrets =
                    crate::deploy::target_secrets(state, &v.project, &env).unwrap_or_default();
                out.push(EnvSpec {
                    project: v.project.clone(),
                    environment: env,
                    secrets,
                });
            }
            Err(e) => {
                tracing::warn!(project = %v.project, environment = %v.name, error = %e, "cannot recover an environment made on demand")
            }
        }
    }
    out
}

/// Where an on-demand environment is: `waiting` for its run, `deploying`,
/// `ready`, `failed` (its run or its deploy).
fn status(views: &Views, v: &OnDemandView) -> &'static str {
    if let Some(id) = v.deploy_id {
        let env = views.deploys.env(&v.project, &v.name);
        if env.is_some_and(|e| e.current_deploy.is_some()) {
            return "deploying";
        }
        if env.is_some_and(|e| e.stable.is_some()) {
            return "ready";
        }
        return match views.deploys.deploys.get(&id).map(|d| d.phase) {
            Some(andon_core::DeployPhase::Finished(_)) => "failed",
            _ => "deploying",
        };
    }
    match v.run_id.and_then(|r| views.runs.get(r)).map(|r| r.status) {
        Some(RunStatus::Queued | RunStatus::Running) | None => "waiting",
        Some(RunStatus::Passed) => "deploying",
        Some(_) => "failed",
    }
}

/// One on-demand environment as the API shows it.
pub(crate) fn view_json(state: &AppState, views: &Views, v: &OnDemandView) -> Value {
    let env = views.deploys.env(&v.project, &v.name);
    let url = match (&v.host, state.controller.get()) {
        (Some(h), Some(c)) => {
            let port = c
                .router_url()
                .rsplit_once(':')
                .map(|(_, p)| p.trim_end_matches('/').to_string())
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
            Some(match port {
                Some(p) => format!("http://{h}:{p}/"),
                None => format!("http://{h}/"),
            })
        }
        _ => None,
    };
    json!({
        "name": v.name,
        "on_demand": true,
        "template": v.template,
        "ref": v.reference,
        "commit": v.commit,
        "run_id": v.run_id,
        "host": v.host,
        "url": url,
        "ttl_ms": v.ttl_ms,
        "up_at_ms": v.up_at_ms,
        "expires_at_ms": v.expires_at_ms,
        "deploy_id": v.deploy_id,
        "status": status(views, v),
        "stable": env.and_then(|e| e.stable.clone()),
        "current_deploy": env.and_then(|e| e.current_deploy),
        "weights": env.map(|e| json!(e.weights)).unwrap_or(json!({})),
        "instances": env.map(|e| json!(e.instances.values().collect::<Vec<_>>())).unwrap_or(json!([])),
    })
}

/// A project's on-demand environments as the API shows them.
pub(crate) fn on_demand_json(state: &AppState, views: &Views, project: &str) -> Vec<Value> {
    views
        .deploys
        .on_demand
        .values()
        .filter(|v| v.project == project)
        .map(|v| view_json(state, views, v))
        .collect()
}

/// Environments this process is deploying or tearing down right now: the
/// upkeep must not start the same work twice while the first is running.
#[derive(Default)]
struct Busy(Mutex<BTreeSet<EnvKey>>);

impl Busy {
    fn claim(&self, k: &EnvKey) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone())
    }

    fn release(&self, k: &EnvKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(k);
    }
}

/// Deploys on-demand environments whose run passed, tears down those whose
/// TTL passed. Runs until the server stops.
pub(crate) async fn upkeep(state: Arc<AppState>) {
    let busy = Arc::new(Busy::default());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (to_deploy, expired) = {
            let views = state.read_views();
            let to_deploy: Vec<OnDemandView> = views
                .deploys
                .on_demand
                .values()
                .filter(|v| v.deploy_id.is_none())
                .filter(|v| {
                    v.run_id
                        .and_then(|r| views.runs.get(r))
                        .is_some_and(|r| r.status == RunStatus::Passed)
                })
                .cloned()
                .collect();
            (to_deploy, views.deploys.expired(now_ms()))
        };
        for k in expired {
            if !busy.claim(&k) {
                continue;
            }
            let (state, busy) = (state.clone(), busy.clone());
            tokio::spawn(async move {
                let ttl = state
                    .read_views()
                    .deploys
                    .on_demand
                    .get(&k)
                    .and_then(|v| v.ttl_ms)
                    .map(|t| andon_config::format_duration(Duration::from_millis(t)))
                    .unwrap_or_default();
                if let Err(e) =
                    tear_down(&state, &k.0, &k.1, &format!("its TTL of {ttl} passed")).await
                {
                    tracing::error!(project = %k.0, environment = %k.1, error = %e, "could not tear down an expired environment");
                }
                busy.release(&k);
            });
        }
        for v in to_deploy {
            let k = (v.project.clone(), v.name.clone());
            if !busy.claim(&k) {
                continue;
            }
            let (state, busy) = (state.clone(), busy.clone());
            tokio::spawn(async move {
                if let Err(e) = deploy(&state, &v).await {
                    tracing::warn!(project = %v.project, environment = %v.name, error = %e, "could not deploy an environment made on demand");
                }
                busy.release(&k);
            });
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The artifact of a passed run: its only one, else the first by path.
fn artifact_of(views: &Views, run_id: u64) -> Option<String> {
    let run = views.runs.get(run_id)?;
    let mut all: Vec<(&String, &String)> =
        run.jobs.iter().flat_map(|j| j.artifacts.iter()).collect();
    all.sort();
    all.first().map(|(_, d)| (*d).clone())
}

/// Deploys the artifact of the environment's run into it.
async fn deploy(state: &Arc<AppState>, v: &OnDemandView) -> Result<(), ApiError> {
    let Some(ctl) = state.controller.get() else {
        return Err(ApiError::Conflict("this server has no router".into()));
    };
    let run_id = v.run_id.ok_or_else(|| ApiError::internal("no run"))?;
    let digest = artifact_of(&state.read_views(), run_id)
        .ok_or_else(|| ApiError::Conflict(format!("run {run_id} stored no artifact to deploy")))?;
    let version: andon_artifacts::Digest = digest.parse().map_err(ApiError::internal)?;
    let env = rendered(state, v).await?;
    let secrets = crate::deploy::target_secrets(state, &v.project, &env)?;
    let strategy = crate::api::deploys::strategy_name(&env.strategy);
    let commit = v.commit.clone();
    let deploy_id = state.append_with("andon", |views| {
        // Still there, still waiting, and the same request (not an `up` since).
        let current = views
            .deploys
            .on_demand
            .get(&(v.project.clone(), v.name.clone()))
            .filter(|c| c.deploy_id.is_none() && c.up_at_ms == v.up_at_ms);
        if current.is_none() {
            return (Vec::new(), None);
        }
        let id = views.deploys.next_id();
        (
            vec![Event::DeployRequested {
                project: v.project.clone(),
                environment: v.name.clone(),
                deploy_id: id,
                version: digest.clone(),
                strategy: strategy.clone(),
                run_id: Some(run_id),
                commit: Some(commit.clone()),
                reason: Some(format!("env up {} --from {}", v.name, v.reference)),
            }],
            Some(id),
        )
    })?;
    let Some(deploy_id) = deploy_id else {
        return Ok(());
    };
    let stable = state
        .read_views()
        .deploys
        .env(&v.project, &v.name)
        .and_then(|e| e.stable.clone())
        .and_then(|s| s.parse().ok());
    let started = ctl
        .deploy(DeployRequest {
            project: v.project.clone(),
            deploy_id,
            environment: env,
            version,
            secrets,
            stable,
            contract_migration: false,
        })
        .await;
    if let Err(e) = started {
        state.append(
            "andon",
            vec![Event::DeployFinished {
                project: v.project.clone(),
                environment: v.name.clone(),
                deploy_id,
                outcome: andon_core::DeployOutcome::Failed,
                reason: Some(e.to_string()),
            }],
        )?;
        return Err(ApiError::Conflict(e.to_string()));
    }
    Ok(())
}

/// Stops everything an on-demand environment runs, removes its routes and
/// records `EnvironmentDown`.
pub(crate) async fn tear_down(
    state: &AppState,
    project: &str,
    environment: &str,
    reason: &str,
) -> Result<(), ApiError> {
    if let Some(ctl) = state.controller.get() {
        ctl.teardown(project, environment, reason)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    state.append(
        "andon",
        vec![Event::EnvironmentDown {
            project: project.to_string(),
            environment: environment.to_string(),
            reason: reason.to_string(),
        }],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_host_labels() {
        for ok in ["pr-12", "a", "feature-x1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "x-", "Pr-1", "a.b", "a/b", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_template_is_an_environment_whose_host_has_the_placeholder() {
        let cfg = andon_config::parse(
            "andon.yaml",
            r#"
pipeline:
  stages:
    - name: s
      jobs:
        - name: j
          run: "true"
environments:
  production:
    target: { process: { command: ./app } }
  preview:
    target: { process: { command: ./app } }
    host: "{name}.preview.localhost"
    ttl: 2h
"#,
        )
        .unwrap();
        let t = template(&cfg, None).unwrap();
        assert_eq!(t.name, "preview");
        assert!(template(&cfg, Some("production")).is_err());
        let env = render(t, "shop", "pr-7", None);
        assert_eq!(env.name, "pr-7");
        assert_eq!(env.host.as_deref(), Some("pr-7.preview.localhost"));
        assert_eq!(env.ttl, Some(Duration::from_secs(7200)));
        let env = render(t, "shop", "pr-7", Some(Duration::from_secs(60)));
        assert_eq!(env.ttl, Some(Duration::from_secs(60)));
    }
}
