use std::time::Duration;

use andon_core::{DeployOutcome, Event};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_is_restarted_with_backoff() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let env = environment("production", 1, "      recreate", "");
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    for round in 1..=2u32 {
        let before = h.ctl.instances()[0].clone();
        let pid = before.pid.unwrap();
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let i = h.ctl.instances()[0].clone();
                if i.ready && i.pid.is_some() && i.pid != Some(pid) {
                    return i;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the instance did not come back");
        assert_eq!(back.id, before.id, "restarted in place, same id and port");
        assert_eq!(back.addr, before.addr);
        assert_eq!(back.restarts, round);
        let (status, _, _) = get(&h.router.url, None).await;
        assert_eq!(status, 200);
    }
    let crashes: Vec<String> = h
        .rec
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::InstanceStopped { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(crashes.len(), 2, "{crashes:?}");
    // The backoff doubles: 200ms, then 400ms.
    assert!(crashes[0].contains("restarting in 200ms"), "{crashes:?}");
    assert!(crashes[1].contains("restarting in 400ms"), "{crashes:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_instance_is_reported_as_drift_once() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let env = environment("production", 2, "      rolling", "");
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    assert!(h.ctl.check_drift().await.is_empty());
    let victim = h.ctl.instances()[0].clone();
    assert!(
        victim
            .dir
            .starts_with(h.data().join("instances/shop/production"))
    );
    std::fs::write(
        victim.dir.join("app/release.env"),
        "export VERSION=hacked\n",
    )
    .unwrap();
    let found = h.ctl.check_drift().await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance_id, victim.id);
    assert_eq!(found[0].detail, "modified: app/release.env");
    assert_eq!(h.ctl.check_drift().await.len(), 1);
    assert_eq!(h.rec.count("instance_drift"), 1, "reported once");

    // Rebuild, never repair: a deploy (rolling here) replaces every instance.
    let v2 = h.version("v2", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v2).await, DeployOutcome::Succeeded);
    assert!(h.ctl.check_drift().await.is_empty());
    assert!(!victim.dir.exists());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_never_get_ready_fail_the_release_and_leave_nothing() {
    let _serial = serial().await;
    let h = Harness::new().await;
    let mut env = environment(
        "production",
        2,
        "      canary:\n        steps:\n          - { weight: 50, for: 1s }",
        "",
    );
    if let andon_config::Target::Process(p) = &mut env.target {
        p.ready_timeout = Duration::from_secs(2);
    }
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    // v2's health check answers 503.
    let dir = h.tmp.path().join("src/sick/app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("release.env"), "export VERSION=sick UNHEALTHY=1\n").unwrap();
    let sick = h.store.put_path(&dir).unwrap();
    let id = h.deploy(&env, sick).await;
    assert_eq!(h.wait(&env, id).await, DeployOutcome::Failed);
    let (_, reason) = h.rec.finished(id).unwrap();
    assert!(reason.unwrap().contains("not ready"));
    assert!(
        wait_dead(&h.rec.pids_of(id), Duration::from_secs(10))
            .await
            .is_empty()
    );
    let (status, by, body) = get(&h.router.url, None).await;
    assert_eq!((status, by.as_str()), (200, "stable"));
    assert!(body.contains(r#""version":"v1""#));
    assert_eq!(h.ctl.instances().len(), 2);
    h.finish().await;
}
