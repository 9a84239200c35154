//! Bearer tokens with roles.
//!
//! Tokens are random 32-byte secrets; the store keeps only their SHA-256, so
//! a copy of the database grants nothing. Lookups are by hash, which is also
//! why comparing is constant-time by construction: the secret is never
//! compared byte by byte, only hashed and looked up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use andon_core::{Event, Role};
use andon_store::{TokenRecord, hash_token};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use rand::RngCore;

use crate::error::ApiError;
use crate::state::AppState;

/// Failed authentications allowed per address per window before 429.
const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct AuthCache {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthCache {
    fn limited(&self, ip: IpAddr) -> bool {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .is_some_and(|(start, n)| start.elapsed() < FAILURE_WINDOW && *n >= MAX_FAILURES)
    }

    fn record_failure(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        // Bound the map: forget the oldest windows if an attacker rotates addresses.
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    #[allow(dead_code)] // kept for audit lines; read once deploy endpoints log it
    pub(crate) token_id: String,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) environment: Option<String>,
}

impl Caller {
    /// Refuses unless the caller's role includes `needed`.
    pub(crate) fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {needed} role; token `{}` has {}",
                self.name, self.role
            )))
        }
    }

    /// Refuses unless the caller may act on `environment`: a token scoped to
    /// one environment may not touch another.
    pub(crate) fn require_env(&self, needed: Role, environment: &str) -> Result<(), ApiError> {
        self.require(needed)?;
        match &self.environment {
            Some(scope) if scope != environment => Err(ApiError::Forbidden(format!(
                "token `{}` is scoped to environment `{scope}`, not `{environment}`",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if state.auth.limited(ip) {
            return Err(ApiError::TooManyRequests);
        }
        let secret = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            state.auth.record_failure(ip);
            return Err(ApiError::Unauthorized);
        };
        let record = state.store.token_by_hash(&hash_token(secret))?;
        match record {
            Some(t) if !t.revoked => Ok(Caller {
                token_id: t.id,
                name: t.name,
                role: t.role,
                environment: t.environment,
            }),
            _ => {
                state.auth.record_failure(ip);
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Role extractors: the caller, with the role already checked. Put first
/// among a handler's arguments, they run before `Path` and `Json`, so a
/// caller without the role gets 403 whatever the input, never a 400/422 that
/// tells it what the endpoint would accept (authorization before validation).
/// A path with an `{env}` segment is also checked against a token's
/// environment scope here.
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub(crate) struct $name(pub(crate) Caller);

        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($role)?;
                if let Ok(params) =
                    axum::extract::RawPathParams::from_request_parts(parts, state).await
                {
                    if let Some((_, env)) = params.iter().find(|(k, _)| *k == "env") {
                        caller.require_env($role, env)?;
                    }
                }
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(
    /// A caller with at least the developer role.
    Developer,
    Role::Developer
);
role_extractor!(
    /// A caller with at least the deployer role.
    Deployer,
    Role::Deployer
);
role_extractor!(
    /// A caller with the admin role.
    Admin,
    Role::Admin
);

/// A fresh token secret: `andon_` and 64 hex digits.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("andon_{}", hex::encode(bytes))
}

fn new_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    format!("tok_{}", hex::encode(bytes))
}

/// Creates a token, records the event, and returns (record, secret). The
/// secret exists only in the return value: it is shown once.
pub(crate) fn create_token(
    state: &AppState,
    actor: &str,
    name: &str,
    role: Role,
    environment: Option<String>,
    secret: Option<String>,
) -> Result<(TokenRecord, String), ApiError> {
    let secret = secret.unwrap_or_else(new_secret);
    let record = TokenRecord {
        id: new_id(),
        name: name.to_string(),
        role,
        environment: environment.clone(),
        hash: hash_token(&secret),
        created_at_ms: now_ms(),
        revoked: false,
    };
    state.store.put_token(&record)?;
    state.append(
        actor,
        vec![Event::TokenCreated {
            token_id: record.id.clone(),
            name: name.to_string(),
            role,
            environment,
        }],
    )?;
    Ok((record, secret))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
