//! One job, all its attempts: environment, secrets, retries, flakiness,
//! JUnit results and artifacts.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use andon_artifacts::ArtifactStore;
use andon_core::{Event, JobOutcome};
use tokio_util::sync::CancellationToken;

use crate::executor::Executor;
use crate::junit::{self, CaseResult, Results};
use crate::mask::Masker;
use crate::process::Launch;
use crate::spec::{JobReport, JobSpec, RunObserver, RunSpec, StoredArtifact};

/// What every job of a run shares.
pub(crate) struct RunCtx<'a> {
    pub(crate) spec: &'a RunSpec,
    pub(crate) executor: &'a dyn Executor,
    pub(crate) store: &'a ArtifactStore,
    pub(crate) observer: Arc<dyn RunObserver>,
    pub(crate) masker: Masker,
    /// Fires on fail fast or when the caller cancels.
    pub(crate) stop: CancellationToken,
    /// `ANDON_*` variables of the runner's own environment (its admin token,
    /// server URL...): never passed down to jobs.
    pub(crate) env_remove: Vec<OsString>,
    /// The Docker engine, connected on the first container job.
    pub(crate) docker: crate::attempt::Engine,
    /// Set when a job's last attempt fails the run under fail fast, just
    /// before its `JobFinished` is recorded: the scheduler may see that
    /// job's future end only after another one's, and must not start a job
    /// after the failure is in the log.
    pub(crate) halted: std::sync::atomic::AtomicBool,
}

impl RunCtx<'_> {
    fn log(&self, job: &str, attempt: u32, line: &str) {
        self.observer.log(job, attempt, &self.masker.mask(line));
    }
}

