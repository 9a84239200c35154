//! Watched projects.

use std::sync::Arc;

use andon_core::{Event, ProjectView, Trigger};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{pipeline, repo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddProject {
    name: String,
    repo: String,
    #[serde(default)]
    trunk: Option<String>,
    /// Poll interval, e.g. `60s`; `0s` or absent with webhooks-only turns polling off.
    #[serde(default)]
    poll: Option<String>,
    /// Shared secret for forge webhooks; generated and returned once if absent.
    #[serde(default)]
    webhook_secret: Option<String>,
}

pub(crate) async fn list(_c: Caller, State(state): State<Arc<AppState>>) -> Json<Vec<ProjectView>> {
    Json(state.read_views().projects.all().cloned().collect())
}

pub(crate) async fn show(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    state
        .read_views()
        .projects
        .get(&project)
        .cloned()
        .map(Json)
        .ok_or_else(|| no_project(&project))
}

pub(crate) fn no_project(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no project `{name}`; add it with `andon project add {name} --repo PATH_OR_URL`"
    ))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.')
}

pub(crate) async fn add(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Json(req): Json<AddProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !valid_name(&req.name) {
        return Err(ApiError::BadRequest(format!(
            "invalid project name `{}`: use 1-64 letters, digits, `-`, `_` or `.`",
            req.name
        )));
    }
    if state.read_views().projects.get(&req.name).is_some() {
        return Err(ApiError::Conflict(format!(
            "project `{}` exists; remove it first to change its repository",
            req.name
        )));
    }
    let poll_s = match req.poll.as_deref() {
        None => Some(60),
        Some(p) => {
            let d = andon_config::parse_duration(p)
                .map_err(|e| ApiError::BadRequest(format!("invalid poll interval: {e}")))?;
            (d.as_secs() > 0).then(|| d.as_secs().max(1))
        }
    };
    let mirror = state.mirror_path(&req.name);
    let _ = tokio::fs::remove_dir_all(&mirror).await;
    repo::sync(&req.repo, &mirror).await.map_err(|e| {
        ApiError::BadRequest(format!("could not read repository `{}`: {e}", req.repo))
    })?;
    let heads = repo::heads(&mirror).await.map_err(ApiError::internal)?;
    let trunk = match req.trunk {
        Some(t) => t,
        None => default_trunk(&heads),
    };
    let secret = req.webhook_secret.unwrap_or_else(crate::auth::new_secret);
    state.store.set_secret(
        &format!("project:{}", req.name),
        crate::WEBHOOK_SECRET,
        &secret,
    )?;
    state.append(
        &caller.name,
        vec![Event::ProjectAdded {
            project: req.name.clone(),
            repo: req.repo.clone(),
            trunk: trunk.clone(),
            poll_s,
        }],
    )?;
    // Every other branch's head counts as seen: only new commits run.
    let seen: Vec<Event> = heads
        .iter()
        .filter(|(b, _)| **b != trunk)
        .map(|(b, c)| Event::CommitSeen {
            project: req.name.clone(),
            branch: b.clone(),
            commit: c.clone(),
            message: String::new(),
            author: String::new(),
            committed_at_ms: 0,
        })
        .collect();
    if !seen.is_empty() {
        state.append(&caller.name, seen)?;
    }
    // The trunk's head gets a first run, so a new project shows its state at once.
    let run_id = match heads.get(&trunk) {
        Some(commit) => {
            pipeline::queue_run(
                &state,
                &caller.name,
                &req.name,
                &trunk,
                commit,
                Trigger::Manual,
            )
            .await?
        }
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": req.name,
            "repo": req.repo,
            "trunk": trunk,
            "poll_s": poll_s,
            "webhook_secret": secret,
            "run_id": run_id,
        })),
    ))
}

fn default_trunk(heads: &std::collections::BTreeMap<String, String>) -> String {
    ["main", "master", "trunk"]
        .into_iter()
        .find(|b| heads.contains_key(*b))
        .map(str::to_string)
        .or_else(|| heads.keys().next().cloned())
        .unwrap_or_else(|| "main".to_string())
}

pub(crate) async fn remove(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<StatusCode> {
    if state.read_views().projects.get(&project).is_none() {
        return Err(no_project(&project));
    }
    state.append(&caller.name, vec![Event::ProjectRemoved { project }])?;
    Ok(StatusCode::NO_CONTENT)
}
