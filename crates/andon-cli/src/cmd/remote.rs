//! Commands that talk to a server.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use super::sse;
use crate::cli::{ArtifactCmd, Command, ProjectCmd, Remote, SecretCmd, TokenCmd};
use crate::client::{Client, segment};
use crate::ui;

pub(crate) async fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Project(p) => project(p).await,
        Command::Trigger {
            project,
            reference,
            follow,
            json,
            remote,
        } => trigger(&remote, &project, reference, follow, json).await,
        Command::Runs {
            project,
            json,
            limit,
            remote,
        } => runs(&remote, &project, json, limit).await,
        Command::Show {
            run,
            follow,
            json,
            remote,
        } => {
            let c = Client::new(&remote)?;
            if follow {
                follow_run(&c, run, json).await
            } else {
                let v: Value = c.get(&format!("/api/v1/runs/{run}")).await?;
                if json {
                    print_json(&v);
                } else {
                    print_run(&v);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Logs {
            run,
            job,
            follow,
            remote,
        } => logs(&remote, run, &job, follow).await,
        Command::Cancel { run, remote } => {
            let c = Client::new(&remote)?;
            c.send(c.request(Method::POST, &format!("/api/v1/runs/{run}/cancel")))
                .await?;
            println!("run {run} cancelling");
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts(a) => artifacts(a).await,
        Command::Token(t) => token(t).await,
        Command::Secret(s) => secret(s).await,
        Command::Events {
            after,
            follow,
            json,
            remote,
        } => events(&remote, after, follow, json).await,
        _ => Err(anyhow::anyhow!("not a client command")),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

async fn project(cmd: ProjectCmd) -> Result<ExitCode> {
    match cmd {
        ProjectCmd::Add {
            name,
            repo,
            poll,
            trunk,
            webhook_secret,
            json,
            remote,
        } => {
            let c = Client::new(&remote)?;
            // A local path is made absolute: the server may run elsewhere in the tree.
            let repo = match std::fs::canonicalize(&repo) {
                Ok(p) if !repo.contains("://") => p.display().to_string(),
                _ => repo,
            };
            let v: Value = c
                .post(
                    "/api/v1/projects",
                    &json!({"name": name, "repo": repo, "poll": poll, "trunk": trunk, "webhook_secret": webhook_secret}),
                )
                .await?;
            if json {
                print_json(&v);
            } else {
                println!(
                    "project {} watches {} (trunk {})",
                    s(&v, "name"),
                    s(&v, "repo"),
                    s(&v, "trunk")
                );
                println!("webhook secret (shown once): {}", s(&v, "webhook_secret"));
                if let Some(id) = v.get("run_id").and_then(Value::as_u64) {
                    println!("first run: {id} (follow it with `andon show {id} --follow`)");
                }
            }
        }
        ProjectCmd::List { json, remote } => {
            let v: Value = Client::new(&remote)?.get("/api/v1/projects").await?;
            if json {
                print_json(&v);
            } else {
                for p in v.as_array().into_iter().flatten() {
                    println!("{:20} {:10} {}", s(p, "name"), s(p, "trunk"), s(p, "repo"));
                }
            }
        }
        ProjectCmd::Remove { name, remote } => {
            let c = Client::new(&remote)?;
            c.send(c.request(
                Method::DELETE,
                &format!("/api/v1/projects/{}", segment(&name)),
            ))
            .await?;
            println!("project {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn trigger(
    remote: &Remote,
    project: &str,
    reference: Option<String>,
    follow: bool,
    json: bool,
) -> Result<ExitCode> {
    let c = Client::new(remote)?;
    let v: Value = c
        .post(
            &format!("/api/v1/projects/{}/runs", segment(project)),
            &json!({"ref": reference}),
        )
        .await?;
    let id = v
        .get("id")
        .and_then(Value::as_u64)
        .context("the server gave no run id")?;
    if follow {
        return follow_run(&c, id, json).await;
    }
    if json {
        print_json(&v);
    } else {
        println!(
            "run {id} queued for {} on {}",
            short(s(&v, "commit")),
            s(&v, "branch")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn runs(remote: &Remote, project: &str, json: bool, limit: usize) -> Result<ExitCode> {
    let v: Value = Client::new(remote)?
        .get(&format!(
            "/api/v1/projects/{}/runs?limit={limit}",
            segment(project)
        ))
        .await?;
    if json {
        let slim: Vec<Value> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                json!({
                    "id": r["id"], "commit": r["commit"], "branch": r["branch"], "status": r["status"],
                    "trigger": r["trigger"], "queued_at_ms": r["queued_at_ms"],
                    "started_at_ms": r.get("started_at_ms"), "finished_at_ms": r.get("finished_at_ms"),
                })
            })
            .collect();
        print_json(&Value::Array(slim));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:12}  {:12}  {:11}  jobs",
        "id", "commit", "branch", "status"
    );
    for r in v.as_array().into_iter().flatten() {
        let jobs = r["jobs"].as_array().map_or(0, Vec::len);
        let passed = r["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| j["status"] == "passed")
            .count();
        println!(
            "{:>6}  {:12}  {:12}  {:11}  {passed}/{jobs}",
            r["id"],
            short(s(r, "commit")),
            s(r, "branch"),
            ui::status(s(r, "status"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run(r: &Value) {
    println!(
        "run {} {} {} on {}",
        r["id"],
        ui::status(s(r, "status")),
        short(s(r, "commit")),
        s(r, "branch")
    );
    if let Some(reason) = r.get("reason").and_then(Value::as_str) {
        println!("  {reason}");
    }
    for j in r["jobs"].as_array().into_iter().flatten() {
        let ms = j["duration_ms"].as_u64().unwrap_or(0);
        let flaky = if j["flaky"] == true {
            ui::yellow(" flaky")
        } else {
            String::new()
        };
        println!(
            "  {:30} {:>10} {:>8}{flaky}",
            s(j, "name"),
            ui::status(s(j, "status")),
            ui::duration_ms(ms)
        );
    }
}

/// Follows a run through the event stream until it finishes; exit code
/// says whether it passed.
async fn follow_run(c: &Client, id: u64, json: bool) -> Result<ExitCode> {
    let resp = c
        .send(c.request(Method::GET, "/api/v1/events/stream?after=0"))
        .await?;
    let mut finished = None;
    sse::read(resp, |msg| {
        let Ok(ev) = serde_json::from_str::<Value>(&msg.data) else {
            return true;
        };
        if ev["run_id"].as_u64() != Some(id) {
            return true;
        }
        if !json {
            match msg.event.as_str() {
                "job_started" => println!("{} {}", s(&ev, "job"), ui::status("running")),
                "job_finished" => println!(
                    "{} {} {}",
                    s(&ev, "job"),
                    ui::status(s(&ev, "outcome")),
                    ui::duration_ms(ev["duration_ms"].as_u64().unwrap_or(0))
                ),
                "job_skipped" => println!("{} {}", s(&ev, "job"), ui::status("skipped")),
                _ => {}
            }
        }
        if msg.event == "run_finished" {
            finished = Some(s(&ev, "status").to_string());
            return false;
        }
        true
    })
    .await?;
    let run: Value = c.get(&format!("/api/v1/runs/{id}")).await?;
    if json {
        print_json(&run);
    } else {
        println!();
        print_run(&run);
    }
    Ok(if finished.as_deref() == Some("passed") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn logs(remote: &Remote, run: u64, job: &str, follow: bool) -> Result<ExitCode> {
    let c = Client::new(remote)?;
    let path = format!("/api/v1/runs/{run}/jobs/{}/log", segment(job));
    if !follow {
        let text = c.send(c.request(Method::GET, &path)).await?.text().await?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let resp = c
        .send(c.request(Method::GET, &format!("{path}?follow=true")))
        .await?;
    sse::read(resp, |msg| {
        if msg.event == "end" {
            return false;
        }
        println!("{}", msg.data);
        true
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn artifacts(cmd: ArtifactCmd) -> Result<ExitCode> {
    match cmd {
        ArtifactCmd::List { run, json, remote } => {
            let v: Value = Client::new(&remote)?
                .get(&format!("/api/v1/runs/{run}/artifacts"))
                .await?;
            if json {
                print_json(&v);
            } else {
                for a in v.as_array().into_iter().flatten() {
                    println!("{}  {:20} {}", s(a, "digest"), s(a, "job"), s(a, "path"));
                }
            }
        }
        ArtifactCmd::Get {
            digest,
            output,
            remote,
        } => {
            let c = Client::new(&remote)?;
            let bytes = c
                .send(c.request(Method::GET, &format!("/api/v1/artifacts/{digest}")))
                .await?
                .bytes()
                .await?;
            let store_dir = tempdir_in(&output)?;
            let store = andon_artifacts::ArtifactStore::open(&store_dir)?;
            // Putting the bytes back through a store re-checks the digest here,
            // on the receiving side, before anything is unpacked.
            let got = store.put_bytes(&bytes)?;
            if got.to_string() != digest {
                let _ = std::fs::remove_dir_all(&store_dir);
                anyhow::bail!("downloaded bytes hash to {got}, not {digest}: refusing to unpack");
            }
            store.extract_to(&got, &output)?;
            let _ = std::fs::remove_dir_all(&store_dir);
            println!("unpacked {digest} into {}", output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tempdir_in(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(format!(".andon-download-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

async fn token(cmd: TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            name,
            role,
            environment,
            json,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .post(
                    "/api/v1/tokens",
                    &json!({"name": name, "role": role, "environment": environment}),
                )
                .await?;
            if json {
                print_json(&v);
            } else {
                println!(
                    "token {} ({}) created; its secret, shown once:",
                    s(&v, "id"),
                    s(&v, "role")
                );
                println!("{}", s(&v, "token"));
            }
        }
        TokenCmd::List { json, remote } => {
            let v: Value = Client::new(&remote)?.get("/api/v1/tokens").await?;
            if json {
                print_json(&v);
            } else {
                for t in v.as_array().into_iter().flatten() {
                    let revoked = if t["revoked"] == true {
                        " (revoked)"
                    } else {
                        ""
                    };
                    println!(
                        "{:18} {:20} {:10}{revoked}",
                        s(t, "id"),
                        s(t, "name"),
                        s(t, "role")
                    );
                }
            }
        }
        TokenCmd::Revoke { id, remote } => {
            let c = Client::new(&remote)?;
            c.send(c.request(Method::DELETE, &format!("/api/v1/tokens/{}", segment(&id))))
                .await?;
            println!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn secret(cmd: SecretCmd) -> Result<ExitCode> {
    match cmd {
        SecretCmd::Set {
            project,
            name,
            value,
            remote,
        } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .context("could not read the secret from standard input")?;
                    v.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let c = Client::new(&remote)?;
            c.send(
                c.request(
                    Method::PUT,
                    &format!(
                        "/api/v1/projects/{}/secrets/{}",
                        segment(&project),
                        segment(&name)
                    ),
                )
                .json(&json!({"value": value})),
            )
            .await?;
            println!("secret {name} set for {project}");
        }
        SecretCmd::List {
            project,
            json,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .get(&format!("/api/v1/projects/{}/secrets", segment(&project)))
                .await?;
            if json {
                print_json(&v);
            } else {
                for n in v.as_array().into_iter().flatten() {
                    println!("{}", n.as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn events(remote: &Remote, after: u64, follow: bool, json: bool) -> Result<ExitCode> {
    let c = Client::new(remote)?;
    let show = |ev: &Value| {
        if json {
            println!("{}", serde_json::to_string(ev).unwrap_or_default());
        } else {
            println!(
                "{:>6} {} {:16} {}",
                ev["seq"],
                s(ev, "actor"),
                s(ev, "type"),
                ev
            );
        }
    };
    if !follow {
        let v: Value = c.get(&format!("/api/v1/events?after={after}")).await?;
        for ev in v.as_array().into_iter().flatten() {
            show(ev);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let resp = c
        .send(c.request(Method::GET, &format!("/api/v1/events/stream?after={after}")))
        .await?;
    sse::read(resp, |msg| {
        if let Ok(ev) = serde_json::from_str::<Value>(&msg.data) {
            show(&ev);
        }
        true
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
