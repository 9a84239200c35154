//! `andon agent`: run jobs with `runs_on:` for a server, on this machine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use crate::cli::Remote;
use crate::ui;

/// What `andon agent` was given.
pub(crate) struct AgentArgs {
    pub(crate) remote: Remote,
    pub(crate) labels: Vec<String>,
    pub(crate) name: Option<String>,
    pub(crate) work: PathBuf,
    pub(crate) jobs: usize,
}

pub(crate) async fn run(args: AgentArgs) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANDON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ui::color())
        .try_init();
    let Some(token) = args.remote.token.filter(|t| !t.is_empty()) else {
        bail!(ui::hinted(
            "an agent needs a token",
            "create one with `andon token create NAME --role developer` and pass --token or ANDON_TOKEN"
        ));
    };
    let name = match args.name {
        Some(n) => n,
        None => hostname().context("no --name given and the host name is unreadable")?,
    };
    let mut labels: Vec<String> = args
        .labels
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    labels.sort();
    labels.dedup();
    eprintln!(
        "agent {name}: serving {} with labels [{}], {} job(s) at a time, work in {}",
        args.remote.server,
        labels.join(", "),
        args.jobs.max(1),
        args.work.display()
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        signal().await;
        eprintln!("agent: stopping after the running jobs (signal again to stop now)");
        stop.cancel();
        signal().await;
        // Running jobs die with the agent (their watchdog sees it go) and
        // their leases expire on the server, which runs them elsewhere.
        std::process::exit(130);
    });
    andon_agent::run(
        andon_agent::AgentConfig {
            server: args.remote.server,
            token,
            name,
            labels,
            work_dir: args.work,
            jobs: args.jobs.max(1),
        },
        shutdown,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn hostname() -> Result<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))?;
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        bail!("the host name is empty");
    }
    Ok(name)
}

/// SIGINT or SIGTERM.
async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
