//! Jobs with `runs_on:` run on remote agents.
//!
//! The runner does not know how agents are reached: the caller (the server)
//! sets a [`RemoteJobs`] on [`crate::RunSpec::remote`], and each attempt of a
//! job with `runs_on` goes through it instead of a local process. Attempts,
//! retries, `ArtifactStored` and `JobFinished` stay here, so a remote job's
//! record has the same shape as a local one and each attempt ends exactly
//! once, whatever the agent does.
//!
//! An agent that vanishes (its lease expired) is not the job's fault: that
//! attempt is recorded failed and the job goes back to the queue as a new
//! attempt, *beside* `retries` (a job with `retries: 0` still gets another
//! agent), up to [`MAX_LOST`] lost agents per job, so a job that kills every
//! machine it lands on cannot loop forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use andon_core::{Event, JobOutcome, TestCounts};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::job::RunCtx;
use crate::mask::Masker;
use crate::spec::{JobReport, JobSpec, RunObserver, StoredArtifact};

/// Lost agents tolerated per job before it fails for good.
pub const MAX_LOST: u32 = 3;

/// One attempt of a job, as an agent needs it.
#[derive(Debug, Clone)]
pub struct RemoteAttempt {
    pub run_id: u64,
    pub commit: Option<String>,
    /// The job as the config resolved it (`runs_on` holds the labels).
    pub job: JobSpec,
    pub attempt: u32,
    /// Values of the secrets the job names. A missing one is left out: the
    /// agent's runner fails the job with the same message as a local run.
    pub secrets: BTreeMap<String, String>,
    /// Artifacts of the jobs it needs, to unpack into the agent's checkout.
    pub inputs: Vec<StoredArtifact>,
}

/// How one remote attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutcome {
    /// The agent that held the attempt; `None` if it never left the queue.
    pub agent: Option<String>,
    /// `JobStarted` was recorded (the agent said its process started).
    pub started: bool,
    pub outcome: JobOutcome,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub tests: Option<TestCounts>,
    pub failed_tests: Vec<String>,
    /// Stored in the run's artifact store already (uploaded by digest).
    pub artifacts: Vec<StoredArtifact>,
    pub reason: Option<String>,
    /// The agent vanished mid-attempt (lease expired).
    pub lost: bool,
}

impl RemoteOutcome {
    /// An attempt that ended without an agent's report.
    pub fn ended(agent: Option<String>, started: bool, outcome: JobOutcome, reason: &str) -> Self {
        Self {
            agent,
            started,
            outcome,
            exit_code: None,
            duration_ms: 0,
            tests: None,
            failed_tests: Vec::new(),
            artifacts: Vec::new(),
            reason: Some(reason.to_owned()),
            lost: false,
        }
    }
}

/// Hands attempts to agents.
pub trait RemoteJobs: Send + Sync + std::fmt::Debug {
    /// Runs one attempt on an agent with all of `attempt.job.runs_on` and
    /// resolves when it ended. Records `JobQueued`, `JobLeased`, `JobStarted`
    /// (executor `agent:NAME`, no pgid) and the log lines through `observer`;
    /// the runner records the rest from the returned outcome. When `stop`
    /// fires, the attempt is taken back from the agent (which kills it) and
    /// ends `Cancelled`.
    fn run_attempt(
        &self,
        attempt: RemoteAttempt,
        observer: Arc<dyn RunObserver>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, RemoteOutcome>;
}

/// The artifacts of the jobs `deps` (indices in the plan) stored.
pub(crate) fn inputs(deps: &[usize], reports: &[Option<JobReport>]) -> Vec<StoredArtifact> {
    deps.iter()
        .filter_map(|&d| reports.get(d).and_then(Option::as_ref))
        .flat_map(|r| r.artifacts.iter().cloned())
        .collect()
}

/// Masks on the way in too: an agent masks with the secrets it was given,
/// this with every secret of the run.
struct Masked {
    inner: Arc<dyn RunObserver>,
    masker: Masker,
}

impl RunObserver for Masked {
    fn event(&self, event: Event) {
        self.inner.event(event);
    }

