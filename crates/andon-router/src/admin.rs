//! The admin API the control plane drives: replace and read the table, read counters.
//!
//! `PUT /routes`, `GET /routes`, `GET /stats`, `GET /metrics`, `GET /healthz`; every call needs
//! `Authorization: Bearer <admin_token>` when a token is configured.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::ProxyBody;
use crate::compiled::Compiled;
use crate::persist;
use crate::reply;
use crate::state::Shared;
use crate::table::RouteTable;

/// Largest route table accepted.
const MAX_TABLE_BYTES: usize = 16 << 20;

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if let Some(token) = &shared.cfg.admin_token
        && !authorized(req.headers(), token)
    {
        return Ok(reply::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid 'Authorization: Bearer <admin token>' header is required",
        ));
    }
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => {
            let generation = shared.table.load().spec.generation;
            reply::json(
                StatusCode::OK,
                &json!({"ok": true, "generation": generation}),
            )
        }
        (&Method::GET, "/routes") => {
            let table = shared.table.load();
            reply::json(
                StatusCode::OK,
                &serde_json::to_value(&table.spec).unwrap_or_default(),
            )
        }
        (&Method::PUT, "/routes") => put_routes(&shared, req).await,
        (&Method::GET, "/stats") => {
            let table = shared.table.load();
            let body = shared
                .registry
                .to_json(table.spec.generation, &table.live_stats);
            reply::json(StatusCode::OK, &body)
        }
        (&Method::GET, "/metrics") => {
            let generation = shared.table.load().spec.generation;
            reply::with_type(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(shared.registry.to_prometheus(generation)),
            )
        }
        (_, "/healthz" | "/routes" | "/stats" | "/metrics") => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        ),
        _ => reply::error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    };
    Ok(resp)
}

/// Compares in constant time so the token cannot be guessed byte by byte from timings.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn put_routes(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let bytes = match Limited::new(req.into_body(), MAX_TABLE_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, "bad_body", &e.to_string()),
    };
    let table: RouteTable = match serde_json::from_slice(&bytes) {
        Ok(t) => t,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
    };
    let _one_at_a_time = shared.update.lock().await;
    let current = shared.table.load().spec.generation;
    if table.generation < current {
        return reply::error(
            StatusCode::CONFLICT,
            "stale_generation",
            &format!(
                "generation {} is older than the current generation {current}",
                table.generation
            ),
        );
    }
    let compiled = match Compiled::new(table.clone(), &shared.registry) {
        Ok(c) => c,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
    };
    let dir = shared.cfg.data_dir.clone();
    let saved = tokio::task::spawn_blocking(move || persist::save(&dir, &table)).await;
    if let Err(e) = saved.map_err(std::io::Error::other).and_then(|r| r) {
        tracing::error!(error = %e, "cannot persist routes");
        return reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "persist_failed",
            &format!("cannot save routes: {e}"),
        );
    }
    let generation = compiled.spec.generation;
    let compiled = Arc::new(compiled);
    shared.table.store(compiled.clone());
    shared.registry.prune(&compiled.live_stats);
    tracing::info!(generation, "route table replaced");
    reply::json(StatusCode::OK, &json!({"generation": generation}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!authorized(&h, "s3cret"));
    }
}
