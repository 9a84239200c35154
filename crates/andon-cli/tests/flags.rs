//! `andon flags ...` against a real `andon server` process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ADMIN: &str = "flags-cli-admin";

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

fn flags(s: &Server, dir: &std::path::Path, args: &[&str]) -> Output {
    andon()
        .current_dir(dir)
        .arg("flags")
        .args(args)
        .env("ANDON_SERVER", &s.base)
        .env("ANDON_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

const DOC: &str = "\
pipeline:
  stages:
    - name: s
      jobs:
        - name: j
          run: 'true'
flags:
  checkout:
    description: the new checkout
    temporary: true
    environments:
      production:
        enabled: true
        rules:
          - conditions: [{attribute: country, operator: in, values: [no]}]
            serve: 'on'
      staging: {enabled: true}
";

#[test]
fn apply_shows_the_diff_and_needs_a_yes_without_a_terminal() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("andon.yaml"), DOC).unwrap();

    let out = flags(&s, dir.path(), &["apply"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("+ flag checkout"), "{stdout}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let list = flags(&s, dir.path(), &["list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        v["flags"],
        Value::Array(vec![]),
        "nothing applied without --yes"
    );

    let out = flags(&s, dir.path(), &["apply", "--yes"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("applied 1 change"), "{stdout}");
    let out = flags(&s, dir.path(), &["apply", "--yes"]);
    assert!(text(&out).0.contains("up to date"));

    let list = flags(&s, dir.path(), &["list"]);
    let (stdout, _) = text(&list);
    assert!(
        stdout.contains("checkout") && stdout.contains("production:on"),
        "{stdout}"
    );

    // Kill, roll out, and read the history back.
    let out = flags(
        &s,
        dir.path(),
        &[
            "kill",
            "checkout",
            "--environment",
            "production",
            "--reason",
            "errors",
        ],
    );
    assert!(
        text(&out).0.contains("now off in production"),
        "{:?}",
        text(&out)
    );
    let out = flags(
        &s,
        dir.path(),
        &[
            "rollout",
            "checkout",
            "--environment",
            "staging",
            "--percentage",
            "20",
            "--reason",
            "ramp",
        ],
    );
    assert!(
        text(&out).0.contains("staging: no rollout -> 20%"),
        "{:?}",
        text(&out)
    );
    let out = flags(
        &s,
        dir.path(),
        &["kill", "checkout", "--environment", "production"],
    );
    assert!(!out.status.success(), "a reason is required");
    let out = flags(&s, dir.path(), &["get", "checkout"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("admin changed: errors"), "{stdout}");
    assert!(
        stdout.contains("~ flag checkout env production: enabled true -> false"),
        "{stdout}"
    );
    let out = flags(&s, dir.path(), &["stale", "--days", "30", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flags"], Value::Array(vec![]));
}

#[test]
fn standalone_files_and_unleash_imports() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.yaml"),
        "flags:\n  banner:\n    kind: string\n    variants: {a: hello, b: hi}\n    environments:\n      production: {enabled: true, default_variant: a}\n",
    )
    .unwrap();
    let out = flags(&s, dir.path(), &["apply", "--file", "flags.yaml", "--yes"]);
    assert!(out.status.success(), "{:?}", text(&out));
    std::fs::write(
        dir.path().join("bad.yaml"),
        "flags:\n  banner:\n    kind: string\n    variants: {a: 1}\n    environments: {}\n",
    )
    .unwrap();
    let out = flags(&s, dir.path(), &["apply", "--file", "bad.yaml", "--yes"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("flags.banner.variants.a"), "{stderr}");

    std::fs::write(
        dir.path().join("unleash.json"),
        r#"{"version": 2, "features": [{"name": "search", "enabled": true, "strategies": [{"name": "default"}]}]}"#,
    )
    .unwrap();
    let out = flags(
        &s,
        dir.path(),
        &[
            "import",
            "--from",
            "unleash",
            "unleash.json",
            "--environment",
            "staging",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 1 flag(s) into staging"),
        "{stdout}"
    );
    let list = flags(&s, dir.path(), &["list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    let keys: Vec<&str> = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["banner", "search"]);
}
