//! kill -9 of the server during a run: nothing committed is lost, the run is
//! not left "running" forever, and its orphaned job process is ended.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "crash-admin";

fn start_server(data: &std::path::Path, port: u16) -> Child {
    andon()
        .args(["server", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // No router: this test is about runs, and a router would outlive it.
        .arg("--no-router")
        .env("ANDON_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{base}/healthz"))
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(base: &str, path: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_during_a_run_loses_nothing_and_leaves_no_orphan() {
    let scratch = tempfile::tempdir().unwrap();
    let pidfile = scratch.path().join("job.pid");
    let yaml = format!(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: quick\n          run: echo quick\n        - name: slow\n          run: echo $$ > {}; exec sleep 120\n",
        pidfile.display()
    );
    let (_r, repo) = repo(&[("andon.yaml", &yaml)]);
    let data = scratch.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut server = start_server(&data, port);
    wait_healthy(&base);
    let added: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "p", "repo": repo.display().to_string(), "poll": "0s"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let run_id = added["run_id"].as_u64().unwrap();
    wait_for("the slow job to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| !s.trim().is_empty())
    });
    wait_for("the quick job to finish", || {
        get(&base, &format!("/api/v1/runs/{run_id}"))["jobs"][0]["status"] == "passed"
    });
    let job_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let before = get(&base, "/api/v1/events?limit=5000");
    let before = before.as_array().unwrap().clone();

    // kill -9: no chance to clean up.
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        pid_alive(job_pid),
        "the job outlives a kill -9 of the server (that is what must be reconciled)"
    );

    let mut server = start_server(&data, port);
    wait_healthy(&base);
    let run = get(&base, &format!("/api/v1/runs/{run_id}"));
    assert_eq!(run["status"], "interrupted", "{run}");
    assert_eq!(
        run["jobs"][0]["status"], "passed",
        "committed progress survives: {run}"
    );
    wait_for("the orphaned job to be ended", || !pid_alive(job_pid));

    // Every event committed before the kill is still there, unchanged, in order.
    let after = get(&base, "/api/v1/events?limit=5000");
    let after = after.as_array().unwrap();
    assert!(
        after.len() > before.len(),
        "the interruption is recorded as an event"
    );
    assert_eq!(&after[..before.len()], &before[..]);
    let seqs: Vec<u64> = after.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps: {seqs:?}"
    );

    server.kill().unwrap();
    server.wait().unwrap();
}
