//! Environments against a real router and a real server: made on demand
//! from a branch (`andon env up`), routed by host name, torn down by hand
//! and by their TTL (across a kill -9 of the server); two projects each
//! with their own `production`; alert rules after a release rolling back
//! inside the rollback window and opening an incident after it.
//!
//! The sample service (`andon sample-service`) is deployed from run
//! artifacts. To turn a version bad *after* its release, its command waits
//! for a flag file named after its version, then replaces the healthy
//! process with one answering 50% errors on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "env-admin";
const ROUTER_TOKEN: &str = "env-router-token";

/// One test at a time: each starts a router, a server and instances.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Stack {
    server: Option<Child>,
    router: Child,
    base: String,
    proxy: String,
    router_admin: String,
    data: PathBuf,
    flags: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The server first, so that nothing restarts an instance we end.
        if let Some(s) = self.server.as_mut() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Then every process working inside this test's data directory:
        // the instances (and their shells). Found by their working
        // directory, never by name, so nothing else is touched.
        for pid in processes_under(&self.data) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.router.kill();
        let _ = self.router.wait();
    }
}

/// Pids of live processes whose working directory is under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn healthy(url: &str) -> bool {
    reqwest::blocking::get(url)
        .map(|r| r.status().as_u16())
        .ok()
        == Some(200)
}

impl Stack {
    fn start() -> Stack {
        let tmp = tempfile::tempdir().unwrap();
        let (proxy_port, admin_port) = (free_port(), free_port());
        let router = andon()
            .args(["router", "--data"])
            .arg(tmp.path().join("router"))
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .env("ANDON_ROUTER_TOKEN", ROUTER_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let flags = tmp.path().join("flags");
        std::fs::create_dir_all(&flags).unwrap();
        let mut s = Stack {
            server: None,
            router,
            base: String::new(),
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            router_admin: format!("http://127.0.0.1:{admin_port}"),
            data: tmp.path().join("data"),
            flags,
            _tmp: tmp,
        };
        s.start_server(free_port());
        s
    }

    fn start_server(&mut self, port: u16) {
        let child = andon()
            .args(["server", "--data"])
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--router-admin", &self.router_admin])
            .args(["--router-url", &self.proxy])
            .env("ANDON_ROUTER_TOKEN", ROUTER_TOKEN)
            .env("ANDON_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let url = format!("{}/healthz", self.base);
        wait_for("the server", Duration::from_secs(30), || healthy(&url));
    }

    fn kill_9_server(&mut self) -> u16 {
        let mut s = self.server.take().unwrap();
        s.kill().unwrap();
        s.wait().unwrap();
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        andon()
            .args(args)
            .env("ANDON_SERVER", &self.base)
            .env("ANDON_TOKEN", ADMIN)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        self.api(reqwest::Method::GET, path, None).1
    }

    fn events(&self) -> Vec<Value> {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/events?limit=100000", self.base))
            .bearer_auth(ADMIN)
            .send()
            .ok()
            .and_then(|r| r.json::<Vec<Value>>().ok())
            .unwrap_or_default()
    }

    fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    fn add_project(&self, name: &str, repo: &Path) -> u64 {
        let (status, v) = self.api(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(json!({"name": name, "repo": repo.display().to_string(), "poll": "0s"})),
        );
        assert_eq!(status, 201, "{v}");
        v["run_id"].as_u64().unwrap()
    }

    fn wait_run(&self, id: u64) {
        wait_for(&format!("run {id}"), Duration::from_secs(60), || {
            let st = self.get(&format!("/api/v1/runs/{id}"))["status"].clone();
            assert!(st != "failed", "run {id} failed");
            st == "passed"
        });
    }

    fn trigger(&self, project: &str) -> u64 {
        let (_, v) = self.api(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/runs"),
            Some(json!({})),
        );
        v["id"].as_u64().unwrap_or_else(|| panic!("{v}"))
    }

    /// Deploys a run's artifact to production and waits until it succeeded.
    fn deploy(&self, project: &str, run: u64) -> u64 {
        let (status, v) = self.api(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/environments/production/deploys"),
            Some(json!({"run": run})),
        );
        assert_eq!(status, 202, "{v}");
        let id = v["deploy_id"].as_u64().unwrap();
        self.wait_deploy(id);
        id
    }

    fn wait_deploy(&self, id: u64) {
        wait_for(&format!("deploy {id}"), Duration::from_secs(60), || {
            let phase = self.get(&format!("/api/v1/deploys/{id}"))["phase"].clone();
            if let Some(done) = phase.get("finished") {
                assert_eq!(done, "succeeded", "deploy {id}");
                return true;
            }
            false
        });
    }

    fn production(&self, project: &str) -> Value {
        self.get(&format!("/api/v1/projects/{project}/environments"))
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "production")
            .cloned()
            .unwrap()
    }

    /// GET / through the router for `host`: (status, body).
    fn through_router(&self, host: &str) -> (u16, String) {
        let resp = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/", self.proxy))
            .header("host", host)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    }

    /// Requests through the router for `host` until stopped (bounded).
    fn load(&self, host: &str) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (url, host) = (format!("{}/", self.proxy), host.to_string());
        let (st, n) = (stop.clone(), sent.clone());
        let t = std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && n.fetch_add(1, Ordering::Relaxed) < 40_000
            {
                let _ = c.get(&url).header("host", &host).send();
                std::thread::sleep(Duration::from_millis(4));
            }
        });
        (stop, sent, t)
    }
}

