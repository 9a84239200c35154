//! API tokens. The secret is returned once, at creation; afterwards only
//! its id, name and role are ever shown.

use std::sync::Arc;

use andon_core::{Event, Role};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, create_token};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
    role: Role,
    /// Restrict the token to one environment.
    #[serde(default)]
    environment: Option<String>,
}

pub(crate) async fn create(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if req.name.trim().is_empty() || req.name.len() > 100 {
        return Err(ApiError::BadRequest(
            "a token needs a name of 1-100 characters".into(),
        ));
    }
    let (record, secret) = create_token(
        &state,
        &caller.name,
        &req.name,
        req.role,
        req.environment,
        None,
    )?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": record.id,
            "name": record.name,
            "role": record.role,
            "environment": record.environment,
            "token": secret,
        })),
    ))
}

pub(crate) async fn list(
    Admin(_caller): Admin,
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Value>> {
    let tokens: Vec<Value> = state
        .store
        .tokens()?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "role": t.role,
                "environment": t.environment, "created_at_ms": t.created_at_ms,
                "revoked": t.revoked,
            })
        })
        .collect();
    Ok(Json(Value::Array(tokens)))
}

pub(crate) async fn revoke(
    Admin(caller): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // Revoking the last unrestricted admin token would leave nobody able to
    // create tokens again short of editing the database.
    let tokens = state.store.tokens()?;
    let is_admin = |t: &andon_store::TokenRecord| {
        !t.revoked && t.role == Role::Admin && t.environment.is_none()
    };
    if tokens.iter().any(|t| t.id == id && is_admin(t))
        && tokens.iter().filter(|t| is_admin(t)).count() == 1
    {
        return Err(ApiError::Conflict(
            "this is the last admin token: create another admin token first, then revoke this one"
                .into(),
        ));
    }
    if !state.store.revoke_token(&id)? {
        return Err(ApiError::NotFound(format!("no token `{id}`")));
    }
    state.append(&caller.name, vec![Event::TokenRevoked { token_id: id }])?;
    Ok(StatusCode::NO_CONTENT)
}
