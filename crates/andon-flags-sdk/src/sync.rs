//! Keeping the snapshot current: conditional fetches (`If-None-Match`), the
//! change stream with exponential backoff, polling while it is down, and
//! the periodic exposure report. Every failure keeps the last snapshot.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use andon_flags::FlagSet;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use serde_json::json;

use crate::client::Inner;
use crate::error::SdkError;
use crate::sse::Parser;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The server sends a keep-alive every 15 s; silence this long means the
/// connection is gone even if TCP has not noticed.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.server)
    }

    /// Fetches the snapshot if it changed; `true` if a new one was loaded.
    pub(crate) async fn refresh(&self) -> Result<bool, SdkError> {
        let _one_at_a_time = self.fetching.lock().await;
        let url = self.url("/api/v1/flags/snapshot");
        let mut req = self
            .http
            .get(&url)
            .query(&[("environment", &self.cfg.environment)])
            .bearer_auth(&self.cfg.token)
            .timeout(REQUEST_TIMEOUT);
        if let Some(etag) = &self.snap.load().etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        let http = |source| SdkError::Http {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(http)?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(false),
            s if s.is_success() => {
                let etag = resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp.bytes().await.map_err(http)?;
                let set: FlagSet =
                    serde_json::from_slice(&body).map_err(|source| SdkError::Snapshot {
                        url: url.clone(),
                        source,
                    })?;
                self.install(&set, etag);
                Ok(true)
            }
            s => Err(SdkError::Status {
                url: url.clone(),
                status: s.as_u16(),
                body: resp.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Sends the counts; a batch that fails is merged back for next time.
    pub(crate) async fn flush(&self) -> Result<(), SdkError> {
        let batch = {
            let mut t = self.tally();
            if t.is_empty() {
                return Ok(());
            }
            t.take()
        };
        let url = self.url("/api/v1/flags/exposures");
        let body = json!({"environment": self.cfg.environment, "counts": batch});
        let sent = self
            .http
            .post(&url)
            .bearer_auth(&self.cfg.token)
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => SdkError::Status {
                url,
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            },
            Err(source) => SdkError::Http { url, source },
        };
        self.tally().merge(batch);
        Err(failure)
    }

    /// One connection to the change stream, until it ends. Returns whether
    /// it connected at all (so the caller can reset its backoff).
    async fn stream_once(&self, last_id: &mut Option<String>) -> Result<(), SdkError> {
        let url = self.url("/ofrep/v1/events");
        let mut req = self
            .http
            .get(&url)
            .bearer_auth(&self.cfg.token)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_id.as_deref() {
            req = req.header("last-event-id", id);
        }
        let http = |source| SdkError::Http {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(SdkError::Status {
                url: url.clone(),
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        self.streaming.store(true, Ordering::Relaxed);
        // Whatever happened while disconnected: fetch once (ADR-0008).
        if let Err(e) = self.refresh().await {
            tracing::debug!(error = %e, "snapshot fetch after connecting failed");
        }
        let mut parser = Parser::default();
        let mut body = resp.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(STREAM_SILENCE, body.next()).await {
                Err(_) | Ok(None) => return Ok(()),
                Ok(Some(chunk)) => chunk.map_err(http)?,
            };
            for ev in parser.push(&chunk) {
                if ev.id.is_some() {
                    last_id.clone_from(&ev.id);
                }
                let refetch = serde_json::from_str::<serde_json::Value>(&ev.data)
                    .is_ok_and(|d| d["type"] == "refetchEvaluation");
                if refetch && let Err(e) = self.refresh().await {
                    tracing::debug!(error = %e, "snapshot fetch on change failed");
                }
            }
        }
    }
}

/// Follows the change stream forever, reconnecting with exponential
/// backoff (reset after each successful connection).
pub(crate) async fn follow(inner: Arc<Inner>) {
    let mut backoff = BACKOFF_MIN;
    let mut last_id = None;
    loop {
        let result = inner.stream_once(&mut last_id).await;
        if inner.streaming.swap(false, Ordering::Relaxed) {
            backoff = BACKOFF_MIN;
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "flag change stream failed");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Polls while the stream is down (or off), and until the first snapshot.
pub(crate) async fn poll(inner: Arc<Inner>) {
    let mut first = true;
    loop {
        let wait = if inner.ready.load(Ordering::Acquire) || first {
            inner.cfg.poll_every
        } else {
            // Not ready yet: retry sooner than the normal poll.
            inner.cfg.poll_every.min(Duration::from_secs(1))
        };
        first = false;
        tokio::time::sleep(wait).await;
        if inner.streaming.load(Ordering::Relaxed) && inner.ready.load(Ordering::Acquire) {
            continue;
        }
        if let Err(e) = inner.refresh().await {
            tracing::debug!(error = %e, "flag poll failed; keeping the last snapshot");
        }
    }
}

/// Sends the counts every `flush_every`.
pub(crate) async fn flush_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = inner.flush().await {
            tracing::debug!(error = %e, "exposure report failed; kept for the next one");
        }
    }
}
