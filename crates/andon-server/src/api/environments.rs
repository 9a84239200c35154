//! Environments made on demand: `PUT` makes (or moves) one from a ref,
//! `GET` shows it, `DELETE` tears it down. See `crate::environments`.

use std::sync::Arc;

use andon_core::{Event, Role, RunStatus, Trigger};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Deployer};
use crate::environments::{check_name, render, template, view_json};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{pipeline, repo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpReq {
    /// Branch, tag or commit whose pipeline run's artifact to deploy.
    from: String,
    /// The template entry (default: the only one).
    #[serde(default)]
    template: Option<String>,
    /// `2h`, `30m`, ...; default: the template's `ttl`, else none.
    #[serde(default)]
    ttl: Option<String>,
}

/// `andon env up NAME --from REF`.
pub(crate) async fn up(
    Deployer(caller): Deployer,
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    Json(req): Json<UpReq>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_env(Role::Deployer, &name)?;
    check_name(&name)?;
    let ttl = req
        .ttl
        .as_deref()
        .map(andon_config::parse_duration)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("ttl: {e}")))?;
    let repo_url = state
        .read_views()
        .projects
        .get(&project)
        .map(|p| p.repo.clone())
        .ok_or_else(|| super::no_project(&project))?;
    let mirror = state.mirror_path(&project);
    repo::sync(&repo_url, &mirror)
        .await
        .map_err(|e| ApiError::Conflict(format!("could not fetch `{repo_url}`: {e}")))?;
    let commit = repo::resolve(&mirror, &req.from).await.map_err(|_| {
        ApiError::BadRequest(format!(
            "`{}` is not a branch, tag or commit of project `{project}`",
            req.from
        ))
    })?;
    let cfg = crate::deploy::config_at(&state, &project, &commit).await?;
    if cfg.environments.iter().any(|e| e.name == name) {
        return Err(ApiError::Conflict(format!(
            "`{name}` is an environment of andon.yaml; choose another name for one made on demand"
        )));
    }
    let tpl = template(&cfg, req.template.as_deref())?;
    let env = render(tpl, &project, &name, ttl);
    // The run of that commit: the newest that passed or is still going;
    // else a new one.
    let found = state
        .read_views()
        .runs
        .of_project(&project)
        .filter(|r| r.commit == commit)
        .find(|r| {
            matches!(
                r.status,
                RunStatus::Passed | RunStatus::Queued | RunStatus::Running | RunStatus::Failed
            )
        })
        .map(|r| (r.id, r.status));
    let run_id = match found {
        Some((id, RunStatus::Failed)) => {
            return Err(ApiError::Conflict(format!(
                "run {id} of {} failed; fix it (or `andon trigger {project} --ref {}`) before making an environment of it",
                &commit[..commit.len().min(12)],
                req.from
            )));
        }
        Some((id, _)) => id,
        None => {
            let heads = repo::heads(&mirror).await.map_err(ApiError::internal)?;
            let branch = if heads.contains_key(&req.from) {
                req.from.clone()
            } else {
                heads
                    .iter()
                    .find(|(_, c)| **c == commit)
                    .map(|(b, _)| b.clone())
                    .unwrap_or(req.from.clone())
            };
            pipeline::queue_run(
                &state,
                &caller.name,
                &project,
                &branch,
                &commit,
                Trigger::Manual,
            )
            .await?
            .ok_or_else(|| ApiError::internal("the run was deduplicated"))?
        }
    };
    let existed = state
        .read_views()
        .deploys
        .on_demand
        .contains_key(&(project.clone(), name.clone()));
    state.append(
        &caller.name,
        vec![Event::EnvironmentUp {
            project: project.clone(),
            environment: name.clone(),
            template: tpl.name.clone(),
            reference: req.from.clone(),
            commit,
            run_id: Some(run_id),
            host: env.host.clone(),
            ttl_ms: env
                .ttl
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }],
    )?;
    let views = state.read_views();
    let v = views
        .deploys
        .on_demand
        .get(&(project.clone(), name.clone()))
        .map(|v| view_json(&state, &views, v))
        .unwrap_or(Value::Null);
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(v)))
}

/// One environment made on demand.
pub(crate) async fn show(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let views = state.read_views();
    views
        .deploys
        .on_demand
        .get(&(project.clone(), name.clone()))
        .map(|v| Json(view_json(&state, &views, v)))
        .ok_or_else(|| not_on_demand(&project, &name))
}

fn not_on_demand(project: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "project `{project}` has no environment `{name}` made on demand; see `andon env list`"
    ))
}

/// `andon env down NAME`: answers once everything is stopped.
pub(crate) async fn down(
    Deployer(caller): Deployer,
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_env(Role::Deployer, &name)?;
    if !state
        .read_views()
        .deploys
        .on_demand
        .contains_key(&(project.clone(), name.clone()))
    {
        return Err(not_on_demand(&project, &name));
    }
    let reason = format!("torn down by {}", caller.name);
    crate::environments::tear_down(&state, &project, &name, &reason).await?;
    Ok(Json(json!({"name": name, "down": true, "reason": reason})))
}
