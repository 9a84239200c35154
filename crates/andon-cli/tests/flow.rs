//! `andon metrics`, `andon board`, `andon card` and `andon hook install`
//! against a real `andon server` process: what they print (and the hook
//! they write, run for real) on a trunk that goes red and green again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "flow-cli-admin";

struct Server {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Server {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = andon()
        .args(["server", "--data"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-router"])
        .env("ANDON_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{base}/healthz"))
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        base,
        _data: data,
    }
}

impl Server {
    fn cli(&self, args: &[&str]) -> Output {
        andon()
            .args(args)
            .env("ANDON_SERVER", &self.base)
            .env("ANDON_TOKEN", ADMIN)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().unwrap().json().unwrap_or(Value::Null)
    }

    fn wait_run(&self, id: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.api(reqwest::Method::GET, &format!("/api/v1/runs/{id}"), None);
            let status = run["status"].as_str().unwrap_or("").to_string();
            if !["queued", "running", ""].contains(&status.as_str()) {
                return status;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish: {run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn trigger(&self, project: &str) -> u64 {
        let v = self.api(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/runs"),
            Some(json!({})),
        );
        v["id"].as_u64().unwrap_or_else(|| panic!("{v}"))
    }
}

const YAML: &str = "\
pipeline:
  stages:
    - name: test
      jobs:
        - name: unit
          run: test -f ok
board:
  columns:
    - backlog
    - { name: doing, wip: 1 }
    - done
";

fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// Runs the pre-push hook as git would for a push of `sha`.
fn pre_push(repo: &Path, sha: &str, server: &Server) -> Output {
    let mut child = std::process::Command::new(repo.join(".git/hooks/pre-push"))
        .args(["origin", "unused"])
        .current_dir(repo)
        .env("ANDON_TOKEN", ADMIN)
        .env_remove("ANDON_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(
        child.stdin.take().unwrap(),
        "refs/heads/main {sha} refs/heads/main 0000000000000000000000000000000000000000"
    )
    .unwrap();
    let _ = server;
    child.wait_with_output().unwrap()
}

fn head(repo: &Path) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn metrics_board_cards_and_the_pre_push_hook_tell_the_truth() {
    let s = server();
    // Trunk starts red: the file the test needs is missing.
    let (_r, repo) = repo(&[("andon.yaml", YAML)]);
    let added = s.api(
        reqwest::Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "shop", "repo": repo.display().to_string(), "poll": "0s"})),
    );
    let first = added["run_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{added}"));
    assert_eq!(s.wait_run(first), "failed");

    // --- metrics with no deployments: nulls, "no data yet" ---
    let m: Value = serde_json::from_str(&ok(&s.cli(&["metrics", "shop", "--json"]))).unwrap();
    for key in [
        "deployment_frequency_per_day",
        "lead_time_median_s",
        "change_failure_rate",
        "time_to_restore_median_s",
        "bands",
        "gear",
    ] {
        assert!(m.get(key).is_some(), "metrics --json lacks {key}: {m}");
    }
    assert_eq!(m["lead_time_median_s"], Value::Null, "{m}");
    assert_eq!(m["gear"], Value::Null, "{m}");
    let table = ok(&s.cli(&["metrics", "shop"]));
    assert!(table.contains("deployment frequency"), "{table}");
    assert!(table.contains("lead time (median)"), "{table}");
    assert!(table.contains("no data yet"), "{table}");
    assert!(table.contains("gear: no deployments yet"), "{table}");

    // --- the hook, on a red trunk ---
    let installed = ok(&s.cli(&[
        "hook",
        "install",
        "--refuse",
        "--project",
        "shop",
        "--repo",
        repo.to_str().unwrap(),
        "--server",
        &s.base,
    ]));
    assert!(installed.contains("refuses"), "{installed}");
    let hook = repo.join(".git/hooks/pre-push");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(
        script.contains(&s.base) && !script.contains(ADMIN),
        "no token on disk:\n{script}"
    );
    let wip = head(&repo);
    let refused = pre_push(&repo, &wip, &s);
    let (_, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "a red trunk refuses: {err}");
    assert!(err.contains("the line is stopped"), "{err}");
    // The push that fixes the build always gets through.
    std::fs::write(repo.join("ok"), "").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "fix: add the missing file"]);
    let fix = head(&repo);
    let passed = pre_push(&repo, &fix, &s);
    assert!(passed.status.success(), "{:?}", text(&passed));
    // Warn mode warns and lets the push through.
    ok(&s.cli(&[
        "hook",
        "install",
        "--project",
        "shop",
        "--repo",
        repo.to_str().unwrap(),
        "--server",
        &s.base,
    ]));
    let warned = pre_push(&repo, &wip, &s);
    assert!(warned.status.success());
    assert!(text(&warned).1.contains("the line is stopped"));

    // Trunk green again: the gate opens, the hook is silent, time to green is known.
    let run = s.trigger("shop");
    assert_eq!(s.wait_run(run), "passed");
    let quiet = pre_push(&repo, &wip, &s);
    assert!(quiet.status.success());
    assert_eq!(text(&quiet).1, "", "green trunk: nothing to say");
    let m: Value = serde_json::from_str(&ok(&s.cli(&["metrics", "shop", "--json"]))).unwrap();
    assert!(
        m["time_to_green_median_s"]
            .as_f64()
            .is_some_and(|t| t >= 0.0),
        "a red-then-green trunk has a time to green: {m}"
    );

    // --- cards and the board, with a WIP limit ---
    let a = ok(&s.cli(&["card", "add", "checkout page", "--project", "shop"]));
    assert_eq!(a.trim(), "card #1 in backlog");
    let b = ok(&s.cli(&["card", "add", "search", "--project", "shop"]));
    assert_eq!(b.trim(), "card #2 in backlog");
    let moved = ok(&s.cli(&["card", "move", "1", "doing", "--project", "shop"]));
    assert_eq!(moved.trim(), "card #1 now in doing");
    let full = s.cli(&["card", "move", "2", "doing", "--project", "shop"]);
    let (_, err) = text(&full);
    assert!(!full.status.success(), "a full column refuses a card");
    assert!(err.contains("doing"), "the refusal names the column: {err}");
    let over = ok(&s.cli(&[
        "card",
        "move",
        "2",
        "doing",
        "--project",
        "shop",
        "--override",
        "urgent fix for a customer",
    ]));
    assert_eq!(over.trim(), "card #2 now in doing");
    let board = ok(&s.cli(&["board", "shop"]));
    let lines: Vec<&str> = board.lines().collect();
    assert_eq!(lines[0], "backlog (0)", "{board}");
    assert_eq!(lines[1], "doing (2/1)", "{board}");
    assert!(
        lines[2].contains("#1") && lines[2].ends_with("checkout page"),
        "{board}"
    );
    assert!(
        lines[3].contains("#2") && lines[3].ends_with("search"),
        "{board}"
    );
    assert_eq!(lines[4], "done (0)", "{board}");
    let json: Value = serde_json::from_str(&ok(&s.cli(&["board", "shop", "--json"]))).unwrap();
    assert_eq!(json["columns"][1]["wip"], 1, "{json}");
    // An unknown project is an error a user can act on, not a panic.
    let missing = s.cli(&["board", "nope"]);
    assert!(!missing.status.success());
    assert!(text(&missing).1.contains("error"), "{:?}", text(&missing));
}
