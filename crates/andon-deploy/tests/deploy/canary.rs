use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use andon_core::{DeployOutcome, Event};
use andon_deploy::Command;

use crate::support::*;

const JUDGE: &str = "    judge:\n      compare_to_baseline: true\n      alpha: 0.01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_at_5_percent_errors_against_1_percent_is_rolled_back() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let steps = "      canary:\n        steps:\n          - { weight: 50, for: 50s }";
    let env = environment("production", 1, steps, JUDGE);
    let v1 = h.version("v1", 0.01);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let stable_pids = h.rec.pids_of(1);

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        1_000_000,
        8,
        Duration::from_secs(55),
        stop.clone(),
        &["canary", "baseline", "stable"],
    ));
    let v2 = h.version("v2", 0.05);
    let id = h.deploy(&env, v2).await;
    let outcome = h.wait(&env, id).await;
    stop.store(true, Ordering::Relaxed);
    let l = load.await.unwrap();
    assert_eq!(
        outcome,
        DeployOutcome::RolledBack,
        "{:?}",
        h.rec.finished(id)
    );
    assert_eq!(l.failed, 0, "{:?}", l.first_failures);
    assert!(l.served_by.get("canary").copied().unwrap_or(0) > 0, "{l:?}");

    let events = h.rec.all();
    let fail = events.iter().find_map(|e| match e {
        Event::JudgeVerdict {
            outcome, sentence, ..
        } if outcome == "fail" => Some(sentence.clone()),
        _ => None,
    });
    let sentence = fail.expect("a fail verdict");
    assert!(
        sentence.contains("canary") && sentence.contains("baseline"),
        "{sentence}"
    );
    assert_eq!(h.rec.count("incident_opened"), 1);
    assert_eq!(h.rec.notes.lock().unwrap().len(), 1);
    // Canary AND baseline gone; the stable instance untouched.
    let started = h.rec.pids_of(id);
    assert_eq!(started.len(), 2, "one canary and one baseline instance");
    assert!(
        wait_dead(&started, Duration::from_secs(10))
            .await
            .is_empty()
    );
    assert!(stable_pids.iter().all(|p| alive(*p)));
    let running = h.ctl.instances();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].version, v1);
    let (_, by, body) = get(&h.router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v1""#));

    // The same version can be deployed again later (here blue/green, no judge).
    let bg = environment("production", 1, "      blue-green", "");
    assert_eq!(h.deploy_and_wait(&bg, v2).await, DeployOutcome::Succeeded);
    let (_, _, body) = get(&h.router.url, None).await;
    assert!(body.contains(r#""version":"v2""#));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_walks_its_steps_waits_at_a_pause_and_is_promoted() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let steps = "      canary:\n        steps:\n          - { weight: 25, for: 2s }\n          - { weight: 50, for: 1s, pause: true }";
    // Both versions take 60ms per request, so that a process stalled by a
    // busy test machine (tens of ms) mostly stays inside one latency bucket
    // (50-100ms) and the latency comparison sees equal versions; alpha is
    // strict for the same reason. Stalls hit all requests in flight on one
    // process at once, which a per-request test reads as evidence.
    let judge = "    judge:\n      compare_to_baseline: true\n      alpha: 0.001";
    let env = environment("production", 2, steps, judge);
    let v1 = h.version_with("v1", "LATENCY_MS=60");
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        1_000_000,
        6,
        Duration::from_secs(50),
        stop.clone(),
        &[],
    ));
    let v2 = h.version_with("v2", "LATENCY_MS=60");
    let id = h.deploy(&env, v2).await;
    // The pause step holds until resumed.
    let paused = tokio::time::timeout(Duration::from_secs(30), async {
        while h.rec.count("deploy_paused") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(paused.is_ok(), "never paused: {:?}", h.rec.all());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.ctl.deploy_in_flight("shop", "production"), Some(id));
    h.ctl
        .command("shop", "production", Command::Resume)
        .await
        .unwrap();
    let outcome = h.wait(&env, id).await;
    stop.store(true, Ordering::Relaxed);
    let l = load.await.unwrap();
    assert_eq!(
        outcome,
        DeployOutcome::Succeeded,
        "{:?}",
        h.rec.finished(id)
    );
    assert_eq!(l.failed, 0, "{:?}", l.first_failures);

    let weights: Vec<u8> = h
        .rec
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::TrafficShifted {
                weights, deploy_id, ..
            } if deploy_id == id => Some(weights.get(&v2.to_string()).copied().unwrap_or(0)),
            _ => None,
        })
        .collect();
    assert_eq!(weights, vec![0, 25, 50, 100]);
    assert_eq!(h.rec.count("deploy_resumed"), 1);
    assert!(
        h.rec
            .all()
            .iter()
            .all(|e| !matches!(e, Event::JudgeVerdict { outcome, .. } if outcome == "fail")),
        "a good canary was failed"
    );
    // Of 2 instances, 25% and 50% need 1 canary and 1 baseline; promotion
    // brings the canary to 2.
    let started = h.rec.pids_of(id);
    assert_eq!(started.len(), 3);
    let (_, by, body) = get(&h.router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v2""#));
    let running = h.ctl.instances();
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|i| i.version == v2));
    // The old stable and the baseline are gone.
    let gone: Vec<i32> = h
        .rec
        .pids_of(1)
        .into_iter()
        .chain(started)
        .filter(|p| !running.iter().any(|i| i.pid == Some(*p)))
        .collect();
    assert_eq!(gone.len(), 3);
    assert!(wait_dead(&gone, Duration::from_secs(10)).await.is_empty());
    h.finish().await;
}
