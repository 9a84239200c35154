//! The OpenFeature Remote Evaluation Protocol (OFREP), as
//! `shared/conformance/ofrep/openapi.yaml` specifies it, and its change
//! notifications over Server-Sent Events (ADR-0008).
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag, `{"context": {...}}`.
//! - `POST /ofrep/v1/evaluate/flags`: every flag, with an `ETag`;
//!   `If-None-Match` answers 304 when nothing changed for that context.
//! - `GET /ofrep/v1/events`: `event: message`, `id: VERSION`,
//!   `data: {"type": "refetchEvaluation", "etag", "lastModified"}` on every
//!   change; `Last-Event-ID` older than the current version gets one at once.
//!
//! Auth: `Authorization: Bearer TOKEN` or `X-API-Key: TOKEN`, any valid
//! token (401 otherwise). The environment is the token's scope, else the
//! context attribute `environment`, else `production`; a scoped token asking
//! for another environment gets 403. SDK tokens are viewer tokens scoped to
//! one environment.
//!
//! Reasons the document does not list are mapped, and the exact one is kept
//! in `metadata.andonReason`: `DEFAULT` (rules exist, none matched) answers
//! `UNKNOWN`, `PREREQUISITE_FAILED` answers `DISABLED` (the off variant is
//! served). A variant whose value is `null` answers without `value`, which
//! OFREP defines as "use the code default".
//!
//! Per request there is no store access and no lock: the token is checked
//! against a cache, the engine is the published snapshot.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use andon_flags::{Context, ErrorCode, Reason, Resolved};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::flags::{Reader, Snapshot};
use crate::state::AppState;

/// The environment when neither the token nor the context names one.
pub(crate) const DEFAULT_ENVIRONMENT: &str = "production";

/// Seconds a hidden client may keep the stream open (ADR-0008's default).
const INACTIVITY_DELAY_SEC: u64 = 120;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_one))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_bulk))
        .route("/ofrep/v1/events", get(events))
}

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let secret = secret(&parts.headers);
        let hash: Option<[u8; 32]> = secret.map(|s| Sha256::digest(s.as_bytes()).into());
        if let Some(hit) = hash.as_ref().and_then(|h| state.flags.tokens.get(h)) {
            return Ok(hit);
        }
        // Slow path through the common extractor: it rate-limits failures,
        // looks the token up in the store and records failed attempts.
        if let Some(s) = secret
            && parts.headers.get(header::AUTHORIZATION).is_none()
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {s}"))
        {
            parts.headers.insert(header::AUTHORIZATION, v);
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        let reader = Reader {
            name: caller.name.into(),
            environment: caller.environment.map(Into::into),
        };
        if let Some(h) = hash {
            state.flags.tokens.put(h, reader.clone());
        }
        Ok(reader)
    }
}

fn secret(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
struct EvalRequest {
    #[serde(default)]
    context: Option<Context>,
}

/// An OFREP failure body: `{key?, errorCode, errorDetails}`.
fn failure(status: StatusCode, key: Option<&str>, code: &str, details: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        #[serde(rename = "errorCode")]
        code: &'a str,
        #[serde(rename = "errorDetails")]
        details: &'a str,
    }
    json_response(status, &Body { key, code, details }, None)
}

fn json_response<T: Serialize>(status: StatusCode, body: &T, etag: Option<&str>) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "{\"errorDetails\":\"internal error\"}",
            )
                .into_response();
        }
    };
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert(header::ETAG, tag);
    }
    resp
}

/// Why a request is refused before any flag is evaluated.
enum Refused {
    /// An OFREP error body (400).
    Ofrep { code: &'static str, details: String },
    /// The token may not ask for this (403).
    Api(ApiError),
}

impl Refused {
    fn ofrep(code: &'static str, details: impl Into<String>) -> Refused {
        Refused::Ofrep {
            code,
            details: details.into(),
        }
    }

