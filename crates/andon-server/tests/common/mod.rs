//! The test server and git helpers shared by the API test files.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "test-admin-token";

pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    _data: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) async fn start() -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: data.path().to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 2,
        router: None,
    })
    .await
    .unwrap();
    assert!(
        server.first_admin_token.is_none(),
        "a given admin token is not printed"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = rx.await;
    }));
    TestServer {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _data: data,
        shutdown: Some(tx),
    }
}

impl TestServer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(ADMIN), None)
            .await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await
    }

    pub(crate) async fn wait_run(&self, id: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, run) = self.get(&format!("/api/v1/runs/{id}")).await;
            let status = run["status"].as_str().unwrap_or("");
            if !["queued", "running", ""].contains(&status) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn token(&self, role: &str) -> String {
        let (status, v) = self
            .post(
                "/api/v1/tokens",
                json!({"name": format!("{role}-bot"), "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn head(dir: &Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with an `andon.yaml` on branch `main`.
pub(crate) fn repo(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    git(&path, &["init", "-q", "-b", "main"]);
    std::fs::write(path.join("andon.yaml"), yaml).unwrap();
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", "first"]);
    (dir, path)
}