fn andon_yaml(extra_production: &str, extra_envs: &str, rest: &str) -> String {
    let target = format!(
        r#"    target:
      process:
        command: |
          cd app; . ./release.env
          "$ANDON_BIN" sample-service & p=$!
          while [ ! -f "$FLAGS/$VERSION" ]; do sleep 0.2; done
          kill -9 $p
          ERROR_RATE=0.5 exec "$ANDON_BIN" sample-service
        health: /healthz
        ready_timeout: 20s
        env:
          ANDON_BIN: "{bin}"
          FLAGS: "$FLAGS_DIR"
          WORKERS: "1"
    strategy: recreate
"#,
        bin = env!("CARGO_BIN_EXE_andon")
    );
    format!(
        r#"pipeline:
  stages:
    - name: build
      jobs:
        - name: pack
          run: "true"
          artifacts: [app]
environments:
  production:
{target}{extra_production}{extra_envs}{rest}"#,
        extra_envs = extra_envs.replace("TARGET", &target)
    )
}

fn release(repo: &Path, version: &str) {
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::write(
        repo.join("app/release.env"),
        format!("export VERSION={version} ERROR_RATE=0\n"),
    )
    .unwrap();
}

fn new_repo(yaml: &str, flags: &Path, version: &str) -> (tempfile::TempDir, PathBuf) {
    let yaml = yaml.replace("$FLAGS_DIR", &flags.display().to_string());
    let (dir, path) = repo(&[("andon.yaml", &yaml)]);
    release(&path, version);
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", version]);
    (dir, path)
}

fn commit_release(repo: &Path, version: &str) {
    release(repo, version);
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", version]);
}

fn pids_of(stack: &Stack, environment: &str) -> Vec<i32> {
    stack
        .events()
        .iter()
        .filter(|e| e["type"] == "instance_started" && e["environment"] == environment)
        .filter_map(|e| e["pid"].as_i64().map(|p| p as i32))
        .collect()
}