    fn log(&self, job: &str, attempt: u32, line: &str) {
        self.inner.log(job, attempt, &self.masker.mask(line));
    }
}

/// Runs job `i` on agents to its final outcome.
pub(crate) async fn run_remote_job(
    ctx: &RunCtx<'_>,
    i: usize,
    remote: &dyn RemoteJobs,
    inputs: Vec<StoredArtifact>,
) -> JobReport {
    let spec = ctx.spec;
    let job = &spec.jobs[i];
    let observer: Arc<dyn RunObserver> = Arc::new(Masked {
        inner: ctx.observer.clone(),
        masker: ctx.masker.clone(),
    });
    let secrets: BTreeMap<String, String> = job
        .secrets
        .iter()
        .filter_map(|n| spec.secrets.get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    let mut report = JobReport::skipped(&job.name, String::new());
    report.reason = None;
    let (mut failures, mut lost, mut failed_before) = (0u32, 0u32, false);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started_at = Instant::now();
        let out = remote
            .run_attempt(
                RemoteAttempt {
                    run_id: spec.run_id,
                    commit: spec.commit.clone(),
                    job: job.clone(),
                    attempt,
                    secrets: secrets.clone(),
                    inputs: inputs.clone(),
                },
                observer.clone(),
                ctx.stop.clone(),
            )
            .await;
        if out.agent.is_none() && out.outcome == JobOutcome::Cancelled {
            // Stopped while still queued: it never ran, like a pending job.
            let reason = out
                .reason
                .unwrap_or_else(|| "stopped before it started".into());
            if attempt == 1 {
                ctx.observer.event(Event::JobSkipped {
                    run_id: spec.run_id,
                    job: job.name.clone(),
                    reason: reason.clone(),
                });
                return JobReport::skipped(&job.name, reason);
            }
            report.outcome = JobOutcome::Cancelled;
            report.reason = Some(reason);
            return report;
        }
        if !out.started {
            ctx.observer.event(Event::JobStarted {
                run_id: spec.run_id,
                job: job.name.clone(),
                attempt,
                pgid: None,
                executor: format!("agent:{}", out.agent.as_deref().unwrap_or("?")),
            });
        }
        let mut outcome = out.outcome;
        let mut reason = out.reason.clone();
        if outcome == JobOutcome::Passed
            && let Err(msg) = unpack(ctx, &out.artifacts).await
        {
            // Later jobs here share the checkout: they must see the outputs.
            observer.log(&job.name, attempt, &format!("andon: {msg}"));
            outcome = JobOutcome::Failed;
            reason = Some(msg);
        }
        if outcome == JobOutcome::Passed {
            for a in &out.artifacts {
                ctx.observer.event(Event::ArtifactStored {
                    run_id: spec.run_id,
                    job: job.name.clone(),
                    path: a.path.clone(),
                    digest: a.digest.to_string(),
                    size: a.size,
                });
            }
        }
        let duration_ms = if out.lost || out.duration_ms == 0 {
            u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX)
        } else {
            out.duration_ms
        };
        let flaky = outcome == JobOutcome::Passed && failed_before;
        ctx.observer.event(Event::JobFinished {
            run_id: spec.run_id,
            job: job.name.clone(),
            attempt,
            outcome,
            exit_code: out.exit_code,
            duration_ms,
            tests: out.tests,
            flaky,
        });
        report.outcome = outcome;
        report.attempts = attempt;
        report.exit_code = out.exit_code;
        report.duration_ms = report.duration_ms.saturating_add(duration_ms);
        report.tests = out.tests;
        report.failed_tests = out.failed_tests;
        report.flaky |= flaky;
        report.artifacts = if outcome == JobOutcome::Passed {
            out.artifacts
        } else {
            Vec::new()
        };
        report.reason = if outcome == JobOutcome::Passed {
            None
        } else {
            reason
        };

        if ctx.stop.is_cancelled() || !matches!(outcome, JobOutcome::Failed | JobOutcome::TimedOut)
        {
            break;
        }
        let agent = out.agent.as_deref().unwrap_or("?");
        let next = if out.lost {
            lost += 1;
            if lost > MAX_LOST {
                report.reason = Some(format!("lost {lost} agents running this job"));
                break;
            }
            format!(
                "andon: agent {agent} lost; queued again as attempt {}",
                attempt + 1
            )
        } else {
            if failures >= job.retries {
                break;
            }
            failures += 1;
            failed_before = true;
            format!(
                "andon: attempt {attempt} {outcome}; retrying ({} of {})",
                failures + 1,
                job.retries + 1
            )
        };
        observer.log(&job.name, attempt, &next);
    }
    report
}

/// Unpacks a remote job's artifacts into the run's checkout.
async fn unpack(ctx: &RunCtx<'_>, artifacts: &[StoredArtifact]) -> Result<(), String> {
    if artifacts.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    let dest = ctx.spec.checkout.clone();
    let digests: Vec<_> = artifacts
        .iter()
        .map(|a| (a.path.clone(), a.digest))
        .collect();
    tokio::task::spawn_blocking(move || {
        for (path, digest) in digests {
            store
                .extract_to(&digest, &dest)
                .map_err(|e| format!("cannot unpack artifact `{path}` from the agent: {e}"))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("unpacking artifacts failed: {e}"))?
}
