//! The agents' API, all under `/api/v1/agents/` (so one prefix can be
//! forwarded to the leader when several servers share a store).
//!
//! An agent's token needs the developer role (it receives the secrets of
//! the jobs it runs). The flow of one attempt: a long-polled `lease`, the
//! source and the inputs downloaded, `started`, `log` batches and held
//! `heartbeat`s while it runs, artifacts uploaded by digest (`HEAD` first,
//! `PUT` only what the server lacks), then one `finish`. Every lease-bound
//! call answers 409 once the lease is no longer held: the agent kills the
//! job and discards its results.

use std::sync::Arc;
use std::time::Duration;

use andon_core::{Event, JobOutcome, Role, TestCounts};
use andon_runner::{RemoteOutcome, StoredArtifact};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agents::LeaseError;
use crate::auth::{Caller, Developer};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest a lease request waits for work before answering 204.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Largest artifact an agent may upload (held in memory while hashed).
const MAX_ARTIFACT: usize = 512 * 1024 * 1024;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/agents", get(list))
        .route("/agents/lease", post(lease))
        .route("/agents/leases/{lease}/heartbeat", post(heartbeat))
        .route("/agents/leases/{lease}/started", post(started))
        .route("/agents/leases/{lease}/log", post(log))
        .route("/agents/leases/{lease}/finish", post(finish))
        .route("/agents/leases/{lease}/source", get(source))
        .route(
            "/agents/artifacts/{digest}",
            get(super::artifacts::download)
                .head(has_artifact)
                .put(upload)
                .layer(DefaultBodyLimit::max(MAX_ARTIFACT)),
        )
}

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        ApiError::Conflict(e.to_string())
    }
}

/// `[A-Za-z0-9._-]{1,64}`: agent names and labels.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

