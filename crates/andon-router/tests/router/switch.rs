//! Switching tables under load: nothing fails, requests in flight finish where they went.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipping_the_table_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(Router::start(config(dir.path())).await);
    let blue = backend("blue", Behaviour::Ok).await;
    let green = backend("green", Behaviour::Ok).await;
    let flip = |g: u64| {
        let (live, idle) = if g.is_multiple_of(2) {
            ("blue", "green")
        } else {
            ("green", "blue")
        };
        let ep = |n: &str| if n == "blue" { blue.ep() } else { green.ep() };
        table(
            g,
            &[(live, 100, vec![ep(live)]), (idle, 0, vec![ep(idle)])],
            json!({}),
        )
    };
    r.routes(flip(0)).await;

    const TASKS: u64 = 4;
    const PER_TASK: u64 = 5_000;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (r, done) = (r.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for _ in 0..PER_TASK {
                if Instant::now() > deadline {
                    break;
                }
                let resp = r.get("/", &[]).await;
                if resp.status != StatusCode::OK || resp.body != resp.served_by() {
                    failed.push((resp.status, resp.body));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failed
        }));
    }
    let total = TASKS * PER_TASK;
    for g in 1..=10u64 {
        while done.load(Ordering::Relaxed) < g * total / 11 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        r.routes(flip(g)).await;
    }
    let mut failed = Vec::new();
    for t in tasks {
        failed.extend(t.await.unwrap());
    }
    assert_eq!(
        done.load(Ordering::Relaxed),
        total,
        "finished before the deadline"
    );
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        blue.hits() > 1000 && green.hits() > 1000,
        "{} {}",
        blue.hits(),
        green.hits()
    );
    let s = r.stats().await;
    assert_eq!(s["generation"], 10);
    assert_eq!(s["inflight"], 0);
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_its_version_and_is_visible_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(Router::start(config(dir.path())).await);
    let old = backend("old", Behaviour::Delay(Duration::from_millis(600))).await;
    let new = backend("new", Behaviour::Ok).await;
    r.routes(table(1, &[("stable", 100, vec![old.ep()])], json!({})))
        .await;
    let slow = {
        let r = r.clone();
        tokio::spawn(async move { r.get("/", &[]).await })
    };
    while old.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Same role name, new artifact: the old one drains under `retired`.
    let mut t = table(2, &[("stable", 100, vec![new.ep()])], json!({}));
    t["services"]["shop/production"]["versions"][0]["version"] = json!("id-new");
    r.routes(t).await;
    assert_eq!(r.get("/", &[]).await.body, "new");
    let s = r.stats().await;
    assert_eq!(
        s["services"]["shop/production"]["stable"]["version"],
        "id-new"
    );
    let retired = &s["retired"][0];
    assert_eq!(
        (retired["version"].as_str(), retired["inflight"].as_u64()),
        (Some("id-stable"), Some(1)),
        "{s}"
    );

    let resp = slow.await.unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "old"));
    assert_eq!(r.stats().await["retired"][0]["inflight"], 0);
}
