//! The remote agent (`andon agent`): runs jobs with `runs_on:` on another
//! machine.
//!
//! An agent holds a long-poll lease request open to the server, so a job
//! starts the moment it is queued rather than after a polling interval.
//! Each leased attempt runs with `andon-runner` in a fresh work directory
//! holding the commit's source (a tar from the server) and the artifacts of
//! the jobs it needs. While it runs, held heartbeats renew the lease; when
//! the server refuses one (the run was cancelled, or the lease expired) or
//! none gets through for most of the lease's life, the agent kills the job
//! and reports nothing, so an attempt never runs twice at once. Logs go up
//! in batches; artifacts are uploaded by digest, only those the server does
//! not have; then one `finish` report. When the server is unreachable the
//! agent retries with capped, jittered backoff.
//!
//! # Layout
//! - `client`: the HTTP calls of `/api/v1/agents/...` and their errors.
//! - `wire`: the JSON shapes of a lease and a report.
//! - `attempt`: one leased attempt: prepare, run, heartbeats, logs, report.
//! - `executor`: `sh -c` plus a watchdog, so a job dies with its agent even
//!   when the agent is killed with `kill -9`.

mod attempt;
mod client;
mod executor;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::{CallError, Client};

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's base URL, e.g. `http://ci.example.com:7070`.
    pub server: String,
    /// A token with the developer role or above.
    pub token: String,
    /// Unique among the server's agents; shown in `JobStarted.executor`.
    pub name: String,
    /// The agent runs jobs whose `runs_on` labels are all among these.
    pub labels: Vec<String>,
    /// Where attempts get their checkout and scratch space.
    pub work_dir: PathBuf,
    /// Attempts run at once (each holds its own lease request).
    pub jobs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("the server refused the agent's token ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot prepare the work directory {path}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` fires, then lets running attempts finish
/// and returns. Fails at once on a refused token; any other trouble with the
/// server (down, restarting) is retried with backoff.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !valid(&cfg.name) {
        return Err(AgentError::Config(format!(
            "name `{}`: use 1 to 64 letters, digits, `.`, `_` or `-`",
            cfg.name
        )));
    }
    if let Some(bad) = cfg.labels.iter().find(|l| !valid(l)) {
        return Err(AgentError::Config(format!(
            "label `{bad}`: use letters, digits, `.`, `_` or `-`"
        )));
    }
    std::fs::create_dir_all(&cfg.work_dir).map_err(|source| AgentError::WorkDir {
        path: cfg.work_dir.clone(),
        source,
    })?;
    let client = Client::new(&cfg.server, &cfg.token);
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..cfg.jobs.max(1) {
        let (client, cfg, shutdown) = (client.clone(), cfg.clone(), shutdown.clone());
        slots.spawn(async move { slot_loop(slot, &client, &cfg, &shutdown).await });
    }
    let mut result = Ok(());
    while let Some(done) = slots.join_next().await {
        if let Ok(Err(e)) = done {
            // A refused token stops every slot: nothing will work.
            shutdown.cancel();
            result = Err(e);
        }
    }
    result
}

/// Leases and runs attempts one after the other.
async fn slot_loop(
    slot: usize,
    client: &Client,
    cfg: &AgentConfig,
    shutdown: &CancellationToken,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::default();
    loop {
        let leased = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = client.lease(&cfg.name, &cfg.labels) => r,
        };
        match leased {
            Ok(Some(offer)) => {
                backoff.reset();
                attempt::run(client, cfg, slot, offer).await;
            }
            Ok(None) => backoff.reset(),
            Err(CallError::Refused { status, message }) => {
                return Err(AgentError::Refused { status, message });
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach the server");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Capped exponential backoff with jitter, so agents that lost the server
/// together do not all come back in the same millisecond.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn reset(&mut self) {
        self.failures = 0;
    }

    fn next_wait(&mut self) -> Duration {
        let base = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(10))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        let jitter: f64 = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_wait();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        for _ in 0..20 {
            assert!(b.next_wait() <= Backoff::MAX.mul_f64(1.2));
        }
        assert!(b.next_wait() >= Backoff::MAX.mul_f64(0.8));
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn invalid_names_are_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AgentConfig {
            server: "http://127.0.0.1:9".into(),
            token: "t".into(),
            name: "has space".into(),
            labels: vec![],
            work_dir: dir.path().into(),
            jobs: 1,
        };
        let err = run(cfg, CancellationToken::new()).await.unwrap_err();
        assert!(err.to_string().contains("has space"), "{err}");
    }
}
