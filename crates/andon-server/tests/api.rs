//! The API over real HTTP on 127.0.0.1, with a real git repository, a real
//! SQLite store and real job processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

mod common;

use common::*;

const PIPELINE: &str = r#"
pipeline:
  stages:
    - name: build
      jobs:
        - name: compile
          run: echo compiling; mkdir -p out; echo bin > out/app
          artifacts: [out/app]
        - name: secretive
          run: echo "token is $API_KEY"
          secrets: [API_KEY]
    - name: test
      kind: unit
      jobs:
        - name: unit
          run: echo testing
"#;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_runs_its_pipeline_and_shows_jobs_logs_and_artifacts() {
    let s = start().await;
    let (_d, repo) = repo(PIPELINE);
    let added = add_project(&s, "shop", &repo).await;
    // The first run has no secret yet: the job that needs it fails, clearly.
    let first = s.wait_run(added["run_id"].as_u64().unwrap()).await;
    assert_eq!(first["status"], "failed", "{first}");

    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/projects/shop/secrets/API_KEY",
            Some(ADMIN),
            Some(json!({"value": "hunter2-very-secret"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, v) = s.post("/api/v1/projects/shop/runs", json!({})).await;
    assert_eq!(status, 201, "{v}");
    let run = s.wait_run(v["id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["commit"], head(&repo));
    let jobs: Vec<&str> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["compile", "secretive", "unit"]);

    // Logs are stored with the secret masked.
    let log = s
        .http
        .get(s.url(&format!("/api/v1/runs/{}/jobs/secretive/log", run["id"])))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("token is ***"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");

    // Artifacts by digest; the bytes verify.
    let (status, arts) = s
        .get(&format!("/api/v1/runs/{}/artifacts", run["id"]))
        .await;
    assert_eq!(status, 200);
    let digest = arts[0]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{arts}");
    let resp = s
        .http
        .get(s.url(&format!("/api/v1/artifacts/{digest}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Runs list, newest first; events carry who did what.
    let (_, runs) = s.get("/api/v1/projects/shop/runs").await;
    assert_eq!(runs[0]["id"], run["id"]);
    let (_, events) = s.get("/api/v1/events?after=0&limit=1000").await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for k in [
        "project_added",
        "run_queued",
        "run_started",
        "job_started",
        "job_finished",
        "artifact_stored",
        "run_finished",
        "secret_set",
    ] {
        assert!(kinds.contains(&k), "missing {k} in {kinds:?}");
    }
    let body = serde_json::to_string(&events).unwrap();
    assert!(!body.contains("hunter2"), "a secret leaked into events");

    // Metrics and health.
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("andon_runs{project=\"shop\",status=\"passed\"} 1"),
        "{metrics}"
    );
    let (status, _) = s.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_needs_a_token_with_the_right_role() {
    let s = start().await;
    let (status, v) = s
        .call(reqwest::Method::GET, "/api/v1/projects", None, None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/projects",
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(status, 401);

    let viewer = s.token("viewer").await;
    let developer = s.token("developer").await;
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/projects",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let add = json!({"name": "p", "repo": "/nonexistent"});
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(&viewer),
            Some(add.clone()),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("admin"));
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(&developer),
            Some(add),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(&developer),
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 403);

    // Token listings never include secrets or hashes.
    let (_, tokens) = s.get("/api/v1/tokens").await;
    let text = tokens.to_string();
    assert!(!text.contains(&viewer) && !text.contains("hash"), "{text}");

    // A revoked token stops working at once.
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer-bot")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/projects",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // The last admin token cannot be revoked: nobody could create tokens again.
    let admin_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "admin" && t["environment"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{admin_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last admin token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_json_4xx() {
    let s = start().await;
    let cases: Vec<(reqwest::Method, &str, Option<&str>, u16)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/projects",
            Some("{not json"),
            400,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/projects",
            Some("{\"name\": 5}"),
            422,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/projects",
            Some("{\"name\":\"a\",\"repo\":\"/x\",\"bogus\":1}"),
            422,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/projects",
            Some("{\"name\":\"../etc\",\"repo\":\"/x\"}"),
            400,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some("{\"name\":\"a\",\"role\":\"god\"}"),
            422,
        ),
        (reqwest::Method::GET, "/api/v1/runs/not-a-number", None, 400),
        (reqwest::Method::GET, "/api/v1/runs/999999", None, 404),
        (
            reqwest::Method::GET,
            "/api/v1/projects/nope/runs",
            None,
            404,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/artifacts/sha256:zz",
            None,
            400,
        ),
        (reqwest::Method::GET, "/api/v1/nothing-here", None, 404),
        (reqwest::Method::DELETE, "/api/v1/events", None, 405),
        (
            reqwest::Method::POST,
            "/api/v1/webhooks/bitbucket",
            Some("{}"),
            404,
        ),
    ];
    for (method, path, body, want) in cases {
        let mut req = s
            .http
            .request(method.clone(), s.url(path))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{method} {path} {body:?}: {v}");
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{method} {path}: {v}"
        );
    }
    // Oversized bodies are refused before any handler.
    let big = "x".repeat(2 * 1024 * 1024);
    let resp = s
        .http
        .post(s.url("/api/v1/projects"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_need_a_valid_signature_and_start_a_run() {
    let s = start().await;
    let (_d, repo) = repo(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: j\n          run: 'true'\n",
    );
    let added = add_project(&s, "hooked", &repo).await;
    s.wait_run(added["run_id"].as_u64().unwrap()).await;
    std::fs::write(repo.join("new.txt"), "x").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "second"]);
    let commit = head(&repo);
    let body = serde_json::to_vec(
        &json!({"ref": "refs/heads/main", "after": commit, "repository": {"name": "hooked"}}),
    )
    .unwrap();
    let (_, before) = s.get("/api/v1/events?limit=5000").await;

    // Unsigned, badly signed, wrong secret: 401 and nothing changes.
    for sig in [
        None,
        Some("sha256=00".to_string()),
        Some(sign("wrong", &body)),
    ] {
        let mut req = s
            .http
            .post(s.url("/api/v1/webhooks/github?project=hooked"))
            .body(body.clone())
            .header("x-github-event", "push");
        if let Some(sig) = sig {
            req = req.header("x-hub-signature-256", sig);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
    let (_, after) = s.get("/api/v1/events?limit=5000").await;
    assert_eq!(
        before.as_array().unwrap().len(),
        after.as_array().unwrap().len()
    );

    // GitLab's token, Gitea's HMAC and GitHub's HMAC all work; one run per commit.
    let resp = s
        .http
        .post(s.url("/api/v1/webhooks/github"))
        .body(body.clone())
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign("hook-secret", &body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    let run = s.wait_run(v["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["commit"], commit);
    assert_eq!(run["trigger"]["webhook"], "github");
    let resp = s
        .http
        .post(s.url("/api/v1/webhooks/gitlab?project=hooked"))
        .body(body.clone())
        .header("x-gitlab-token", "hook-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["status"], "ignored",
        "the same commit does not run twice: {v}"
    );
    let gitea_sig = sign("hook-secret", &body);
    let resp = s
        .http
        .post(s.url("/api/v1/webhooks/gitea?project=hooked"))
        .body(body.clone())
        .header("x-gitea-signature", gitea_sig.trim_start_matches("sha256="))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_fails_the_run_with_the_diagnostic() {
    let s = start().await;
    let (_d, repo) = repo(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: j\n          need: [x]\n          run: 'true'\n",
    );
    let added = add_project(&s, "broken", &repo).await;
    let run = s.wait_run(added["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "failed");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("andon.yaml:6:11") && reason.contains("needs"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let s = start().await;
    let (status, doc) = s
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    let source = include_str!("../src/api/mod.rs");
    let paths: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .map(|rest| rest.split('"').nth(1).unwrap())
        .collect();
    assert!(paths.len() > 10, "{paths:?}");
    for path in paths {
        let full = if path.starts_with("/healthz") || path.starts_with("/metrics") {
            path.to_string()
        } else {
            format!("/api/v1{path}")
        };
        assert!(
            doc["paths"].get(&full).is_some(),
            "{full} is served but not in openapi.json"
        );
    }
}
