//! A guarded rollout end to end: an Andon server in-process on 127.0.0.1,
//! the sample service as a process reading flag `new-checkout` through the
//! flags SDK and reporting the outcome of every request, and traffic from
//! many users. A good new code path ramps 10% → 50% → 100%; a bad one (half
//! of its requests fail) is turned back to 0% with an incident.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "guard-test-admin";
const FLAG: &str = "new-checkout";

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_server(dir: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: dir.to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 1,
        router: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    (addr, tx)
}

async fn api(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

fn start_service(base: &str, token: &str, flag_error_rate: &str) -> (Service, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sample-service"))
        .env("PORT", "0")
        .env("VERSION", "guarded")
        .env("ERROR_RATE", "0.01")
        .env("SEED", "7")
        .env("FLAG", FLAG)
        .env("FLAG_ERROR_RATE", flag_error_rate)
        .env("FLAG_FLUSH_MS", "200")
        .env("ANDON_URL", base)
        .env("ANDON_TOKEN", token)
        .env("ANDON_ENVIRONMENT", "production")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    (Service(child), format!("http://{addr}"))
}

/// Runs one guarded rollout under traffic until the ramp stops running
/// (at most 90 s); returns the flag as the server shows it and the log.
async fn guarded_rollout(flag_error_rate: &str) -> (Value, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start_server(dir.path()).await;
    let base = format!("http://{addr}");
    let token = api(
        &base,
        reqwest::Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "checkout-service", "role": "viewer", "environment": "production"})),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Declaring the ramp starts it: 10% at once.
    api(
        &base,
        reqwest::Method::PUT,
        &format!("/api/v1/flags/{FLAG}"),
        Some(json!({"reason": "ship the new checkout, guarded", "flag": {
            "description": "the new checkout code path",
            "environments": {"production": {"enabled": true, "ramp": {
                "steps": [10, 50, 100], "every": "1s", "min_outcomes": 60, "project": "shop"
            }}}
        }})),
    )
    .await;
    let (_svc, svc) = start_service(&base, &token, flag_error_rate);

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut user = 0u64;
    let mut new_path_seen = 0u64;
    let flag = loop {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the ramp did not finish in 90 s"
        );
        // A burst from distinct users: 16 clients, 20 requests each.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (http, svc, first) = (http.clone(), svc.clone(), user);
            user += 20;
            tasks.push(tokio::spawn(async move {
                let mut new_path = 0u64;
                for u in first..first + 20 {
                    if let Ok(r) = http.get(format!("{svc}/checkout?user=u{u}")).send().await {
                        let body = r.text().await.unwrap_or_default();
                        new_path += u64::from(body.contains("\"new_path\":true"));
                    }
                }
                new_path
            }));
        }
        for t in tasks {
            new_path_seen += t.await.unwrap();
        }
        let v = api(
            &base,
            reqwest::Method::GET,
            &format!("/api/v1/flags/{FLAG}"),
            None,
        )
        .await;
        let status = v["flag"]["environments"]["production"]["ramp"]["state"]["status"].clone();
        if status != "running" {
            break v;
        }
    };
    assert!(new_path_seen > 0, "no request took the new code path");
    let events = api(
        &base,
        reqwest::Method::GET,
        "/api/v1/events?limit=5000",
        None,
    )
    .await;
    (flag, events.as_array().cloned().unwrap_or_default())
}

fn guard_reasons(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["actor"] == "guard" && e["type"] == "flag_changed")
        .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_variant_ramps_to_100_percent() {
    let (flag, events) = guarded_rollout("0.01").await;
    let env = &flag["flag"]["environments"]["production"];
    assert_eq!(env["ramp"]["state"]["status"], "completed", "{flag:#}");
    assert_eq!(env["rules"][0]["rollout"]["percentage"], 100.0, "{flag:#}");
    let reasons = guard_reasons(&events);
    eprintln!("{reasons:#?}");
    assert_eq!(reasons.len(), 2, "one event per step: {reasons:#?}");
    assert!(reasons[0].contains("10% -> 50%"), "{reasons:#?}");
    assert!(
        reasons[1].contains("50% -> 100%") && reasons[1].contains("completed"),
        "{reasons:#?}"
    );
    assert!(
        !events.iter().any(|e| e["type"] == "incident_opened"),
        "no incident for a good variant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_variant_is_turned_back_with_an_incident() {
    let (flag, events) = guarded_rollout("0.5").await;
    let env = &flag["flag"]["environments"]["production"];
    let state = &env["ramp"]["state"];
    assert_eq!(state["status"], "rolled_back", "{flag:#}");
    assert_eq!(env["rules"][0]["rollout"]["percentage"], 0.0, "{flag:#}");
    assert!(
        state["detail"].as_str().unwrap().contains("variant on"),
        "the judge's sentence is kept: {state}"
    );
    let reasons = guard_reasons(&events);
    eprintln!("{reasons:#?}");
    assert!(
        reasons.last().unwrap().contains("turned back"),
        "{reasons:#?}"
    );
    let incident = events
        .iter()
        .find(|e| e["type"] == "incident_opened")
        .expect("an incident is recorded");
    assert_eq!(incident["actor"], "guard");
    assert_eq!(incident["project"], "shop");
    assert_eq!(incident["environment"], "production");
    assert!(
        incident["title"].as_str().unwrap().contains("new-checkout"),
        "{incident}"
    );
}
