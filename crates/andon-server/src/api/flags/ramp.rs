//! `POST /api/v1/flags/{key}/ramp`: start, restart or stop a guarded
//! rollout of one environment (the guard in [`crate::flags::guard`] does
//! the rest), and what `GET /flags/{key}` shows of running ramps.

use std::collections::BTreeMap;
use std::sync::Arc;

use andon_core::Role;
use andon_flags::{FlagSet, Ramp, RampStatus, set_ramp};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{done_json, no_flag, reason};
use crate::auth::{Developer, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::flags::edit::{Change, change};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RampReq {
    environment: String,
    /// Stop the running ramp where it is, instead of starting one.
    #[serde(default)]
    stop: bool,
    /// A new plan (`steps`, `every`, ...); without it the declared one
    /// starts over.
    #[serde(default)]
    ramp: Option<Value>,
    reason: String,
}

pub(super) async fn ramp(
    // The role first, before the body is parsed: a viewer is told 403, not
    // what is wrong with a body it may not send anyway.
    Developer(caller): Developer,
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Json(req): Json<RampReq>,
) -> ApiResult<Json<Value>> {
    caller.require_env(Role::Developer, &req.environment)?;
    let why = reason(&req.reason)?;
    let plan: Option<Ramp> = req
        .ramp
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("ramp: {e}")))?;
    let how = Change::by(&caller.name, why, caller.environment.as_deref());
    let env = req.environment.clone();
    let done = change(&state, how, |d| {
        if !d.set.flags.contains_key(&key) {
            return Err(no_flag(&key));
        }
        d.manages_ramps = true;
        set_ramp(&mut d.set, &key, &env, plan, !req.stop, now_ms(), why)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })?;
    let ramp = state
        .flags
        .fold()
        .set
        .flags
        .get(&key)
        .and_then(|f| f.environments.get(&env))
        .and_then(|e| e.ramp.clone());
    Ok(Json(done_json(
        &done,
        json!({"key": key, "environment": env, "message": done.value, "ramp": ramp}),
    )))
}

/// While a ramp runs, it owns the environment's rollout percentage.
pub(super) fn refuse_if_running(set: &FlagSet, key: &str, env: &str) -> ApiResult<()> {
    let running = set
        .flags
        .get(key)
        .and_then(|f| f.environments.get(env))
        .and_then(|e| e.ramp.as_ref())
        .and_then(|r| r.state.as_ref())
        .is_some_and(|s| s.status == RampStatus::Running);
    if running {
        return Err(ApiError::Conflict(format!(
            "a guarded rollout of `{key}` is running in `{env}` and sets its percentage; stop it first (`andon flags ramp {key} --environment {env} --stop`)"
        )));
    }
    Ok(())
}

/// The guard's latest word on each running ramp of `key`, by environment.
pub(super) fn notes(state: &AppState, key: &str) -> BTreeMap<String, String> {
    state
        .flags
        .guard_notes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|((f, _), _)| f == key)
        .map(|((_, e), n)| (e.clone(), n.clone()))
        .collect()
}