/// Runs `job` (index `i` in the plan) to its final outcome.
pub(crate) async fn run_job(ctx: &RunCtx<'_>, i: usize) -> JobReport {
    let spec = ctx.spec;
    let job = &spec.jobs[i];
    // This future may first run after another job recorded a failure that
    // stops the run: then it never starts.
    if ctx.halted.load(std::sync::atomic::Ordering::SeqCst) {
        let reason = "fail fast: another job failed".to_owned();
        ctx.observer.event(Event::JobSkipped {
            run_id: spec.run_id,
            job: job.name.clone(),
            reason: reason.clone(),
        });
        return JobReport::skipped(&job.name, reason);
    }
    let mut report = JobReport {
        name: job.name.clone(),
        outcome: JobOutcome::Failed,
        attempts: 0,
        exit_code: None,
        duration_ms: 0,
        tests: None,
        failed_tests: Vec::new(),
        flaky: false,
        flaky_tests: Vec::new(),
        artifacts: Vec::new(),
        reason: None,
    };
    let env = match job_env(spec, job) {
        Ok(env) => env,
        Err(missing) => {
            // A configuration problem: retrying cannot fix it.
            let msg = format!(
                "secret `{missing}` is not set for this project; set it on the server (its value never goes in andon.yaml)"
            );
            report.attempts = 1;
            start_event(ctx, job, 1, None);
            ctx.log(&job.name, 1, &format!("andon: {msg}"));
            finish_event(ctx, job, 1, JobOutcome::Failed, None, 0, None, false);
            report.reason = Some(msg);
            return report;
        }
    };

    let mut failed_before = false;
    let mut ever_failed: BTreeSet<String> = BTreeSet::new();
    let mut ever_passed: BTreeSet<String> = BTreeSet::new();
    for attempt in 1..=job.retries.saturating_add(1) {
        report.attempts = attempt;
        let reports_dir = reports_dir(spec, i, job, attempt);
        let mut env = env.clone();
        env.push(("ANDON_REPORTS".into(), reports_dir.display().to_string()));
        let started = Instant::now();
        let ended = crate::attempt::run(
            ctx,
            job,
            attempt,
            Launch {
                executor: ctx.executor,
                script: &job.run,
                cwd: &spec.checkout,
                writable: vec![reports_dir.clone()],
                env: &env,
                env_remove: &ctx.env_remove,
                timeout: job.timeout,
                kill_grace: spec.kill_grace,
                stop: &ctx.stop,
            },
            |pgid| start_event(ctx, job, attempt, pgid),
            |line| ctx.log(&job.name, attempt, line),
        )
        .await;
        let mut outcome = ended.outcome;

        // Artifacts: matched every time (JUnit files among them count even
        // when the job failed), stored only when it passed.
        let (matched, missing) = expand_artifacts(&spec.checkout, &job.artifacts);
        let results = collect_junit(&reports_dir, &spec.checkout, &matched).await;
        // Read once, then gone: leaving hundreds of directories for the end
        // of the run made cleaning up cost more than running trivial jobs.
        let _ = tokio::fs::remove_dir_all(&reports_dir).await;
        if outcome == JobOutcome::Passed && !missing.is_empty() {
            for m in &missing {
                ctx.log(
                    &job.name,
                    attempt,
                    &format!("andon: artifact `{m}` not found in the checkout: nothing matches it, failing the job"),
                );
            }
            report.reason = Some(format!("artifact `{}` not found", missing[0]));
            outcome = JobOutcome::Failed;
        }
        let mut stored = Vec::new();
        if outcome == JobOutcome::Passed && !matched.is_empty() {
            match store_artifacts(ctx.store, &spec.checkout, &matched).await {
                Ok(s) => stored = s,
                Err(msg) => {
                    ctx.log(&job.name, attempt, &format!("andon: {msg}"));
                    report.reason = Some(msg);
                    outcome = JobOutcome::Failed;
                }
            }
        }
        for a in &stored {
            ctx.observer.event(Event::ArtifactStored {
                run_id: spec.run_id,
                job: job.name.clone(),
                path: a.path.clone(),
                digest: a.digest.to_string(),
                size: a.size,
            });
        }

        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let flaky = outcome == JobOutcome::Passed && failed_before;
        let tests = results.as_ref().map(Results::counts);
        if let Some(r) = &results {
            ever_failed.extend(r.failed());
            ever_passed.extend(r.with(CaseResult::Passed));
        }
        finish_event(
            ctx,
            job,
            attempt,
            outcome,
            ended.exit_code,
            duration_ms,
            tests,
            flaky,
        );

        report.outcome = outcome;
        report.exit_code = ended.exit_code;
        report.duration_ms = report.duration_ms.saturating_add(duration_ms);
        report.tests = tests;
        report.failed_tests = results.as_ref().map(Results::failed).unwrap_or_default();
        report.flaky |= flaky;
        report.artifacts = stored;
        if outcome == JobOutcome::Passed {
            report.reason = None;
        }

        let retryable = matches!(outcome, JobOutcome::Failed | JobOutcome::TimedOut);
        if !retryable || attempt > job.retries || ctx.stop.is_cancelled() {
            break;
        }
        failed_before = true;
        ctx.log(
            &job.name,
            attempt,
            &format!(
                "andon: attempt {attempt} {outcome}; retrying ({} of {})",
                attempt + 1,
                job.retries + 1
            ),
        );
    }
    report.flaky_tests = ever_failed.intersection(&ever_passed).cloned().collect();
    if report.flaky {
        ctx.log(
            &job.name,
            report.attempts,
            "andon: flaky: failed, then passed on retry on the same commit",
        );
    }
    if !report.flaky_tests.is_empty() {
        ctx.log(
            &job.name,
            report.attempts,
            &format!(
                "andon: flaky tests (failed and passed on the same commit): {}",
                report.flaky_tests.join(", ")
            ),
        );
    }
    report
}

fn start_event(ctx: &RunCtx<'_>, job: &JobSpec, attempt: u32, pgid: Option<i32>) {
    ctx.observer.event(Event::JobStarted {
        run_id: ctx.spec.run_id,
        job: job.name.clone(),
        attempt,
        pgid,
        executor: crate::attempt::executor_name(ctx, job).to_owned(),
    });
}