async fn list(caller: Caller, State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    Ok(Json(state.agents.describe()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseReq {
    name: String,
    #[serde(default)]
    labels: Vec<String>,
    /// How long to wait for work (default and maximum 30 s).
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// Long poll: answers the oldest attempt this agent's labels fit as soon as
/// there is one, or 204 when `wait_ms` passed without work.
async fn lease(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Json(req): Json<LeaseReq>,
) -> ApiResult<Response> {
    if !valid_name(&req.name) {
        return Err(ApiError::BadRequest(format!(
            "agent name `{}` is invalid: use 1 to 64 letters, digits, `.`, `_` or `-`",
            req.name
        )));
    }
    let mut labels = req.labels;
    if let Some(bad) = labels.iter().find(|l| !valid_name(l)) {
        return Err(ApiError::BadRequest(format!(
            "label `{bad}` is invalid: use letters, digits, `.`, `_` or `-`"
        )));
    }
    labels.sort();
    labels.dedup();
    let agents = &state.agents;
    if agents.touch(&req.name, &labels) {
        state.append(
            &caller.name,
            vec![Event::AgentConnected {
                agent: req.name.clone(),
                labels: labels.clone(),
            }],
        )?;
    }
    let wait = req
        .wait_ms
        .map_or(MAX_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let queued = agents.queued();
        tokio::pin!(queued);
        queued.as_mut().enable();
        if let Some(granted) = agents.take(&req.name, &labels) {
            return Ok(Json(granted.body).into_response());
        }
        tokio::select! {
            () = &mut queued => {}
            () = tokio::time::sleep_until(deadline) => {
                agents.touch(&req.name, &labels);
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
        }
    }
}

/// Renews the lease, then holds the answer (a fifth of the TTL) so that a
/// lease taken back (run cancelled, fail fast) is told at once: 409.
async fn heartbeat(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(lease): Path<String>,
) -> ApiResult<Json<Value>> {
    let agents = &state.agents;
    let changed = agents.heartbeat(&lease)?;
    let notified = changed.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if agents.holds(&lease) {
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(agents.hold()) => {}
        }
    }
    if agents.holds(&lease) {
        Ok(Json(json!({"held": true})))
    } else {
        Err(LeaseError::Gone(lease).into())
    }
}

async fn started(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(lease): Path<String>,
) -> ApiResult<Json<Value>> {
    state.agents.started(&lease)?;
    Ok(Json(json!({"held": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogReq {
    lines: Vec<String>,
}

async fn log(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(lease): Path<String>,
    Json(req): Json<LogReq>,
) -> ApiResult<Json<Value>> {
    state.agents.log(&lease, &req.lines)?;
    Ok(Json(json!({"held": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArtifactReq {
    path: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishReq {
    outcome: JobOutcome,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    tests: Option<TestCounts>,
    #[serde(default)]
    failed_tests: Vec<String>,
    #[serde(default)]
    artifacts: Vec<ArtifactReq>,
    #[serde(default)]
    reason: Option<String>,
}

/// The attempt's one report. Artifacts must have been uploaded first.
async fn finish(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(lease): Path<String>,
    Json(req): Json<FinishReq>,
) -> ApiResult<Json<Value>> {
    if req.outcome == JobOutcome::Skipped {
        return Err(ApiError::BadRequest(
            "an attempt that ran cannot be `skipped`".into(),
        ));
    }
    let mut artifacts = Vec::with_capacity(req.artifacts.len());
    for a in req.artifacts {
        let digest = parse_digest(&a.digest)?;
        if !state.artifacts.has(&digest) {
            return Err(ApiError::BadRequest(format!(
                "artifact `{}` ({digest}) was not uploaded: PUT /api/v1/agents/artifacts/{digest} first",
                a.path
            )));
        }
        artifacts.push(StoredArtifact {
            path: a.path,
            digest,
            size: a.size,
        });
    }
    state.agents.finish(
        &lease,
        RemoteOutcome {
            agent: None,
            started: false,
            outcome: req.outcome,
            exit_code: req.exit_code,
            duration_ms: req.duration_ms,
            tests: req.tests,
            failed_tests: req.failed_tests,
            artifacts,
            reason: req.reason,
            lost: false,
        },
    )?;
    Ok(Json(json!({"accepted": true})))
}

/// The run's commit as a tar stream (`git archive` of the server's mirror).
async fn source(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(lease): Path<String>,
) -> ApiResult<Response> {
    let src = state.agents.source(&lease)?;
    let mirror = state.mirror_path(&src.project);
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(&mirror)
        .args(["archive", "--format=tar", &src.commit])
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(ApiError::internal)?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "git archive {} failed: {}",
            src.commit,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from(out.stdout),
    )
        .into_response())
}

fn parse_digest(s: &str) -> ApiResult<andon_artifacts::Digest> {
    s.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{s}` is not a digest; expected sha256:<64 hex digits>"
        ))
    })
}

/// 200 when the server has the blob (nothing to upload), 404 otherwise.
async fn has_artifact(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> ApiResult<StatusCode> {
    let digest = parse_digest(&digest)?;
    if state.artifacts.has(&digest) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::NotFound(format!("no artifact {digest}")))
    }
}

/// Stores an uploaded blob, refused unless its bytes hash to the digest.
async fn upload(
    _: Developer,
    State(state): State<Arc<AppState>>,
    Path(digest): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let digest = parse_digest(&digest)?;
    let size = body.len();
    if state.artifacts.has(&digest) {
        return Ok((
            StatusCode::OK,
            Json(json!({"digest": digest.to_string(), "size": size, "stored": false})),
        ));
    }
    if andon_artifacts::Digest::of(&body) != digest {
        return Err(ApiError::BadRequest(format!(
            "the body does not hash to {digest}"
        )));
    }
    let store = state.artifacts.clone();
    tokio::task::spawn_blocking(move || store.put_bytes(&body))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"digest": digest.to_string(), "size": size, "stored": true})),
    ))
}