#[test]
fn environments_on_demand_by_host_down_by_hand_and_by_ttl_across_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = Stack::start();
    let preview = "  preview:\nTARGET    host: \"{name}.preview.localhost\"\n    ttl: 2h\n";
    let yaml = andon_yaml("    host: shop.localhost\n", preview, "");
    let (_r, repo) = new_repo(&yaml, &s.flags, "v1");
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    commit_release(&repo, "feat");
    git(&repo, &["checkout", "-q", "main"]);
    let first = s.add_project("shop", &repo);
    s.wait_run(first);

    // A template cannot be deployed as itself.
    let (status, v) = s.api(
        reqwest::Method::POST,
        "/api/v1/projects/shop/environments/preview/deploys",
        Some(json!({"run": first})),
    );
    assert_eq!(status, 409, "{v}");

    // Up from a branch: its run is started and waited for, then deployed.
    let up = s.cli(&[
        "env",
        "up",
        "pr-1",
        "--from",
        "feature",
        "-p",
        "shop",
        "--timeout",
        "2m",
    ]);
    let (out, err) = text(&up);
    assert!(up.status.success(), "{out}\n{err}");
    let port = s.proxy.rsplit(':').next().unwrap();
    assert!(
        out.contains(&format!(
            "pr-1 ready at http://pr-1.preview.localhost:{port}/"
        )),
        "{out}"
    );
    let (code, body) = s.through_router("pr-1.preview.localhost");
    assert_eq!(code, 200);
    assert!(
        body.contains("\"feat\""),
        "the branch's version serves: {body}"
    );
    let list = text(&s.cli(&["env", "list", "-p", "shop"])).0;
    assert!(
        list.contains("pr-1") && list.contains("ready") && list.contains("feature"),
        "{list}"
    );
    assert!(
        list.contains("expires in"),
        "a template's ttl applies: {list}"
    );
    let shown = s.get("/api/v1/projects/shop/environments/pr-1");
    assert_eq!(shown["status"], "ready", "{shown}");
    assert_eq!(shown["template"], "preview");
    // The name of an andon.yaml environment is not available.
    let taken = s.cli(&["env", "up", "production", "--from", "feature", "-p", "shop"]);
    assert!(!taken.status.success());

    // Down by hand: route gone, instances stopped, recorded.
    let pr1 = pids_of(&s, "pr-1");
    assert!(!pr1.is_empty());
    let down = s.cli(&["env", "down", "pr-1", "-p", "shop"]);
    assert!(down.status.success(), "{:?}", text(&down));
    let (code, body) = s.through_router("pr-1.preview.localhost");
    assert!(code == 404 || !body.contains("feat"), "{code} {body}");
    wait_for("pr-1's instances to stop", Duration::from_secs(20), || {
        pr1.iter().all(|p| !pid_alive(*p))
    });
    assert_eq!(s.events_of("environment_down").len(), 1);
    let list = text(&s.cli(&["env", "list", "-p", "shop", "--json"])).0;
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap(), json!([]));

    // A TTL ends it by itself, even across a kill -9 of the server.
    let up = s.cli(&[
        "env", "up", "pr-2", "--from", "feature", "-p", "shop", "--ttl", "6s",
    ]);
    assert!(up.status.success(), "{:?}", text(&up));
    let pr2 = pids_of(&s, "pr-2");
    let port = s.kill_9_server();
    assert!(
        pr2.iter().all(|p| pid_alive(*p)),
        "instances outlive the control plane"
    );
    s.start_server(port);
    wait_for("the TTL teardown", Duration::from_secs(40), || {
        s.events_of("environment_down").iter().any(|e| {
            e["environment"] == "pr-2" && e["reason"].as_str().unwrap_or("").contains("TTL")
        })
    });
    wait_for("pr-2's instances to stop", Duration::from_secs(20), || {
        pr2.iter().all(|p| !pid_alive(*p))
    });
    let (code, body) = s.through_router("pr-2.preview.localhost");
    assert!(code == 404 || !body.contains("feat"), "{code} {body}");
}

