//! The flow endpoints: the gate (is the line stopped?), DORA metrics,
//! incidents and postmortems, the board, notification attempts; and the
//! checks a deploy passes before anything else (cord, window, freeze).

use std::sync::Arc;

use andon_core::{Event, Role};
use andon_flow::Refusal;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Deployer, Developer, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The default metrics period.
const DEFAULT_DAYS: i64 = 30;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/projects/{project}/gate", get(gate))
        .route("/projects/{project}/metrics", get(metrics))
        .route("/projects/{project}/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/postmortem", put(postmortem))
        .route("/incidents/{id}/resolve", post(resolve))
        .route("/projects/{project}/board", get(board))
        .route("/projects/{project}/cards", post(add_card))
        .route("/projects/{project}/cards/{id}/move", post(move_card))
        .route("/projects/{project}/notifications", get(notifications))
}

fn known_project(state: &AppState, project: &str) -> ApiResult<()> {
    if state.read_views().projects.get(project).is_some() {
        Ok(())
    } else {
        Err(super::no_project(project))
    }
}

/// A refusal as the API's error: its own code, the sentence, and when a
/// retry can succeed.
pub(crate) fn refused(status: StatusCode, r: &Refusal) -> ApiError {
    ApiError::Refused {
        status,
        code: r.code(),
        message: r.to_string(),
    }
}

/// 200 `{"status":"green"}` or 423 `{"status":"stopped", ...}`. The 423 is
/// an answer, not a failure, but it also carries the contract's `error`
/// object so a client that treats every 4xx as an error reads a reason.
async fn gate(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    caller.require(Role::Viewer)?;
    known_project(&state, &project)?;
    let views = state.read_views();
    let cord = &views.flow.cord;
    let Some(stop) = cord.stop(&project) else {
        return Ok(Json(json!({"status": "green", "project": project})).into_response());
    };
    let refusal = cord
        .production_deploy_allowed(&project, None)
        .err()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let body = json!({
        "status": "stopped",
        "project": project,
        "since_ms": stop.since_ms,
        "run_id": stop.run_id,
        "commit": stop.commit,
        "fixer": cord.fixer(&project),
        "error": {"code": "line_stopped", "message": refusal},
    });
    Ok((StatusCode::LOCKED, Json(body)).into_response())
}

