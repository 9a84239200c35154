//! The judge's PromQL rules against a real Prometheus scraping the
//! router's `/metrics` (with the router's admin token).

use std::time::Duration;

use andon_core::{DeployOutcome, Event};
use andon_deploy::Command;

use crate::external::{self, Prometheus};
use crate::support::*;

const TOKEN: &str = "prom-scrape-token";

/// The canary's error ratio over the last 5s, 0 while it has no traffic.
fn judge(url: &str) -> String {
    format!(
        r#"    judge:
      compare_to_baseline: false
      prometheus_url: {url}
      prometheus:
        - name: canary-errors
          query: '(sum(rate(andon_router_errors_total{{service="$project/$environment",name="canary",version="$version"}}[5s])) / clamp_min(sum(rate(andon_router_requests_total{{service="$project/$environment",name="canary",version="$version"}}[5s])), 0.001)) or vector(0)'
          max: 0.1
          for: 2s"#
    )
}

fn verdicts(h: &Harness, id: u64) -> Vec<(String, String)> {
    h.rec
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
        .collect()
}

async fn with_load<F: std::future::Future<Output = DeployOutcome>>(
    h: &Harness,
    run: F,
) -> DeployOutcome {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load(
        h.router.url.clone(),
        200_000,
        3,
        Duration::from_secs(60),
        stop.clone(),
        &["canary"],
    ));
    let outcome = run.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let l = load.await.unwrap();
    assert_eq!(l.failed, 0, "{:?}", l.first_failures);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promql_rule_fails_a_bad_release_and_passes_a_good_one() {
    if !external::installed("prometheus") {
        return;
    }
    let _serial = serial().await;
    let h = Harness::new_with(Some(TOKEN)).await;
    let target = h.router.admin.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&h.tmp.path().join("prometheus"), &target, TOKEN);
    prom.wait_scraped().await;
    let steps = "      canary:\n        steps:\n          - { weight: 50, for: 8s }";
    let env = environment("production", 1, steps, &judge(&prom.url));
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);

    // Bad: half of the canary's answers are errors; the built-in judge has
    // no rule here, so only the PromQL rule can fail it.
    let bad = h.version("v2", 0.5);
    let id = h.deploy(&env, bad).await;
    let outcome = with_load(&h, h.wait(&env, id)).await;
    let (_, reason) = h.rec.finished(id).unwrap();
    let reason = reason.unwrap_or_default();
    assert_eq!(outcome, DeployOutcome::RolledBack, "{reason}");
    assert!(
        reason.starts_with("prometheus rule `canary-errors` returned ")
            && reason.contains("above its max 0.1"),
        "{reason}"
    );
    assert!(
        verdicts(&h, id)
            .iter()
            .any(|(o, s)| o == "fail" && s == &reason),
        "{:?}",
        verdicts(&h, id)
    );

    // Good: no errors; the rule reads 0 and the release completes.
    let good = h.version("v3", 0.0);
    let id = h.deploy(&env, good).await;
    let outcome = with_load(&h, h.wait(&env, id)).await;
    assert_eq!(
        outcome,
        DeployOutcome::Succeeded,
        "{:?}",
        h.rec.finished(id)
    );
    assert!(
        verdicts(&h, id).iter().all(|(o, _)| o != "fail"),
        "{:?}",
        verdicts(&h, id)
    );
    let (_, _, body) = get(&h.router.url, None).await;
    assert!(body.contains(r#""version":"v3""#));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_inconclusive_and_pauses_the_release() {
    let _serial = serial().await;
    let h = Harness::new().await;
    // Nothing listens there.
    let url = format!("http://127.0.0.1:{}", external::free_port());
    let steps = "      canary:\n        steps:\n          - { weight: 50, for: 1s }";
    let env = environment("production", 1, steps, &judge(&url));
    let v1 = h.version("v1", 0.0);
    assert_eq!(h.deploy_and_wait(&env, v1).await, DeployOutcome::Succeeded);
    let v2 = h.version("v2", 0.0);
    let id = h.deploy(&env, v2).await;
    let paused = tokio::time::timeout(Duration::from_secs(30), async {
        while h.rec.count("deploy_paused") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(paused.is_ok(), "never paused: {:?}", h.rec.all());
    let v = verdicts(&h, id);
    assert!(
        v.iter().any(|(o, s)| o == "inconclusive"
            && s.starts_with(
                "prometheus rule `canary-errors` is inconclusive: cannot ask Prometheus at"
            )),
        "{v:?}"
    );
    // Still held: a person decides.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.ctl.deploy_in_flight("shop", "production"), Some(id));
    h.ctl
        .command("shop", "production", Command::Abort)
        .await
        .unwrap();
    assert_eq!(h.wait(&env, id).await, DeployOutcome::Aborted);
    h.finish().await;
}
