//! The router in front of bad backends: one that resets connections, one
//! that answers slowly, one that hangs, and clients that never finish a
//! request. Timeouts bound every wait, only idempotent requests are retried
//! (once), and nothing queues without limit. Every loop is bounded.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// support.rs is shared with tests/router; this file uses part of it.
#![allow(dead_code)]

#[path = "router/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::*;

/// A backend that reads the start of each request, then resets the
/// connection (SO_LINGER 0): a crashed or restarting process. Counts requests.
async fn resetting() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                    h.fetch_add(1, Ordering::SeqCst);
                }
                // Linger 0: close with RST. Nothing is left unsent, so the drop does not block.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
            });
        }
    });
    (addr, hits)
}

fn code(resp: &Resp) -> String {
    let v: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_backend_gets_one_retry_for_idempotent_requests_only() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let (reset, reset_hits) = resetting().await;
    let good = backend("good", Behaviour::Ok).await;
    r.routes(table(
        1,
        &[("stable", 100, vec![reset.to_string(), good.ep()])],
        json!({}),
    ))
    .await;

    // GET, HEAD and DELETE (without a body) may be sent twice: every one ends
    // on the good endpoint. (A request with a body is streamed to the backend,
    // not buffered, so the router never sends it twice, whatever its method.)
    for method in ["GET", "HEAD", "DELETE"] {
        for _ in 0..6 {
            let resp = send(&r.client, method, &r.url("/"), &[], Vec::new()).await;
            assert_eq!(
                (resp.status, resp.body.as_str()),
                (StatusCode::OK, if method == "HEAD" { "" } else { "good" }),
                "{method}"
            );
        }
    }
    let retried = reset_hits.load(Ordering::SeqCst);
    assert!(retried > 0, "the resetting endpoint was never tried");

    // POST and PATCH are not: each is sent exactly once, so those that met
    // the reset fail with 502 and nothing reaches a second backend.
    let good_before = good.hits();
    let reset_before = reset_hits.load(Ordering::SeqCst);
    let (mut failed, mut ok) = (0, 0);
    for method in ["POST", "PATCH"] {
        for _ in 0..10 {
            let resp = send(&r.client, method, &r.url("/"), &[], b"order".to_vec()).await;
            match resp.status {
                StatusCode::OK => ok += 1,
                StatusCode::BAD_GATEWAY => {
                    assert_eq!(code(&resp), "upstream_unreachable");
                    failed += 1;
                }
                other => panic!("{method}: unexpected {other}"),
            }
        }
    }
    let reached_reset = reset_hits.load(Ordering::SeqCst) - reset_before;
    let reached_good = good.hits() - good_before;
    assert_eq!(reached_good, ok, "a non-idempotent request was sent twice");
    assert_eq!(reached_reset, failed);
    assert!(failed > 0 && ok > 0, "failed {failed} ok {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_when_every_endpoint_resets() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let mut eps = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..4 {
        let (a, h) = resetting().await;
        eps.push(a.to_string());
        counters.push(h);
    }
    r.routes(table(1, &[("stable", 100, eps)], json!({}))).await;
    for i in 1..=5usize {
        let resp = r.get("/", &[]).await;
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY);
        assert_eq!(code(&resp), "upstream_unreachable");
        // At most two attempts per request, never one per endpoint.
        let total: usize = counters.iter().map(|c| c.load(Ordering::SeqCst)).sum();
        assert!(total <= 2 * i, "{total} attempts for {i} requests");
    }
    let s = r.stats().await;
    let stable = &s["services"]["shop/production"]["stable"];
    assert_eq!(stable["retries"], 5, "{stable}");
    assert_eq!(stable["errors"], 5, "{stable}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_is_waited_for_up_to_the_timeout_and_no_longer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upstream_timeout = Duration::from_millis(800);
    let r = Router::start(cfg).await;
    let slow = backend("slow", Behaviour::Delay(Duration::from_millis(150))).await;
    let slower = backend("slower", Behaviour::Delay(Duration::from_secs(5))).await;

    r.routes(table(1, &[("stable", 100, vec![slow.ep()])], json!({})))
        .await;
    let resp = r.get("/", &[]).await;
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "slow"));

    // Slower than the timeout, with a second endpoint that is just as slow:
    // the retry does not restart the clock (one budget for both attempts).
    r.routes(table(
        2,
        &[("stable", 100, vec![slower.ep(), slower.ep()])],
        json!({}),
    ))
    .await;
    let start = Instant::now();
    let resp = r.get("/", &[]).await;
    let waited = start.elapsed();
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(code(&resp), "upstream_timeout");
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    assert_eq!(slower.hits(), 1, "a timed-out request was sent again");
    // The abandoned request no longer counts as in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.stats().await["inflight"] != 0 {
        assert!(Instant::now() < deadline, "in-flight count leaked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_against_a_hanging_backend_never_queues_beyond_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_inflight = 8;
    cfg.upstream_timeout = Duration::from_secs(2);
    let r = Router::start(cfg).await;
    let hang = backend("hang", Behaviour::Hang).await;
    r.routes(table(1, &[("stable", 100, vec![hang.ep()])], json!({})))
        .await;

    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (c, url) = (client(), r.url("/"));
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let resp = send(&c, "GET", &url, &[], Vec::new()).await;
            (resp.status, start.elapsed())
        }));
    }
    let (mut timed_out, mut rejected) = (0, 0);
    for t in tasks {
        let (status, took) = t.await.unwrap();
        match status {
            StatusCode::GATEWAY_TIMEOUT => timed_out += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                rejected += 1;
                assert!(took < Duration::from_secs(2), "a rejection waited {took:?}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(timed_out <= 8, "{timed_out} requests were let through");
    assert_eq!(timed_out + rejected, 40);
    assert!(hang.hits() <= 8, "{} reached the backend", hang.hits());
    let s = r.stats().await;
    assert_eq!(s["inflight"], 0, "{s}");

    // Afterwards the router serves normally again.
    let good = backend("good", Behaviour::Ok).await;
    r.routes(table(2, &[("stable", 100, vec![good.ep()])], json!({})))
        .await;
    assert_eq!(r.get("/", &[]).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let good = backend("good", Behaviour::Ok).await;
    r.routes(table(1, &[("stable", 100, vec![good.ep()])], json!({})))
        .await;
    // Half a request head, then silence.
    let mut idle = tokio::net::TcpStream::connect(r.proxy).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the half-open connection was kept 30 s");
    assert!(start.elapsed() >= Duration::from_secs(1));
    // Meanwhile and afterwards, others are served.
    assert_eq!(r.get("/", &[]).await.status, StatusCode::OK);
}