#[test]
fn two_projects_each_with_a_production_deploy_independently() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Stack::start();
    let (_a, shop) = new_repo(
        &andon_yaml("    host: shop.localhost\n", "", ""),
        &s.flags,
        "s1",
    );
    let (_b, blog) = new_repo(
        &andon_yaml("    host: blog.localhost\n", "", ""),
        &s.flags,
        "b1",
    );
    let shop_run = s.add_project("shop", &shop);
    let blog_run = s.add_project("blog", &blog);
    s.wait_run(shop_run);
    s.wait_run(blog_run);
    s.deploy("shop", shop_run);
    s.deploy("blog", blog_run);
    let (sp, bp) = (s.production("shop"), s.production("blog"));
    assert_ne!(sp["stable"], bp["stable"], "{sp}\n{bp}");
    assert_eq!(sp["instances"].as_array().unwrap().len(), 1, "{sp}");
    assert_eq!(bp["instances"].as_array().unwrap().len(), 1, "{bp}");
    assert!(s.through_router("shop.localhost").1.contains("\"s1\""));
    assert!(s.through_router("blog.localhost").1.contains("\"b1\""));
    // A second release of one leaves the other alone.
    commit_release(&shop, "s2");
    let run = s.trigger("shop");
    s.wait_run(run);
    s.deploy("shop", run);
    assert!(s.through_router("shop.localhost").1.contains("\"s2\""));
    assert!(s.through_router("blog.localhost").1.contains("\"b1\""));
    assert_eq!(s.production("blog")["stable"], bp["stable"]);
    assert_eq!(
        s.production("blog")["good_versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.production("shop")["good_versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Receives webhooks, answers 200, counts them.
fn receiver() -> (u16, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(AtomicU64::new(0));
    let n = got.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            n.fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn alerts_after_the_release_roll_back_inside_the_window_and_open_an_incident_after() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Stack::start();
    let alerts = "    alerts: { max_error_rate: 10%, for: 2s }\n";
    let (hook_port, hooks) = receiver();
    let notify = format!(
        "notify:\n  - url: http://127.0.0.1:{hook_port}/hook\n    events: [incident_opened]\n"
    );
    let (_a, shop) = new_repo(
        &andon_yaml(
            &format!("    host: shop.localhost\n    rollback_window: 10m\n{alerts}"),
            "",
            "",
        ),
        &s.flags,
        "v1",
    );
    let (_b, late) = new_repo(
        &andon_yaml(
            &format!("    host: late.localhost\n    rollback_window: 1s\n{alerts}"),
            "",
            &notify,
        ),
        &s.flags,
        "l1",
    );

    // shop: v1 then v2, both good when released.
    let r1 = s.add_project("shop", &shop);
    s.wait_run(r1);
    s.deploy("shop", r1);
    let v1 = s.production("shop")["stable"].clone();
    commit_release(&shop, "v2");
    let r2 = s.trigger("shop");
    s.wait_run(r2);
    let d2 = s.deploy("shop", r2);
    let (stop, sent, t) = s.load("shop.localhost");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.events_of("alert_fired").is_empty(),
        "a healthy version fires nothing"
    );
    // v2 goes bad after its release: rolled back to v1 by itself.
    std::fs::write(s.flags.join("v2"), "").unwrap();
    wait_for("the alert", Duration::from_secs(30), || {
        !s.events_of("alert_fired").is_empty()
    });
    wait_for("the rollback", Duration::from_secs(30), || {
        s.production("shop")["stable"] == v1
    });
    let rollbacks: Vec<Value> = s
        .events_of("deploy_requested")
        .into_iter()
        .filter(|e| e["strategy"] == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert!(
        rollbacks[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("alert max_error_rate: error rate"),
        "{}",
        rollbacks[0]
    );
    assert!(s.through_router("shop.localhost").1.contains("\"v1\""));
    wait_for("the alert to resolve", Duration::from_secs(30), || {
        !s.events_of("alert_resolved").is_empty()
    });
    assert!(
        s.events_of("incident_opened").is_empty(),
        "inside the window a rollback, not an incident"
    );
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert!(sent.load(Ordering::Relaxed) > 100);
    let _ = d2;

    // late: its rollback window (1s) is over when it goes bad: an incident.
    let r = s.add_project("late", &late);
    s.wait_run(r);
    let d = s.deploy("late", r);
    std::thread::sleep(Duration::from_millis(1500));
    let (stop, _, t) = s.load("late.localhost");
    std::fs::write(s.flags.join("l1"), "").unwrap();
    wait_for("the incident", Duration::from_secs(30), || {
        !s.events_of("incident_opened").is_empty()
    });
    let incident = s.events_of("incident_opened").remove(0);
    assert_eq!(incident["project"], "late");
    assert_eq!(
        incident["deploy_id"].as_u64(),
        Some(d),
        "linked to the release: {incident}"
    );
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .starts_with("production: error rate"),
        "{incident}"
    );
    assert!(
        s.events_of("alert_fired")
            .iter()
            .any(|e| e["project"] == "late"),
        "the alert is recorded"
    );
    wait_for("the notification", Duration::from_secs(20), || {
        s.events_of("notification_attempted")
            .iter()
            .any(|e| e["project"] == "late" && e["ok"] == true)
    });
    assert!(hooks.load(Ordering::Relaxed) >= 1);
    assert!(
        !s.events_of("deploy_requested")
            .iter()
            .any(|e| e["project"] == "late" && e["strategy"] == "rollback"),
        "after the window: no rollback"
    );
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}
