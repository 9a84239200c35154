//! Shadow traffic: a copy of a live request sent to another version, whose answer is thrown
//! away after being compared with the live one.
//!
//! The copy runs in its own task and never touches the live request: the live side only sends
//! its status and latency through a oneshot channel, which it does not wait on. Copies are
//! bounded by `max_mirror_inflight`; beyond that they are dropped and counted.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::body::UpstreamBody;
use crate::compiled::Version;
use crate::forward;
use crate::state::Worker;

/// Marks a mirrored request, so the dark version can avoid side effects.
static MIRROR_HEADER: HeaderName = HeaderName::from_static("x-andon-mirror");

/// What the live request reports to its mirror: status and time to response headers.
pub(crate) type Live = (u16, Duration);

/// Frees a mirror slot when the copy ends, however it ends.
struct Slot(Arc<Worker>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.shared.mirror_inflight.fetch_sub(1, Relaxed);
    }
}

/// Starts a copy to `to`; returns where to send the live outcome, or `None` if dropped.
pub(crate) fn spawn(
    worker: &Arc<Worker>,
    to: Arc<Version>,
    method: &Method,
    path: &PathAndQuery,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<oneshot::Sender<Live>> {
    let shared = &worker.shared;
    let stats = &to.stats.mirror;
    if shared.mirror_inflight.fetch_add(1, Relaxed) >= shared.cfg.max_mirror_inflight {
        shared.mirror_inflight.fetch_sub(1, Relaxed);
        stats.dropped.fetch_add(1, Relaxed);
        shared.registry.mirror_dropped.fetch_add(1, Relaxed);
        return None;
    }
    let slot = Slot(worker.clone());
    let (_, endpoint) = to.pick()?;
    let mut headers = headers.clone();
    headers.insert(MIRROR_HEADER.clone(), HeaderValue::from_static("1"));
    let req = forward::build(
        method.clone(),
        endpoint,
        path.clone(),
        headers,
        UpstreamBody::full(body),
    )
    .ok()?;
    let (tx, rx) = oneshot::channel::<Live>();
    let timeout = shared.cfg.upstream_timeout;
    tokio::spawn(async move {
        let client = slot.0.client.clone();
        let stats = &to.stats.mirror;
        stats.requests.fetch_add(1, Relaxed);
        let start = Instant::now();
        let status = match tokio::time::timeout(timeout, client.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let elapsed = start.elapsed();
                // Read the answer to its end so the connection goes back to the pool.
                let mut body = resp.into_body();
                let _ = tokio::time::timeout(timeout, async {
                    while let Some(Ok(_)) = body.frame().await {}
                })
                .await;
                (status, elapsed)
            }
            Ok(Err(_)) => (502, start.elapsed()),
            Err(_) => (504, start.elapsed()),
        };
        if status.0 >= 500 {
            stats.errors.fetch_add(1, Relaxed);
        }
        if let Ok(Ok(live)) = tokio::time::timeout(timeout, rx).await {
            if !same_class(status.0, live.0) {
                stats.status_class_mismatch.fetch_add(1, Relaxed);
            }
            if slower(status.1, live.1) {
                stats.latency_slower.fetch_add(1, Relaxed);
            }
        }
        drop(slot);
    });
    Some(tx)
}

fn same_class(a: u16, b: u16) -> bool {
    a / 100 == b / 100
}

/// Slower by more than 10% and 1ms: the two answers race on the same machine, so tiny
/// differences are noise, not a regression.
fn slower(mirror: Duration, live: Duration) -> bool {
    mirror > live + live / 10 + Duration::from_millis(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_ignores_noise() {
        assert!(same_class(200, 204));
        assert!(!same_class(200, 500));
        assert!(!slower(
            Duration::from_micros(1500),
            Duration::from_micros(1000)
        ));
        assert!(slower(Duration::from_millis(50), Duration::from_millis(10)));
    }
}
