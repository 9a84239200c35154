//! `andon env up|down|list`: environments made on demand (review apps).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::release::project_name;
use crate::cli::{ProjectArg, Remote};
use crate::client::{Client, segment};
use crate::ui;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCmd {
    /// Make an environment on demand from a ref (a review app): the run of
    /// that ref is found (or started, and waited for) and its artifact
    /// deployed, served on the template's host with `{name}` replaced.
    /// Again for the same name: moves it to the new ref.
    Up {
        /// Its name: lowercase letters, digits and dashes (it becomes a host name).
        name: String,
        /// Branch, tag or commit.
        #[arg(long = "from")]
        from: String,
        /// The template entry of andon.yaml (default: the only environment whose host has `{name}`).
        #[arg(long)]
        template: Option<String>,
        /// Tear it down by itself after this long (default: the template's `ttl`).
        #[arg(long)]
        ttl: Option<String>,
        /// Return once it is requested, without waiting until it serves.
        #[arg(long)]
        no_wait: bool,
        /// Longest wait for the run and the deploy.
        #[arg(long, default_value = "30m")]
        timeout: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Tear an environment made on demand down: instances stopped, routes removed.
    Down {
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Environments made on demand, with their ref, status, address and expiry.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
}

fn path(project: &str, name: &str) -> String {
    format!(
        "/api/v1/projects/{}/environments/{}",
        segment(project),
        segment(name)
    )
}

pub(crate) async fn run(cmd: EnvCmd) -> Result<ExitCode> {
    match cmd {
        EnvCmd::Up {
            name,
            from,
            template,
            ttl,
            no_wait,
            timeout,
            json,
            project,
            remote,
        } => {
            let timeout = andon_config::parse_duration(&timeout)
                .map_err(|e| ui::hinted(format!("--timeout: {e}"), "e.g. --timeout 10m"))?;
            let project = project_name(&project)?;
            let c = Client::new(&remote)?;
            let body = json!({"from": from, "template": template, "ttl": ttl});
            let v: Value = c
                .send(c.request(Method::PUT, &path(&project, &name)).json(&body))
                .await?
                .json()
                .await
                .context("the server's answer was not the expected JSON")?;
            if !json {
                println!(
                    "{name}: {} from {} ({}), run {}",
                    v["template"].as_str().unwrap_or_default(),
                    from,
                    short(v["commit"].as_str().unwrap_or_default()),
                    v["run_id"]
                );
            }
            if no_wait {
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let v = wait(&c, &project, &name, timeout, json).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            let ready = v["status"] == "ready";
            if !json {
                if ready {
                    println!(
                        "{name} {} at {}",
                        ui::status("ready"),
                        v["url"].as_str().or(v["host"].as_str()).unwrap_or("-")
                    );
                } else {
                    println!("{name} {}", ui::status("failed"));
                }
            }
            Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        EnvCmd::Down {
            name,
            project,
            remote,
        } => {
            let project = project_name(&project)?;
            let c = Client::new(&remote)?;
            c.send(c.request(Method::DELETE, &path(&project, &name)))
                .await?;
            println!("{name}: down");
            Ok(ExitCode::SUCCESS)
        }
        EnvCmd::List {
            json,
            project,
            remote,
        } => {
            let project = project_name(&project)?;
            let all: Value = Client::new(&remote)?
                .get(&format!(
                    "/api/v1/projects/{}/environments",
                    segment(&project)
                ))
                .await?;
            let mine: Vec<&Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["on_demand"] == true)
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&mine)?);
                return Ok(ExitCode::SUCCESS);
            }
            if mine.is_empty() {
                println!(
                    "no environments made on demand; make one with `andon env up NAME --from REF`"
                );
            }
            let now = now_ms();
            for e in mine {
                let expires = e["expires_at_ms"]
                    .as_i64()
                    .map_or("no ttl".to_string(), |t| {
                        format!(
                            "expires in {}",
                            ui::duration_ms(u64::try_from(t.saturating_sub(now)).unwrap_or(0))
                        )
                    });
                println!(
                    "{:16} {:10} {:20} {:12} {} {}",
                    e["name"].as_str().unwrap_or_default(),
                    ui::status(e["status"].as_str().unwrap_or_default()),
                    e["ref"].as_str().unwrap_or_default(),
                    short(e["commit"].as_str().unwrap_or_default()),
                    e["url"].as_str().or(e["host"].as_str()).unwrap_or("-"),
                    ui::dim(&expires)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn short(s: &str) -> &str {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    &hex[..hex.len().min(12)]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Polls the environment until it is ready or failed, printing each new status.
async fn wait(
    c: &Client,
    project: &str,
    name: &str,
    timeout: Duration,
    quiet: bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let v: Value = c.get(&path(project, name)).await?;
        let status = v["status"].as_str().unwrap_or_default().to_string();
        if status != last && !quiet {
            println!("  {}", ui::status(&status));
        }
        if status == "ready" || status == "failed" {
            return Ok(v);
        }
        last = status;
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{name} is still {last} after {}; see `andon env list`",
                andon_config::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
