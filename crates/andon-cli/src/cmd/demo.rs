//! `andon demo`: the whole flow on this machine, through the real server,
//! router, runner, judge and flags — no mocks, nothing else installed.
//!
//! It makes a git repository whose "service" is this very binary
//! (`andon sample-service`, whose version and error rate come from a file in
//! the repository; the artifact is that file and a launcher, so builds stay
//! small), starts `andon server` (which starts its router), and then:
//! v1 is built and released to staging and production; v2 goes out by canary
//! and is promoted; v3 answers 30% errors, and the judge rolls it back while
//! live traffic flows; a feature flag is ramped. It prints what happened.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::ui;

const TOKEN: &str = "andon_demo_admin_token";

struct Demo {
    base: String,
    http: reqwest::Client,
    repo: PathBuf,
}

fn andon_yaml(bin: &Path) -> String {
    let run = "set -a; . ./dist/release.env; exec ./dist/app --port $PORT";
    format!(
        r#"# The demo project: a tiny HTTP service released through staging to production.
project: demo
trunk: main
pipeline:
  stages:
    - name: test
      kind: unit
      jobs:
        - name: unit-tests
          run: grep -q VERSION release.env && echo "unit tests passed"
        - name: lint
          run: echo "lint clean"
    - name: package
      jobs:
        - name: build
          env: {{ DEMO_BIN: "{bin}" }}
          run: |
            mkdir -p dist
            printf '#!/bin/sh\nexec "%s" sample-service "$@"\n' "$DEMO_BIN" > dist/app
            chmod +x dist/app
            cp release.env dist/release.env
          artifacts: [dist]
environments:
  staging:
    target:
      process: {{ command: "{run}", instances: 1, health: /healthz }}
    strategy: blue-green
  production:
    after: staging
    target:
      process: {{ command: "{run}", instances: 2, health: /healthz }}
    strategy:
      canary:
        steps:
          - {{ weight: 20, for: 8s }}
          - {{ weight: 50, for: 8s }}
          - {{ weight: 100 }}
    judge:
      max_error_rate: 10%
      compare_to_baseline: false
      alpha: 0.01
      min_requests: 40
    rollback_window: 10m
"#,
        bin = bin.display()
    )
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Demo Developer")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Demo Developer")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .context("could not run git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn commit_release(repo: &Path, version: &str, error_rate: f64, message: &str) -> Result<()> {
    std::fs::write(
        repo.join("release.env"),
        format!("VERSION={version}\nERROR_RATE={error_rate}\n"),
    )?;
    git(repo, &["add", "."])?;
    git(repo, &["commit", "-q", "-m", message])
}