    fn respond(self, key: Option<&str>) -> Response {
        match self {
            Refused::Ofrep { code, details } => {
                failure(StatusCode::BAD_REQUEST, key, code, &details)
            }
            Refused::Api(e) => e.into_response(),
        }
    }
}

/// The request's context: not JSON is `PARSE_ERROR`, JSON of the wrong
/// shape (no `context` object, a `targetingKey` that is not a string) is
/// `INVALID_CONTEXT`.
fn parse_context(body: &[u8]) -> Result<Context, Refused> {
    match serde_json::from_slice::<EvalRequest>(body) {
        Ok(EvalRequest { context: Some(c) }) => Ok(c),
        Ok(EvalRequest { context: None }) => Err(Refused::ofrep(
            "INVALID_CONTEXT",
            "the request body needs a `context` object",
        )),
        Err(e) if e.is_data() => Err(Refused::ofrep(
            "INVALID_CONTEXT",
            format!("invalid context: {e}"),
        )),
        Err(e) => Err(Refused::ofrep(
            "PARSE_ERROR",
            format!("the request body is not JSON: {e}"),
        )),
    }
}

/// Which environment to evaluate in (see the module docs).
fn environment<'a>(reader: &'a Reader, ctx: &'a Context) -> Result<&'a str, Refused> {
    let asked = match ctx.attributes.get("environment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(Refused::ofrep(
                "INVALID_CONTEXT",
                "context attribute `environment` must be a string",
            ));
        }
    };
    match (&reader.environment, asked) {
        (Some(scope), Some(asked)) if **scope != *asked => {
            Err(Refused::Api(ApiError::Forbidden(format!(
                "token `{}` is scoped to environment `{scope}`, not `{asked}`",
                reader.name
            ))))
        }
        (Some(scope), _) => Ok(scope),
        (None, Some(asked)) => Ok(asked),
        (None, None) => Ok(DEFAULT_ENVIRONMENT),
    }
}

/// The context and environment of a request, or the refusal.
fn request(reader: &Reader, body: &[u8]) -> Result<(Context, String), Refused> {
    let ctx = parse_context(body)?;
    let env = environment(reader, &ctx)?.to_owned();
    Ok((ctx, env))
}

/// An evaluation in OFREP's shape.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Success {
        key: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a Value>,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Meta>,
    },
    Failure {
        key: &'a str,
        #[serde(rename = "errorCode")]
        code: &'static str,
        #[serde(rename = "errorDetails")]
        details: String,
    },
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "andonReason")]
    reason: &'static str,
}

fn code(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
        ErrorCode::ParseError => "PARSE_ERROR",
        ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
        ErrorCode::InvalidContext => "INVALID_CONTEXT",
        ErrorCode::General | ErrorCode::TypeMismatch => "GENERAL",
    }
}

/// OFREP's reason, and the exact one when OFREP has no word for it.
fn reason(r: Reason) -> (&'static str, Option<&'static str>) {
    match r {
        Reason::Static => ("STATIC", None),
        Reason::TargetingMatch => ("TARGETING_MATCH", None),
        Reason::Split => ("SPLIT", None),
        Reason::Disabled => ("DISABLED", None),
        Reason::Default => ("UNKNOWN", Some("DEFAULT")),
        Reason::PrerequisiteFailed => ("DISABLED", Some("PREREQUISITE_FAILED")),
        Reason::Error => ("UNKNOWN", Some("ERROR")),
    }
}

fn item<'a>(key: &'a str, r: Resolved<'a>) -> Item<'a> {
    if let Some(e) = r.error {
        return Item::Failure {
            key,
            code: code(e.code),
            details: e.message,
        };
    }
    let (reason, exact) = reason(r.reason);
    Item::Success {
        key,
        value: (!r.value.is_null()).then_some(r.value),
        reason,
        variant: r.variant,
        metadata: exact.map(|reason| Meta { reason }),
    }
}

