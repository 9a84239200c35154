//! Release commands: `deploy`, `promote`, `pause`, `resume`, `abort`,
//! `rollback`, `envs`, `deploys`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use super::sse;
use crate::cli::{Command, ProjectArg};
use crate::client::{Client, segment};
use crate::ui;

/// The project a command is about: the flag, else `project:` in
/// ./andon.yaml, else the current directory's name — the same rule the
/// config uses.
pub(crate) fn project_name(arg: &ProjectArg) -> Result<String> {
    if let Some(p) = &arg.project {
        return Ok(p.clone());
    }
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    if let Ok(cfg) = andon_config::load(&cwd.join("andon.yaml")) {
        return Ok(cfg.project_name(&cwd));
    }
    cwd.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ui::hinted("cannot tell which project", "pass --project NAME"))
}

fn env_path(project: &str, env: &str, tail: &str) -> String {
    format!(
        "/api/v1/projects/{}/environments/{}/{tail}",
        segment(project),
        segment(env)
    )
}

pub(crate) async fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Deploy {
            environment,
            artifact,
            path,
            reason,
            contract_migration,
            follow,
            project,
            remote,
        } => {
            let project = project_name(&project)?;
            let c = Client::new(&remote)?;
            let mut body =
                json!({"reason": reason, "contract_migration": contract_migration, "path": path});
            match artifact.parse::<u64>() {
                Ok(run) => body["run"] = json!(run),
                Err(_) => body["artifact"] = json!(artifact),
            }
            let v: Value = c
                .post(&env_path(&project, &environment, "deploys"), &body)
                .await?;
            let id = v["deploy_id"]
                .as_u64()
                .context("the server gave no deploy id")?;
            println!(
                "deploy {id}: {} to {environment} by {}",
                v["version"].as_str().unwrap_or_default(),
                v["strategy"].as_str().unwrap_or_default()
            );
            if follow {
                return follow_deploy(&c, id).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote {
            environment,
            project,
            remote,
        } => act(&remote, &project, &environment, "promote").await,
        Command::Pause {
            environment,
            project,
            remote,
        } => act(&remote, &project, &environment, "pause").await,
        Command::Resume {
            environment,
            project,
            remote,
        } => act(&remote, &project, &environment, "resume").await,
        Command::Abort {
            environment,
            project,
            remote,
        } => act(&remote, &project, &environment, "abort").await,
        Command::Rollback {
            environment,
            project,
            remote,
        } => act(&remote, &project, &environment, "rollback").await,
        Command::Envs {
            json,
            project,
            remote,
        } => {
            let project = project_name(&project)?;
            let v: Value = Client::new(&remote)?
                .get(&format!(
                    "/api/v1/projects/{}/environments",
                    segment(&project)
                ))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            for e in v.as_array().into_iter().flatten() {
                let stable = e["stable"].as_str().map(short).unwrap_or("-");
                let weights: Vec<String> = e["weights"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, w)| format!("{}={w}%", short(k)))
                    .collect();
                println!(
                    "{:14} {:10} stable {:19} instances {:2} {}",
                    e["name"].as_str().unwrap_or_default(),
                    e["strategy"].as_str().unwrap_or_default(),
                    stable,
                    e["instances"].as_array().map_or(0, Vec::len),
                    weights.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploys {
            json,
            project,
            remote,
        } => {
            let project = project_name(&project)?;
            let v: Value = Client::new(&remote)?
                .get(&format!("/api/v1/projects/{}/deploys", segment(&project)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            for d in v.as_array().into_iter().flatten() {
                println!("{}", deploy_line(d));
                if let Some(last) = d["verdicts"].as_array().and_then(|a| a.last()) {
                    println!("       judge: {}", last[2].as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(anyhow::anyhow!("not a release command")),
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn phase(d: &Value) -> String {
    match &d["phase"] {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("finished")
            .and_then(Value::as_str)
            .unwrap_or("finished")
            .to_string(),
        _ => String::new(),
    }
}

fn deploy_line(d: &Value) -> String {
    format!(
        "{:>5}  {:12} {:12} {:10} {}",
        d["id"],
        d["environment"].as_str().unwrap_or_default(),
        short(d["version"].as_str().unwrap_or_default()),
        d["strategy"].as_str().unwrap_or_default(),
        ui::status(&phase(d))
    )
}

async fn act(
    remote: &crate::cli::Remote,
    project: &ProjectArg,
    env: &str,
    action: &str,
) -> Result<ExitCode> {
    let project = project_name(project)?;
    let c = Client::new(remote)?;
    c.send(c.request(Method::POST, &env_path(&project, env, action)))
        .await?;
    println!("{action}: {env} of {project}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the release's events until it finishes.
async fn follow_deploy(c: &Client, id: u64) -> Result<ExitCode> {
    let resp = c
        .send(c.request(Method::GET, "/api/v1/events/stream?after=0"))
        .await?;
    let mut outcome = String::new();
    sse::read(resp, |msg| {
        let Ok(ev) = serde_json::from_str::<Value>(&msg.data) else {
            return true;
        };
        if ev["deploy_id"].as_u64() != Some(id) {
            return true;
        }
        match msg.event.as_str() {
            "traffic_shifted" => println!("  traffic {}", ev["weights"]),
            "judge_verdict" => println!(
                "  judge {}: {}",
                ev["outcome"].as_str().unwrap_or_default(),
                ev["sentence"].as_str().unwrap_or_default()
            ),
            "deploy_finished" => {
                outcome = ev["outcome"].as_str().unwrap_or_default().to_string();
                println!("deploy {id} {}", ui::status(&outcome));
                return false;
            }
            _ => {}
        }
        true
    })
    .await?;
    Ok(if outcome == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
