//! Project secrets. Values go in and never come out through the API: jobs
//! receive them as environment variables, logs show them masked.

use std::sync::Arc;

use andon_core::Event;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::projects::no_project;
use crate::auth::{Admin, Developer};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSecret {
    value: String,
}

fn scope(state: &AppState, project: &str) -> ApiResult<String> {
    if state.read_views().projects.get(project).is_none() {
        return Err(no_project(project));
    }
    Ok(format!("project:{project}"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

pub(crate) async fn list(
    Developer(_caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    let scope = scope(&state, &project)?;
    let names = state
        .store
        .secret_names(&scope)?
        .into_iter()
        .filter(|n| n != crate::WEBHOOK_SECRET)
        .collect();
    Ok(Json(names))
}

pub(crate) async fn set(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    Json(req): Json<SetSecret>,
) -> ApiResult<StatusCode> {
    let scope = scope(&state, &project)?;
    if !valid_name(&name) {
        return Err(ApiError::BadRequest(format!(
            "invalid secret name `{name}`: use letters, digits and `_`, not starting with a digit (it becomes an environment variable)"
        )));
    }
    state.store.set_secret(&scope, &name, &req.value)?;
    state.append(&caller.name, vec![Event::SecretSet { project, name }])?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let scope = scope(&state, &project)?;
    if !state.store.delete_secret(&scope, &name)? {
        return Err(ApiError::NotFound(format!(
            "project `{project}` has no secret `{name}`"
        )));
    }
    state.append(&caller.name, vec![Event::SecretSet { project, name }])?;
    Ok(StatusCode::NO_CONTENT)
}
