//! Real `andon server` processes over one PostgreSQL (`ANDON_TEST_PG`, see
//! `scripts/pg-test-cluster.sh`): the leader is killed with `kill -9` in the
//! middle of a long run and the other server takes over; and
//! `andon migrate-store` moves a SQLite history to PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "cluster-admin";

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
        "andon_cli_{}_{}",
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

fn start_server(data: &Path, port: u16, store: Option<&str>) -> Child {
    let mut cmd = andon();
    cmd.args(["server", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--no-router")
        .env("ANDON_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = store {
        cmd.args(["--store", url]);
    }
    cmd.spawn().unwrap()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn try_get(base: &str, path: &str) -> Option<Value> {
    client()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .ok()
        .filter(|r| r.status().is_success())?
        .json()
        .ok()
}

fn get(base: &str, path: &str) -> Value {
    try_get(base, path).unwrap_or_else(|| panic!("GET {base}{path} failed"))
}

fn is_leader(base: &str) -> bool {
    try_get(base, "/api/v1/cluster").is_some_and(|v| v["leader"] == true)
}

fn all_events(base: &str) -> Vec<Value> {
    get(base, "/api/v1/events?limit=5000")
        .as_array()
        .unwrap()
        .clone()
}

/// No gap, no duplicate, and no job or run ended twice.
fn check_log(events: &[Value]) {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(!seqs.is_empty());
    assert_eq!(seqs[0], 1);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or duplicate: {seqs:?}"
    );
    let mut ends: BTreeMap<String, u32> = BTreeMap::new();
    for e in events {
        let key = match e["type"].as_str().unwrap() {
            "job_finished" => format!("job {} {} {}", e["run_id"], e["job"], e["attempt"]),
            "run_finished" => format!("run {}", e["run_id"]),
            "run_queued" => format!("queued {}", e["run_id"]),
            _ => continue,
        };
        *ends.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = ends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded twice: {twice:?}");
}

#[test]
fn kill_9_of_the_leader_during_a_run_fails_over() {
    let Some(url) = pg_database() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let pidfile = scratch.path().join("job.pid");
    let marker = scratch.path().join("tried");
    // The first attempt hangs (until the leader is killed); the retry passes.
    let yaml = format!(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: slow\n          run: if [ -e {m} ]; then echo again; else touch {m}; echo $$ > {p}; exec sleep 120; fi\n",
        m = marker.display(),
        p = pidfile.display()
    );
    let (_r, repo) = repo(&[("andon.yaml", &yaml)]);
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );

    let mut a = start_server(&data_a, port_a, Some(&url));
    wait_for("server a to lead", 30, || is_leader(&base_a));
    // Servers sharing a database share the secrets key.
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(data_a.join("secret.key"), data_b.join("secret.key")).unwrap();
    let mut b = start_server(&data_b, port_b, Some(&url));
    wait_for("server b to follow", 30, || {
        try_get(&base_b, "/api/v1/cluster").is_some_and(|v| v["leader_api"] == json!(base_a))
    });
    assert!(!is_leader(&base_b), "two leaders");

    // Added through the follower; run by the leader.
    let added: Value = client()
        .post(format!("{base_b}/api/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "p", "repo": repo.display().to_string(), "poll": "0s"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let run_id = added["run_id"].as_u64().unwrap();
    wait_for("the slow job to start", 60, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| !s.trim().is_empty())
    });
    let job_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("b to see the run running", 30, || {
        get(&base_b, &format!("/api/v1/runs/{run_id}"))["status"] == "running"
    });
    let before = all_events(&base_b);

    a.kill().unwrap();
    let killed = Instant::now();
    a.wait().unwrap();
    wait_for("b to take over", 30, || is_leader(&base_b));
    let takeover = killed.elapsed();
    wait_for("the run to end", 30, || {
        get(&base_b, &format!("/api/v1/runs/{run_id}"))["status"] == "interrupted"
    });
    let ended = killed.elapsed();
    wait_for("the dead leader's job to be ended", 30, || {
        !pid_alive(job_pid)
    });
    let run = get(&base_b, &format!("/api/v1/runs/{run_id}"));
    let reason = run["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("runs the same commit again"), "{run}");
    let retry = run_id + 1;
    wait_for("the retry to pass on the new leader", 60, || {
        get(&base_b, &format!("/api/v1/runs/{retry}"))["status"] == "passed"
    });
    assert_eq!(
        get(&base_b, &format!("/api/v1/runs/{retry}"))["commit"],
        run["commit"]
    );
    println!(
        "takeover_s: {:.2} run_ended_s: {:.2}",
        takeover.as_secs_f64(),
        ended.as_secs_f64()
    );

    // Nothing committed before the kill is lost or changed; nothing twice.
    let after = all_events(&base_b);
    assert_eq!(&after[..before.len()], &before[..]);
    check_log(&after);

    // The old leader comes back as a follower; the log stays whole.
    let mut a = start_server(&data_a, port_a, Some(&url));
    wait_for("a to follow", 30, || {
        try_get(&base_a, "/api/v1/cluster").is_some_and(|v| v["leader_api"] == json!(base_b))
    });
    assert!(!is_leader(&base_a));
    check_log(&all_events(&base_a));

    for s in [&mut a, &mut b] {
        s.kill().unwrap();
        s.wait().unwrap();
    }
}

#[test]
fn migrate_store_moves_a_sqlite_history_to_postgres() {
    let Some(url) = pg_database() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let yaml = "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: hello\n          run: echo hello\n";
    let (_r, repo) = repo(&[("andon.yaml", yaml)]);
    let data = scratch.path().join("single");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut single = start_server(&data, port, None);
    wait_for("the SQLite server", 30, || {
        try_get(&base, "/healthz").is_some()
    });
    let added: Value = client()
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "p", "repo": repo.display().to_string(), "poll": "0s"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let run_id = added["run_id"].as_u64().unwrap();
    wait_for("the run to pass", 60, || {
        get(&base, &format!("/api/v1/runs/{run_id}"))["status"] == "passed"
    });
    let runs_before = get(&base, "/api/v1/projects/p/runs");
    let events_before = all_events(&base);
    single.kill().unwrap();
    single.wait().unwrap();

    let db = format!("sqlite:{}", data.join("andon.db").display());
    let out = andon()
        .args(["migrate-store", "--from", &db, "--to", &url])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("copied {} events", events_before.len())),
        "{stdout}"
    );
    assert!(stdout.contains("verified"), "{stdout}");

    // A second copy is refused, unless forced.
    let again = andon()
        .args(["migrate-store", "--from", &db, "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).1.contains("--force"), "{:?}", text(&again));
    let forced = andon()
        .args(["migrate-store", "--from", &db, "--to", &url, "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success(), "{:?}", text(&forced));

    // A server on PostgreSQL (same key) shows the same history.
    let pg_data = scratch.path().join("pg");
    std::fs::create_dir_all(&pg_data).unwrap();
    std::fs::copy(data.join("secret.key"), pg_data.join("secret.key")).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&pg_data, port, Some(&url));
    wait_for("the PostgreSQL server", 30, || {
        try_get(&base, "/healthz").is_some()
    });
    assert_eq!(get(&base, "/api/v1/projects/p/runs"), runs_before);
    let events_after = all_events(&base);
    assert_eq!(&events_after[..events_before.len()], &events_before[..]);
    server.kill().unwrap();
    server.wait().unwrap();
}
