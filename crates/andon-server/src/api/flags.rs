//! Managing feature flags: `/api/v1/flags...`.
//!
//! Reads need the viewer role, changes the developer role and a `reason`
//! (it goes in the audit log with the token's name). A token scoped to an
//! environment may change only that environment of existing flags (kill,
//! rollout, schedule, or a PUT that touches nothing else). Every change is
//! decided by [`crate::flags::edit::change`] and recorded as events.

use std::collections::BTreeMap;
use std::sync::Arc;

use andon_core::{Event, ExposureCounts, Role};
use andon_flags::{Flag, FlagSet, Segment, kill_switch, set_rollout_percentage, stale_flags};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Developer, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::flags::edit::{Change, Done, change};
use crate::flags::{Pending, Reader};
use crate::state::AppState;

mod ramp;

/// Path words under `/flags/` that are endpoints, so never flag keys.
const RESERVED: &[&str] = &[
    "apply",
    "exposures",
    "import",
    "segments",
    "snapshot",
    "stale",
];

/// Bounds of one exposure report: an SDK reports per interval, so these
/// are far above real use and keep one event small.
const MAX_REPORT_FLAGS: usize = 1000;
const MAX_REPORT_VARIANTS: usize = 100;

/// The routes, relative to `/api/v1`.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/flags", get(list))
        .route("/flags/stale", get(stale))
        .route("/flags/snapshot", get(snapshot))
        .route("/flags/apply", post(apply))
        .route("/flags/import/unleash", post(import_unleash))
        .route("/flags/exposures", post(exposures))
        .route(
            "/flags/segments/{name}",
            put(put_segment).delete(delete_segment),
        )
        .route("/flags/{key}", get(show).put(put_flag).delete(delete_flag))
        .route("/flags/{key}/kill", post(kill))
        .route("/flags/{key}/rollout", post(rollout))
        .route("/flags/{key}/schedule", post(schedule))
        .route("/flags/{key}/ramp", post(ramp::ramp))
}

fn reason(r: &str) -> ApiResult<&str> {
    let r = r.trim();
    if r.is_empty() {
        return Err(ApiError::BadRequest(
            "`reason` is required: say why (it goes in the audit log)".into(),
        ));
    }
    if r.len() > 1000 {
        return Err(ApiError::BadRequest(
            "`reason` is longer than 1000 bytes".into(),
        ));
    }
    Ok(r)
}

fn check_key(what: &str, key: &str) -> ApiResult<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "invalid {what} `{key}`: use 1-128 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        )));
    }
    if what == "flag key" && RESERVED.contains(&key) {
        return Err(ApiError::BadRequest(format!(
            "`{key}` is reserved (it names an endpoint under /api/v1/flags); choose another key"
        )));
    }
    Ok(())
}

fn no_flag(key: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no flag `{key}`; list them with `andon flags list`"
    ))
}

