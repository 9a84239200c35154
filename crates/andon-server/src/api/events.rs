//! The event log, read back: a page at a time, or live over SSE.

use std::convert::Infallible;
use std::sync::Arc;

use andon_core::Envelope;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct Page {
    /// Only events with a greater sequence number.
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn list(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Query(p): Query<Page>,
) -> ApiResult<Json<Vec<Envelope>>> {
    let limit = p.limit.unwrap_or(500).clamp(1, 5000);
    Ok(Json(state.store.read(p.after, limit)?))
}

/// Past events after `after`, then live ones. Each SSE message's id is the
/// sequence number, so a client that reconnects resumes where it stopped.
pub(crate) async fn stream(
    _c: Caller,
    State(state): State<Arc<AppState>>,
    Query(p): Query<Page>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(p.after);
    // Subscribe first, then read the backlog: an event appended in between
    // arrives on both paths and is skipped by sequence number.
    let mut live = state.bus.subscribe();
    let store = state.store.clone();
    let stream = async_stream::stream! {
        let mut last = resume;
        loop {
            let batch = match store.read(last, 1000) {
                Ok(b) => b,
                Err(e) => { tracing::error!(error = %e, "event stream read failed"); break; }
            };
            if batch.is_empty() { break; }
            for env in batch {
                last = env.seq;
                yield Ok::<_, Infallible>(to_sse(&env));
            }
        }
        loop {
            match live.recv().await {
                Ok(env) if env.seq > last => { last = env.seq; yield Ok(to_sse(&env)); }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the live channel: catch up from the store.
                    while let Ok(batch) = store.read(last, 1000) {
                        if batch.is_empty() { break; }
                        for env in batch { last = env.seq; yield Ok(to_sse(&env)); }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn to_sse(env: &Envelope) -> SseEvent {
    let data = serde_json::to_string(env).unwrap_or_else(|_| "{}".into());
    SseEvent::default()
        .id(env.seq.to_string())
        .event(env.event.kind())
        .data(data)
}