async fn evaluate_one(
    reader: Reader,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let (ctx, env) = match request(&reader, &body) {
        Ok(r) => r,
        Err(refused) => return refused.respond(Some(&key)),
    };
    let snap = state.flags.snapshot();
    let r = snap.engine.evaluate(&env, &key, &ctx);
    let status = match &r.error {
        Some(e) if e.code == ErrorCode::FlagNotFound => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    json_response(status, &item(&key, r), None)
}

/// The bulk entity tag: the flags' version and what was evaluated for
/// (environment and context), since the answer depends on all three.
fn bulk_etag(snap: &Snapshot, env: &str, ctx: &Context) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env.hash(&mut h);
    serde_json::to_vec(ctx).unwrap_or_default().hash(&mut h);
    format!("\"v{}-{:016x}\"", snap.version, h.finish())
}

/// Whether `If-None-Match` names `etag` (weak or strong, or `*`).
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

async fn evaluate_bulk(
    reader: Reader,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, env) = match request(&reader, &body) {
        Ok(r) => r,
        Err(refused) => return refused.respond(None),
    };
    let env = env.as_str();
    let snap = state.flags.snapshot_full();
    let etag = bulk_etag(&snap, env, &ctx);
    if etag_matches(&headers, &etag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return resp;
    }
    let flags: Vec<Item<'_>> = snap
        .set
        .flags
        .keys()
        .map(|k| item(k, snap.engine.evaluate(env, k, &ctx)))
        .collect();
    let body = serde_json::json!({
        "flags": flags,
        "eventStreams": [{
            "type": "sse",
            "endpoint": {"requestUri": "/ofrep/v1/events"},
            "inactivityDelaySec": INACTIVITY_DELAY_SEC,
        }],
        "metadata": {"version": snap.version},
    });
    json_response(StatusCode::OK, &body, Some(&etag))
}

fn refetch(snap: &Snapshot) -> SseEvent {
    let data = serde_json::json!({
        "type": "refetchEvaluation",
        "etag": snap.etag,
        "lastModified": snap.modified_ms.max(0) / 1000,
    });
    SseEvent::default()
        .id(snap.version.to_string())
        .event("message")
        .data(data.to_string())
}

/// Change notifications: one `refetchEvaluation` per published version.
/// Versions are event sequence numbers, so `Last-Event-ID` stays meaningful
/// across server restarts.
async fn events(
    _reader: Reader,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut rx = state.flags.subscribe();
    let closing = state.flags.closing.clone();
    let stream = async_stream::stream! {
        let now = *rx.borrow_and_update();
        if last.is_some_and(|l| l < now) {
            yield Ok::<_, Infallible>(refetch(&state.flags.snapshot()));
        }
        loop {
            tokio::select! {
                _ = closing.cancelled() => break,
                changed = rx.changed() => {
                    if changed.is_err() { break; }
                    rx.borrow_and_update();
                    yield Ok(refetch(&state.flags.snapshot()));
                }
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"v1\""),
        );
        assert!(etag_matches(&h, "\"v1\""));
        assert!(!etag_matches(&h, "\"v2\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&h, "\"v2\""));
    }

    #[test]
    fn context_errors_are_classified() {
        let code_of = |b: &[u8]| match parse_context(b) {
            Ok(_) => "ok",
            Err(Refused::Ofrep { code, .. }) => code,
            Err(Refused::Api(_)) => "api",
        };
        assert_eq!(code_of(br#"{"context": {"targetingKey": "u"}}"#), "ok");
        assert_eq!(code_of(br#"{"context": {}}"#), "ok");
        assert_eq!(
            code_of(br#"{"context": {"targetingKey": 5}}"#),
            "INVALID_CONTEXT"
        );
        assert_eq!(code_of(br#"{}"#), "INVALID_CONTEXT");
        assert_eq!(code_of(b"not json"), "PARSE_ERROR");
    }

    #[test]
    fn reasons_outside_ofrep_are_kept_in_metadata() {
        assert_eq!(reason(Reason::Default), ("UNKNOWN", Some("DEFAULT")));
        assert_eq!(reason(Reason::Split), ("SPLIT", None));
    }
}
