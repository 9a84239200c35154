//! One leased attempt: fresh directory, source and inputs, the job run with
//! `andon-runner`, heartbeats and logs alongside, artifacts uploaded by
//! digest, then one report. A lost lease kills the job and reports nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use andon_artifacts::{ArtifactStore, Digest};
use andon_core::{Event, JobOutcome};
use andon_runner::{JobSpec, RunObserver, RunSpec, StoredArtifact};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::AgentConfig;
use crate::client::{CallError, Client};
use crate::executor::AgentExecutor;
use crate::wire::{Artifact, Finish, Offer};

/// Lines buffered on their way to the server; beyond, lines are counted and
/// dropped rather than letting a chatty job exhaust memory.
const LOG_BUFFER: usize = 100_000;
/// Lines per log request.
const MAX_BATCH: usize = 2_000;

/// Runs the leased attempt to its end and reports it (unless the lease was
/// lost, in which case nothing is reported).
pub(crate) async fn run(client: &Client, cfg: &AgentConfig, slot: usize, offer: Offer) {
    let ttl = Duration::from_millis(offer.ttl_ms.max(500));
    let hold = Duration::from_millis(offer.heartbeat_ms);
    // Fired when the lease is lost: the job is killed, nothing reported.
    let lost = CancellationToken::new();
    let done = CancellationToken::new();
    let heart = tokio::spawn(heartbeats(
        client.clone(),
        offer.lease.clone(),
        ttl,
        hold,
        lost.clone(),
        done.clone(),
    ));
    tracing::info!(run_id = offer.run_id, job = %offer.job, attempt = offer.attempt, "leased");
    let dir = cfg.work_dir.join(format!("slot-{slot}"));
    let report = execute(client, cfg, &offer, &dir, ttl, &lost).await;
    if let Some(report) = report {
        deliver(client, &offer.lease, &report, &lost).await;
    } else {
        tracing::warn!(run_id = offer.run_id, job = %offer.job, "lease lost: the job was stopped and its result discarded");
    }
    done.cancel();
    let _ = heart.await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
}

