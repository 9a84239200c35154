//! `andon check`, `andon schema` and `andon run` as a user runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod common;

use common::*;

#[test]
fn check_accepts_the_contract_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/andon.yaml");
    let out = andon().args(["check", "--file", example]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok "), "{stdout}");
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("andon.yaml");
    std::fs::write(
        &file,
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - name: x\n          need: [y]\n          run: 'true'\n        - name: x\n          run: 'true'\n",
    )
    .unwrap();
    let out = andon()
        .args(["check", "--file"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let shown = stderr.replace(&dir.path().display().to_string(), "DIR");
    insta::assert_snapshot!("check_errors", shown);
}

#[test]
fn schema_is_json_schema() {
    let out = andon().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["$schema"].as_str().unwrap_or("").contains("json-schema"),
        "{v}"
    );
}

const PASSING: &str = "pipeline:
  stages:
    - name: build
      jobs:
        - name: compile
          run: mkdir -p dist && echo app > dist/app
          artifacts: [dist/app]
    - name: test
      kind: unit
      jobs:
        - name: unit
          run: test -f dist/app && echo ok
        - name: lint
          run: echo lint
";

#[test]
fn run_passes_in_a_clean_checkout_and_reports_json() {
    let (_d, repo) = repo(&[("andon.yaml", PASSING)]);
    // Uncommitted changes are not what runs: the checkout is of HEAD.
    std::fs::write(repo.join("andon.yaml"), "garbage: [").unwrap();
    let out = andon()
        .args(["run", "--json"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "passed");
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j["status"] == "passed"), "{v}");
    assert!(
        jobs[0]["artifacts"]["dist/app"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The user's tree is untouched: no dist/ appeared in it.
    assert!(!repo.join("dist").exists());
    assert_eq!(
        std::fs::read_to_string(repo.join("andon.yaml")).unwrap(),
        "garbage: ["
    );
}

#[test]
fn run_fails_fast_shows_the_failing_log_and_exits_1() {
    let yaml = "pipeline:
  stages:
    - name: s
      jobs:
        - name: broken
          run: echo something went wrong >&2; exit 3
        - name: slow
          run: sleep 30
    - name: later
      jobs:
        - name: never
          run: echo never
";
    let (_d, repo) = repo(&[("andon.yaml", yaml)]);
    let started = std::time::Instant::now();
    let out = andon().arg("run").current_dir(&repo).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "fail fast cancels the slow job"
    );
    assert!(
        stderr.contains("something went wrong"),
        "the failing job's log is shown: {stderr}"
    );
    assert!(
        stderr.contains("broken") && stderr.contains("failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("never") && stderr.contains("skipped"),
        "{stderr}"
    );
    assert!(stderr.contains("pipeline failed"), "{stderr}");
}

#[test]
fn run_outside_a_repository_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = andon().arg("run").current_dir(dir.path()).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("error:") && stderr.contains("hint:"),
        "{stderr}"
    );
}

#[test]
fn completions_are_generated() {
    let out = andon().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("andon"));
}