impl Demo {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{path} answered {status}: {}",
                v["error"]["message"].as_str().unwrap_or("")
            );
        }
        Ok(v)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn wait_run(&self, id: u64) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let run = self.get(&format!("/api/v1/runs/{id}")).await?;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return Ok(run);
            }
            if Instant::now() > deadline {
                bail!("run {id} did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_deploy(&self, id: u64) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d = self.get(&format!("/api/v1/deploys/{id}")).await?;
            if d["phase"].get("finished").is_some() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("deploy {id} did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Builds the current commit (or takes the run that already built it),
    /// then releases its artifact to each environment in order.
    async fn release(&self, label: &str, built: Option<u64>) -> Result<Vec<(String, String)>> {
        let id = match built {
            Some(id) => id,
            None => {
                let run = self.post("/api/v1/projects/demo/runs", json!({})).await?;
                run["id"].as_u64().unwrap_or_default()
            }
        };
        let run = self.wait_run(id).await?;
        let id = run["id"].as_u64().unwrap_or_default();
        step(&format!(
            "{label}: pipeline run {id} {}",
            ui::status(run["status"].as_str().unwrap_or(""))
        ));
        if run["status"] != "passed" {
            bail!("the pipeline of {label} failed");
        }
        let mut outcomes = Vec::new();
        for env in ["staging", "production"] {
            let d = self
                .post(
                    &format!("/api/v1/projects/demo/environments/{env}/deploys"),
                    json!({"run": id, "reason": format!("release {label}")}),
                )
                .await?;
            let d = self
                .wait_deploy(d["deploy_id"].as_u64().unwrap_or_default())
                .await?;
            let outcome = d["phase"]["finished"].as_str().unwrap_or("?").to_string();
            let verdict = d["verdicts"]
                .as_array()
                .and_then(|v| v.iter().rev().find(|x| x[1] != "pending"))
                .and_then(|x| x[2].as_str())
                .unwrap_or("")
                .to_string();
            step(&format!(
                "{label}: {env} {} by {}{}",
                ui::status(&outcome),
                d["strategy"].as_str().unwrap_or(""),
                if verdict.is_empty() {
                    String::new()
                } else {
                    format!(" — judge: {verdict}")
                }
            ));
            outcomes.push((env.to_string(), outcome.clone()));
            if outcome != "succeeded" {
                break;
            }
        }
        Ok(outcomes)
    }
}

/// A script that ends what `--keep` left running: every process whose
/// command line names the demo's data directory (the server, its router)
/// or that runs inside it (the service's instances), then the directory.
/// Matching on the data directory, not the demo's root, spares a shell the
/// user opened in the root.
fn stop_script(root: &Path) -> String {
    let data = root.join("data");
    format!(
        r#"#!/bin/sh
# Stops what `andon demo --keep` left running, then removes {root}.
data='{data}'
ours() {{
  for p in /proc/[0-9]*; do
    pid=${{p#/proc/}}
    [ "$pid" = "$$" ] && continue
    cmd=$({{ tr '\0' ' ' < "$p/cmdline"; }} 2>/dev/null) || continue
    cwd=$(readlink "$p/cwd" 2>/dev/null)
    case "$cmd|$cwd/" in *"$data"/*|*"$data "*) echo "$pid" ;; esac
  done
}}
for pid in $(ours); do kill "$pid" 2>/dev/null; done
i=0
while [ -n "$(ours)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
for pid in $(ours); do kill -9 "$pid" 2>/dev/null; done
rm -rf '{root}'
echo "andon demo stopped and {root} removed"
"#,
        root = root.display(),
        data = data.display(),
    )
}

fn step(s: &str) {
    println!("  {} {s}", ui::dim("•"));
}

pub(crate) async fn run(keep: bool, dir: Option<PathBuf>, port: u16) -> Result<ExitCode> {
    let started = Instant::now();
    let root = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("andon-demo-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&root);
    let repo = root.join("repo");
    let data = root.join("data");
    std::fs::create_dir_all(&repo)?;
    let bin = std::env::current_exe().context("could not find the andon binary")?;
    println!(
        "{} the whole flow, on this machine, in {}",
        ui::bold("andon demo:"),
        root.display()
    );

    git(&repo, &["init", "-q", "-b", "main"])?;
    std::fs::write(repo.join("andon.yaml"), andon_yaml(&bin))?;
    commit_release(&repo, "v1", 0.0, "v1: first release")?;

    let (router_port, admin_port) = (port + 1, port + 2);
    let mut server = std::process::Command::new(&bin)
        .args(["server", "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--router-listen", &format!("127.0.0.1:{router_port}")])
        .args(["--router-admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("ANDON_ADMIN_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("server.log"))?)
        .spawn()
        .context("could not start andon server")?;
    let demo = Demo {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder().no_proxy().build()?,
        repo: repo.clone(),
    };
    let stop_path = root.join("stop.sh");
    if keep {
        std::fs::write(&stop_path, stop_script(&root))?;
    }
    let result = drive(&demo, router_port).await;
    let summary = summarize(&demo, port, router_port).await;
    let failed = result.is_err() || summary.is_err();
    if !keep {
        cleanup(&demo, &mut server, &data).await;
        // Keep the logs of a failed demo for whoever has to find out why.
        if !failed {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
    match (result, summary) {
        (Ok(rolled_back), Ok(())) => {
            println!(
                "\n{} in {:.0}s{}",
                if rolled_back {
                    ui::green("demo finished")
                } else {
                    ui::red("demo finished without the v3 rollback")
                },
                started.elapsed().as_secs_f64(),
                if keep {
                    format!(
                        "; everything is still running.\n  dashboard: http://127.0.0.1:{port}/ (token {TOKEN})\n  traffic:   http://127.0.0.1:{router_port}/\n  stop it:   sh {}",
                        stop_path.display()
                    )
                } else {
                    String::new()
                }
            );
            Ok(if rolled_back {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("server log: {}", root.join("server.log").display());
            if keep {
                eprintln!("stop what is still running: sh {}", stop_path.display());
            }
            Err(e)
        }
    }
}

/// The story. Returns whether the bad release was rolled back.
async fn drive(demo: &Demo, router_port: u16) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while demo
        .http
        .get(format!("{}/healthz", demo.base))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("the server did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let added = demo
        .post(
            "/api/v1/projects",
            json!({"name": "demo", "repo": demo.repo.display().to_string(), "poll": "0s"}),
        )
        .await?;
    println!("\n{}", ui::bold("1. Build once, release everywhere"));
    demo.release("v1", added["run_id"].as_u64()).await?;

    // Users arrive: steady traffic through the router, ~100 requests/s.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let traffic = tokio::spawn(load(router_port, stop.clone(), sent.clone()));

    println!("\n{}", ui::bold("2. A good change goes out by canary"));
    commit_release(&demo.repo, "v2", 0.01, "v2: faster checkout")?;
    demo.release("v2", None).await?;

    println!(
        "\n{}",
        ui::bold("3. A bad change is caught by the judge and rolled back")
    );
    commit_release(&demo.repo, "v3", 0.3, "v3: new payment client")?;
    let outcomes = demo.release("v3", None).await?;
    let rolled_back = outcomes
        .iter()
        .any(|(env, o)| env == "production" && o == "rolled_back");

    println!(
        "\n{}",
        ui::bold("4. Release to users with a feature flag, step by step")
    );
    let flag = json!({
        "description": "the new checkout page", "owner": "team-pay", "temporary": true,
        "environments": {"production": {"enabled": true, "rules": [{"rollout": {"percentage": 0}, "serve": "on"}]}}
    });
    match demo
        .call(
            reqwest::Method::PUT,
            "/api/v1/flags/new-checkout",
            Some(json!({"flag": flag, "reason": "demo"})),
        )
        .await
    {
        Ok(_) => {
            for pct in [5, 25, 100] {
                demo.post(
                    "/api/v1/flags/new-checkout/rollout",
                    json!({"environment": "production", "percentage": pct, "reason": "demo ramp"}),
                )
                .await?;
                step(&format!("new-checkout at {pct}% of production users"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Err(e) => step(&format!("flags are not available on this server: {e}")),
    }
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.await;
    step(&format!(
        "{} requests served through the router during the releases",
        sent.load(Ordering::Relaxed)
    ));
    Ok(rolled_back)
}

/// Bounded steady load: at most ~100 req/s, stops when told.
async fn load(port: u16, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut user = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        user += 1;
        let req = client
            .get(format!("http://127.0.0.1:{port}/checkout"))
            .header("x-user-id", format!("user-{}", user % 500));
        let sent = sent.clone();
        tokio::spawn(async move {
            if req.send().await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

async fn summarize(demo: &Demo, port: u16, router_port: u16) -> Result<()> {
    println!(
        "\n{}",
        ui::bold("What happened (all of it is in the event log)")
    );
    let deploys = demo.get("/api/v1/projects/demo/deploys").await?;
    for d in deploys.as_array().into_iter().flatten().rev() {
        let v = d["version"].as_str().unwrap_or("");
        println!(
            "  deploy {:>2} {:11} {:13} {:10} {}",
            d["id"],
            d["environment"].as_str().unwrap_or(""),
            &v[..v.len().min(19)],
            d["strategy"].as_str().unwrap_or(""),
            ui::status(d["phase"]["finished"].as_str().unwrap_or("in progress"))
        );
    }
    let events = demo.get("/api/v1/events?limit=5000").await?;
    let incidents: Vec<&Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "incident_opened")
        .collect();
    for i in &incidents {
        println!(
            "  incident {} opened: {}",
            i["incident_id"],
            i["title"].as_str().unwrap_or("")
        );
    }
    if let Ok(m) = demo.get("/api/v1/projects/demo/metrics").await {
        println!(
            "  DORA: {:.1} deploys/day, lead time {}, change failure rate {}, time to restore {}",
            m["deployment_frequency_per_day"].as_f64().unwrap_or(0.0),
            secs(&m["lead_time_median_s"]),
            m["change_failure_rate"]
                .as_f64()
                .map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0)),
            secs(&m["time_to_restore_median_s"]),
        );
    }
    println!("  dashboard: http://127.0.0.1:{port}/  ·  service: http://127.0.0.1:{router_port}/");
    Ok(())
}

fn secs(v: &Value) -> String {
    v.as_f64()
        .map_or("n/a".into(), |s| ui::duration_ms((s * 1000.0) as u64))
}

/// Stops what the demo started: instances, the router, the server.
async fn cleanup(demo: &Demo, server: &mut Child, data: &Path) {
    let mut pids: Vec<i32> = Vec::new();
    if let Ok(envs) = demo.get("/api/v1/projects/demo/environments").await {
        for e in envs.as_array().into_iter().flatten() {
            for i in e["instances"].as_array().into_iter().flatten() {
                if let Some(pid) = i["pid"].as_i64() {
                    pids.push(pid as i32);
                }
            }
        }
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
    // The router and instances outlive a server on purpose; the demo ends them.
    let router_dir = data.join("router");
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(" router ") && cmdline.contains(&router_dir.display().to_string()) {
                pids.push(pid);
            }
            // Instances run in their directories under the data directory.
            let in_data =
                std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(data));
            if in_data && cmdline.contains("sample-service") {
                pids.push(pid);
            }
        }
    }
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}
