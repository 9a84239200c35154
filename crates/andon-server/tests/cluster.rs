//! Two servers in one process over one PostgreSQL database (`ANDON_TEST_PG`,
//! see `scripts/pg-test-cluster.sh`): both serve the API, exactly one leads,
//! what one appends the other shows, a run queued on the follower is run by
//! the leader, and leader-only requests sent to the follower are forwarded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, repo};
use serde_json::{Value, json};

/// A fresh database on the test cluster, or None (skip) without one.
fn pg_database() -> Option<String> {
    let Ok(admin) = std::env::var("ANDON_TEST_PG") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ANDON_TEST_PG is not: start PostgreSQL with scripts/pg-test-cluster.sh"
        );
        println!("skipped: ANDON_TEST_PG not set");
        return None;
    };
    let name = format!(
        "andon_cluster_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let out = std::process::Command::new("psql")
        .arg(&admin)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

struct Node {
    base: String,
    _data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(url: &str, shared_key: &std::path::Path) -> Node {
        let data = tempfile::tempdir().unwrap();
        // Every server sharing a database needs the same secrets key.
        if shared_key.exists() {
            std::fs::copy(shared_key, data.path().join("secret.key")).unwrap();
        }
        let server = andon_server::Server::start(andon_server::ServerConfig {
            data_dir: data.path().to_path_buf(),
            store_url: Some(url.to_string()),
            admin_token: Some(ADMIN.into()),
            parallelism: 2,
            router: None,
        })
        .await
        .unwrap();
        if !shared_key.exists() {
            std::fs::copy(data.path().join("secret.key"), shared_key).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        Node {
            base,
            _data: data,
            stop: Some(tx),
            task,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// The run's status, or "" while this server has not folded it yet.
    async fn run_status(&self, id: u64) -> String {
        let (_, v) = self
            .call(reqwest::Method::GET, &format!("/api/v1/runs/{id}"), None)
            .await;
        v["status"].as_str().unwrap_or_default().to_string()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leaders(nodes: &[&Node]) -> Vec<bool> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.get("/api/v1/cluster").await["leader"] == true);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_postgres() {
    let Some(url) = pg_database() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("secret.key");
    let a = Node::start(&url, &key).await;
    let b = Node::start(&url, &key).await;

    // Exactly one leads, and the follower knows where.
    wait_until("one leader", || async {
        leaders(&[&a, &b]).await.iter().filter(|l| **l).count() == 1
    })
    .await;
    let (leader, follower) = if leaders(&[&a, &b]).await[0] {
        (&a, &b)
    } else {
        (&b, &a)
    };
    wait_until("the follower to learn the leader", || async {
        follower.get("/api/v1/cluster").await["leader_api"] == json!(leader.base)
    })
    .await;

    // A project added on the follower: its first run is queued there and
    // run by the leader, which fetches the commit into its own mirror.
    let (_r, repo_path) = repo(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: hello\n          run: echo hello\n",
    );
    let (status, added) = follower
        .call(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "p", "repo": repo_path.display().to_string(), "poll": "0s"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let first = added["run_id"].as_u64().unwrap();
    for node in [leader, follower] {
        wait_until("the first run to pass on both servers", || async {
            node.run_status(first).await == "passed"
        })
        .await;
    }

    // A trigger sent to the follower is forwarded to the leader.
    let (status, trig) = follower
        .call(
            reqwest::Method::POST,
            "/api/v1/projects/p/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{trig}");
    let second = trig["id"].as_u64().unwrap();
    assert_ne!(second, first, "a run id handed out twice");
    wait_until("the forwarded run to pass", || async {
        follower.run_status(second).await == "passed"
    })
    .await;
    // Its log lives on the leader and is read through the follower too.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/runs/{second}/jobs/hello/log",
            follower.base
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("hello"));

    // Runs queued on both servers at once get distinct ids.
    let mut ids = Vec::new();
    for _ in 0..3 {
        for node in [leader, follower] {
            let (status, v) = node
                .call(
                    reqwest::Method::POST,
                    "/api/v1/projects/p/runs",
                    Some(json!({})),
                )
                .await;
            assert_eq!(status, 201, "{v}");
            ids.push(v["id"].as_u64().unwrap());
        }
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    for id in &ids {
        wait_until("every run to pass", || async {
            leader.run_status(*id).await == "passed"
        })
        .await;
    }

    // Both show the same log, gap-free, with one end per job.
    wait_until("the follower to catch up", || async {
        follower.get("/api/v1/cluster").await["last_seq"]
            == leader.get("/api/v1/cluster").await["last_seq"]
    })
    .await;
    let events = leader.get("/api/v1/events?limit=1000").await;
    let list = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .cloned()
        .unwrap_or_default();
    let seqs: Vec<u64> = list.iter().filter_map(|e| e["seq"].as_u64()).collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap or duplicate in {seqs:?}");
    }
    assert_eq!(leaders(&[&a, &b]).await.iter().filter(|l| **l).count(), 1);

    b.stop().await;
    a.stop().await;
}
