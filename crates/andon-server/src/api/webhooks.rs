//! Push webhooks from GitHub, GitLab and Gitea.
//!
//! Webhooks carry no bearer token; they are authenticated by the forge's
//! signature over the raw body with the project's webhook secret (GitHub and
//! Gitea: HMAC-SHA256; GitLab: a shared token). Every comparison is
//! constant-time. An unsigned or badly signed request gets 401 and changes
//! nothing — it is rejected before the body is even parsed.

use std::sync::Arc;

use andon_core::Trigger;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{pipeline, repo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "github" => Some(Forge::GitHub),
            "gitlab" => Some(Forge::GitLab),
            "gitea" => Some(Forge::Gitea),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Target {
    #[serde(default)]
    project: Option<String>,
}

pub(crate) async fn receive(
    State(state): State<Arc<AppState>>,
    Path(forge): Path<String>,
    Query(target): Query<Target>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let forge = Forge::parse(&forge).ok_or_else(|| {
        ApiError::NotFound(format!(
            "unknown forge `{forge}`; use github, gitlab or gitea"
        ))
    })?;
    // The body is parsed only to find the project; nothing acts on it
    // before the signature is checked against that project's secret.
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let project = match target.project {
        Some(p) => p,
        None => find_project(&state, &payload).ok_or(ApiError::Unauthorized)?,
    };
    let secret = state
        .store
        .secrets(&format!("project:{project}"))?
        .remove(crate::WEBHOOK_SECRET);
    let Some(secret) = secret else {
        return Err(ApiError::Unauthorized);
    };
    if !signature_ok(forge, &headers, &body, &secret) {
        return Err(ApiError::Unauthorized);
    }
    if is_ping(forge, &headers) {
        return Ok((StatusCode::OK, Json(json!({"status": "pong"}))));
    }
    let Some(reference) = payload.get("ref").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest(
            "push payload has no `ref`; only push events start runs".into(),
        ));
    };
    let Some(branch) = reference.strip_prefix("refs/heads/") else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "ignored", "reason": "not a branch"})),
        ));
    };
    let after = payload
        .get("after")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if after.is_empty() || after.chars().all(|c| c == '0') {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "ignored", "reason": "branch deleted"})),
        ));
    }
    let repo_url = {
        let views = state.read_views();
        let p = views.projects.get(&project).ok_or(ApiError::Unauthorized)?;
        if p.heads.get(branch).is_some_and(|c| c == after) {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({"status": "ignored", "reason": "commit already seen"})),
            ));
        }
        p.repo.clone()
    };
    let mirror = state.mirror_path(&project);
    repo::sync(&repo_url, &mirror)
        .await
        .map_err(|e| ApiError::Conflict(format!("could not fetch `{repo_url}`: {e}")))?;
    let commit = repo::resolve(&mirror, after).await.map_err(|_| {
        ApiError::Conflict(format!(
            "commit {after} is not in `{repo_url}` after fetching"
        ))
    })?;
    let run_id = pipeline::queue_run(
        &state,
        forge.name(),
        &project,
        branch,
        &commit,
        Trigger::Webhook(forge.name().into()),
    )
    .await?;
    Ok(match run_id {
        Some(id) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "queued", "run_id": id})),
        ),
        None => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "ignored", "reason": "commit already seen"})),
        ),
    })
}

fn is_ping(forge: Forge, headers: &HeaderMap) -> bool {
    let event = match forge {
        Forge::GitHub => "x-github-event",
        Forge::Gitea => "x-gitea-event",
        Forge::GitLab => "x-gitlab-event",
    };
    headers
        .get(event)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "ping")
}

/// Checks the forge's signature in constant time.
fn signature_ok(forge: Forge, headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match forge {
        Forge::GitLab => header("x-gitlab-token")
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(secret.as_bytes()))),
        Forge::GitHub => header("x-hub-signature-256")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(|sig| hmac_ok(secret, body, sig)),
        Forge::Gitea => header("x-gitea-signature")
            .or_else(|| header("x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")))
            .is_some_and(|sig| hmac_ok(secret, body, sig)),
    }
}

fn hmac_ok(secret: &str, body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&sig).is_ok()
}

/// Finds the project a payload is about, by repository URL or name.
fn find_project(state: &AppState, payload: &Value) -> Option<String> {
    let repo = payload
        .get("repository")
        .or_else(|| payload.get("project"))?;
    let candidates: Vec<&str> = [
        "clone_url",
        "ssh_url",
        "html_url",
        "git_http_url",
        "git_ssh_url",
        "full_name",
        "path_with_namespace",
        "name",
    ]
    .iter()
    .filter_map(|k| repo.get(*k).and_then(Value::as_str))
    .collect();
    let views = state.read_views();
    let found = views.projects.all().find(|p| {
        let repo = p.repo.trim_end_matches('/').trim_end_matches(".git");
        candidates.iter().any(|c| {
            let c = c.trim_end_matches('/').trim_end_matches(".git");
            !c.is_empty() && (repo == c || repo.ends_with(&format!("/{c}")) || p.name == c)
        })
    });
    found.map(|p| p.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signature_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let sig = hex::encode(mac.finalize().into_bytes());
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            format!("sha256={sig}").parse().unwrap(),
        );
        assert!(signature_ok(Forge::GitHub, &h, b"{}", "s3cret"));
        assert!(!signature_ok(Forge::GitHub, &h, b"{ }", "s3cret"));
        assert!(!signature_ok(Forge::GitHub, &h, b"{}", "other"));
        assert!(!signature_ok(
            Forge::GitHub,
            &HeaderMap::new(),
            b"{}",
            "s3cret"
        ));
    }

    #[test]
    fn gitlab_token_checked() {
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", "tok".parse().unwrap());
        assert!(signature_ok(Forge::GitLab, &h, b"", "tok"));
        assert!(!signature_ok(Forge::GitLab, &h, b"", "tok2"));
    }
}
