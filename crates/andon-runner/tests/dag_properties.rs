//! Properties of the DAG scheduler over random pipelines of `true`/`false`
//! jobs run as real processes: a job starts only after every job it needs
//! has finished and unblocked it; never more than `parallelism` jobs run at
//! once; without fail fast a failure skips exactly the jobs that need it
//! (directly or not); with fail fast nothing starts after the first failure.
//!
//! Bounded: at most 7 jobs per pipeline and a few dozen cases per property,
//! each job a `sh -c true` or `sh -c false`, so the whole file runs in a few
//! seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_artifacts::ArtifactStore;
use andon_core::{Event, JobOutcome, RunStatus};
use andon_runner::{JobSpec, LocalExecutor, RunObserver, RunSpec, RunSummary, run_pipeline};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl RunObserver for Recorder {
    fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    fn log(&self, _job: &str, _attempt: u32, _line: &str) {}
}

/// One random pipeline: job `j{i}` may need only jobs with a lower index,
/// so it is always acyclic; the plan lists the jobs in a shuffled order so
/// that plan order and dependency order differ.
#[derive(Debug, Clone)]
struct Dag {
    passes: Vec<bool>,
    allow_failure: Vec<bool>,
    deps: Vec<Vec<usize>>,
    plan: Vec<usize>,
    parallelism: usize,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..=7).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| prop::collection::vec(any::<bool>(), i))
            .collect::<Vec<_>>();
        (
            prop::collection::vec(prop::bool::weighted(0.8), n),
            prop::collection::vec(prop::bool::weighted(0.2), n),
            deps,
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            1usize..=3,
        )
            .prop_map(|(passes, allow_failure, picks, plan, parallelism)| Dag {
                passes,
                allow_failure,
                deps: picks
                    .into_iter()
                    .map(|p| {
                        p.iter()
                            .enumerate()
                            .filter(|(_, b)| **b)
                            .map(|(k, _)| k)
                            .collect()
                    })
                    .collect(),
                plan,
                parallelism,
            })
    })
}

fn name(i: usize) -> String {
    format!("j{i}")
}

fn index(job: &str) -> usize {
    job[1..].parse().unwrap()
}

/// Run ids unique across tests, so orphan reaping never touches another
/// test's processes.
fn run_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    (u64::from(std::process::id()) << 24) | N.fetch_add(1, Ordering::Relaxed)
}

fn run(dag: &Dag, fail_fast: bool) -> (RunSummary, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let store = ArtifactStore::open(&dir.path().join("data")).unwrap();
    let jobs = dag
        .plan
        .iter()
        .map(|&i| JobSpec {
            name: name(i),
            stage: "test".into(),
            run: if dag.passes[i] { "true" } else { "false" }.into(),
            deps: dag.deps[i].iter().map(|&d| name(d)).collect(),
            allow_failure: dag.allow_failure[i],
            ..JobSpec::default()
        })
        .collect();
    let spec = RunSpec {
        run_id: run_id(),
        checkout,
        jobs,
        parallelism: dag.parallelism,
        work_dir: work,
        fail_fast,
        kill_grace: Duration::from_secs(1),
        ..RunSpec::default()
    };
    let rec = Arc::new(Recorder::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            run_pipeline(
                spec,
                &LocalExecutor,
                &store,
                rec.clone(),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("the run ended in time")
    });
    let events = rec.events.lock().unwrap().clone();
    (summary, events)
}

/// What each job must end as when failures only skip dependents.
fn expected_without_fail_fast(dag: &Dag) -> Vec<JobOutcome> {
    let mut out = Vec::with_capacity(dag.passes.len());
    for i in 0..dag.passes.len() {
        let unblocked = dag.deps[i].iter().all(|&d| {
            out[d] == JobOutcome::Passed || (out[d] == JobOutcome::Failed && dag.allow_failure[d])
        });
        out.push(match (unblocked, dag.passes[i]) {
            (false, _) => JobOutcome::Skipped,
            (true, true) => JobOutcome::Passed,
            (true, false) => JobOutcome::Failed,
        });
    }
    out
}