fn done_json<T: serde::Serialize>(done: &Done<T>, extra: Value) -> Value {
    let mut v = json!({"version": done.version, "changes": done.changes});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

// --- reads --------------------------------------------------------------

async fn list(caller: Caller, State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    let fold = state.flags.fold();
    let flags: Vec<Value> = fold
        .set
        .flags
        .iter()
        .map(|(key, f)| {
            let envs: BTreeMap<&String, Value> = f
                .environments
                .iter()
                .map(|(name, e)| {
                    (
                        name,
                        json!({
                            "enabled": e.enabled,
                            "rules": e.rules.len(),
                            "rollout": e.rollout_percentage(),
                            "default_variant": e.effective_default(f.kind),
                        }),
                    )
                })
                .collect();
            json!({
                "key": key,
                "kind": f.kind.as_str(),
                "description": f.description,
                "owner": f.owner,
                "tags": f.tags,
                "temporary": f.temporary,
                "environments": envs,
                "scheduled": fold.pending.get(key).map_or(0, Vec::len),
                "last_changed_ms": fold.last_changed.get(key),
            })
        })
        .collect();
    let segments: Vec<&String> = fold.set.segments.keys().collect();
    Ok(Json(
        json!({"version": fold.version, "flags": flags, "segments": segments}),
    ))
}

async fn show(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    let fold = state.flags.fold();
    let history: Vec<_> = fold.history.get(&key).into_iter().flatten().collect();
    let Some(flag) = fold.set.flags.get(&key) else {
        return Err(match history.last() {
            Some(h) => ApiError::NotFound(format!(
                "flag `{key}` was deleted by {} (event {}): {}",
                h.actor, h.seq, h.reason
            )),
            None => no_flag(&key),
        });
    };
    Ok(Json(json!({
        "key": key,
        "flag": flag,
        "schedule": fold.pending.get(&key).cloned().unwrap_or_default(),
        "history": history,
        "last_evaluated_ms": fold.last_evaluated.get(&key).cloned().unwrap_or_default(),
        "guard": ramp::notes(&state, &key),
        "version": fold.version,
    })))
}

#[derive(Deserialize)]
struct StaleQuery {
    #[serde(default)]
    days: Option<i64>,
}

async fn stale(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<StaleQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    let days = q.days.unwrap_or(30);
    if !(0..=36_500).contains(&days) {
        return Err(ApiError::BadRequest("`days` must be 0..=36500".into()));
    }
    let fold = state.flags.fold();
    let found = stale_flags(&fold.set, &fold.last_changed, now_ms(), days);
    let out: Vec<Value> = found
        .into_iter()
        .map(|s| {
            let seen = fold.last_evaluated.get(&s.key).cloned().unwrap_or_default();
            json!({
                "key": s.key, "variant": s.variant, "value": s.value,
                "unchanged_days": s.unchanged_days, "last_evaluated_ms": seen,
            })
        })
        .collect();
    Ok(Json(json!({"days": days, "flags": out})))
}

#[derive(Deserialize)]
struct SnapshotQuery {
    #[serde(default)]
    environment: Option<String>,
}

/// The flags an SDK evaluates in-process: a [`FlagSet`] restricted to one
/// environment (the token's, else `?environment=`, else all), with an
/// entity tag for conditional polling.
async fn snapshot(
    reader: Reader,
    State(state): State<Arc<AppState>>,
    Query(q): Query<SnapshotQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let env = match (&reader.environment, q.environment) {
        (Some(scope), Some(asked)) if **scope != *asked => {
            return Err(ApiError::Forbidden(format!(
                "token `{}` is scoped to environment `{scope}`, not `{asked}`",
                reader.name
            )));
        }
        (Some(scope), _) => Some(scope.to_string()),
        (None, asked) => asked,
    };
    let snap = state.flags.snapshot_full();
    let etag = HeaderValue::from_str(&snap.etag).map_err(ApiError::internal)?;
    if crate::api::ofrep::etag_matches(&headers, &snap.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let body = match env {
        None => serde_json::to_vec(&snap.set),
        Some(env) => {
            let mut set: FlagSet = snap.set.clone();
            for f in set.flags.values_mut() {
                f.environments.retain(|name, _| *name == env);
            }
            serde_json::to_vec(&set)
        }
    }
    .map_err(ApiError::internal)?;
    Ok((
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

// --- changes -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutFlag {
    flag: Value,
    reason: String,
}

async fn put_flag(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Json(req): Json<PutFlag>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_key("flag key", &key)?;
    let why = reason(&req.reason)?;
    let mut flag: Flag =
        serde_json::from_value(req.flag).map_err(|e| ApiError::BadRequest(format!("flag: {e}")))?;
    if !flag.key.is_empty() && flag.key != key {
        return Err(ApiError::BadRequest(format!(
            "flag.key: `{}` differs from the key in the path `{key}`",
            flag.key
        )));
    }
    flag.key.clone_from(&key);
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let done = change(&state, how, |d| {
        Ok(d.set.flags.insert(key.clone(), flag).is_none())
    })?;
    let status = if done.value {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(done_json(&done, json!({"key": key, "created": done.value}))),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
}

/// `reason` from a JSON body, or `?reason=` (some clients send no body
/// with DELETE).
fn delete_reason(query: &ReasonBody, body: &Bytes) -> ApiResult<String> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        ReasonBody::default()
    } else {
        serde_json::from_slice::<ReasonBody>(body)
            .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let r = if from_body.reason.trim().is_empty() {
        &query.reason
    } else {
        &from_body.reason
    };
    reason(r).map(str::to_owned)
}

async fn delete_flag(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(q): Query<ReasonBody>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let why = delete_reason(&q, &body)?;
    let mut how = Change::by(&caller.name, &why, caller.environment.as_deref());
    how.conflict_on_invalid = true;
    let done = change(&state, how, |d| {
        d.set
            .flags
            .remove(&key)
            .map(|_| ())
            .ok_or_else(|| no_flag(&key))
    })?;
    Ok(Json(done_json(&done, json!({"key": key, "deleted": true}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillReq {
    #[serde(default)]
    environment: Option<String>,
    reason: String,
}

async fn kill(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Json(req): Json<KillReq>,
) -> ApiResult<Json<Value>> {
    match &req.environment {
        Some(env) => caller.require_env(Role::Developer, env)?,
        None => caller.require(Role::Developer)?,
    }
    if req.environment.is_none()
        && let Some(scope) = &caller.environment
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is scoped to `{scope}`: name it with `environment`",
            caller.name
        )));
    }
    let why = reason(&req.reason)?;
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let done = change(&state, how, |d| {
        if !d.set.flags.contains_key(&key) {
            return Err(no_flag(&key));
        }
        kill_switch(&mut d.set, &key, req.environment.as_deref())
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })?;
    Ok(Json(done_json(
        &done,
        json!({"key": key, "switched_off": done.value}),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutReq {
    environment: String,
    percentage: f64,
    reason: String,
}

async fn rollout(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Json(req): Json<RolloutReq>,
) -> ApiResult<Json<Value>> {
    caller.require_env(Role::Developer, &req.environment)?;
    let why = reason(&req.reason)?;
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let done = change(&state, how, |d| {
        if !d.set.flags.contains_key(&key) {
            return Err(no_flag(&key));
        }
        ramp::refuse_if_running(&d.set, &key, &req.environment)?;
        set_rollout_percentage(&mut d.set, &key, &req.environment, req.percentage)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })?;
    Ok(Json(done_json(
        &done,
        json!({"key": key, "environment": req.environment, "previous": done.value, "percentage": req.percentage}),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleReq {
    /// RFC 3339, or unix milliseconds.
    at: Value,
    environment: String,
    percentage: f64,
    reason: String,
}

fn parse_at(at: &Value) -> ApiResult<i64> {
    let bad = || {
        ApiError::BadRequest(format!(
            "at: `{at}` is neither an RFC 3339 time (2030-01-31T09:00:00Z) nor unix milliseconds"
        ))
    };
    match at {
        Value::Number(n) => n.as_i64().filter(|ms| *ms >= 0).ok_or_else(bad),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| bad())
        }
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

async fn schedule(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Json(req): Json<ScheduleReq>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_env(Role::Developer, &req.environment)?;
    let why = reason(&req.reason)?;
    let at = parse_at(&req.at)?;
    if !(0.0..=100.0).contains(&req.percentage) {
        return Err(ApiError::BadRequest(format!(
            "percentage: {} is not in 0..=100",
            req.percentage
        )));
    }
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let pending = Pending {
        at,
        env: req.environment.clone(),
        percentage: req.percentage,
        reason: why.to_owned(),
        by: caller.name.clone(),
    };
    let done = change(&state, how, |d| {
        if !d.set.flags.contains_key(&key) {
            return Err(no_flag(&key));
        }
        let list = d.pending.entry(key.clone()).or_default();
        list.push(pending);
        Ok(list.clone())
    })?;
    Ok((
        StatusCode::CREATED,
        Json(done_json(
            &done,
            json!({"key": key, "at_ms": at, "schedule": done.value}),
        )),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSegment {
    segment: Value,
    reason: String,
}

async fn put_segment(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<PutSegment>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_key("segment name", &name)?;
    let why = reason(&req.reason)?;
    let seg: Segment = serde_json::from_value(req.segment)
        .map_err(|e| ApiError::BadRequest(format!("segment: {e}")))?;
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let done = change(&state, how, |d| {
        Ok(d.set.segments.insert(name.clone(), seg).is_none())
    })?;
    let status = if done.value {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done_json(&done, json!({"segment": name})))))
}

async fn delete_segment(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<ReasonBody>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let why = delete_reason(&q, &body)?;
    let mut how = Change::by(&caller.name, &why, caller.environment.as_deref());
    how.conflict_on_invalid = true;
    let done = change(&state, how, |d| {
        d.set
            .segments
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("no segment `{name}`")))
    })?;
    Ok(Json(done_json(
        &done,
        json!({"segment": name, "deleted": true}),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyReq {
    document: Value,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: String,
}

/// Flags as code: the document is the whole truth. Flags and segments it
/// does not name are removed; the answer lists every change either way.
async fn apply(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Json(req): Json<ApplyReq>,
) -> ApiResult<Json<Value>> {
    let why = if req.dry_run {
        "dry run".to_owned()
    } else {
        reason(&req.reason)?.to_owned()
    };
    let mut doc: FlagSet = serde_json::from_value(req.document)
        .map_err(|e| ApiError::BadRequest(format!("document: {e}")))?;
    doc.normalize();
    for key in doc.flags.keys() {
        check_key("flag key", key)?;
    }
    for name in doc.segments.keys() {
        check_key("segment name", name)?;
    }
    let mut how = Change::by(&caller.name, &why, caller.environment.as_deref());
    how.dry_run = req.dry_run;
    let actor = caller.name.clone();
    let done = change(&state, how, |d| {
        let old = std::mem::take(&mut d.pending);
        let mut pending: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
        for c in std::mem::take(&mut doc.schedule) {
            // Keep who scheduled an entry that is already there.
            let kept = old.get(&c.flag).and_then(|ps| {
                ps.iter().find(|p| {
                    p.at == c.at && p.env == c.env && p.percentage == c.set_rollout_percent
                })
            });
            let p = kept.cloned().unwrap_or_else(|| Pending {
                at: c.at,
                env: c.env.clone(),
                percentage: c.set_rollout_percent,
                reason: why.clone(),
                by: actor.clone(),
            });
            pending.entry(c.flag).or_default().push(p);
        }
        d.pending = pending;
        d.set = doc;
        Ok(())
    })?;
    let applied = !req.dry_run && !done.changes.is_empty();
    Ok(Json(done_json(
        &done,
        json!({"dry_run": req.dry_run, "applied": applied}),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportReq {
    /// Unleash's features document (`/api/client/features`), as JSON or as
    /// a string holding it.
    document: Value,
    environment: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: String,
}

/// Unleash import into one environment: imported flags replace their
/// definition and that environment; their other environments stay.
async fn import_unleash(
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Json(req): Json<ImportReq>,
) -> ApiResult<Json<Value>> {
    caller.require_env(Role::Developer, &req.environment)?;
    let why = if req.dry_run {
        "dry run".to_owned()
    } else {
        reason(&req.reason)?.to_owned()
    };
    let text = match &req.document {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut imported = andon_flags::import_unleash_env(&text, &req.environment)
        .map_err(|e| ApiError::BadRequest(format!("document: {e}")))?;
    as_plain_bools(&mut imported);
    for key in imported.flags.keys() {
        check_key("flag key", key)?;
    }
    let keys: Vec<String> = imported.flags.keys().cloned().collect();
    let mut how = Change::by(&caller.name, &why, caller.environment.as_deref());
    how.dry_run = req.dry_run;
    let env = req.environment.clone();
    let done = change(&state, how, |d| {
        for (key, mut flag) in imported.flags {
            if let Some(old) = d.set.flags.remove(&key) {
                let this = flag.environments.remove(&env);
                flag.environments = old.environments;
                match this {
                    Some(e) => flag.environments.insert(env.clone(), e),
                    None => flag.environments.remove(&env),
                };
            }
            d.set.flags.insert(key, flag);
        }
        d.set.segments.extend(imported.segments);
        Ok(())
    })?;
    Ok(Json(done_json(
        &done,
        json!({"imported": keys, "dry_run": req.dry_run}),
    )))
}

/// Unleash features without variants are on/off toggles; the importer
/// keeps Unleash's shape (a json flag serving the `disabled` variant, whose
/// value is null), which OFREP clients would see as "no value". Those become
/// plain bool flags with the same decisions: `disabled` is served as `on`.
/// Features with variants stay json flags (their values are the payloads).
fn as_plain_bools(set: &mut FlagSet) {
    use andon_flags::{DISABLED_VARIANT, Kind, Serve};
    let referenced: std::collections::BTreeSet<String> = set
        .flags
        .values()
        .flat_map(|f| f.environments.values())
        .flat_map(|e| e.prerequisites.iter())
        .filter(|p| !p.variants.is_empty())
        .map(|p| p.flag.clone())
        .collect();
    for (key, flag) in &mut set.flags {
        let toggle = flag.kind == Kind::Json
            && flag.variants.len() == 2
            && flag.variants.contains_key("off")
            && flag.variants.contains_key(DISABLED_VARIANT)
            && !referenced.contains(key);
        if !toggle {
            continue;
        }
        flag.kind = Kind::Bool;
        flag.variants.clear();
        for env in flag.environments.values_mut() {
            for rule in &mut env.rules {
                if let Serve::Variant(v) = &mut rule.serve
                    && v == DISABLED_VARIANT
                {
                    "on".clone_into(v);
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExposureReport {
    environment: String,
    counts: BTreeMap<String, BTreeMap<String, ExposureCounts>>,
}

/// Counts an SDK saw since its last report: one `FlagExposures` event.
async fn exposures(
    reader: Reader,
    State(state): State<Arc<AppState>>,
    Json(req): Json<ExposureReport>,
) -> ApiResult<StatusCode> {
    if let Some(scope) = &reader.environment
        && **scope != *req.environment
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is scoped to environment `{scope}`, not `{}`",
            reader.name, req.environment
        )));
    }
    if req.environment.is_empty() || req.environment.len() > 128 {
        return Err(ApiError::BadRequest("environment: 1-128 characters".into()));
    }
    if req.counts.len() > MAX_REPORT_FLAGS
        || req.counts.values().any(|v| v.len() > MAX_REPORT_VARIANTS)
        || req
            .counts
            .iter()
            .any(|(f, v)| f.len() > 200 || v.keys().any(|k| k.len() > 200))
    {
        return Err(ApiError::BadRequest(format!(
            "a report holds at most {MAX_REPORT_FLAGS} flags of {MAX_REPORT_VARIANTS} variants, names up to 200 bytes; flush more often"
        )));
    }
    let mut counts = req.counts;
    for v in counts.values_mut() {
        v.retain(|_, c| c.evaluations > 0 || c.outcomes > 0 || c.errors > 0);
    }
    counts.retain(|_, v| !v.is_empty());
    if counts.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    state.append(
        &reader.name,
        vec![Event::FlagExposures {
            environment: req.environment,
            counts,
        }],
    )?;
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_reasons() {
        assert!(check_key("flag key", "new-checkout_2.x").is_ok());
        assert!(check_key("flag key", "stale").is_err());
        assert!(check_key("segment name", "stale").is_ok());
        assert!(check_key("flag key", "-x").is_err());
        assert!(check_key("flag key", "a b").is_err());
        assert!(reason("  ").is_err());
        assert_eq!(reason(" ok ").ok(), Some("ok"));
    }

    #[test]
    fn at_accepts_rfc3339_and_millis() {
        assert_eq!(parse_at(&json!(5)).ok(), Some(5));
        assert_eq!(parse_at(&json!("5")).ok(), Some(5));
        assert_eq!(parse_at(&json!("1970-01-01T00:00:01Z")).ok(), Some(1000));
        assert!(parse_at(&json!("tomorrow")).is_err());
        assert!(parse_at(&json!(-1)).is_err());
    }
}
