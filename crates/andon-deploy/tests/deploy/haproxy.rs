//! Releases whose traffic goes through a real HAProxy (runtime API, no
//! reload), with traffic flowing the whole time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use andon_core::{DeployOutcome, Event};

use crate::external::{self, Haproxy};
use crate::support::*;

fn traffic(h: &Haproxy) -> String {
    format!(
        "    traffic: {{ haproxy: {{ socket: {}, backend: app }} }}",
        h.socket.display()
    )
}

/// The new version's share at each route update of a deploy.
fn shifts(h: &Harness, id: u64, version: &andon_artifacts::Digest) -> Vec<u8> {
    h.rec
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::TrafficShifted {
                weights, deploy_id, ..
            } if deploy_id == id => Some(weights.get(&version.to_string()).copied().unwrap_or(0)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_through_haproxy_goes_10_50_100_with_no_failed_request() {
    if !external::installed("haproxy") {
        return;
    }
    let _serial = serial().await;
    let h = Harness::new().await;
    let hx = Haproxy::start(&h.tmp.path().join("haproxy"), 8);
    let steps = "      canary:\n        steps:\n          - { weight: 10, for: 3s }\n          - { weight: 50, for: 3s }\n          - { weight: 100 }";
    let judge =
        "    judge:\n      compare_to_baseline: true\n      alpha: 0.001\n      min_requests: 30";
    let env = environment_with("production", 2, steps, judge, &traffic(&hx));
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let (_, _, body) = get(&hx.url, None).await;
    assert!(body.contains(r#""version":"v1""#), "{body}");

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(external::load(
        hx.url.clone(),
        200_000,
        4,
        Duration::from_secs(60),
        stop.clone(),
        &[],
    ));
    let v2 = h.version("v2", 0.0);
    let id = h.deploy(&env, v2).await;
    let outcome = h.wait(&env, id).await;
    // Traffic keeps flowing after the switch, onto v2 alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let l = load.await.unwrap();
    assert_eq!(
        outcome,
        DeployOutcome::Succeeded,
        "{:?}",
        h.rec.finished(id)
    );
    assert_eq!(l.failed, 0, "{:?}", l.first_failures);
    assert_eq!(l.own_errors, 0);
    assert!(l.by_version.get("v2").copied().unwrap_or(0) > 30, "{l:?}");
    assert!(l.sent > 200, "{l:?}");
    eprintln!("haproxy canary: {l:?}");

    // The weights went 0 (smoke), 10, 50, then 100 in one update.
    assert_eq!(shifts(&h, id, &v2), [0, 10, 50, 100]);
    // The judge read HAProxy's per-server counters and saw enough to pass.
    let verdicts: Vec<(String, String)> = h
        .rec
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::JudgeVerdict {
                deploy_id,
                outcome,
                sentence,
                ..
            } if deploy_id == id => Some((outcome, sentence)),
            _ => None,
        })
        .collect();
    assert!(verdicts.iter().any(|(o, _)| o == "pass"), "{verdicts:?}");
    // Two slots serve v2 at full weight; the old ones are back in maintenance.
    let slots = hx.slots();
    let serving: Vec<_> = slots.iter().filter(|s| !s.1.starts_with("MAINT")).collect();
    assert_eq!(serving.len(), 2, "{slots:?}");
    assert!(serving.iter().all(|s| s.2 == 128), "{slots:?}");
    for _ in 0..10 {
        let (status, _, body) = get(&hx.url, None).await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""version":"v2""#), "{body}");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_through_haproxy_is_rolled_back_with_only_its_own_errors() {
    if !external::installed("haproxy") {
        return;
    }
    let _serial = serial().await;
    let h = Harness::new().await;
    let hx = Haproxy::start(&h.tmp.path().join("haproxy"), 6);
    let steps = "      canary:\n        steps:\n          - { weight: 50, for: 40s }";
    let judge = "    judge:\n      compare_to_baseline: false\n      max_error_rate: 5%\n      min_requests: 50";
    let env = environment_with("production", 1, steps, judge, &traffic(&hx));
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(external::load(
        hx.url.clone(),
        200_000,
        4,
        Duration::from_secs(50),
        stop.clone(),
        &["v2"],
    ));
    let v2 = h.version("v2", 0.3);
    let id = h.deploy(&env, v2).await;
    let outcome = h.wait(&env, id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let l = load.await.unwrap();
    eprintln!("haproxy rollback: {l:?}");
    let (_, reason) = h.rec.finished(id).unwrap();
    assert_eq!(outcome, DeployOutcome::RolledBack, "{reason:?}");
    assert!(reason.unwrap_or_default().contains("above the 5% limit"));
    // The canary's own 500s, and nothing else.
    assert!(l.own_errors > 0, "{l:?}");
    assert_eq!(l.failed, 0, "{:?}", l.first_failures);
    let started = h.rec.pids_of(id);
    assert!(
        wait_dead(&started, Duration::from_secs(10))
            .await
            .is_empty()
    );
    let slots = hx.slots();
    let serving: Vec<_> = slots.iter().filter(|s| !s.1.starts_with("MAINT")).collect();
    assert_eq!(serving.len(), 1, "only v1's slot: {slots:?}");
    assert_eq!(serving[0].2, 256);
    for _ in 0..10 {
        let (status, _, body) = get(&hx.url, None).await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""version":"v1""#), "{body}");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_haproxy_slots_fail_the_release_and_keep_the_stable_version() {
    if !external::installed("haproxy") {
        return;
    }
    let _serial = serial().await;
    let h = Harness::new().await;
    let hx = Haproxy::start(&h.tmp.path().join("haproxy"), 2);
    let env = environment_with("production", 2, "      blue-green", "", &traffic(&hx));
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let v2 = h.version("v2", 0.0);
    let id = h.deploy(&env, v2).await;
    assert_eq!(h.wait(&env, id).await, DeployOutcome::Failed);
    let (_, reason) = h.rec.finished(id).unwrap();
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("raise the count of its `server-template`"),
        "{reason}"
    );
    let (status, _, body) = get(&hx.url, None).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""version":"v1""#), "{body}");
    h.finish().await;
}
