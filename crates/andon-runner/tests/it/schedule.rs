//! DAG order, parallelism, fastest first, fail fast, allow_failure, cancel.

use std::time::{Duration, Instant};

use andon_core::{Event, JobOutcome, RunStatus};
use andon_runner::LocalExecutor;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Fixture, job, needs};

/// `S name ns` / `E name ns` lines appended by each job.
fn timed(name: &str, log: &std::path::Path, sleep: &str) -> andon_runner::JobSpec {
    job(
        name,
        &format!(
            "echo \"S $ANDON_JOB $(date +%s%N)\" >> {log}; sleep {sleep}; echo \"E $ANDON_JOB $(date +%s%N)\" >> {log}",
            log = log.display()
        ),
    )
}

fn intervals(log: &std::path::Path) -> std::collections::BTreeMap<String, (u128, u128)> {
    let mut out = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let t: u128 = parts[2].parse().unwrap();
        let e = out.entry(parts[1].to_owned()).or_insert((0, 0));
        if parts[0] == "S" { e.0 = t } else { e.1 = t }
    }
    out
}

#[tokio::test]
async fn dag_order_and_parallelism_limit() {
    let fx = Fixture::new();
    let log = fx.tmp().join("times");
    let mut jobs = vec![timed("a", &log, "0.1")];
    for n in ["b", "c", "d", "e"] {
        jobs.push(needs(timed(n, &log, "0.3"), &["a"]));
    }
    jobs.push(needs(timed("f", &log, "0.1"), &["b", "c", "d", "e"]));
    let mut spec = fx.spec(jobs);
    spec.parallelism = 2;
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Passed, "{:?}", summary);

    let iv = intervals(&log);
    assert_eq!(iv.len(), 6);
    let mids = ["b", "c", "d", "e"];
    for m in mids {
        assert!(iv[m].0 >= iv["a"].1, "{m} started before a ended");
        assert!(iv["f"].0 >= iv[m].1, "f started before {m} ended");
    }
    // Never more than 2 at once, and 2 at once at some point.
    let mut points: Vec<(u128, i32)> = iv.values().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    points.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut max) = (0, 0);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    assert_eq!(max, 2, "{iv:?}");

    let events = rec.events();
    assert!(
        matches!(&events[0], Event::RunStarted { jobs, .. } if jobs.len() == 6 && jobs[5].deps.len() == 4)
    );
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            status: RunStatus::Passed,
            ..
        })
    ));
    assert!(events.iter().any(|e| matches!(e, Event::JobStarted { pgid: Some(p), executor, .. } if *p > 1 && executor == "local")));
}

#[tokio::test]
async fn fastest_recorded_median_starts_first_unknown_last() {
    let fx = Fixture::new();
    let jobs = ["slowish", "unknown1", "fast", "unknown2", "medium"]
        .iter()
        .map(|n| job(n, "true"))
        .collect();
    let mut spec = fx.spec(jobs);
    spec.parallelism = 1;
    spec.medians_ms = [("slowish", 900), ("fast", 5), ("medium", 300)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Passed);
    assert_eq!(
        rec.start_order(),
        ["fast", "medium", "slowish", "unknown1", "unknown2"]
    );
}

#[tokio::test]
async fn first_failure_cancels_running_jobs_and_skips_the_rest() {
    let fx = Fixture::new();
    let marker = fx.tmp().join("never");
    let jobs = vec![
        job("long", "sleep 30"),
        job("bad", "sleep 0.3; echo failing; exit 3"),
        needs(
            job("after-bad", &format!("touch {}", marker.display())),
            &["bad"],
        ),
        needs(
            job("after-long", &format!("touch {}", marker.display())),
            &["long"],
        ),
    ];
    let t0 = Instant::now();
    let (summary, rec) = fx.run(fx.spec(jobs)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "fail fast took {took:?}");
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.reason.as_deref(), Some("job `bad` failed"));
    let bad = summary.job("bad").unwrap();
    assert_eq!((bad.outcome, bad.exit_code), (JobOutcome::Failed, Some(3)));
    assert_eq!(summary.job("long").unwrap().outcome, JobOutcome::Cancelled);
    let skipped = rec.skipped();
    assert_eq!(
        skipped.keys().collect::<Vec<_>>(),
        ["after-bad", "after-long"]
    );
    assert!(skipped["after-long"].contains("fail fast"), "{skipped:?}");
    assert!(!marker.exists());
    assert!(rec.log_of("bad").contains("failing"));
}

#[tokio::test]
async fn without_fail_fast_only_dependents_are_skipped() {
    let fx = Fixture::new();
    let jobs = vec![
        job("bad", "exit 1"),
        needs(job("child", "true"), &["bad"]),
        needs(job("grandchild", "true"), &["child"]),
        job("other", "sleep 0.2"),
    ];
    let mut spec = fx.spec(jobs);
    spec.fail_fast = false;
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.job("other").unwrap().outcome, JobOutcome::Passed);
    let skipped = rec.skipped();
    assert_eq!(skipped.len(), 2);
    assert!(skipped["grandchild"].contains("needs `bad`"), "{skipped:?}");
}

