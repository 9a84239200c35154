//! The flow wired into the server, over real HTTP with real runs: the
//! andon cord and the gate, production deploys refused while the line is
//! stopped, metrics, the board's WIP limits, signed and retried
//! notifications.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

mod common;

use common::*;

async fn add_project(s: &TestServer, name: &str, repo: &Path) -> Value {
    let (status, v) = s
        .post(
            "/api/v1/projects",
            json!({"name": name, "repo": repo.display().to_string(), "poll": "0s", "webhook_secret": "hook-secret"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

fn yaml(hook_port: u16) -> String {
    format!(
        r#"
pipeline:
  stages:
    - name: test
      jobs:
        - name: unit
          run: test -f ok
environments:
  production:
    target:
      process:
        command: ./app --port $PORT
        health: /healthz
    strategy: recreate
board:
  columns:
    - backlog
    - {{ name: doing, wip: 1 }}
    - done
notify:
  - url: http://127.0.0.1:{hook_port}/hook
    format: json
    events: [line_stopped, line_released]
    secret: HOOK_KEY
"#
    )
}

/// Receives webhooks: answers 500 to the first, 200 after; keeps (signature, body).
async fn receiver() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let sig = headers
                    .get("x-andon-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let n = {
                    let mut list = seen.lock().unwrap();
                    list.push((sig, body));
                    list.len()
                };
                if n == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, got)
}

async fn trigger(s: &TestServer, project: &str) -> Value {
    let (status, v) = s
        .post(&format!("/api/v1/projects/{project}/runs"), json!({}))
        .await;
    assert!(status == 201 || status == 200, "{status} {v}");
    s.wait_run(v["run_id"].as_u64().or(v["id"].as_u64()).unwrap())
        .await
}

async fn wait_all_runs(s: &TestServer, project: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, runs) = s.get(&format!("/api/v1/projects/{project}/runs")).await;
        let busy = runs
            .as_array()
            .unwrap()
            .iter()
            .any(|r| ["queued", "running"].contains(&r["status"].as_str().unwrap()));
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "runs did not finish: {runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events_of(s: &TestServer, kind: &str) -> Vec<Value> {
    let (_, all) = s.get("/api/v1/events?after=0&limit=10000").await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind || e["event"]["type"] == kind || e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_red_trunk_stops_the_line_and_a_fix_releases_it() {
    let s = start().await;
    let (hook_port, got) = receiver().await;
    let (_dir, path) = repo(&yaml(hook_port));
    add_project(&s, "shop", &path).await;
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/projects/shop/secrets/HOOK_KEY",
            Some(ADMIN),
            Some(json!({"value": "k3y"})),
        )
        .await;
    assert_eq!(status, 204);
    wait_all_runs(&s, "shop").await;
    // No file `ok`: the trunk pipeline fails.
    let run = trigger(&s, "shop").await;
    assert_eq!(run["status"], "failed", "{run}");
    let (status, gate) = s.get("/api/v1/projects/shop/gate").await;
    assert_eq!(status, 423, "{gate}");
    assert_eq!(gate["status"], "stopped");
    assert_eq!(gate["error"]["code"], "line_stopped");

    // A production deploy is refused by the cord before any router is needed.
    let deployer = s.token("deployer").await;
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/projects/shop/environments/production/deploys",
            Some(&deployer),
            Some(json!({"run": 1})),
        )
        .await;
    assert_eq!(status, 423, "{v}");
    assert_eq!(v["error"]["code"], "line_stopped", "{v}");
    assert!(!events_of(&s, "deploy_refused").await.is_empty());
    // With a reason it passes the cord (and then meets the missing router).
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/projects/shop/environments/production/deploys",
            Some(&deployer),
            Some(json!({"run": 1, "override_reason": "hotfix for the outage"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("router"),
        "{v}"
    );
    assert_eq!(events_of(&s, "line_overridden").await.len(), 1);

    // The fix.
    std::fs::write(path.join("ok"), "").unwrap();
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", "fix: fixes the build"]);
    let run = trigger(&s, "shop").await;
    assert_eq!(run["status"], "passed", "{run}");
    let (status, gate) = s.get("/api/v1/projects/shop/gate").await;
    assert_eq!(status, 200, "{gate}");
    assert_eq!(gate["status"], "green");
    assert_eq!(events_of(&s, "line_stopped").await.len(), 1);
    assert_eq!(events_of(&s, "line_released").await.len(), 1);
    let (_, m) = s.get("/api/v1/projects/shop/metrics").await;
    assert!(m["time_to_green_median_s"].as_f64().unwrap() >= 0.0, "{m}");

    // Notifications: line_stopped (500 then retried) and line_released, signed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "notifications not delivered: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (sig, body) in got.lock().unwrap().iter() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(body.as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(*sig, want, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, attempts) = s.get("/api/v1/projects/shop/notifications").await;
        let list = attempts.as_array().unwrap();
        if list.len() >= 3 {
            assert!(
                list.iter().any(|a| a["ok"] == false && a["attempt"] == 1),
                "{attempts}"
            );
            assert!(
                list.iter().any(|a| a["ok"] == true && a["attempt"] == 2),
                "{attempts}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{attempts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_have_the_contract_keys_with_nulls_when_empty() {
    let s = start().await;
    let (_dir, path) = repo(&yaml(9));
    add_project(&s, "empty", &path).await;
    let (status, m) = s
        .get("/api/v1/projects/empty/metrics?since=2026-01-01&until=2026-02-01T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{m}");
    for key in [
        "deployment_frequency_per_day",
        "lead_time_median_s",
        "change_failure_rate",
        "time_to_restore_median_s",
        "gear",
    ] {
        assert!(m.get(key).is_some_and(Value::is_null), "{key}: {m}");
    }
    assert_eq!(m["bands"], json!({}));
    assert_eq!(m["environment"], "production");
    let (status, v) = s
        .get("/api/v1/projects/empty/metrics?since=yesterday")
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn a_full_column_refuses_a_card_unless_an_admin_overrides() {
    let s = start().await;
    let (_dir, path) = repo(&yaml(9));
    add_project(&s, "b", &path).await;
    let dev = s.token("developer").await;
    let mut ids = Vec::new();
    for title in ["one", "two"] {
        let (status, v) = s
            .call(
                reqwest::Method::POST,
                "/api/v1/projects/b/cards",
                Some(&dev),
                Some(json!({"title": title})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_u64().unwrap());
    }
    let mv = |id: u64| format!("/api/v1/projects/b/cards/{id}/move");
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            &mv(ids[0]),
            Some(&dev),
            Some(json!({"to": "doing"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            &mv(ids[1]),
            Some(&dev),
            Some(json!({"to": "doing"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "wip_limit", "{v}");
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            &mv(ids[1]),
            Some(&dev),
            Some(json!({"to": "doing", "override_reason": "incident"})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = s
        .post(
            &mv(ids[1]),
            json!({"to": "doing", "override_reason": "incident"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, board) = s.get("/api/v1/projects/b/board").await;
    assert_eq!(board["columns"][1]["name"], "doing");
    assert_eq!(board["columns"][1]["count"], 2, "{board}");
}
