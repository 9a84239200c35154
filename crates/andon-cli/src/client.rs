//! A small HTTP client for the server's API: bearer auth, JSON in and out,
//! and the server's JSON errors turned into messages a user can act on.

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::Remote;
use crate::ui::hinted;

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(remote: &Remote) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("could not build the HTTP client")?;
        Ok(Client {
            http,
            base: remote.server.trim_end_matches('/').to_string(),
            token: remote.token.clone(),
        })
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends and checks the status; errors carry the server's message.
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            hinted(
                format!("could not reach the server at {}: {e}", self.base),
                "start one with `andon server`, or point --server / ANDON_SERVER at it",
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no details")
            .to_string();
        let hint = match status {
            StatusCode::UNAUTHORIZED => {
                "pass a token with --token or ANDON_TOKEN (`andon token create`)"
            }
            StatusCode::FORBIDDEN => "ask an admin for a token with the needed role",
            StatusCode::NOT_FOUND => "check the name or id",
            _ => "",
        };
        let message = format!("the server answered {status}: {message}");
        Err(if hint.is_empty() {
            anyhow::anyhow!(message)
        } else {
            hinted(message, hint)
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send(self.request(Method::GET, path)).await?;
        resp.json()
            .await
            .context("the server's answer was not the expected JSON")
    }

    pub(crate) async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        let resp = self
            .send(self.request(Method::POST, path).json(body))
            .await?;
        resp.json()
            .await
            .context("the server's answer was not the expected JSON")
    }
}

/// Percent-encodes one path segment (job names contain spaces and parentheses).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
