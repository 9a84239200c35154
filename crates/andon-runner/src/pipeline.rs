//! The scheduler: a DAG of jobs, run as soon as their dependencies allow,
//! fastest feedback first, stopped at the first failure.
//!
//! Every job of a run is a future polled by this one task (a
//! `FuturesUnordered`), not a spawned task or thread: a job waiting on its
//! process costs nothing, and a finished job wakes the scheduler directly,
//! which starts the next ready job in the same turn.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use andon_artifacts::ArtifactStore;
use andon_core::{Event, JobOutcome, PlannedJob, RunStatus};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::executor::Executor;
use crate::job::{RunCtx, run_job};
use crate::mask::Masker;
use crate::spec::{JobReport, RunObserver, RunSpec, RunSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
}

/// Runs the pipeline of `spec` to its end and reports what happened.
///
/// Emits `RunStarted`, then `JobStarted`/`JobFinished` per attempt,
/// `ArtifactStored`, `JobSkipped` for every job that never ran, and
/// `RunFinished`. Cancelling `cancel` stops every running job (SIGTERM to its
/// process group, SIGKILL after `kill_grace`) and ends the run `cancelled`.
/// Dropping the returned future kills the running jobs' groups as well.
pub async fn run_pipeline(
    spec: RunSpec,
    executor: &dyn Executor,
    artifacts: &ArtifactStore,
    observer: Arc<dyn RunObserver>,
    cancel: CancellationToken,
) -> RunSummary {
    let n = spec.jobs.len();
    let run_id = spec.run_id;
    observer.event(Event::RunStarted {
        run_id,
        jobs: spec
            .jobs
            .iter()
            .map(|j| PlannedJob {
                name: j.name.clone(),
                stage: j.stage.clone(),
                kind: j.kind.clone(),
                deps: j.deps.clone(),
                allow_failure: j.allow_failure,
            })
            .collect(),
    });

    let graph = match Graph::new(&spec) {
        Ok(g) => g,
        Err(reason) => {
            let jobs = spec
                .jobs
                .iter()
                .map(|j| skip(&*observer, run_id, &j.name, reason.clone()))
                .collect();
            return finish(&*observer, run_id, RunStatus::Failed, Some(reason), jobs);
        }
    };

    let parallelism = if spec.parallelism == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        spec.parallelism
    };
    let ctx = RunCtx {
        spec: &spec,
        executor,
        store: artifacts,
        observer: observer.clone(),
        masker: Masker::new(spec.secrets.values().map(String::as_str)),
        stop: cancel.child_token(),
        env_remove: std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.to_string_lossy().starts_with("ANDON_"))
            .collect(),
        docker: Default::default(),
        halted: Default::default(),
    };

    let mut state = vec![State::Pending; n];
    let mut reports: Vec<Option<JobReport>> = vec![None; n];
    let mut waiting: Vec<usize> = graph.deps.iter().map(Vec::len).collect();
    // (median, plan index): the smallest recorded median first, unknown
    // medians (u64::MAX) last, plan order between equals.
    let priority = |i: usize| {
        (
            spec.medians_ms
                .get(&spec.jobs[i].name)
                .copied()
                .unwrap_or(u64::MAX),
            i,
        )
    };
    let mut ready: BTreeSet<(u64, usize)> =
        (0..n).filter(|&i| waiting[i] == 0).map(priority).collect();
    let mut running = FuturesUnordered::new();
    let mut failure: Option<String> = None;
    let mut stopped = false;

    loop {
        // Fail fast may have fired in the last turn: start nothing new then.
        while !stopped
            && !ctx.stop.is_cancelled()
            && !ctx.halted.load(std::sync::atomic::Ordering::SeqCst)
            && running.len() < parallelism
        {
            let Some((_, i)) = ready.pop_first() else {
                break;
            };
            state[i] = State::Running;
            let ctx = &ctx;
            // An agent has no shared checkout: it gets the artifacts of
            // the jobs this one needs.
            let remote = spec
                .remote
                .as_deref()
                .filter(|_| !spec.jobs[i].runs_on.is_empty());
            let inputs = match remote {
                Some(_) => crate::remote::inputs(&graph.deps[i], &reports),
                None => Vec::new(),
            };
            running.push(async move {
                let report = match remote {
                    Some(remote) => crate::remote::run_remote_job(ctx, i, remote, inputs).await,
                    None => run_job(ctx, i).await,
                };
                (i, report)
            });
        }
        if running.is_empty() && (stopped || !ctx.stop.is_cancelled()) {
            break;
        }
        tokio::select! {
            biased;
            Some((i, report)) = running.next() => {
                state[i] = State::Done;
                let job = &spec.jobs[i];
                let failed = matches!(report.outcome, JobOutcome::Failed | JobOutcome::TimedOut);
                let unblocks = report.outcome == JobOutcome::Passed || (failed && job.allow_failure);
                if unblocks {
                    for &d in &graph.dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && state[d] == State::Pending {
                            ready.insert(priority(d));
                        }
                    }
                } else if failed {
                    if failure.is_none() {
                        failure = Some(format!("job `{}` {}", job.name, report.outcome));
                    }
                    if spec.fail_fast {
                        // Running jobs see this through their own token; the
                        // branch below skips what has not started.
                        ctx.stop.cancel();
                    } else {
                        // Without fail fast, only what needs this job is off.
                        let reason = format!("needs `{}`, which {}", job.name, report.outcome);
                        for d in graph.descendants(i) {
                            if state[d] == State::Pending {
                                state[d] = State::Done;
                                ready.remove(&priority(d));
                                reports[d] = Some(skip(&*observer, run_id, &spec.jobs[d].name, reason.clone()));
                            }
                        }
                    }
                }
                reports[i] = Some(report);
            }
            () = ctx.stop.cancelled(), if !stopped => {
                // Skip what never started right away, so the log shows the
                // decision when it is made; running jobs are being stopped by
                // their own futures and finish through the branch above.
                stopped = true;
                let reason = if cancel.is_cancelled() {
                    "the run was cancelled".to_owned()
                } else {
                    format!("fail fast: {}", failure.as_deref().unwrap_or("a job failed"))
                };
                ready.clear();
                for i in 0..n {
                    if state[i] == State::Pending {
                        state[i] = State::Done;
                        reports[i] = Some(skip(&*observer, run_id, &spec.jobs[i].name, reason.clone()));
                    }
                }
            }
        }
    }

    // Jobs still pending here wait on something that can never pass.
    let jobs: Vec<JobReport> = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                skip(
                    &*observer,
                    run_id,
                    &spec.jobs[i].name,
                    "a job it needs did not pass".into(),
                )
            })
        })
        .collect();
    let interrupted = jobs
        .iter()
        .any(|r| matches!(r.outcome, JobOutcome::Cancelled | JobOutcome::Skipped));
    let (status, reason) = if cancel.is_cancelled() && interrupted {
        (RunStatus::Cancelled, Some("cancelled".to_owned()))
    } else if let Some(f) = failure {
        (RunStatus::Failed, Some(f))
    } else if jobs.iter().zip(&spec.jobs).any(|(r, j)| {
        r.outcome != JobOutcome::Passed && !(j.allow_failure && r.outcome != JobOutcome::Skipped)
    }) {
        (RunStatus::Failed, Some("not every job passed".to_owned()))
    } else {
        (RunStatus::Passed, None)
    };
    finish(&*observer, run_id, status, reason, jobs)
}

