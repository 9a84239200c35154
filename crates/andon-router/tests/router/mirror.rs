//! Mirroring: copies are compared and counted, and never touch the live answer.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn wait_for(r: &Router, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = r.stats().await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mirrored_answers_are_compared_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let live = backend("stable", Behaviour::Ok).await;
    let dark = backend(
        "dark",
        Behaviour::SlowStatus(500, Duration::from_millis(50)),
    )
    .await;
    r.routes(table(
        1,
        &[
            ("stable", 100, vec![live.ep()]),
            ("dark", 0, vec![dark.ep()]),
        ],
        json!({"mirror": {"to": "dark", "percent": 100}}),
    ))
    .await;
    for i in 0..20 {
        let resp = send(
            &r.client,
            "POST",
            &r.url("/orders"),
            &[("x-n", &i.to_string())],
            format!("body-{i}").into_bytes(),
        )
        .await;
        assert_eq!(
            (resp.status, resp.body.as_str(), resp.served_by()),
            (StatusCode::OK, "stable", "stable")
        );
    }
    let s = wait_for(&r, "20 compared mirrors", |s| {
        s["services"]["shop/production"]["dark"]["mirror"]["latency_slower"] == 20
    })
    .await;
    let d = &s["services"]["shop/production"]["dark"];
    assert_eq!(d["mirror"]["requests"], 20);
    assert_eq!(d["mirror"]["errors"], 20);
    assert_eq!(d["mirror"]["status_class_mismatch"], 20);
    assert_eq!(d["requests"], 0, "mirror copies are not live traffic");
    assert_eq!(s["services"]["shop/production"]["stable"]["errors"], 0);
    // The dark version got the same request, marked as a mirror.
    let seen = dark.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    let one = seen.iter().find(|s| s.headers["x-n"] == "7").unwrap();
    assert_eq!(
        (one.method.as_str(), one.body.as_slice()),
        ("POST", b"body-7".as_slice())
    );
    assert_eq!(one.headers["x-andon-mirror"], "1");
}

#[tokio::test]
async fn a_hanging_mirror_neither_slows_nor_fails_live_traffic_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_mirror_inflight = 3;
    cfg.upstream_timeout = Duration::from_secs(4);
    let r = Router::start(cfg).await;
    let live = backend("stable", Behaviour::Ok).await;
    let dark = backend("dark", Behaviour::Hang).await;
    r.routes(table(
        1,
        &[
            ("stable", 100, vec![live.ep()]),
            ("dark", 0, vec![dark.ep()]),
        ],
        json!({"mirror": {"to": "dark", "percent": 100}}),
    ))
    .await;
    for _ in 0..30 {
        let resp = r.get("/", &[]).await;
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (StatusCode::OK, "stable")
        );
    }
    // Thirty live answers came back while the mirror copies were still hanging: none of
    // them has ended yet (they end at the 4s timeout).
    let s = r.stats().await;
    let m = &s["services"]["shop/production"]["dark"]["mirror"];
    assert_eq!(m["requests"], 3);
    assert_eq!(m["dropped"], 27);
    assert_eq!(m["errors"], 0, "a copy ended before the live answers: {m}");
    // After the timeout the three copies count as 504s: a mismatch against the live 200s.
    wait_for(&r, "timed-out mirrors", |s| {
        s["services"]["shop/production"]["dark"]["mirror"]["status_class_mismatch"] == 3
    })
    .await;
}

#[tokio::test]
async fn mirroring_honours_the_percentage() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let live = backend("stable", Behaviour::Ok).await;
    let dark = backend("dark", Behaviour::Ok).await;
    r.routes(table(
        1,
        &[
            ("stable", 100, vec![live.ep()]),
            ("dark", 0, vec![dark.ep()]),
        ],
        json!({"mirror": {"to": "dark", "percent": 20}}),
    ))
    .await;
    for _ in 0..1000 {
        r.get("/", &[]).await;
    }
    let s = wait_for(&r, "mirrors to finish", |s| s["inflight"] == 0).await;
    let n = s["services"]["shop/production"]["dark"]["mirror"]["requests"]
        .as_u64()
        .unwrap();
    // Binomial(1000, 0.2): mean 200, sd 12.6.
    assert!((120..=280).contains(&n), "{n}");
    assert_eq!(
        s["services"]["shop/production"]["dark"]["mirror"]["status_class_mismatch"],
        0
    );
}