#[tokio::test]
async fn allow_failure_keeps_the_run_and_its_dependents_going() {
    let fx = Fixture::new();
    let mut lint = job("lint", "exit 1");
    lint.allow_failure = true;
    let jobs = vec![
        lint,
        needs(job("deploy-preview", "echo ran"), &["lint"]),
        job("unit", "true"),
    ];
    let (summary, rec) = fx.run(fx.spec(jobs)).await;
    assert_eq!(summary.status, RunStatus::Passed, "{summary:?}");
    assert_eq!(summary.job("lint").unwrap().outcome, JobOutcome::Failed);
    assert_eq!(
        summary.job("deploy-preview").unwrap().outcome,
        JobOutcome::Passed
    );
    assert!(rec.log_of("deploy-preview").contains("ran"));
    assert!(rec.skipped().is_empty());
}

#[tokio::test]
async fn cancelling_the_token_stops_everything_promptly() {
    let fx = Fixture::new();
    let jobs = vec![
        job("a", "sleep 30"),
        job("b", "sleep 30"),
        needs(job("c", "true"), &["a"]),
    ];
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let (summary, rec) = fx.run_with(fx.spec(jobs), &LocalExecutor, cancel).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(summary.status, RunStatus::Cancelled);
    assert_eq!(summary.job("a").unwrap().outcome, JobOutcome::Cancelled);
    assert_eq!(summary.job("b").unwrap().outcome, JobOutcome::Cancelled);
    assert_eq!(rec.skipped()["c"], "the run was cancelled");
    assert!(matches!(
        rec.events().last(),
        Some(Event::RunFinished {
            status: RunStatus::Cancelled,
            ..
        })
    ));
}

#[tokio::test]
async fn retries_are_recorded_and_a_pass_after_a_failure_is_flaky() {
    let fx = Fixture::new();
    let marker = fx.tmp().join("tried-once");
    let mut j = job(
        "flaky",
        &format!(
            "if [ -f {m} ]; then echo second; else touch {m}; echo first; exit 1; fi",
            m = marker.display()
        ),
    );
    j.retries = 2;
    let mut steady = job("steady", "exit 4");
    steady.retries = 1;
    steady.allow_failure = true;
    let (summary, rec) = fx.run(fx.spec(vec![j, steady])).await;
    assert_eq!(summary.status, RunStatus::Passed);
    let r = summary.job("flaky").unwrap();
    assert_eq!(
        (r.outcome, r.attempts, r.flaky),
        (JobOutcome::Passed, 2, true)
    );
    assert_eq!(
        rec.finished("flaky")
            .iter()
            .map(|f| (f.0, f.1, f.2))
            .collect::<Vec<_>>(),
        [
            (1, JobOutcome::Failed, false),
            (2, JobOutcome::Passed, true)
        ]
    );
    let s = summary.job("steady").unwrap();
    assert_eq!(
        (s.outcome, s.attempts, s.flaky, s.exit_code),
        (JobOutcome::Failed, 2, false, Some(4))
    );
    assert!(rec.log_of("flaky").contains("flaky"));
}

#[tokio::test]
async fn bad_graphs_fail_the_run_without_running_anything() {
    let fx = Fixture::new();
    for (jobs, want) in [
        (vec![needs(job("a", "true"), &["ghost"])], "not a job"),
        (
            vec![
                needs(job("a", "true"), &["b"]),
                needs(job("b", "true"), &["a"]),
            ],
            "cycle",
        ),
        (vec![job("a", "true"), job("a", "true")], "two jobs"),
    ] {
        let (summary, rec) = fx.run(fx.spec(jobs)).await;
        assert_eq!(summary.status, RunStatus::Failed);
        assert!(
            summary.reason.as_deref().unwrap().contains(want),
            "{summary:?}"
        );
        assert!(rec.start_order().is_empty());
    }
}

#[tokio::test]
async fn every_job_gets_the_andon_environment() {
    let fx = Fixture::new();
    let mut j = job(
        "env",
        "echo \"run=$ANDON_RUN_ID job=$ANDON_JOB commit=$ANDON_COMMIT ci=$CI greeting=$GREETING pwd=$(pwd)\"; test -d \"$ANDON_REPORTS\" && echo reports-ok",
    );
    j.env.insert("GREETING".into(), "hi".into());
    let spec = fx.spec(vec![j]);
    let run_id = spec.run_id;
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Passed);
    let log = rec.log_of("env");
    let checkout = std::fs::canonicalize(&fx.checkout).unwrap();
    assert!(
        log.contains(&format!(
            "run={run_id} job=env commit=0123456789abcdef0123456789abcdef01234567 ci=true greeting=hi pwd={}",
            checkout.display()
        )),
        "{log}"
    );
    assert!(log.contains("reports-ok"));
}

#[tokio::test]
async fn after_a_failure_nothing_new_starts() {
    let fx = Fixture::new();
    let mut spec = fx.spec(vec![
        job("bad", "exit 1"),
        job("next", "true"),
        job("last", "true"),
    ]);
    spec.parallelism = 1;
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(rec.start_order(), ["bad"]);
    assert_eq!(summary.job("next").unwrap().outcome, JobOutcome::Skipped);
    assert_eq!(rec.skipped().len(), 2);
}
