//! The calls of `/api/v1/agents/...`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::wire::{Finish, Offer};

/// How long the server may hold a lease request (30 s) plus slack.
const LEASE_TIMEOUT: Duration = Duration::from_secs(40);
/// Ordinary calls; a download or an upload gets longer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// 409: the lease is no longer ours. Stop, report nothing.
    #[error("the lease is no longer held")]
    Gone,
    /// 401/403: the token is wrong or too weak; retrying cannot help.
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Http(#[from] reqwest::Error),
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub(crate) fn new(server: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(50))
                .build()
                .unwrap_or_default(),
            base: format!("{}/api/v1/agents", server.trim_end_matches('/')),
            token: token.to_owned(),
        }
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
    }

    async fn send(rb: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let resp = rb.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(match status {
            StatusCode::CONFLICT => CallError::Gone,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CallError::Refused {
                status: status.as_u16(),
                message,
            },
            _ => CallError::Status {
                status: status.as_u16(),
                message,
            },
        })
    }

    /// Waits (up to 30 s) for an attempt these labels fit; `None`: no work.
    pub(crate) async fn lease(
        &self,
        name: &str,
        labels: &[String],
    ) -> Result<Option<Offer>, CallError> {
        let rb = self
            .req(reqwest::Method::POST, "/lease", LEASE_TIMEOUT)
            .json(&json!({"name": name, "labels": labels, "wait_ms": 30_000}));
        let resp = Self::send(rb).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(resp.json().await?))
    }

    /// Renews the lease; the server holds the answer for a while.
    pub(crate) async fn heartbeat(&self, lease: &str, timeout: Duration) -> Result<(), CallError> {
        let rb = self.req(
            reqwest::Method::POST,
            &format!("/leases/{lease}/heartbeat"),
            timeout,
        );
        Self::send(rb).await.map(drop)
    }

    pub(crate) async fn started(&self, lease: &str) -> Result<(), CallError> {
        let rb = self.req(
            reqwest::Method::POST,
            &format!("/leases/{lease}/started"),
            CALL_TIMEOUT,
        );
        Self::send(rb).await.map(drop)
    }

    pub(crate) async fn log(&self, lease: &str, lines: &[String]) -> Result<(), CallError> {
        let rb = self
            .req(
                reqwest::Method::POST,
                &format!("/leases/{lease}/log"),
                CALL_TIMEOUT,
            )
            .json(&json!({ "lines": lines }));
        Self::send(rb).await.map(drop)
    }

    pub(crate) async fn finish(&self, lease: &str, report: &Finish) -> Result<(), CallError> {
        let rb = self
            .req(
                reqwest::Method::POST,
                &format!("/leases/{lease}/finish"),
                CALL_TIMEOUT,
            )
            .json(report);
        Self::send(rb).await.map(drop)
    }

    /// The commit's files as a tar stream.
    pub(crate) async fn source(&self, lease: &str) -> Result<Vec<u8>, CallError> {
        let rb = self.req(
            reqwest::Method::GET,
            &format!("/leases/{lease}/source"),
            TRANSFER_TIMEOUT,
        );
        Ok(Self::send(rb).await?.bytes().await?.to_vec())
    }

    pub(crate) async fn artifact(&self, digest: &str) -> Result<Vec<u8>, CallError> {
        let rb = self.req(
            reqwest::Method::GET,
            &format!("/artifacts/{digest}"),
            TRANSFER_TIMEOUT,
        );
        Ok(Self::send(rb).await?.bytes().await?.to_vec())
    }

    /// Whether the server already has this blob.
    pub(crate) async fn has_artifact(&self, digest: &str) -> Result<bool, CallError> {
        let rb = self.req(
            reqwest::Method::HEAD,
            &format!("/artifacts/{digest}"),
            CALL_TIMEOUT,
        );
        match Self::send(rb).await {
            Ok(_) => Ok(true),
            Err(CallError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn put_artifact(&self, digest: &str, body: Vec<u8>) -> Result<(), CallError> {
        let rb = self
            .req(
                reqwest::Method::PUT,
                &format!("/artifacts/{digest}"),
                TRANSFER_TIMEOUT,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(body);
        Self::send(rb).await.map(drop)
    }
}