fn skip(observer: &dyn RunObserver, run_id: u64, job: &str, reason: String) -> JobReport {
    observer.event(Event::JobSkipped {
        run_id,
        job: job.to_owned(),
        reason: reason.clone(),
    });
    JobReport::skipped(job, reason)
}

fn finish(
    observer: &dyn RunObserver,
    run_id: u64,
    status: RunStatus,
    reason: Option<String>,
    jobs: Vec<JobReport>,
) -> RunSummary {
    observer.event(Event::RunFinished {
        run_id,
        status,
        reason: reason.clone(),
    });
    RunSummary {
        status,
        reason,
        jobs,
    }
}

/// The DAG by index, checked: unique names, known dependencies, no cycle.
struct Graph {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    fn new(spec: &RunSpec) -> Result<Self, String> {
        let mut index = HashMap::new();
        for (i, j) in spec.jobs.iter().enumerate() {
            if index.insert(j.name.as_str(), i).is_some() {
                return Err(format!("two jobs are named `{}`", j.name));
            }
        }
        let n = spec.jobs.len();
        let mut deps = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        for (i, j) in spec.jobs.iter().enumerate() {
            for d in &j.deps {
                let &k = index.get(d.as_str()).ok_or_else(|| {
                    format!(
                        "job `{}` needs `{d}`, which is not a job of this pipeline",
                        j.name
                    )
                })?;
                if !deps[i].contains(&k) {
                    deps[i].push(k);
                    dependents[k].push(i);
                }
            }
        }
        // Kahn's algorithm: whatever is left unvisited sits on a cycle.
        let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut visited = 0;
        while let Some(i) = queue.pop() {
            visited += 1;
            for &d in &dependents[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    queue.push(d);
                }
            }
        }
        if visited < n {
            let on_cycle: Vec<&str> = (0..n)
                .filter(|&i| indegree[i] > 0)
                .map(|i| spec.jobs[i].name.as_str())
                .collect();
            return Err(format!(
                "jobs depend on each other in a cycle: {}",
                on_cycle.join(", ")
            ));
        }
        Ok(Self { deps, dependents })
    }

    fn descendants(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.deps.len()];
        let mut stack = vec![i];
        let mut out = Vec::new();
        while let Some(k) = stack.pop() {
            for &d in &self.dependents[k] {
                if !seen[d] {
                    seen[d] = true;
                    out.push(d);
                    stack.push(d);
                }
            }
        }
        out
    }
}