#[allow(clippy::too_many_arguments)]
fn finish_event(
    ctx: &RunCtx<'_>,
    job: &JobSpec,
    attempt: u32,
    outcome: JobOutcome,
    exit_code: Option<i32>,
    duration_ms: u64,
    tests: Option<andon_core::TestCounts>,
    flaky: bool,
) {
    let fails_run = matches!(outcome, JobOutcome::Failed | JobOutcome::TimedOut)
        && !job.allow_failure
        && attempt > job.retries;
    if ctx.spec.fail_fast && fails_run {
        ctx.halted.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    ctx.observer.event(Event::JobFinished {
        run_id: ctx.spec.run_id,
        job: job.name.clone(),
        attempt,
        outcome,
        exit_code,
        duration_ms,
        tests,
        flaky,
    });
}

/// The job's own environment on top of the runner's: `CI`, the job's `env`,
/// its secrets, and last the `ANDON_*` facts, which a job cannot override
/// (orphan reaping relies on `ANDON_RUN_ID`). Err names a missing secret.
fn job_env(spec: &RunSpec, job: &JobSpec) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![("CI".to_owned(), "true".to_owned())];
    env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for name in &job.secrets {
        let value = spec.secrets.get(name).ok_or_else(|| name.clone())?;
        env.push((name.clone(), value.clone()));
    }
    env.push(("ANDON_RUN_ID".into(), spec.run_id.to_string()));
    env.push(("ANDON_JOB".into(), job.name.clone()));
    if let Some(c) = &spec.commit {
        env.push(("ANDON_COMMIT".into(), c.clone()));
    }
    if let Some(i) = &spec.instance {
        env.push(("ANDON_INSTANCE".into(), i.clone()));
    }
    Ok(env)
}

/// A fresh, empty directory per attempt, so a retry's counts are its own.
fn reports_dir(spec: &RunSpec, i: usize, job: &JobSpec, attempt: u32) -> PathBuf {
    let safe: String = job
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let dir = spec
        .work_dir
        .join("reports")
        .join(format!("{i}-{safe}-{attempt}"));
    // A first attempt's directory is new (the work dir is fresh per run):
    // only a retry can find leftovers to clear.
    if attempt > 1 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Expands `artifacts:` entries (globs allowed) into checkout-relative paths,
/// sorted and deduplicated; also returns the entries that matched nothing.
fn expand_artifacts(checkout: &Path, patterns: &[String]) -> (Vec<String>, Vec<String>) {
    let mut matched = BTreeSet::new();
    let mut missing = Vec::new();
    for pattern in patterns {
        let rel = pattern.trim_start_matches("./");
        let escaped_root = glob::Pattern::escape(&checkout.display().to_string());
        let full = format!("{escaped_root}/{rel}");
        let mut any = false;
        if let Ok(paths) = glob::glob(&full) {
            for p in paths.flatten() {
                if let Ok(r) = p.strip_prefix(checkout) {
                    // Never store something outside the checkout (`../x`).
                    if r.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                    {
                        matched.insert(r.display().to_string());
                        any = true;
                    }
                }
            }
        }
        if !any {
            missing.push(pattern.clone());
        }
    }
    (matched.into_iter().collect(), missing)
}

/// JUnit results from `ANDON_REPORTS` (recursively) and from artifacts
/// ending in `.xml`; None when the attempt produced no report at all.
async fn collect_junit(reports: &Path, checkout: &Path, artifacts: &[String]) -> Option<Results> {
    let mut files = Vec::new();
    let mut stack = vec![reports.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "xml") => files.push(p),
                _ => {}
            }
        }
    }
    files.extend(
        artifacts
            .iter()
            .filter(|a| a.ends_with(".xml"))
            .map(|a| checkout.join(a)),
    );
    if files.is_empty() {
        return None;
    }
    files.sort();
    // Parsing reads files: off the runner's task, which drives other jobs.
    tokio::task::spawn_blocking(move || {
        let mut results = Results::default();
        let mut any = false;
        for f in &files {
            any |= junit::parse_file(f, &mut results);
        }
        any.then_some(results)
    })
    .await
    .ok()
    .flatten()
}

async fn store_artifacts(
    store: &ArtifactStore,
    checkout: &Path,
    paths: &[String],
) -> Result<Vec<StoredArtifact>, String> {
    let store = store.clone();
    let checkout = checkout.to_path_buf();
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for path in paths {
            let digest = store
                .put_path_as(&checkout.join(&path), &path)
                .map_err(|e| format!("cannot store artifact `{path}`: {}", chain(&e)))?;
            let size = store.size(&digest).unwrap_or(0);
            out.push(StoredArtifact { path, digest, size });
        }
        Ok(out)
    })
    .await
    .map_err(|e| format!("storing artifacts failed: {e}"))?
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
