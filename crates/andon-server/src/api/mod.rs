//! The HTTP API: `/api/v1/...` (bearer tokens), `/healthz`, `/metrics`.
//!
//! Handlers are thin: they check the caller's role, append events through
//! [`AppState::append`], and answer from the projections.

mod agents;
mod artifacts;
pub(crate) mod deploys;
mod environments;
mod events;
mod flags;
pub(crate) mod flow;
mod ofrep;
mod projects;
mod runs;
mod secrets;
mod tokens;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

pub(crate) use projects::no_project;

use crate::error::error_body;
use crate::state::AppState;

/// Request bodies above this are refused with 413 before any handler runs.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

static OPENAPI: &str = include_str!("../openapi.json");

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/projects", get(projects::list).post(projects::add))
        .route(
            "/projects/{project}",
            get(projects::show).delete(projects::remove),
        )
        .route(
            "/projects/{project}/runs",
            get(runs::list).post(runs::trigger),
        )
        .route("/projects/{project}/secrets", get(secrets::list))
        .route(
            "/projects/{project}/secrets/{name}",
            put(secrets::set).delete(secrets::remove),
        )
        .route(
            "/projects/{project}/environments",
            get(deploys::environments),
        )
        .route(
            "/projects/{project}/environments/{env}",
            get(environments::show)
                .put(environments::up)
                .delete(environments::down),
        )
        .route(
            "/projects/{project}/environments/{env}/deploys",
            post(deploys::deploy),
        )
        .route(
            "/projects/{project}/environments/{env}/{action}",
            post(deploys::command),
        )
        .route("/projects/{project}/deploys", get(deploys::list_deploys))
        .route("/deploys/{id}", get(deploys::show_deploy))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/jobs/{job}/log", get(runs::log))
        .route("/runs/{id}/artifacts", get(artifacts::of_run))
        .route("/artifacts/{digest}", get(artifacts::download))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/webhooks/{forge}", post(webhooks::receive))
        .merge(flags::routes())
        .merge(agents::routes())
        .merge(flow::routes())
        .route("/cluster", get(crate::cluster::status))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", api)
        .merge(ofrep::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::render))
        .merge(andon_dashboard::router())
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

/// Turns every error answer that is not already JSON — axum's own
/// rejections (bad JSON, bad path parameter, 405, 413) — into the contract's
/// JSON error shape, keeping the status and the reason.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let mut out = error_body(status, code, &message);
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