/// Checks the ordering and concurrency properties every run has, and
/// returns the position of each job's start and finish in the event log.
fn check_order(
    dag: &Dag,
    events: &[Event],
) -> Result<BTreeMap<usize, (usize, usize)>, TestCaseError> {
    let mut started = BTreeMap::new();
    let mut finished: BTreeMap<usize, (usize, JobOutcome)> = BTreeMap::new();
    let mut running = 0usize;
    for (pos, e) in events.iter().enumerate() {
        match e {
            Event::JobStarted { job, attempt, .. } => {
                prop_assert_eq!(*attempt, 1, "no retries were asked for");
                let i = index(job);
                prop_assert!(started.insert(i, pos).is_none(), "{} started twice", job);
                running += 1;
                prop_assert!(
                    running <= dag.parallelism,
                    "{} jobs at once with parallelism {}",
                    running,
                    dag.parallelism
                );
                for &d in &dag.deps[i] {
                    let Some(&(_, outcome)) = finished.get(&d) else {
                        return Err(TestCaseError::fail(format!(
                            "{job} started before {} finished",
                            name(d)
                        )));
                    };
                    prop_assert!(
                        outcome == JobOutcome::Passed
                            || (outcome == JobOutcome::Failed && dag.allow_failure[d]),
                        "{} started although {} ended {:?}",
                        job,
                        name(d),
                        outcome
                    );
                }
            }
            Event::JobFinished { job, outcome, .. } => {
                let i = index(job);
                prop_assert!(
                    started.contains_key(&i),
                    "{} finished without starting",
                    job
                );
                running -= 1;
                finished.insert(i, (pos, *outcome));
            }
            _ => {}
        }
    }
    prop_assert_eq!(running, 0, "the run ended with jobs still running");
    Ok(started
        .into_iter()
        .map(|(i, s)| (i, (s, finished.get(&i).map_or(usize::MAX, |f| f.0))))
        .collect())
}

fn outcome_of(summary: &RunSummary, i: usize) -> JobOutcome {
    summary.job(&name(i)).unwrap().outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 64, .. ProptestConfig::default() })]

    #[test]
    fn without_fail_fast_a_failure_skips_exactly_its_dependents(dag in dag()) {
        let (summary, events) = run(&dag, false);
        check_order(&dag, &events)?;
        let expected = expected_without_fail_fast(&dag);
        for (i, want) in expected.iter().enumerate() {
            prop_assert_eq!(outcome_of(&summary, i), *want, "job {} in {:?}", name(i), dag);
        }
        let blocking_failure = expected
            .iter()
            .enumerate()
            .any(|(i, o)| *o == JobOutcome::Failed && !dag.allow_failure[i]);
        let want = if blocking_failure { RunStatus::Failed } else { RunStatus::Passed };
        prop_assert_eq!(summary.status, want);
        // Reports come back in plan order, one per job, and every skipped
        // job was announced.
        let names: Vec<String> = summary.jobs.iter().map(|j| j.name.clone()).collect();
        let plan: Vec<String> = dag.plan.iter().map(|&i| name(i)).collect();
        prop_assert_eq!(names, plan);
        let skipped = events.iter().filter(|e| matches!(e, Event::JobSkipped { .. })).count();
        prop_assert_eq!(skipped, expected.iter().filter(|o| **o == JobOutcome::Skipped).count());
    }

    #[test]
    fn with_fail_fast_nothing_starts_after_the_first_failure(dag in dag()) {
        let (summary, events) = run(&dag, true);
        let spans = check_order(&dag, &events)?;
        let first_failure = events.iter().position(|e| matches!(
            e,
            Event::JobFinished { job, outcome: JobOutcome::Failed, .. } if !dag.allow_failure[index(job)]
        ));
        match first_failure {
            None => {
                // No blocking failure: the same outcomes as without fail fast.
                let expected = expected_without_fail_fast(&dag);
                for (i, want) in expected.iter().enumerate() {
                    prop_assert_eq!(outcome_of(&summary, i), *want, "job {} in {:?}", name(i), dag);
                }
                prop_assert_eq!(summary.status, RunStatus::Passed);
            }
            Some(at) => {
                prop_assert_eq!(summary.status, RunStatus::Failed);
                for (&i, &(start, _)) in &spans {
                    prop_assert!(start < at, "{} started after the first failure", name(i));
                }
                for i in 0..dag.passes.len() {
                    let o = outcome_of(&summary, i);
                    let ok = match (spans.contains_key(&i), dag.passes[i]) {
                        (false, _) => o == JobOutcome::Skipped,
                        (true, true) => matches!(o, JobOutcome::Passed | JobOutcome::Cancelled),
                        (true, false) => matches!(o, JobOutcome::Failed | JobOutcome::Cancelled),
                    };
                    prop_assert!(ok, "job {} ended {:?} in {:?}", name(i), o, dag);
                }
            }
        }
    }
}
