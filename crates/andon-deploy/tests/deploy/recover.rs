use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use andon_core::{DeployOutcome, Deploys, Envelope, Event};
use andon_deploy::{DeployObserver, DeployRequest, EnvSpec};

use crate::support::*;

/// A server crash mid-canary: the controller's runtime vanishes without any
/// cleanup (its instances keep running, the router keeps its table); a new
/// controller is built from the events and must adopt, clean up and roll
/// back, while the router serves throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_adopts_stable_kills_the_canary_and_rolls_back() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().unwrap();
    let router = Router::start(&tmp.path().join("router")).await;
    let store = andon_artifacts::ArtifactStore::open(&tmp.path().join("data/artifacts")).unwrap();
    let rec = Arc::new(Recorder::default());
    let steps = "      canary:\n        steps:\n          - { weight: 40, for: 120s }";
    let judge = "    judge:\n      compare_to_baseline: true";
    let env = environment("production", 2, steps, judge);
    let v1 = artifact(&store, tmp.path(), "v1", 0.0);
    let v2 = artifact(&store, tmp.path(), "v2", 0.0);

    // The first controller lives in its own runtime, like a server process.
    let crashed = {
        let (root, router_admin, router_url) = (
            tmp.path().to_path_buf(),
            router.admin.clone(),
            router.url.clone(),
        );
        let (store, rec, env) = (store.clone(), rec.clone(), env.clone());
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let ctl = controller(&root, &router_admin, &router_url, &store, rec.clone());
                for (id, v) in [(1, v1), (2, v2)] {
                    rec.event(Event::DeployRequested {
                        project: "shop".into(),
                        environment: "production".into(),
                        deploy_id: id,
                        version: v.to_string(),
                        strategy: "canary".into(),
                        run_id: None,
                        commit: None,
                        reason: None,
                    });
                    ctl.deploy(DeployRequest {
                        project: "shop".into(),
                        deploy_id: id,
                        environment: env.clone(),
                        version: v,
                        secrets: BTreeMap::new(),
                        stable: None,
                        contract_migration: false,
                    })
                    .await
                    .unwrap();
                    if id == 1 {
                        ctl.wait_idle("shop", "production").await;
                    }
                }
                // Wait until the canary takes traffic, then "crash".
                tokio::time::timeout(Duration::from_secs(30), async {
                    while !rec.all().iter().any(|e| matches!(e, Event::TrafficShifted { deploy_id: 2, weights, .. } if weights.get(&v2.to_string()) == Some(&40))) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
                .await
                .unwrap();
                drop(ctl);
            });
            rt.shutdown_background();
        })
    };
    crashed.await.unwrap();

    // The router serves on its own while no controller runs, and during recovery.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        router.url.clone(),
        1_000_000,
        4,
        Duration::from_secs(40),
        stop.clone(),
        &[],
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stable_pids = rec.pids_of(1);
    let canary_pids = rec.pids_of(2);
    assert_eq!(stable_pids.len(), 2);
    assert_eq!(canary_pids.len(), 2, "one canary, one baseline");
    assert!(
        stable_pids.iter().chain(&canary_pids).all(|p| alive(*p)),
        "instances survive the crash"
    );

    let mut deploys = Deploys::new();
    for (seq, e) in rec.all().into_iter().enumerate() {
        deploys.apply(&Envelope {
            seq: seq as u64 + 1,
            at_ms: 0,
            actor: "t".into(),
            event: e,
        });
    }
    assert_eq!(
        deploys.env("shop", "production").unwrap().current_deploy,
        Some(2)
    );

    let rec2 = Arc::new(Recorder::default());
    let ctl2 = controller(tmp.path(), &router.admin, &router.url, &store, rec2.clone());
    let report = ctl2
        .recover(
            &deploys,
            &[EnvSpec {
                project: "shop".into(),
                environment: env.clone(),
                secrets: BTreeMap::new(),
            }],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let l = load.await.unwrap();

    assert_eq!(report.adopted.len(), 2, "{report:?}");
    assert_eq!(report.killed.len(), 2, "{report:?}");
    assert!(report.started.is_empty(), "{report:?}");
    assert_eq!(report.rolled_back, vec![2]);
    assert_eq!(
        l.failed, 0,
        "the router kept serving: {:?}",
        l.first_failures
    );
    assert!(l.sent > 100, "{l:?}");
    assert!(
        wait_dead(&canary_pids, Duration::from_secs(10))
            .await
            .is_empty()
    );
    assert!(
        stable_pids.iter().all(|p| alive(*p)),
        "adopted, not restarted"
    );
    assert!(rec2.all().iter().any(|e| matches!(
        e,
        Event::DeployFinished {
            deploy_id: 2,
            outcome: DeployOutcome::RolledBack,
            ..
        }
    )));
    let (_, by, body) = get(&router.url, None).await;
    assert_eq!(by, "stable");
    assert!(body.contains(r#""version":"v1""#));
    let running = ctl2.instances();
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|i| i.version == v1 && i.ready));

    // The recovered controller deploys as usual, stopping the adopted ones.
    let bg = environment("production", 2, "      blue-green", "");
    ctl2.deploy(DeployRequest {
        project: "shop".into(),
        deploy_id: 3,
        environment: bg,
        version: v2,
        secrets: BTreeMap::new(),
        stable: Some(v1),
        contract_migration: false,
    })
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        ctl2.wait_idle("shop", "production"),
    )
    .await
    .unwrap();
    assert_eq!(rec2.finished(3).unwrap().0, DeployOutcome::Succeeded);
    assert!(
        wait_dead(&stable_pids, Duration::from_secs(10))
            .await
            .is_empty()
    );
    ctl2.shutdown(true).await;
    let all: Vec<i32> = rec.pids().into_iter().chain(rec2.pids()).collect();
    assert!(wait_dead(&all, Duration::from_secs(10)).await.is_empty());
    router.stop().await;
}
