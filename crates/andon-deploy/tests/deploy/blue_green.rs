use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use andon_core::DeployOutcome;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_blue_green_switches_under_load_fail_no_request() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let env = environment("production", 2, "      blue-green", "");
    let v0 = h.version("v0", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v0).await, DeployOutcome::Succeeded);

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        20_000,
        8,
        Duration::from_secs(50),
        stop,
        &[],
    ));
    let mut last = v0;
    let mut old_deploys = vec![1];
    for i in 1..=10 {
        let v = h.version(&format!("v{i}"), 0.0);
        let id = h.deploy(&env, v).await;
        assert_eq!(
            h.wait(&env, id).await,
            DeployOutcome::Succeeded,
            "switch {i}"
        );
        old_deploys.push(id);
        last = v;
    }
    assert!(
        !load.is_finished(),
        "the load ended before the last switch: raise its count"
    );
    let l = load.await.unwrap();
    assert_eq!(l.sent, 20_000, "{l:?}");
    assert_eq!(l.failed, 0, "failed requests: {:?}", l.first_failures);
    assert_eq!(
        l.served_by.keys().collect::<Vec<_>>(),
        vec!["stable"],
        "{l:?}"
    );

    let (status, by, body) = get(&h.router.url, None).await;
    assert_eq!((status, by.as_str()), (200, "stable"));
    assert!(body.contains(r#""version":"v10""#), "{body}");
    let running = h.ctl.instances();
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|i| i.version == last && i.ready));
    // Every blue was stopped once it was drained.
    old_deploys.pop();
    let old: Vec<i32> = old_deploys.iter().flat_map(|d| h.rec.pids_of(*d)).collect();
    assert_eq!(old.len(), 20);
    assert!(wait_dead(&old, Duration::from_secs(10)).await.is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_test_through_the_router_keeps_blue() {
    let _serial = serial().await;
    let h = Harness::new().await;
    // The smoke test asks the router for green with the override header.
    let judge = r#"    judge:
      smoke: |
        curl -fsS -H "$ANDON_VERSION_HEADER: $ANDON_VERSION" "$ANDON_URL/x" | grep -q '"ok":true'"#;
    let env = environment("production", 1, "      blue-green", judge);
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let v2 = h.version("v2", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v2).await, DeployOutcome::Succeeded);
    let broken = h.version("v3", 1.0);
    let id = h.deploy(&env, broken).await;
    assert_eq!(h.wait(&env, id).await, DeployOutcome::RolledBack);
    let (_, reason) = h.rec.finished(id).unwrap();
    assert!(reason.unwrap().contains("smoke test failed"));
    assert_eq!(h.rec.count("incident_opened"), 1);
    let (status, _, body) = get(&h.router.url, None).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""version":"v2""#), "{body}");
    assert!(
        wait_dead(&h.rec.pids_of(id), Duration::from_secs(10))
            .await
            .is_empty()
    );
    h.finish().await;
}

/// A service that dies at once on SIGTERM (no graceful shutdown of its
/// own), answering slowly: only draining the router's in-flight requests
/// before stopping blue keeps every request alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_is_stopped_only_after_its_requests_in_flight_finish() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let mut env = environment("production", 2, "      blue-green", "");
    if let andon_config::Target::Process(p) = &mut env.target {
        p.command = r#"cd app && . ./release.env && { "$SAMPLE_BIN" & pid=$!; trap 'kill -9 $pid; exit 0' TERM; wait $pid; }"#.into();
    }
    let slow = |tag: &str| {
        let dir = h.tmp.path().join("src").join(tag).join("app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("release.env"),
            format!("export VERSION={tag} LATENCY_MS=150\n"),
        )
        .unwrap();
        h.store.put_path(&dir).unwrap()
    };
    assert_eq!(
        h.deploy_and_wait(&env, slow("v0")).await,
        DeployOutcome::Succeeded
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        1_000_000,
        16,
        Duration::from_secs(40),
        stop.clone(),
        &[],
    ));
    for i in 1..=3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = h.deploy(&env, slow(&format!("v{i}"))).await;
        assert_eq!(h.wait(&env, id).await, DeployOutcome::Succeeded);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let l = load.await.unwrap();
    assert!(l.sent > 100, "{l:?}");
    assert_eq!(l.failed, 0, "failed requests: {:?}", l.first_failures);
    h.finish().await;
}
