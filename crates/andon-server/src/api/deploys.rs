//! Environments and releases: deploy, promote, pause, resume, abort,
//! rollback. One procedure for every environment.

use std::sync::Arc;

use andon_artifacts::Digest;
use andon_core::{DeployView, EnvView, Event, Role};
use andon_deploy::{Command, DeployRequest, RollbackRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Deployer};
use crate::deploy::{config_at, target_secrets, trunk_config};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn controller(state: &AppState) -> ApiResult<&andon_deploy::Controller> {
    state.controller.get().ok_or_else(|| {
        ApiError::Conflict(
            "this server has no router: start it with `andon server` (which starts one) or pass --router-admin".into(),
        )
    })
}

fn deploy_error(e: andon_deploy::DeployError) -> ApiError {
    use andon_deploy::DeployError as E;
    match e {
        E::UnknownEnvironment { .. } | E::NoDeployInFlight { .. } => {
            ApiError::Conflict(e.to_string())
        }
        other => {
            let text = other.to_string();
            if text.contains("in flight") || text.contains("frozen") {
                ApiError::Conflict(text)
            } else {
                ApiError::Internal(text)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployReq {
    /// An artifact digest, `sha256:...`.
    #[serde(default)]
    artifact: Option<String>,
    /// Or the run that built it (its only artifact, or the one named by `path`).
    #[serde(default)]
    run: Option<u64>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// The release ran a `contract` database migration: no rollback past it.
    #[serde(default)]
    contract_migration: bool,
    /// Deploy to production although the line is stopped; recorded as
    /// `line_overridden` with this reason.
    #[serde(default)]
    override_reason: Option<String>,
}

/// Finds what to deploy: (digest, run, commit).
fn resolve_artifact(
    state: &AppState,
    project: &str,
    req: &DeployReq,
) -> ApiResult<(Digest, Option<u64>, Option<String>)> {
    let views = state.read_views();
    if let Some(a) = &req.artifact {
        let digest: Digest = a.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{a}` is not a digest; expected sha256:<64 hex digits>"
            ))
        })?;
        if !state.artifacts.has(&digest) {
            return Err(ApiError::NotFound(format!(
                "no artifact {digest} in this server's store"
            )));
        }
        // The newest run that produced it tells the commit (for lead time).
        let origin = views.runs.of_project(project).find(|r| {
            r.jobs
                .iter()
                .any(|j| j.artifacts.values().any(|d| *d == digest.to_string()))
        });
        return Ok((
            digest,
            origin.map(|r| r.id),
            origin.map(|r| r.commit.clone()),
        ));
    }
    let Some(run_id) = req.run else {
        return Err(ApiError::BadRequest(
            "give `artifact` (a digest) or `run` (a run id)".into(),
        ));
    };
    let run = views
        .runs
        .get(run_id)
        .filter(|r| r.project == project)
        .ok_or_else(|| ApiError::NotFound(format!("project `{project}` has no run {run_id}")))?;
    if run.status != andon_core::RunStatus::Passed {
        return Err(ApiError::Conflict(format!(
            "run {run_id} {}; only a passed run's artifacts are deployed",
            run.status
        )));
    }
    let all: Vec<(&String, &String)> = run.jobs.iter().flat_map(|j| j.artifacts.iter()).collect();
    let chosen = match (&req.path, all.as_slice()) {
        (Some(p), _) => all
            .iter()
            .find(|(path, _)| *path == p)
            .map(|(_, d)| (*d).clone()),
        (None, [(_, d)]) => Some((*d).clone()),
        (None, []) => None,
        (None, _) => {
            let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
            return Err(ApiError::BadRequest(format!(
                "run {run_id} has several artifacts ({}); say which with `path`",
                paths.join(", ")
            )));
        }
    };
    let digest = chosen
        .ok_or_else(|| ApiError::NotFound(format!("run {run_id} stored no such artifact")))?
        .parse()
        .map_err(ApiError::internal)?;
    Ok((digest, Some(run_id), Some(run.commit.clone())))
}

/// The image of `env` when its target is a container: at the commit of the
/// run being deployed, else at trunk's head. `None` for process targets (and
/// when the config cannot be read: the artifact path reports that).
async fn container_image(
    state: &AppState,
    project: &str,
    env: &str,
    run: Option<u64>,
) -> Option<String> {
    let commit = run.and_then(|r| state.read_views().runs.get(r).map(|r| r.commit.clone()));
    let cfg = match commit {
        Some(c) => config_at(state, project, &c).await.ok()?,
        None => trunk_config(state, project).await.ok()?.1,
    };
    match &cfg.environments.iter().find(|e| e.name == env)?.target {
        andon_config::Target::Container(t) => Some(t.image.clone()),
        _ => None,
    }
}

pub(crate) async fn deploy(
    Deployer(caller): Deployer,
    State(state): State<Arc<AppState>>,
    Path((project, env_name)): Path<(String, String)>,
    Json(req): Json<DeployReq>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_env(Role::Deployer, &env_name)?;
    // The cord, windows and freezes first: a refusal needs no router.
    let asked = req
        .artifact
        .clone()
        .or(req.run.map(|r| format!("run {r}")))
        .unwrap_or_default();
    super::flow::check_deploy(
        &state,
        &caller,
        &project,
        &env_name,
        &asked,
        req.override_reason.as_deref(),
    )
    .await?;
    let ctl = controller(&state)?;
    let image = container_image(&state, &project, &env_name, req.run).await;
    let (digest, run_id, commit) = match &image {
        // A container target's version is its image's id on the engine:
        // the image, not a tarball, is what the pipeline built.
        Some(image) => {
            let id = ctl.image_id(image).await.map_err(deploy_error)?;
            let commit = req
                .run
                .and_then(|r| state.read_views().runs.get(r).map(|r| r.commit.clone()));
            (id, req.run, commit)
        }
        None => resolve_artifact(&state, &project, &req)?,
    };
    // The bytes must still hash to their name before anything starts: a blob
    // damaged on disk is refused here, with its reason in the log, instead of
    // failing (or worse) halfway through a release.
    let store = state.artifacts.clone();
    let checked = match image {
        Some(_) => Ok(0),
        None => tokio::task::spawn_blocking(move || store.verify(&digest))
            .await
            .map_err(ApiError::internal)?,
    };
    if let Err(e) = checked {
        let reason = format!("artifact {digest} failed verification: {e}");
        refuse(&state, &caller, &project, &env_name, &digest, &reason)?;
        return Err(ApiError::Conflict(format!(
            "{reason}; it is not deployed. Rebuild it (run the pipeline again)"
        )));
    }
    let cfg = match &commit {
        Some(c) => config_at(&state, &project, c).await?,
        None => trunk_config(&state, &project).await?.1,
    };
    let env = cfg
        .environments
        .iter()
        .find(|e| e.name == env_name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = cfg.environments.iter().map(|e| e.name.as_str()).collect();
            ApiError::NotFound(format!(
                "andon.yaml has no environment `{env_name}` (it has: {})",
                names.join(", ")
            ))
        })?;
    if crate::environments::is_template(&env) {
        return Err(ApiError::Conflict(format!(
            "`{env_name}` is a template for environments made on demand (its host has `{{name}}`): use `andon env up NAME --from REF`"
        )));
    }
    // Promotion order: the same bytes must have succeeded in the environment before.
    if let Some(after) = &env.after {
        let passed = state
            .read_views()
            .deploys
            .env(&project, after)
            .is_some_and(|e| e.good_versions.iter().any(|v| *v == digest.to_string()));
        if !passed {
            let reason = format!(
                "{digest} has not been released to `{after}` yet; `{env_name}` comes after it"
            );
            refuse(&state, &caller, &project, &env_name, &digest, &reason)?;
            return Err(ApiError::Conflict(format!(
                "{reason}: deploy it to `{after}` first"
            )));
        }
    }
    let secrets = target_secrets(&state, &project, &env)?;
    let strategy = strategy_name(&env.strategy);
    let stable = state
        .read_views()
        .deploys
        .env(&project, &env_name)
        .and_then(|e| e.stable.clone())
        .and_then(|s| s.parse().ok());
    let deploy_id = state.append_with(&caller.name, |views| {
        let id = views.deploys.next_id();
        (
            vec![Event::DeployRequested {
                project: project.clone(),
                environment: env_name.clone(),
                deploy_id: id,
                version: digest.to_string(),
                strategy: strategy.clone(),
                run_id,
                commit: commit.clone(),
                reason: req.reason.clone(),
            }],
            id,
        )
    })?;
    let started = ctl
        .deploy(DeployRequest {
            project: project.clone(),
            deploy_id,
            environment: env,
            version: digest,
            secrets,
            stable,
            contract_migration: req.contract_migration,
        })
        .await;
    if let Err(e) = started {
        // The request is a fact; that it never started is one too.
        state.append(
            "deploy",
            vec![Event::DeployFinished {
                project: project.clone(),
                environment: env_name.clone(),
                deploy_id,
                outcome: andon_core::DeployOutcome::Failed,
                reason: Some(e.to_string()),
            }],
        )?;
        return Err(deploy_error(e));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"deploy_id": deploy_id, "version": digest.to_string(), "strategy": strategy})),
    ))
}

fn refuse(
    state: &AppState,
    caller: &Caller,
    project: &str,
    env: &str,
    digest: &Digest,
    reason: &str,
) -> ApiResult<()> {
    state.append(
        &caller.name,
        vec![Event::DeployRefused {
            project: project.to_string(),
            environment: env.to_string(),
            version: digest.to_string(),
            reason: reason.to_string(),
        }],
    )?;
    Ok(())
}

pub(crate) fn strategy_name(s: &andon_config::Strategy) -> String {
    match s {
        andon_config::Strategy::Recreate => "recreate",
        andon_config::Strategy::Rolling { .. } => "rolling",
        andon_config::Strategy::BlueGreen { .. } => "blue-green",
        andon_config::Strategy::Canary { .. } => "canary",
    }
    .to_string()
}

/// `promote`, `pause`, `resume`, `abort` on the release in flight.
pub(crate) async fn command(
    Deployer(caller): Deployer,
    State(state): State<Arc<AppState>>,
    Path((project, env, action)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_env(Role::Deployer, &env)?;
    let cmd = match action.as_str() {
        "promote" => Command::Promote,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "abort" => Command::Abort,
        "rollback" => return rollback(caller, state, project, env).await,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action `{other}`; use promote, pause, resume, abort or rollback"
            )));
        }
    };
    controller(&state)?
        .command(&project, &env, cmd)
        .await
        .map_err(deploy_error)?;
    Ok(StatusCode::ACCEPTED)
}

async fn rollback(
    caller: Caller,
    state: Arc<AppState>,
    project: String,
    env: String,
) -> ApiResult<StatusCode> {
    let ctl = controller(&state)?;
    let target = ctl.rollback_target(&project, &env).await.ok_or_else(|| {
        ApiError::Conflict(format!(
            "`{env}` has no earlier good version to roll back to"
        ))
    })?;
    let deploy_id = state.append_with(&caller.name, |views| {
        let id = views.deploys.next_id();
        (
            vec![Event::DeployRequested {
                project: project.clone(),
                environment: env.clone(),
                deploy_id: id,
                version: target.to_string(),
                strategy: "rollback".into(),
                run_id: None,
                commit: None,
                reason: Some("rollback".into()),
            }],
            id,
        )
    })?;
    ctl.rollback(RollbackRequest {
        project,
        environment: env,
        deploy_id,
        to: Some(target),
    })
    .await
    .map_err(deploy_error)?;
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn environments(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let (_, cfg) = trunk_config(&state, &project).await?;
    let views = state.read_views();
    let mut out: Vec<Value> = cfg
        .environments
        .iter()
        .map(|e| env_json(e, views.deploys.env(&project, &e.name)))
        .collect();
    // Environments made on demand (review apps) after the configured ones.
    out.extend(crate::environments::on_demand_json(
        &state, &views, &project,
    ));
    Ok(Json(out))
}

pub(crate) fn env_json(e: &andon_config::Environment, view: Option<&EnvView>) -> Value {
    json!({
        "name": e.name,
        "after": e.after,
        "strategy": strategy_name(&e.strategy),
        "stable": view.and_then(|v| v.stable.clone()),
        "current_deploy": view.and_then(|v| v.current_deploy),
        "weights": view.map(|v| json!(v.weights)).unwrap_or(json!({})),
        "instances": view.map(|v| json!(v.instances.values().collect::<Vec<_>>())).unwrap_or(json!([])),
        "good_versions": view.map(|v| json!(v.good_versions)).unwrap_or(json!([])),
    })
}

pub(crate) async fn list_deploys(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<DeployView>>> {
    let views = state.read_views();
    if views.projects.get(&project).is_none() {
        return Err(crate::api::no_project(&project));
    }
    Ok(Json(
        views
            .deploys
            .deploys
            .values()
            .rev()
            .filter(|d| d.project == project)
            .take(200)
            .cloned()
            .collect(),
    ))
}

pub(crate) async fn show_deploy(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<DeployView>> {
    state
        .read_views()
        .deploys
        .deploys
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no deploy {id}")))
}
