//! Remote agents with the real binary: a server and two `andon agent`
//! processes on loopback; the agent running a long job is killed with
//! `kill -9` mid-job; the job is run again on the other agent and the run
//! passes. The events show one accepted finish per attempt and leases of
//! the job that never overlap, and the job's own output shows that the
//! killed agent's process stopped before the other one started.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "agents-cli-admin";
/// Short, so the lost agent is noticed within the test's patience.
const TTL_MS: &str = "2000";

/// Children killed (and reaped) when the test ends, however it ends.
struct Procs(BTreeMap<String, Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.0.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(base: &str) -> Vec<Value> {
    let (_, v) = call(
        base,
        reqwest::Method::GET,
        "/api/v1/events?limit=5000",
        ADMIN,
        None,
    );
    v.as_array().unwrap().clone()
}

fn start_agent(base: &str, token: &str, name: &str, dir: &Path) -> Child {
    andon()
        .args([
            "agent",
            "--server",
            base,
            "--token",
            token,
            "--labels",
            "linux,x86_64",
            "--name",
            name,
        ])
        .arg("--work")
        .arg(dir.join(format!("work-{name}")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn an_agent_killed_mid_job_loses_its_lease_and_another_agent_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("ticks");
    let yaml = format!(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: long\n          runs_on: [linux]\n          env: {{ TICKS: \"{}\" }}\n          run: |\n            for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do\n              echo \"tick $PWD $(date +%s%N)\" >> \"$TICKS\"\n              sleep 0.2\n            done\n            echo done\n",
        ticks.display()
    );
    let (_r, repo_path) = repo(&[("andon.yaml", &yaml)]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut procs = Procs(BTreeMap::new());
    let server = andon()
        .args(["server", "--data"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-router"])
        .env("ANDON_ADMIN_TOKEN", ADMIN)
        .env("ANDON_AGENT_LEASE_TTL_MS", TTL_MS)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    procs.0.insert("server".into(), server);
    wait_for("the server", 30, || {
        reqwest::blocking::get(format!("{base}/healthz")).is_ok_and(|r| r.status().is_success())
    });
    let (status, tok) = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/tokens",
        ADMIN,
        Some(json!({"name": "agents", "role": "developer"})),
    );
    assert_eq!(status, 201, "{tok}");
    let token = tok["token"].as_str().unwrap().to_owned();
    for name in ["a1", "a2"] {
        procs
            .0
            .insert(name.into(), start_agent(&base, &token, name, dir.path()));
    }
    wait_for("both agents to connect", 30, || {
        let (_, v) = call(&base, reqwest::Method::GET, "/api/v1/agents", ADMIN, None);
        v["agents"].as_array().is_some_and(|a| a.len() == 2)
    });

    let (status, added) = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/projects",
        ADMIN,
        Some(json!({"name": "shop", "repo": repo_path.display().to_string(), "poll": "0s"})),
    );
    assert_eq!(status, 201, "{added}");
    let run_id = added["run_id"].as_u64().unwrap();

    // Mid-job: a few ticks written, most to come.
    wait_for("the job to be running", 30, || {
        std::fs::read_to_string(&ticks).is_ok_and(|t| t.lines().count() >= 3)
    });
    let first = events(&base)
        .into_iter()
        .find(|e| e["type"] == "job_leased" && e["run_id"] == run_id)
        .expect("a lease");
    let victim = first["agent"].as_str().unwrap().to_owned();
    let survivor = if victim == "a1" { "a2" } else { "a1" };
    let mut child = procs.0.remove(&victim).unwrap();
    child.kill().unwrap(); // SIGKILL: no goodbye, no report
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (_, run) = call(
            &base,
            reqwest::Method::GET,
            &format!("/api/v1/runs/{run_id}"),
            ADMIN,
            None,
        );
        if !["queued", "running"].contains(&run["status"].as_str().unwrap_or("queued")) {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not end: {run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let agent_log =
        std::fs::read_to_string(dir.path().join(format!("{survivor}.log"))).unwrap_or_default();
    assert_eq!(run["status"], "passed", "{run}\n{agent_log}");
    assert_eq!(run["jobs"][0]["attempts"], 2, "{run}");
    assert_eq!(run["jobs"][0]["agent"], survivor, "{run}");

    // The record: per attempt one lease, one finish; attempt 1 lost.
    let evs: Vec<Value> = events(&base)
        .into_iter()
        .filter(|e| e["run_id"] == run_id && e["job"] == "long")
        .collect();
    let of = |kind: &str, attempt: u64| -> Vec<&Value> {
        evs.iter()
            .filter(|e| e["type"] == kind && e["attempt"] == attempt)
            .collect()
    };
    for attempt in [1, 2] {
        assert_eq!(
            of("job_leased", attempt).len(),
            1,
            "attempt {attempt}: {evs:#?}"
        );
        assert_eq!(
            of("job_finished", attempt).len(),
            1,
            "attempt {attempt}: {evs:#?}"
        );
    }
    assert!(
        of("job_leased", 3).is_empty() && of("job_finished", 3).is_empty(),
        "{evs:#?}"
    );
    assert_eq!(of("job_leased", 1)[0]["agent"], victim.as_str());
    assert_eq!(of("job_leased", 2)[0]["agent"], survivor);
    assert_eq!(of("job_finished", 1)[0]["outcome"], "failed");
    assert_eq!(of("job_finished", 2)[0]["outcome"], "passed");
    let expired = of("lease_expired", 1);
    assert_eq!(expired.len(), 1, "{evs:#?}");
    assert!(
        expired[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("agent {victim} lost"))
    );
    // Leases never overlap: the first ended (expired, then recorded) before
    // the second was handed out.
    let seq = |e: &Value| e["seq"].as_u64().unwrap();
    assert!(seq(expired[0]) < seq(of("job_finished", 1)[0]));
    assert!(seq(of("job_finished", 1)[0]) < seq(of("job_leased", 2)[0]));

    // The stale lease cannot report or renew.
    let stale = of("job_leased", 1)[0]["lease"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &base,
        reqwest::Method::POST,
        &format!("/api/v1/agents/leases/{stale}/finish"),
        &token,
        Some(json!({"outcome": "passed"})),
    );
    assert_eq!(status, 409);
    let (status, _) = call(
        &base,
        reqwest::Method::POST,
        &format!("/api/v1/agents/leases/{stale}/heartbeat"),
        &token,
        None,
    );
    assert_eq!(status, 409);

    // Nothing ran twice at once: every tick of the killed agent's job came
    // before the first tick of the retry (its watchdog ended it).
    let mut by_dir: BTreeMap<String, Vec<u128>> = BTreeMap::new();
    for line in std::fs::read_to_string(&ticks).unwrap().lines() {
        let mut parts = line.split_whitespace().skip(1);
        let (d, t) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse::<u128>().unwrap(),
        );
        by_dir.entry(d.to_owned()).or_default().push(t);
    }
    assert_eq!(by_dir.len(), 2, "{by_dir:?}");
    let (killed, retried): (Vec<_>, Vec<_>) = by_dir
        .iter()
        .partition(|(d, _)| d.contains(&format!("work-{victim}")));
    let (killed, retried) = (killed[0].1, retried[0].1);
    assert!(
        killed.len() < 20,
        "the killed job stopped mid-way: {}",
        killed.len()
    );
    assert_eq!(retried.len(), 20);
    assert!(
        killed.iter().max() < retried.iter().min(),
        "the killed agent's job kept running after the retry started"
    );
    // And it stays stopped.
    std::thread::sleep(Duration::from_millis(1500));
    let after = std::fs::read_to_string(&ticks).unwrap().lines().count();
    assert_eq!(after, killed.len() + retried.len());
}
