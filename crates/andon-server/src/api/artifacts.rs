//! Artifacts by digest.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub(crate) async fn of_run(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Vec<Value>>> {
    let views = state.read_views();
    let run = views
        .runs
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    Ok(Json(
        run.jobs
            .iter()
            .flat_map(|j| {
                j.artifacts
                    .iter()
                    .map(|(path, digest)| json!({"job": j.name, "path": path, "digest": digest}))
            })
            .collect(),
    ))
}

/// The artifact's bytes (a tar stream), verified against its digest first:
/// a corrupted blob is refused, never served.
pub(crate) async fn download(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let digest: andon_artifacts::Digest = digest.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{digest}` is not a digest; expected sha256:<64 hex digits>"
        ))
    })?;
    if !state.artifacts.has(&digest) {
        return Err(ApiError::NotFound(format!("no artifact {digest}")));
    }
    let store = state.artifacts.clone();
    let d = digest;
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        store.verify(&d).map_err(|e| e.to_string())?;
        let path = store.get_path(&d).ok_or("vanished")?;
        std::fs::read(path).map_err(|e| e.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::Conflict(format!("artifact {digest} failed verification: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::ETAG, format!("\"{digest}\"")),
        ],
        Body::from(bytes),
    )
        .into_response())
}
