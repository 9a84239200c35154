//! Jobs with `image:` run in containers through the Docker Engine API,
//! against a real Podman service; `sandbox: true` picks bubblewrap.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use andon_core::{Event, JobOutcome, RunStatus};
use andon_runner::{LocalExecutor, reap_orphan_containers};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Fixture, job, needs};
use crate::podman;

const IMAGE: &str = "localhost/andon-busybox:test";

fn in_image(mut j: andon_runner::JobSpec) -> andon_runner::JobSpec {
    j.image = Some(IMAGE.into());
    j
}

fn executors(rec: &crate::helpers::Recorder) -> BTreeMap<String, String> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::JobStarted { job, executor, .. } => Some((job, executor)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_in_a_container_with_logs_exit_code_secrets_and_the_checkout() {
    let Some(pm) = podman::start() else { return };
    pm.import(IMAGE, &[], "sh");
    let fx = Fixture::new();
    std::fs::write(fx.checkout.join("marker.txt"), "from the checkout\n").unwrap();
    let mut build = in_image(job(
        "build",
        "echo \"pwd=$(pwd)\"; cat marker.txt; echo \"token=$TOKEN\"; echo to-stderr >&2; \
         echo \"CI=$CI run=$ANDON_RUN_ID\"; \
         mkdir -p dist && echo binary > dist/app; \
         echo '<testsuite name=\"s\"><testcase name=\"t\"/></testsuite>' > \"$ANDON_REPORTS/r.xml\"",
    ));
    build.secrets = vec!["TOKEN".into()];
    build.env = BTreeMap::from([("GREETING".into(), "hello".into())]);
    build.artifacts = vec!["dist/app".into()];
    let fails = in_image(needs(
        job("fails", "echo \"$GREETING-less\"; exit 3"),
        &["build"],
    ));
    let mut spec = fx.spec(vec![build, fails]);
    spec.secrets = BTreeMap::from([("TOKEN".into(), "s3cr3t-value".into())]);
    spec.docker_host = Some(pm.host.clone());
    let run_id = spec.run_id;
    let (summary, rec) = fx
        .run_with(spec, &LocalExecutor, CancellationToken::new())
        .await;

    let log = rec.log_of("build");
    assert!(log.contains("pwd=/workspace\n"), "{log}");
    assert!(log.contains("from the checkout\n"), "{log}");
    assert!(log.contains("token=***\n"), "{log}");
    assert!(!rec.all_logs().contains("s3cr3t-value"));
    assert!(log.contains("to-stderr\n"), "{log}");
    assert!(log.contains(&format!("CI=true run={run_id}\n")), "{log}");
    let build = summary.job("build").unwrap();
    assert_eq!(build.outcome, JobOutcome::Passed, "{log}");
    assert_eq!(build.exit_code, Some(0));
    assert_eq!(build.artifacts.len(), 1);
    assert_eq!(
        build.tests.map(|t| t.passed),
        Some(1),
        "JUnit from ANDON_REPORTS"
    );

    let fails = summary.job("fails").unwrap();
    assert_eq!(fails.outcome, JobOutcome::Failed);
    assert_eq!(fails.exit_code, Some(3));
    assert!(
        rec.log_of("fails").contains("-less\n"),
        "job env is not set"
    );
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(executors(&rec)["build"], "docker");
    assert!(
        pm.containers_with(&format!("ANDON_RUN_ID={run_id}"))
            .is_empty(),
        "containers are removed after the job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_and_removes_the_container() {
    let Some(pm) = podman::start() else { return };
    pm.import(IMAGE, &[], "sh");
    let fx = Fixture::new();
    let mut slow = in_image(job("slow", "echo started; sleep 60; echo never"));
    slow.timeout = Some(Duration::from_secs(2));
    let mut spec = fx.spec(vec![slow]);
    spec.docker_host = Some(pm.host.clone());
    spec.kill_grace = Duration::from_secs(1);
    let run_id = spec.run_id;
    let t = Instant::now();
    let (summary, rec) = fx
        .run_with(spec, &LocalExecutor, CancellationToken::new())
        .await;
    let took = t.elapsed();
    let slow = summary.job("slow").unwrap();
    assert_eq!(slow.outcome, JobOutcome::TimedOut, "{}", rec.all_logs());
    assert!(rec.log_of("slow").contains("started\n"));
    assert!(!rec.log_of("slow").contains("never"));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        pm.containers_with(&format!("ANDON_RUN_ID={run_id}"))
            .is_empty(),
        "the timed-out container is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stops_its_container() {
    let Some(pm) = podman::start() else { return };
    pm.import(IMAGE, &[], "sh");
    let fx = Fixture::new();
    let mut spec = fx.spec(vec![in_image(job(
        "long",
        "trap 'echo got-term; exit 143' TERM; echo up; while true; do sleep 1; done",
    ))]);
    spec.docker_host = Some(pm.host.clone());
    let run_id = spec.run_id;
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        c2.cancel();
    });
    let (summary, rec) = fx.run_with(spec, &LocalExecutor, cancel).await;
    assert_eq!(summary.job("long").unwrap().outcome, JobOutcome::Cancelled);
    let log = rec.log_of("long");
    assert!(
        log.contains("got-term\n"),
        "SIGTERM reaches the script: {log}"
    );
    assert!(
        pm.containers_with(&format!("ANDON_RUN_ID={run_id}"))
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_containers_of_dead_runs_are_reaped() {
    let Some(pm) = podman::start() else { return };
    pm.import(IMAGE, &[], "sh");
    let start = |run: &str, instance: &str| {
        let out = pm
            .cli()
            .args([
                "run",
                "-d",
                "--network=host",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(["--label", &format!("ANDON_RUN_ID={run}")])
            .args(["--label", &format!("ANDON_INSTANCE={instance}")])
            .args([IMAGE, "sleep", "300"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    start("7001", "srv-a");
    start("7001", "srv-b");
    start("7002", "srv-a");
    let n = reap_orphan_containers(&pm.host, Some("srv-a"), &[7001, 7003])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        pm.containers_with("ANDON_INSTANCE=srv-b").len() == 1,
        "another server's container stays"
    );
    assert_eq!(
        pm.containers_with("ANDON_RUN_ID=7002").len(),
        1,
        "a live run's container stays"
    );
    let n = reap_orphan_containers(&pm.host, None, &[7001, 7002])
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(pm.containers_with("ANDON_RUN_ID=7001").is_empty());
}

#[tokio::test]
async fn no_engine_is_a_clear_job_failure() {
    let fx = Fixture::new();
    let mut spec = fx.spec(vec![in_image(job("c", "true"))]);
    spec.docker_host = Some(format!("unix://{}/no.sock", fx.tmp().display()));
    let (summary, rec) = fx
        .run_with(spec, &LocalExecutor, CancellationToken::new())
        .await;
    assert_eq!(summary.job("c").unwrap().outcome, JobOutcome::Failed);
    let log = rec.log_of("c");
    assert!(log.contains("no Docker engine answers at unix://"), "{log}");
    assert!(log.contains("DOCKER_HOST"), "{log}");
}

#[tokio::test]
async fn sandbox_true_runs_the_job_in_bubblewrap() {
    if andon_runner::BwrapExecutor::new().check().is_err() {
        assert!(std::env::var_os("CI").is_none(), "bubblewrap cannot run");
        eprintln!("skipped: bubblewrap cannot run here");
        return;
    }
    let fx = Fixture::new();
    let mut sandboxed = job(
        "hermetic",
        "if touch /usr/andon-probe 2>/dev/null; then echo ROOT-WRITABLE; else echo ROOT-READONLY; fi",
    );
    sandboxed.sandbox = true;
    let plain = job("plain", "echo plain");
    let (summary, rec) = fx
        .run_with(
            fx.spec(vec![sandboxed, plain]),
            &LocalExecutor,
            CancellationToken::new(),
        )
        .await;
    assert_eq!(summary.status, RunStatus::Passed, "{}", rec.all_logs());
    assert!(rec.log_of("hermetic").contains("ROOT-READONLY"));
    let ex = executors(&rec);
    assert_eq!(
        (ex["hermetic"].as_str(), ex["plain"].as_str()),
        ("bwrap", "local")
    );
}
