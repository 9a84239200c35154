//! Pipeline runs: trigger, list, show, cancel, logs.

use std::convert::Infallible;
use std::sync::Arc;

use andon_core::{RunView, Trigger};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::projects::no_project;
use crate::auth::{Caller, Developer};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{pipeline, repo};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerReq {
    /// Branch, tag or commit; the trunk when absent.
    #[serde(default, rename = "ref")]
    reference: Option<String>,
}

pub(crate) async fn trigger(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Option<Json<TriggerReq>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let (repo_url, trunk) = {
        let views = state.read_views();
        let p = views
            .projects
            .get(&project)
            .ok_or_else(|| no_project(&project))?;
        (p.repo.clone(), p.trunk.clone())
    };
    let mirror = state.mirror_path(&project);
    repo::sync(&repo_url, &mirror)
        .await
        .map_err(|e| ApiError::Conflict(format!("could not fetch `{repo_url}`: {e}")))?;
    let reference = req.reference.unwrap_or_else(|| trunk.clone());
    let commit = repo::resolve(&mirror, &reference).await.map_err(|_| {
        ApiError::BadRequest(format!(
            "`{reference}` is not a branch, tag or commit of project `{project}`"
        ))
    })?;
    let heads = repo::heads(&mirror).await.map_err(ApiError::internal)?;
    let branch = if heads.contains_key(&reference) {
        reference.clone()
    } else {
        heads
            .iter()
            .find(|(_, c)| **c == commit)
            .map(|(b, _)| b.clone())
            .unwrap_or(reference.clone())
    };
    let run_id = pipeline::queue_run(
        &state,
        &caller.name,
        &project,
        &branch,
        &commit,
        Trigger::Manual,
    )
    .await?
    .ok_or_else(|| ApiError::internal("manual trigger was deduplicated"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": run_id, "commit": commit, "branch": branch, "status": "queued"})),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn list(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<RunView>>> {
    let views = state.read_views();
    if views.projects.get(&project).is_none() {
        return Err(no_project(&project));
    }
    let limit = q.limit.unwrap_or(50).min(1000);
    Ok(Json(
        views
            .runs
            .of_project(&project)
            .take(limit)
            .cloned()
            .collect(),
    ))
}

fn no_run(id: u64) -> ApiError {
    ApiError::NotFound(format!("no run {id}; list runs with `andon runs PROJECT`"))
}

pub(crate) async fn show(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<RunView>> {
    state
        .read_views()
        .runs
        .get(id)
        .cloned()
        .map(Json)
        .ok_or_else(|| no_run(id))
}

pub(crate) async fn cancel(
    Developer(_caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    let status = state
        .read_views()
        .runs
        .get(id)
        .map(|r| r.status)
        .ok_or_else(|| no_run(id))?;
    if status.is_finished() {
        return Err(ApiError::Conflict(format!("run {id} already {status}")));
    }
    let token = state
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned();
    match token {
        Some(t) => {
            t.cancel();
            Ok(StatusCode::ACCEPTED)
        }
        None => Err(ApiError::Conflict(format!(
            "run {id} has not started yet; retry in a moment"
        ))),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    #[serde(default)]
    follow: Option<bool>,
}

/// A job's log: plain text, or with `?follow=true` a Server-Sent Events
/// stream of the stored lines then live ones, ending when the job ends.
pub(crate) async fn log(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path((id, job)): Path<(u64, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let known = state
        .read_views()
        .runs
        .get(id)
        .map(|r| r.job(&job).is_some() || r.jobs.is_empty());
    match known {
        None => return Err(no_run(id)),
        Some(false) => {
            return Err(ApiError::NotFound(format!("run {id} has no job `{job}`")));
        }
        Some(true) => {}
    }
    if !q.follow.unwrap_or(false) {
        let text = state.logs.read(id, &job).map_err(ApiError::internal)?;
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    // Subscribe before reading the file, so no line falls between the two.
    let mut live = state.logs.subscribe();
    let stored = state.logs.read(id, &job).map_err(ApiError::internal)?;
    let stream = async_stream::stream! {
        for line in stored.lines() {
            yield Ok::<_, Infallible>(SseEvent::default().event("line").data(line));
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                msg = live.recv() => match msg {
                    Ok(l) if l.run_id == id && l.job == job => {
                        yield Ok(SseEvent::default().event("line").data(l.line.clone()));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    if job_finished(&state, id, &job) {
                        // Lines already published but not yet read still belong to the job.
                        while let Ok(l) = live.try_recv() {
                            if l.run_id == id && l.job == job {
                                yield Ok(SseEvent::default().event("line").data(l.line.clone()));
                            }
                        }
                        yield Ok(SseEvent::default().event("end").data(""));
                        break;
                    }
                }
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn job_finished(state: &AppState, id: u64, job: &str) -> bool {
    let views = state.read_views();
    views.runs.get(id).is_none_or(|r| {
        r.status.is_finished()
            || r.job(job)
                .is_some_and(|j| !j.is_running() && j.status != "pending")
    })
}
