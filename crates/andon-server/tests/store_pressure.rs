//! The server when its storage misbehaves: an artifact damaged on disk, and
//! a data directory whose disk fills up (a real ENOSPC on a small tmpfs).
//! Each answer must be a clear JSON error, nothing may be half-recorded, and
//! the server must carry on once the cause is gone.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ADMIN, repo};
use serde_json::{Value, json};

const YAML: &str = r#"pipeline:
  stages:
    - name: build
      jobs:
        - name: package
          run: mkdir -p dist && echo 'echo hello' > dist/app && chmod +x dist/app
          artifacts: [dist]
environments:
  production:
    target:
      process:
        command: ./dist/app --port $PORT
"#;

struct Running {
    base: String,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Running {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer {status} is not JSON: {text}"));
        (status, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn events(&self) -> Vec<Value> {
        let (status, v) = self.get("/api/v1/events?limit=5000").await;
        assert_eq!(status, 200, "{v}");
        v.as_array().unwrap().clone()
    }

    async fn wait_run(&self, id: u64) -> Value {
        for _ in 0..1200 {
            let (_, run) = self.get(&format!("/api/v1/runs/{id}")).await;
            if !["queued", "running"].contains(&run["status"].as_str().unwrap_or("queued")) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not finish");
    }
}

/// A server on `data`. The router link points at a closed port: whatever is
/// checked before a release talks to the router is all these tests need.
async fn serve(data: &Path) -> Running {
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: data.to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 1,
        router: Some(andon_server::RouterLink {
            admin: "http://127.0.0.1:1".into(),
            url: "http://127.0.0.1:1".into(),
            token: None,
        }),
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = rx.await;
    }));
    Running {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        shutdown: Some(tx),
    }
}

fn blob_path(data: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data.join("artifacts")
        .join("sha256")
        .join(&hex[..2])
        .join(&hex[2..])
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_artifact_is_detected_and_never_deployed() {
    let (_r, repo_path) = repo(YAML);
    let data = tempfile::tempdir().unwrap();
    let s = serve(data.path()).await;
    let (status, added) = s
        .post(
            "/api/v1/projects",
            json!({"name": "shop", "repo": repo_path.display().to_string(), "poll": "0s"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let run = s.wait_run(added["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "passed", "{run}");
    let (_, arts) = s.get("/api/v1/runs/1/artifacts").await;
    let digest = arts[0]["digest"].as_str().unwrap().to_string();

    // One byte flipped in the middle of the blob, its size unchanged.
    let path = blob_path(data.path(), &digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    // Read: refused, with a JSON error, not the damaged bytes.
    let resp = s
        .http
        .get(format!("{}/api/v1/artifacts/{digest}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert!(status >= 400, "a corrupted artifact was served: {status}");
    assert!(body["error"]["message"].is_string(), "{body}");

    // Deploy: refused before anything starts, and the refusal is in the log.
    let before = s.events().await.len();
    let (status, body) = s
        .post(
            "/api/v1/projects/shop/environments/production/deploys",
            json!({"run": 1, "reason": "ship it"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("verification") && msg.contains(&digest),
        "{msg}"
    );
    let events = s.events().await;
    let new = types(&events[before..]);
    assert_eq!(new, ["deploy_refused"], "{:?}", &events[before..]);
    let (_, deploys) = s.get("/api/v1/projects/shop/deploys").await;
    assert_eq!(deploys.as_array().unwrap().len(), 0, "{deploys}");
}

/// Mounts a small tmpfs; None (after saying why) when this is impossible,
/// which only CI treats as a failure.
fn small_tmpfs(size: &str) -> Option<(tempfile::TempDir, Unmount)> {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs: the disk-full test needs root"
        );
        println!("skipped: cannot mount a tmpfs (needs root)");
        return None;
    }
    let path = dir.path().to_path_buf();
    Some((dir, Unmount(path)))
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Takes all the space left on the filesystem of `dir`.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.flush();
    // Also the last few bytes a 64 KiB chunk did not fit into.
    while f.write_all(&[0u8; 512]).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_nothing_is_half_written_and_writes_resume() {
    let Some((mnt, _unmount)) = small_tmpfs("8m") else {
        return;
    };
    let data = mnt.path().join("data");
    let s = serve(&data).await;
    let filler = fill(mnt.path());

    // Writes until the store refuses one: the WAL may still have room for a few.
    let mut accepted = Vec::new();
    let mut refusal = None;
    for i in 0..2_000 {
        let (status, body) = s
            .post(
                "/api/v1/tokens",
                json!({"name": format!("bot-{i}-{}", "x".repeat(80)), "role": "viewer"}),
            )
            .await;
        match status {
            201 => accepted.push(body["id"].as_str().unwrap().to_string()),
            _ => {
                refusal = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("the disk never filled up");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("full") && msg.contains("Free"), "{msg}");

    // Reads still work; the log holds exactly what was acknowledged, in
    // order and without gaps: one token_created per accepted token.
    let events = s.events().await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let created: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "token_created")
        .filter_map(|e| e["token_id"].as_str())
        .filter(|id| accepted.iter().any(|a| a == id))
        .collect();
    assert_eq!(
        created.len(),
        accepted.len(),
        "an acknowledged write is missing"
    );
    let (_, tokens) = s.get("/api/v1/tokens").await;
    let listed = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap_or("").starts_with("bot-"))
        .count();
    assert_eq!(listed, accepted.len(), "a refused token was kept anyway");

    // Space comes back: the next write works and continues the log.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = s
        .post("/api/v1/tokens", json!({"name": "after", "role": "viewer"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let after = s.events().await;
    assert_eq!(after.len(), events.len() + 1);
    assert_eq!(
        after.last().unwrap()["seq"].as_u64().unwrap(),
        seqs.len() as u64 + 1
    );
}