/// Sends the report, retrying while the server is unreachable and the
/// lease may still be ours.
async fn deliver(client: &Client, lease: &str, report: &Finish, lost: &CancellationToken) {
    let mut wait = Duration::from_millis(100);
    loop {
        match client.finish(lease, report).await {
            Ok(()) => {
                tracing::info!(outcome = %report.outcome, "reported");
                return;
            }
            Err(CallError::Gone) => {
                tracing::warn!("the server no longer holds the lease: result discarded");
                return;
            }
            Err(e @ (CallError::Refused { .. } | CallError::Status { .. })) => {
                tracing::error!(error = %e, "the server refused the report");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot report yet; retrying");
                tokio::select! {
                    () = lost.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Keeps the lease. Fires `lost` when the server refuses a heartbeat, or
/// when none got through for three quarters of the TTL: the server expires
/// the lease after a full TTL, so the job is dead before another agent can
/// get it.
async fn heartbeats(
    client: Client,
    lease: String,
    ttl: Duration,
    hold: Duration,
    lost: CancellationToken,
    done: CancellationToken,
) {
    let fence = ttl.mul_f64(0.75);
    let mut last_ok = Instant::now();
    loop {
        let sent = Instant::now();
        let outcome = tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep_until(last_ok + fence) => {
                tracing::warn!("no heartbeat got through in time: stopping the job");
                lost.cancel();
                return;
            }
            r = client.heartbeat(&lease, hold + ttl / 4) => r,
        };
        match outcome {
            Ok(()) => last_ok = sent,
            Err(CallError::Gone) => {
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                tokio::select! {
                    () = done.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

/// Prepares and runs the attempt; `None` when the lease was lost.
async fn execute(
    client: &Client,
    cfg: &AgentConfig,
    offer: &Offer,
    dir: &Path,
    ttl: Duration,
    lost: &CancellationToken,
) -> Option<Finish> {
    let began = Instant::now();
    let failed = |reason: String| Finish {
        outcome: JobOutcome::Failed,
        exit_code: None,
        duration_ms: ms(began.elapsed()),
        tests: None,
        failed_tests: Vec::new(),
        artifacts: Vec::new(),
        reason: Some(reason),
    };
    let checkout = dir.join("checkout");
    let scratch = dir.join("scratch");
    let prepared = tokio::select! {
        () = lost.cancelled() => return None,
        r = prepare(client, offer, dir, &checkout, &scratch) => r,
    };
    let store = match prepared {
        Ok(store) => store,
        Err(msg) => {
            let msg = format!("agent {}: {msg}", cfg.name);
            let _ = client.log(&offer.lease, &[format!("andon: {msg}")]).await;
            return Some(failed(msg));
        }
    };

    let (tx, rx) = mpsc::channel(LOG_BUFFER);
    let dropped = Arc::new(AtomicU64::new(0));
    let observer = Arc::new(Forward {
        tx,
        dropped: dropped.clone(),
    });
    let forwarder = tokio::spawn(forward(
        client.clone(),
        offer.lease.clone(),
        rx,
        dropped,
        lost.clone(),
    ));
    let spec = offer.spec.clone();
    let run = RunSpec {
        run_id: offer.run_id,
        commit: offer.commit.clone(),
        checkout,
        jobs: vec![JobSpec {
            name: spec.name,
            stage: spec.stage,
            kind: spec.kind,
            run: spec.run,
            env: spec.env,
            secrets: spec.secret_names,
            timeout: spec.timeout_ms.map(Duration::from_millis),
            artifacts: spec.artifacts,
            ..JobSpec::default()
        }],
        parallelism: 1,
        secrets: spec.secrets,
        work_dir: scratch,
        kill_grace: (ttl / 10).min(Duration::from_secs(2)),
        instance: Some(format!("agent:{}", cfg.name)),
        ..RunSpec::default()
    };
    let executor = AgentExecutor {
        agent_pid: std::process::id(),
    };
    let summary = andon_runner::run_pipeline(run, &executor, &store, observer, lost.clone()).await;
    let _ = forwarder.await;
    if lost.is_cancelled() {
        return None;
    }
    let Some(report) = summary.jobs.into_iter().next() else {
        return Some(failed("the runner reported no job".into()));
    };
    let mut artifacts = Vec::with_capacity(report.artifacts.len());
    for a in &report.artifacts {
        match upload(client, &store, a).await {
            Ok(up) => artifacts.push(up),
            Err(CallError::Gone) => return None,
            Err(e) => {
                return Some(failed(format!(
                    "agent {}: cannot upload artifact `{}`: {e}",
                    cfg.name, a.path
                )));
            }
        }
    }
    Some(Finish {
        outcome: report.outcome,
        exit_code: report.exit_code,
        duration_ms: report.duration_ms,
        tests: report.tests,
        failed_tests: report.failed_tests,
        artifacts,
        reason: report.reason,
    })
}

/// A fresh directory with the commit's files and the inputs unpacked in it.
async fn prepare(
    client: &Client,
    offer: &Offer,
    dir: &Path,
    checkout: &Path,
    scratch: &Path,
) -> Result<ArtifactStore, String> {
    let (dir, checkout_dir, scratch) = (
        dir.to_path_buf(),
        checkout.to_path_buf(),
        scratch.to_path_buf(),
    );
    let store = blocking(move || {
        let _ = std::fs::remove_dir_all(&dir);
        for d in [&checkout_dir, &scratch] {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        ArtifactStore::open(&dir.join("store"))
            .map_err(|e| format!("cannot open a local artifact store: {e}"))
    })
    .await?;
    let tar = client
        .source(&offer.lease)
        .await
        .map_err(|e| format!("cannot download the source: {e}"))?;
    let dest: PathBuf = checkout.to_path_buf();
    blocking(move || {
        let mut archive = tar::Archive::new(&tar[..]);
        archive.set_preserve_mtime(true);
        archive
            .unpack(&dest)
            .map_err(|e| format!("cannot unpack the source: {e}"))
    })
    .await?;
    for input in &offer.inputs {
        let digest: Digest = input
            .digest
            .parse()
            .map_err(|_| format!("input `{}` has an invalid digest", input.path))?;
        let bytes = client
            .artifact(&input.digest)
            .await
            .map_err(|e| format!("cannot download input `{}`: {e}", input.path))?;
        let (store, dest, path) = (store.clone(), checkout.to_path_buf(), input.path.clone());
        blocking(move || {
            let got = store
                .put_bytes(&bytes)
                .map_err(|e| format!("cannot keep input `{path}`: {e}"))?;
            if got != digest {
                return Err(format!(
                    "input `{path}` arrived corrupted ({got}, not {digest})"
                ));
            }
            store
                .extract_to(&digest, &dest)
                .map_err(|e| format!("cannot unpack input `{path}`: {e}"))
        })
        .await?;
    }
    Ok(store)
}

async fn upload(
    client: &Client,
    store: &ArtifactStore,
    a: &StoredArtifact,
) -> Result<Artifact, CallError> {
    let digest = a.digest.to_string();
    if !client.has_artifact(&digest).await? {
        let body = match store.get_path(&a.digest) {
            Some(path) => tokio::fs::read(path).await.unwrap_or_default(),
            None => Vec::new(),
        };
        client.put_artifact(&digest, body).await?;
    }
    Ok(Artifact {
        path: a.path.clone(),
        digest,
        size: a.size,
    })
}

enum Msg {
    Started,
    Line(String),
}

/// The runner's observer on an agent: what the server needs, in order.
struct Forward {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl RunObserver for Forward {
    fn event(&self, event: Event) {
        if let Event::JobStarted { .. } = event {
            let _ = self.tx.try_send(Msg::Started);
        }
    }

    fn log(&self, _job: &str, _attempt: u32, line: &str) {
        if self.tx.try_send(Msg::Line(line.to_owned())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends `started` and log lines in order; lines that piled up while a
/// request was in flight go together in the next one, so a quiet job's
/// line arrives at once and a chatty one's in large batches.
async fn forward(
    client: Client,
    lease: String,
    mut rx: mpsc::Receiver<Msg>,
    dropped: Arc<AtomicU64>,
    lost: CancellationToken,
) {
    let mut batch: Vec<String> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Started => {
                    send_lines(&client, &lease, &mut batch, &lost).await;
                    if let Err(CallError::Gone) = client.started(&lease).await {
                        lost.cancel();
                    }
                }
                Msg::Line(l) => batch.push(l),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let n = dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            batch.push(format!(
                "andon: {n} log lines dropped: the job wrote faster than they could be sent"
            ));
        }
        send_lines(&client, &lease, &mut batch, &lost).await;
    }
}

async fn send_lines(
    client: &Client,
    lease: &str,
    batch: &mut Vec<String>,
    lost: &CancellationToken,
) {
    if batch.is_empty() || lost.is_cancelled() {
        batch.clear();
        return;
    }
    for _ in 0..3 {
        match client.log(lease, batch).await {
            Ok(()) => break,
            Err(CallError::Gone) => {
                lost.cancel();
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot send log lines; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    batch.clear();
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("a blocking task failed: {e}"))?
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
