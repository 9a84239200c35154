//! Timeouts, retries and the in-flight limit.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn a_hanging_backend_is_answered_504_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upstream_timeout = Duration::from_millis(300);
    let r = Router::start(cfg).await;
    let h = backend("hang", Behaviour::Hang).await;
    r.routes(table(1, &[("stable", 100, vec![h.ep()])], json!({})))
        .await;
    let start = Instant::now();
    let resp = r.get("/", &[]).await;
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    let v: Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    assert_eq!(resp.served_by(), "stable");
    let s = r.stats().await;
    assert_eq!(s["services"]["shop/production"]["stable"]["errors"], 1);
}

#[tokio::test]
async fn a_refused_endpoint_is_retried_once_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let good = backend("good", Behaviour::Ok).await;
    let dead = closed_port().await;
    r.routes(table(
        1,
        &[("stable", 100, vec![dead.clone(), good.ep()])],
        json!({}),
    ))
    .await;
    for _ in 0..20 {
        let resp = r.get("/", &[]).await;
        assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "good"));
    }
    let s = r.stats().await;
    let stable = &s["services"]["shop/production"]["stable"];
    assert_eq!(stable["errors"], 0);
    assert!(stable["retries"].as_u64().unwrap() >= 5, "{stable}");

    // A POST is not retried: about half of them reach the dead endpoint and fail with 502.
    let mut bad = 0;
    for _ in 0..10 {
        let resp = send(&r.client, "POST", &r.url("/"), &[], b"x".to_vec()).await;
        if resp.status == StatusCode::BAD_GATEWAY {
            let v: Value = serde_json::from_str(&resp.body).unwrap();
            assert_eq!(v["error"]["code"], "upstream_unreachable");
            bad += 1;
        }
    }
    assert!((1..10).contains(&bad), "{bad}");
}

#[tokio::test]
async fn every_endpoint_refusing_is_a_502() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    r.routes(table(
        1,
        &[(
            "stable",
            100,
            vec![closed_port().await, closed_port().await],
        )],
        json!({}),
    ))
    .await;
    let resp = r.get("/", &[]).await;
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY);
    let s = r.stats().await;
    let stable = &s["services"]["shop/production"]["stable"];
    assert_eq!(
        (stable["errors"].as_u64(), stable["retries"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn requests_beyond_max_inflight_get_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_inflight = 2;
    cfg.upstream_timeout = Duration::from_secs(3);
    let r = Router::start(cfg).await;
    let h = backend("hang", Behaviour::Hang).await;
    r.routes(table(1, &[("stable", 100, vec![h.ep()])], json!({})))
        .await;
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let (c, url) = (client(), r.url("/"));
        stuck.push(tokio::spawn(async move {
            send(&c, "GET", &url, &[], Vec::new()).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.stats().await["inflight"] != 2 {
        assert!(Instant::now() < deadline, "the two requests never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = r.get("/", &[]).await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    assert_eq!(r.stats().await["rejected"], 1);
    for s in stuck {
        assert_eq!(s.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    }
    // Slots are given back.
    assert_eq!(r.stats().await["inflight"], 0);
}
