//! A real server and real agents in one process, on loopback: jobs with
//! `runs_on` run on an agent with the labels, get the source and their
//! inputs, stream logs, upload artifacts by digest; a job waits for an agent
//! with its labels; a cancelled run kills the agent's job at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "agents-admin";

struct Server {
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    let data = tempfile::tempdir().unwrap();
    let s = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: data.path().to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 4,
        router: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(s.serve(listener, async move {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _data: data,
        _stop: tx,
    }
}

impl Server {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
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

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, ADMIN, None).await.1
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, ADMIN, Some(body))
            .await
    }

    async fn token(&self, role: &str) -> String {
        let (status, v) = self
            .post(
                "/api/v1/tokens",
                json!({"name": format!("{role}-agent"), "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Adds the project; the run of its trunk it queues is returned.
    async fn project(&self, repo: &Path) -> u64 {
        let (status, v) = self
            .post(
                "/api/v1/projects",
                json!({"name": "shop", "repo": repo.display().to_string(), "poll": "0s"}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["run_id"].as_u64().unwrap()
    }

    async fn wait_for(&self, what: &str, secs: u64, mut f: impl AsyncFnMut(&Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self).await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_run(&self, id: u64) -> Value {
        let mut last = Value::Null;
        self.wait_for(&format!("run {id} to end"), 60, async |s| {
            last = s.get(&format!("/api/v1/runs/{id}")).await;
            !["queued", "running"].contains(&last["status"].as_str().unwrap_or("queued"))
        })
        .await;
        last
    }

    async fn events(&self, run_id: u64) -> Vec<Value> {
        let all = self.get("/api/v1/events?limit=5000").await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["run_id"].as_u64() == Some(run_id) || e["type"] == "agent_connected")
            .cloned()
            .collect()
    }

    async fn log(&self, run_id: u64, job: &str) -> String {
        self.http
            .get(format!("{}/api/v1/runs/{run_id}/jobs/{job}/log", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn git(dir: &Path, args: &[&str]) {
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

fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    git(&path, &["init", "-q", "-b", "main"]);
    for (name, body) in files {
        let p = path.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
    }
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", "first"]);
    (dir, path)
}

/// Starts an agent in this process; dropping the guard stops it.
struct Agent {
    stop: CancellationToken,
    _work: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn agent(s: &Server, token: &str, name: &str, labels: &[&str]) -> Agent {
    let work = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cfg = andon_agent::AgentConfig {
        server: s.base.clone(),
        token: token.to_owned(),
        name: name.to_owned(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        work_dir: work.path().to_path_buf(),
        jobs: 1,
    };
    tokio::spawn(andon_agent::run(cfg, stop.clone()));
    Agent { stop, _work: work }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_with_runs_on_runs_on_the_agent_with_source_inputs_and_outputs() {
    let s = server().await;
    let yaml = r#"pipeline:
  stages:
    - name: build
      jobs:
        - name: build
          run: mkdir -p out && echo "built here" > out/lib.txt
          artifacts: [out/lib.txt]
    - name: test
      jobs:
        - name: remote
          runs_on: [linux]
          secrets: [API_KEY]
          run: |
            ./tool.sh
            cat out/lib.txt
            echo "key is $API_KEY"
            echo "agent $ANDON_JOB on run $ANDON_RUN_ID"
            mkdir -p dist && echo "made on the agent" > dist/app
          artifacts: [dist/app]
    - name: after
      jobs:
        - name: after
          run: cat dist/app
"#;
    let (_r, path) = repo(&[
        ("andon.yaml", yaml),
        ("tool.sh", "#!/bin/sh\necho tool ran\n"),
    ]);
    let mut perms = std::fs::metadata(path.join("tool.sh"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path.join("tool.sh"), perms).unwrap();
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", "exec bit"]);
    let run_id = s.project(&path).await;
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/projects/shop/secrets/API_KEY",
            ADMIN,
            Some(json!({"value": "hunter22"})),
        )
        .await;
    assert_eq!(status, 204);

    // A viewer token may not act as an agent.
    let viewer = s.token("viewer").await;
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/agents/lease",
            &viewer,
            Some(json!({"name": "x", "labels": [], "wait_ms": 0})),
        )
        .await;
    assert_eq!(status, 403);

    let token = s.token("developer").await;
    let _a = agent(&s, &token, "linux-1", &["linux", "x86_64"]);
    let run = s.wait_run(run_id).await;
    assert_eq!(
        run["status"],
        "passed",
        "{run}\n{}",
        s.log(run_id, "remote").await
    );
    let remote = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "remote")
        .unwrap();
    assert_eq!(remote["agent"], "linux-1", "{remote}");
    assert_eq!(remote["attempts"], 1);

    let log = s.log(run_id, "remote").await;
    assert!(
        log.contains("tool ran"),
        "the source with its exec bit: {log}"
    );
    assert!(log.contains("built here"), "the input from `build`: {log}");
    assert!(
        log.contains("key is ***") && !log.contains("hunter22"),
        "masked: {log}"
    );
    assert!(
        log.contains(&format!("agent remote on run {run_id}")),
        "{log}"
    );
    assert!(
        s.log(run_id, "after").await.contains("made on the agent"),
        "a later local job sees the agent's artifact"
    );

    let events = s.events(run_id).await;
    let connected = of_type(&events, "agent_connected");
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert_eq!(connected[0]["labels"], json!(["linux", "x86_64"]));
    let started: Vec<&Value> = of_type(&events, "job_started")
        .into_iter()
        .filter(|e| e["job"] == "remote")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["executor"], "agent:linux-1");
    assert!(
        started[0].get("pgid").is_none(),
        "an agent's pgid means nothing here"
    );
    let order: Vec<&str> = events
        .iter()
        .filter(|e| e["job"] == "remote")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "job_queued",
            "job_leased",
            "job_started",
            "artifact_stored",
            "job_finished"
        ]
    );

    // The agent's artifact is in the server's store, by digest.
    let arts = s.get(&format!("/api/v1/runs/{run_id}/artifacts")).await;
    let app = arts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "dist/app")
        .unwrap();
    let digest = app["digest"].as_str().unwrap();
    let (status, _) = s
        .call(
            reqwest::Method::HEAD,
            &format!("/api/v1/agents/artifacts/{digest}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_waits_for_an_agent_with_all_its_labels() {
    let s = server().await;
    let yaml = "pipeline:\n  stages:\n    - name: train\n      jobs:\n        - name: train\n          runs_on: [gpu, linux]\n          run: echo trained\n";
    let (_r, path) = repo(&[("andon.yaml", yaml)]);
    let run_id = s.project(&path).await;
    let token = s.token("developer").await;
    let _plain = agent(&s, &token, "plain", &["linux"]);
    s.wait_for("the job to be queued", 30, async |s| {
        s.get("/api/v1/agents").await["queued"]
            .as_array()
            .is_some_and(|q| !q.is_empty())
    })
    .await;
    // An agent without `gpu` is connected and idle, and leaves it alone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let agents = s.get("/api/v1/agents").await;
    assert_eq!(
        agents["queued"][0]["runs_on"],
        json!(["gpu", "linux"]),
        "{agents}"
    );
    let run = s.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["jobs"][0]["status"], "pending", "{run}");

    let _gpu = agent(&s, &token, "gpu-box", &["linux", "gpu", "cuda"]);
    let run = s.wait_run(run_id).await;
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["jobs"][0]["agent"], "gpu-box");
    let leased = of_type(&s.events(run_id).await, "job_leased")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0]["agent"], "gpu-box");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_run_kills_the_agents_job_at_once() {
    let s = server().await;
    let marker = tempfile::tempdir().unwrap();
    let pid_file = marker.path().join("pid");
    let yaml = format!(
        "pipeline:\n  stages:\n    - name: slow\n      jobs:\n        - name: slow\n          runs_on: [linux]\n          run: echo $$ > {} && sleep 60\n",
        pid_file.display()
    );
    let (_r, path) = repo(&[("andon.yaml", &yaml)]);
    let run_id = s.project(&path).await;
    let token = s.token("developer").await;
    let _a = agent(&s, &token, "a", &["linux"]);
    s.wait_for("the job to start", 30, async |_| {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cancelled_at = Instant::now();
    let (status, v) = s
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let run = s.wait_run(run_id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    s.wait_for("the agent to kill its job", 10, async |_| {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|st| st.contains("State:\tZ"))
    })
    .await;
    // A held heartbeat is answered when the lease is taken back: no wait
    // for the next beat (the default TTL is 15 s).
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        cancelled_at.elapsed()
    );
    let finished: Vec<Value> = of_type(&s.events(run_id).await, "job_finished")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0]["outcome"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_upload_by_digest_and_must_match_it() {
    let s = server().await;
    let token = s.token("developer").await;
    let blob = b"not really a tar, but bytes are bytes".to_vec();
    let digest = format!("sha256:{}", sha256_hex(&blob));
    let url = format!("{}/api/v1/agents/artifacts/{digest}", s.base);
    let head = |t: &str| s.http.head(&url).bearer_auth(t.to_owned()).send();
    assert_eq!(head(&token).await.unwrap().status(), 404);
    let wrong = format!(
        "{}/api/v1/agents/artifacts/sha256:{}",
        s.base,
        "0".repeat(64)
    );
    let resp = s
        .http
        .put(&wrong)
        .bearer_auth(&token)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a body must hash to its digest");
    let resp = s
        .http
        .put(&url)
        .bearer_auth(&token)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(head(&token).await.unwrap().status(), 200);
    let again = s
        .http
        .put(&url)
        .bearer_auth(&token)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["stored"], false);
    let got = s
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &blob[..]);
    // A lease nobody holds cannot report.
    let (status, v) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/agents/leases/lease_nope/finish",
            &token,
            Some(json!({"outcome": "passed"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/agents/leases/lease_nope/heartbeat",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 409);
}

fn sha256_hex(bytes: &[u8]) -> String {
    andon_artifacts::Digest::of(bytes).hex()
}
