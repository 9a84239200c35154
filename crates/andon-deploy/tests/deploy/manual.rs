use std::collections::BTreeMap;
use std::time::Duration;

use andon_core::{DeployOutcome, Event};
use andon_deploy::{Command, DeployError, DeployRequest, RollbackRequest};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_last_good_version_fresh_or_warm() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let env = environment("production", 2, "      blue-green", "");
    let (v1, v2, v3) = (
        h.version("v1", 0.0),
        h.version("v2", 0.0),
        h.version("v3", 0.0),
    );
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    assert_eq!(h.deploy_and_wait(&env, v2).await, DeployOutcome::Succeeded);
    assert_eq!(h.ctl.rollback_target("shop", "production").await, Some(v1));

    // v1 no longer runs: fresh instances of it, one route update.
    let id = h.next_id();
    let back = h
        .ctl
        .rollback(RollbackRequest {
            project: "shop".into(),
            environment: "production".into(),
            deploy_id: id,
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(back, v1);
    assert_eq!(h.rec.finished(id).unwrap().0, DeployOutcome::Succeeded);
    assert_eq!(h.rec.pids_of(id).len(), 2, "fresh v1 instances");
    let (_, by, body) = get(&h.router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v1""#), "{body}");
    assert!(
        wait_dead(&h.rec.pids_of(2), Duration::from_secs(10))
            .await
            .is_empty()
    );
    assert!(h.ctl.instances().iter().all(|i| i.version == v1));

    // Within the rollback window blue is still warm: no new instance.
    let mut windowed = env.clone();
    windowed.rollback_window = Duration::from_secs(60);
    assert_eq!(
        h.deploy_and_wait(&windowed, v3).await,
        DeployOutcome::Succeeded
    );
    assert_eq!(h.ctl.instances().len(), 4, "v3 serving, v1 warm");
    let (_, _, body) = get(&h.router.url, Some(("x-andon-version", "previous"))).await;
    assert!(
        body.contains(r#""version":"v1""#),
        "blue reachable by override: {body}"
    );
    let id = h.next_id();
    let back = h
        .ctl
        .rollback(RollbackRequest {
            project: "shop".into(),
            environment: "production".into(),
            deploy_id: id,
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(back, v1);
    assert!(
        h.rec.pids_of(id).is_empty(),
        "the warm blue took the traffic back"
    );
    let (_, _, body) = get(&h.router.url, None).await;
    assert!(body.contains(r#""version":"v1""#), "{body}");
    assert_eq!(h.ctl.instances().len(), 2);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_migration_freezes_instead_of_rolling_back() {
    let _serial = serial().await;
    let h = Harness::new().await;
    // A strict error limit fails the canary fast; the contract flag must
    // turn that failure into a freeze.
    let judge = "    judge:\n      max_error_rate: 1%\n      compare_to_baseline: false\n      min_requests: 20";
    let steps = "      canary:\n        steps:\n          - { weight: 50, for: 40s }";
    let env = environment("production", 1, steps, judge);
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let v2 = h.version("v2", 0.5);
    let id = h.deploy_with(&env, v2, true).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        5_000,
        4,
        Duration::from_secs(40),
        stop.clone(),
        &["canary"],
    ));
    let outcome = h.wait(&env, id).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = load.await.unwrap();
    assert_eq!(outcome, DeployOutcome::Frozen, "{:?}", h.rec.finished(id));
    assert_eq!(h.rec.count("incident_opened"), 1);
    assert!(h.rec.notes.lock().unwrap()[0].0.contains("frozen"));
    // Traffic left as it was: the canary still serves and still runs.
    let canary_pids = h.rec.pids_of(id);
    assert!(canary_pids.iter().all(|p| alive(*p)));
    let mut seen_canary = false;
    for _ in 0..200 {
        if get(&h.router.url, None).await.1 == "canary" {
            seen_canary = true;
            break;
        }
    }
    assert!(seen_canary);
    // No new release until a person decides.
    let refused = h
        .ctl
        .deploy(DeployRequest {
            project: "shop".into(),
            deploy_id: 99,
            environment: env.clone(),
            version: v1,
            secrets: BTreeMap::new(),
            stable: Some(v1),
            contract_migration: false,
        })
        .await;
    assert!(
        matches!(refused, Err(DeployError::Frozen { .. })),
        "{refused:?}"
    );
    // The person chooses to go forward.
    h.ctl
        .command("shop", "production", Command::Promote)
        .await
        .unwrap();
    let (_, by, body) = get(&h.router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v2""#), "{body}");
    let finished: Vec<_> = h
        .rec
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::DeployFinished {
                deploy_id, outcome, ..
            } if deploy_id == id => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        vec![DeployOutcome::Frozen, DeployOutcome::Succeeded]
    );
    assert!(
        wait_dead(&h.rec.pids_of(1), Duration::from_secs(10))
            .await
            .is_empty()
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_sends_traffic_back_and_cleans_up() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let steps = "      canary:\n        steps:\n          - { weight: 30, for: 60s }";
    let env = environment("production", 1, steps, JUDGE_OFF);
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let v2 = h.version("v2", 0.0);
    let id = h.deploy(&env, v2).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while !h.rec.all().iter().any(|e| matches!(e, Event::TrafficShifted { deploy_id, weights, .. } if *deploy_id == id && weights.get(&v2.to_string()) == Some(&30))) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    h.ctl
        .command("shop", "production", Command::Abort)
        .await
        .unwrap();
    assert_eq!(h.wait(&env, id).await, DeployOutcome::Aborted);
    assert_eq!(h.rec.count("incident_opened"), 0);
    assert!(
        wait_dead(&h.rec.pids_of(id), Duration::from_secs(10))
            .await
            .is_empty()
    );
    let (_, by, body) = get(&h.router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v1""#));
    let e = h.ctl.command("shop", "production", Command::Abort).await;
    assert!(matches!(e, Err(DeployError::NoDeployInFlight { .. })));
    h.finish().await;
}

const JUDGE_OFF: &str = "";