/// Checks run before a deploy is even resolved: the production line and
/// the environment's window and freezes. Records `deploy_refused` for a
/// refusal and `line_overridden` when an override lets it through.
pub(crate) async fn check_deploy(
    state: &AppState,
    caller: &Caller,
    project: &str,
    env_name: &str,
    version: &str,
    override_reason: Option<&str>,
) -> ApiResult<()> {
    known_project(state, project)?;
    // Without a trunk config there is nothing to check against; the
    // deploy itself reports the missing config.
    let Ok(cfg) = crate::flow::trunk_config(state, project).await else {
        return Ok(());
    };
    let refuse = |r: Refusal| -> ApiResult<()> {
        state.append(
            &caller.name,
            vec![Event::DeployRefused {
                project: project.to_string(),
                environment: env_name.to_string(),
                version: version.to_string(),
                reason: r.to_string(),
            }],
        )?;
        Err(refused(StatusCode::LOCKED, &r))
    };
    let is_production = andon_flow::production_environment(&cfg.environments) == Some(env_name);
    if is_production {
        let allowed = state
            .read_views()
            .flow
            .cord
            .production_deploy_allowed(project, override_reason);
        if let Err(r) = allowed {
            return refuse(r);
        }
    }
    if let Some(env) = cfg.environments.iter().find(|e| e.name == env_name)
        && let Err(r) = andon_flow::ReleasePolicy::check_deploy(env, now_ms())
    {
        return refuse(r);
    }
    let stopped = state.read_views().flow.cord.is_stopped(project);
    if is_production
        && stopped
        && let Some(reason) = override_reason.map(str::trim).filter(|r| !r.is_empty())
    {
        state.append(
            &caller.name,
            vec![Event::LineOverridden {
                project: project.to_string(),
                environment: env_name.to_string(),
                reason: reason.to_string(),
            }],
        )?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct MetricsQuery {
    env: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `2026-11-30T12:00:00Z` or `2026-11-30` (midnight UTC) → ms.
fn parse_date(name: &str, text: &str) -> ApiResult<i64> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(z) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    Err(ApiError::BadRequest(format!(
        "`{name}` must be an RFC 3339 time or a date like 2026-11-30, not `{text}`"
    )))
}

async fn metrics(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    known_project(&state, &project)?;
    let until = match &q.until {
        Some(t) => parse_date("until", t)?,
        None => now_ms(),
    };
    let since = match &q.since {
        Some(t) => parse_date("since", t)?,
        None => until.saturating_sub(DEFAULT_DAYS * DAY_MS),
    };
    if since >= until {
        return Err(ApiError::BadRequest(
            "`since` must be before `until`".into(),
        ));
    }
    let env = match q.env {
        Some(e) => e,
        None => default_env(&state, &project).await,
    };
    let m = state
        .read_views()
        .flow
        .dora
        .metrics(&project, &env, since, until);
    let mut body = serde_json::to_value(&m).map_err(ApiError::internal)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("project".into(), json!(project));
        obj.insert("environment".into(), json!(env));
        obj.insert("since_ms".into(), json!(since));
        obj.insert("until_ms".into(), json!(until));
    }
    Ok(Json(body))
}

/// The production environment of the trunk config, else `production`.
pub(crate) async fn default_env(state: &AppState, project: &str) -> String {
    if let Some(p) = state.read_views().flow.production_env(project) {
        return p.to_string();
    }
    match crate::flow::trunk_config(state, project).await {
        Ok(cfg) => andon_flow::production_environment(&cfg.environments)
            .unwrap_or("production")
            .to_string(),
        Err(_) => "production".to_string(),
    }
}

async fn incidents(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    known_project(&state, &project)?;
    let views = state.read_views();
    let list = views.flow.incidents.of_project(&project);
    Ok(Json(
        serde_json::to_value(list).map_err(ApiError::internal)?,
    ))
}

fn no_incident(id: u64) -> ApiError {
    ApiError::NotFound(format!("no incident {id}"))
}

async fn incident(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    let views = state.read_views();
    let inc = views
        .flow
        .incidents
        .get(id)
        .ok_or_else(|| no_incident(id))?;
    Ok(Json(serde_json::to_value(inc).map_err(ApiError::internal)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostmortemReq {
    #[serde(default)]
    went_right: String,
    #[serde(default)]
    went_wrong: String,
    #[serde(default)]
    action_items: Vec<String>,
}

async fn postmortem(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    Json(req): Json<PostmortemReq>,
) -> ApiResult<Json<Value>> {
    if state.read_views().flow.incidents.get(id).is_none() {
        return Err(no_incident(id));
    }
    state.append(
        &caller.name,
        vec![Event::PostmortemWritten {
            incident_id: id,
            went_right: req.went_right,
            went_wrong: req.went_wrong,
            action_items: req.action_items,
        }],
    )?;
    incident(caller, State(state), Path(id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveReq {
    #[serde(default)]
    note: String,
}

async fn resolve(
    Deployer(caller): Deployer,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    Json(req): Json<ResolveReq>,
) -> ApiResult<Json<Value>> {
    let open = {
        let views = state.read_views();
        let inc = views
            .flow
            .incidents
            .get(id)
            .ok_or_else(|| no_incident(id))?;
        inc.resolved_at_ms.is_none()
    };
    if !open {
        return Err(ApiError::Conflict(format!(
            "incident {id} is already resolved"
        )));
    }
    state.append(
        &caller.name,
        vec![Event::IncidentResolved {
            incident_id: id,
            note: req.note,
        }],
    )?;
    incident(caller, State(state), Path(id)).await
}

/// Learns the board's columns from the trunk config when there is one.
async fn with_config(state: &AppState, project: &str) -> ApiResult<()> {
    known_project(state, project)?;
    let _ = crate::flow::trunk_config(state, project).await;
    Ok(())
}

async fn board(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    with_config(&state, &project).await?;
    let now = now_ms();
    let since = now.saturating_sub(DEFAULT_DAYS * DAY_MS);
    let views = state.read_views();
    let Some(b) = views.flow.boards.get(&project) else {
        return Err(super::no_project(&project));
    };
    let columns: Vec<Value> = b
        .columns()
        .iter()
        .map(|c| {
            let cards: Vec<Value> = b
                .in_column(&c.name)
                .into_iter()
                .filter_map(|id| b.card(id))
                .map(|card| {
                    json!({
                        "id": card.id,
                        "title": card.title,
                        "column": card.column,
                        "created_at_ms": card.created_at_ms,
                        "lead_time_s": card.lead_time_ms().map(|ms| ms as f64 / 1000.0),
                        "cycle_time_s": card.cycle_time_ms().map(|ms| ms as f64 / 1000.0),
                    })
                })
                .collect();
            json!({"name": c.name, "wip": c.wip, "count": cards.len(), "cards": cards})
        })
        .collect();
    Ok(Json(json!({
        "project": project,
        "columns": columns,
        "lead_time_median_s": b.lead_time_median_s(since, now),
        "cycle_time_median_s": b.cycle_time_median_s(since, now),
        "cumulative_flow": b.cumulative_flow(since, now),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCard {
    title: String,
    #[serde(default)]
    column: Option<String>,
}

async fn add_card(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Json(req): Json<AddCard>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let title = req.title.trim().to_string();
    if title.is_empty() || title.len() > 500 {
        return Err(ApiError::BadRequest(
            "`title` must be 1 to 500 characters".into(),
        ));
    }
    with_config(&state, &project).await?;
    let id = state.append_with(&caller.name, |views| {
        let Some(b) = views.flow.boards.get(&project) else {
            return (Vec::new(), Err(super::no_project(&project)));
        };
        let column = req
            .column
            .clone()
            .or_else(|| b.columns().first().map(|c| c.name.clone()))
            .unwrap_or_default();
        if let Err(r) = b.check_create(&column, false) {
            return (Vec::new(), Err(refused(StatusCode::CONFLICT, &r)));
        }
        let id = b.cards().map(|c| c.id).max().unwrap_or(0) + 1;
        (
            vec![Event::CardCreated {
                project: project.clone(),
                card_id: id,
                title: title.clone(),
                column,
            }],
            Ok(id),
        )
    })??;
    let views = state.read_views();
    let card = views.flow.boards.get(&project).and_then(|b| b.card(id));
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "title": title, "column": card.map(|c| c.column.clone())})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveCard {
    to: String,
    #[serde(default)]
    override_reason: Option<String>,
}

async fn move_card(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, u64)>,
    Json(req): Json<MoveCard>,
) -> ApiResult<Json<Value>> {
    if req.override_reason.is_some() {
        // Only an admin passes a full column, and only with a reason.
        caller.require(Role::Admin)?;
    }
    with_config(&state, &project).await?;
    state.append_with(&caller.name, |views| {
        let Some(b) = views.flow.boards.get(&project) else {
            return (Vec::new(), Err(super::no_project(&project)));
        };
        match b.move_event(id, &req.to, req.override_reason.as_deref()) {
            Ok(ev) => (vec![ev], Ok(())),
            Err(r @ Refusal::UnknownCard { .. }) => {
                (Vec::new(), Err(refused(StatusCode::NOT_FOUND, &r)))
            }
            Err(r @ Refusal::UnknownColumn { .. }) => {
                (Vec::new(), Err(refused(StatusCode::BAD_REQUEST, &r)))
            }
            Err(r) => (Vec::new(), Err(refused(StatusCode::CONFLICT, &r))),
        }
    })??;
    let views = state.read_views();
    let card = views.flow.boards.get(&project).and_then(|b| b.card(id));
    Ok(Json(
        json!({"id": id, "column": card.map(|c| c.column.clone())}),
    ))
}

async fn notifications(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    known_project(&state, &project)?;
    let views = state.read_views();
    let list: Vec<&crate::flow::Attempt> = views
        .flow
        .attempts
        .get(&project)
        .map(|l| l.iter().rev().collect())
        .unwrap_or_default();
    Ok(Json(
        serde_json::to_value(list).map_err(ApiError::internal)?,
    ))
}
