//! Timeouts, dropped runs and orphans: no job process outlives its job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use andon_core::{JobOutcome, RunStatus};
use andon_runner::{LocalExecutor, reap_orphans, reap_orphans_of, run_pipeline};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Fixture, Recorder, all_dead, is_dead, job, read_pids};

/// A job whose shell starts background children and a sub-shell with its
/// own children, and writes every pid to `pids`.
fn tree_script(pids: &std::path::Path) -> String {
    format!(
        "sleep 100 & echo $! >> {p}; sh -c 'sleep 100 & echo $! >> {p}; echo $$ >> {p}; sleep 100' & echo $$ >> {p}; wait",
        p = pids.display()
    )
}

async fn wait_for_pids(path: &std::path::Path, n: usize) -> Vec<i32> {
    for _ in 0..500 {
        let pids = read_pids(path);
        if pids.len() >= n {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the job never wrote {n} pids");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group_including_grandchildren() {
    let fx = Fixture::new();
    let pids = fx.tmp().join("pids");
    let mut j = job("hang", &tree_script(&pids));
    j.timeout = Some(Duration::from_millis(2000));
    // One that ignores SIGTERM (children inherit the ignore) needs the SIGKILL.
    let stubborn_pids = fx.tmp().join("stubborn");
    let mut stubborn = job(
        "stubborn",
        &format!(
            "trap '' TERM; sleep 100 & echo $! >> {p}; echo $$ >> {p}; wait",
            p = stubborn_pids.display()
        ),
    );
    stubborn.timeout = Some(Duration::from_millis(1000));
    stubborn.allow_failure = true;
    let t0 = Instant::now();
    let (summary, rec) = fx.run(fx.spec(vec![j, stubborn])).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(summary.job("hang").unwrap().outcome, JobOutcome::TimedOut);
    assert_eq!(
        summary.job("stubborn").unwrap().outcome,
        JobOutcome::TimedOut
    );
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(rec.log_of("hang").contains("timed out after 2s"));
    let all: Vec<i32> = read_pids(&pids)
        .into_iter()
        .chain(read_pids(&stubborn_pids))
        .collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all_dead(&all).await, "survivors among {all:?}");
}

#[tokio::test]
async fn background_processes_end_with_their_job() {
    let fx = Fixture::new();
    let pids = fx.tmp().join("pids");
    let j = job(
        "leaves-a-daemon",
        &format!("sleep 100 & echo $! > {}; echo done", pids.display()),
    );
    let (summary, _) = fx.run(fx.spec(vec![j])).await;
    assert_eq!(summary.status, RunStatus::Passed);
    assert!(all_dead(&read_pids(&pids)).await);
}

#[tokio::test]
async fn dropping_the_run_kills_its_jobs() {
    let fx = Fixture::new();
    let pids = fx.tmp().join("pids");
    let rec = Arc::new(Recorder::default());
    let spec = fx.spec(vec![job("hang", &tree_script(&pids))]);
    {
        let run = run_pipeline(
            spec,
            &LocalExecutor,
            &fx.store,
            rec.clone(),
            CancellationToken::new(),
        );
        tokio::select! {
            _ = run => panic!("the run ended by itself"),
            _ = wait_for_pids(&pids, 4) => {}
        }
    }
    assert!(all_dead(&read_pids(&pids)).await);
}

#[tokio::test]
async fn orphans_of_a_killed_runner_are_reaped_by_run_id() {
    let fx = Fixture::new();
    let pids = fx.tmp().join("pids");
    let rec = Arc::new(Recorder::default());
    let mut spec = fx.spec(vec![job("hang", &tree_script(&pids))]);
    spec.instance = Some(format!("test-{}", std::process::id()));
    let run_id = spec.run_id;
    let instance = spec.instance.clone().unwrap();
    // Leak the run as a `kill -9` would: no destructor, no cleanup.
    let mut run = Box::pin(run_pipeline(
        spec,
        &LocalExecutor,
        &fx.store,
        rec.clone(),
        CancellationToken::new(),
    ));
    tokio::select! {
        _ = &mut run => panic!("the run ended by itself"),
        _ = wait_for_pids(&pids, 4) => {}
    }
    std::mem::forget(run);
    let procs = read_pids(&pids);
    assert!(procs.iter().all(|&p| !is_dead(p)));

    assert_eq!(reap_orphans_of("another-server", &[run_id]).unwrap(), 0);
    assert_eq!(reap_orphans(&[run_id + 1]).unwrap(), 0);
    let reaped = reap_orphans_of(&instance, &[run_id]).unwrap();
    assert!(reaped >= 4, "reaped {reaped}");
    assert!(all_dead(&procs).await, "survivors among {procs:?}");
    assert_eq!(reap_orphans(&[run_id]).unwrap(), 0, "nothing left");
}
