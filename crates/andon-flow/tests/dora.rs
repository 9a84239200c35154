//! DORA keys on small histories whose answers are worked out by hand in the
//! comments.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use andon_core::{DeployOutcome::*, Event};
use andon_flow::{Band, Dora, production_environment};
use common::*;

const DAY: i64 = 86_400_000;

/// The history of the module docs' examples:
/// - c1, c2, c3 committed at 0, 100 s, 200 s;
/// - #1 deploys c2 and succeeds at 400 s: carries c1 (400 s) and c2 (300 s);
/// - #2 deploys c3, judge fails at 550 s, rolled back at 560 s (restore 10 s),
///   then an incident for #2 (already restored: no second episode);
/// - #3 deploys c3 again and succeeds at 1000 s: c3 lead 800 s;
/// - #4 redeploys c1 (nothing new) at 1100 s, an alert at 1200 s, a rollback
///   at 1300 s (restore 100 s, and #4 counts as failed).
fn history() -> Dora {
    let mut log = Log::new();
    log.at(10, commit("c1", 0, ""));
    log.at(100_010, commit("c2", 100_000, ""));
    log.at(200_010, commit("c3", 200_000, ""));
    log.at(300_000, deploy("production", 1, Some("c2")));
    log.at(400_000, finished("production", 1, Succeeded));
    log.at(500_000, deploy("production", 2, Some("c3")));
    log.at(550_000, verdict("production", 2, "fail"));
    log.at(560_000, finished("production", 2, RolledBack));
    log.at(570_000, incident(1, Some(2)));
    log.at(900_000, resolved(1));
    log.at(950_000, deploy("production", 3, Some("c3")));
    log.at(1_000_000, finished("production", 3, Succeeded));
    log.at(1_050_000, deploy("production", 4, Some("c1")));
    log.at(1_100_000, finished("production", 4, Succeeded));
    log.at(1_200_000, alert("production"));
    log.at(1_250_000, rollback("production", 5));
    log.at(1_300_000, finished("production", 5, Succeeded));
    // Staging never counts for production.
    log.at(1_400_000, deploy("staging", 6, Some("c3")));
    log.at(1_500_000, finished("staging", 6, RolledBack));
    let mut dora = Dora::new();
    for e in &log.events {
        dora.apply(e);
    }
    dora
}

#[test]
fn the_keys_over_two_days() {
    let m = history().metrics("shop", "production", 0, 2 * DAY);
    // #1, #3, #4 succeeded: 3 in 2 days.
    assert_eq!(m.deployment_frequency_per_day, Some(1.5));
    // Leads 400, 300, 800 s: median 400, p90 (nearest rank 3 of 3) 800.
    assert_eq!(m.lead_time_median_s, Some(400.0));
    assert_eq!(m.lead_time_p90_s, Some(800.0));
    // #2 rolled back, #4 followed by a rollback: 2 of 4.
    assert_eq!(m.change_failure_rate, Some(0.5));
    // 10 s and 100 s.
    assert_eq!(m.time_to_restore_median_s, Some(55.0));
    assert_eq!(m.time_to_green_median_s, None);
    assert_eq!(m.bands["deployment_frequency"], Band::Elite);
    assert_eq!(m.bands["lead_time"], Band::Elite);
    assert_eq!(m.bands["change_failure_rate"], Band::Low);
    assert_eq!(m.bands["time_to_restore"], Band::Elite);
    let gear = m.gear.unwrap();
    // A deploy every 16 h, one commit per deploy: 5th gear, failing half the time.
    assert_eq!((gear.number, gear.name.as_str()), (5, "every commit"));
    assert_eq!(gear.limiting_factor, "deployment failure rate");
    assert!(
        gear.explanation
            .contains("50% of production deployments failed (2 of 4"),
        "{}",
        gear.explanation
    );
}

#[test]
fn a_window_sees_only_its_part() {
    // [0, 1050 s): #1 ok, #2 failed, #3 ok; one restore (10 s).
    let m = history().metrics("shop", "production", 0, 1_050_000);
    assert_eq!(m.change_failure_rate, Some(1.0 / 3.0));
    assert_eq!(m.time_to_restore_median_s, Some(10.0));
    assert_eq!(m.lead_time_median_s, Some(400.0));
    let days = 1_050_000.0 / DAY as f64;
    assert_eq!(m.deployment_frequency_per_day, Some(2.0 / days));

    // After everything: deployments exist before it, so frequency is 0, not null.
    let later = history().metrics("shop", "production", 2 * DAY, 3 * DAY);
    assert_eq!(later.deployment_frequency_per_day, Some(0.0));
    assert_eq!(later.change_failure_rate, None);
    assert_eq!(later.bands["deployment_frequency"], Band::Low);
    assert_eq!(later.gear.unwrap().number, 1);
}

#[test]
fn no_data_is_null_with_exactly_the_contract_keys() {
    let m = Dora::new().metrics("shop", "production", 0, DAY);
    let json = serde_json::to_value(&m).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "bands",
            "change_failure_rate",
            "deployment_frequency_per_day",
            "gear",
            "lead_time_median_s",
            "lead_time_p90_s",
            "time_to_green_median_s",
            "time_to_restore_median_s"
        ]
    );
    for (k, v) in json.as_object().unwrap() {
        if k == "bands" {
            assert_eq!(v, &serde_json::json!({}));
        } else {
            assert!(v.is_null(), "{k} should be null: {v}");
        }
    }
    let full = serde_json::to_value(history().metrics("shop", "production", 0, 2 * DAY)).unwrap();
    assert_eq!(full["bands"]["change_failure_rate"], "low");
    assert_eq!(full["gear"]["number"], 5);
    assert!(full["gear"]["limiting_factor"].is_string());
}

#[test]
fn time_to_green_and_red_trunk_as_limiting_factor() {
    let mut log = Log::new();
    log.at(0, commit("c1", 0, ""));
    log.at(1, queued(1, "c1"));
    log.at(600_000, run_finished(1, andon_core::RunStatus::Failed));
    log.at(
        600_000,
        Event::LineStopped {
            project: "shop".into(),
            run_id: 1,
            commit: "c1".into(),
        },
    );
    log.at(700_000, commit("c2", 700_000, ""));
    log.at(700_001, queued(2, "c2"));
    log.at(1_200_000, run_finished(2, andon_core::RunStatus::Passed));
    // red_for_ms is the server's claim; the fold measures from its own record.
    log.at(
        1_200_000,
        Event::LineReleased {
            project: "shop".into(),
            run_id: 2,
            red_for_ms: 1,
        },
    );
    log.at(1_300_000, deploy("production", 1, Some("c2")));
    log.at(1_400_000, finished("production", 1, Succeeded));
    let mut dora = Dora::new();
    for e in &log.events {
        dora.apply(e);
    }
    let m = dora.metrics("shop", "production", 0, 4_000_000);
    assert_eq!(m.time_to_green_median_s, Some(600.0));
    // Red 600 of 4000 s (15%), half the trunk runs failed.
    let gear = m.gear.unwrap();
    assert_eq!(gear.limiting_factor, "unready code");
    assert!(
        gear.explanation
            .contains("trunk was red 15% of the time and 50% of trunk runs failed"),
        "{}",
        gear.explanation
    );
}

#[test]
fn refusals_by_windows_point_at_environments() {
    let mut log = Log::new();
    for i in 0..4 {
        let at = i * 1_000_000;
        log.at(at, commit(&format!("c{i}"), at, ""));
        log.at(
            at + 1,
            Event::DeployRefused {
                project: "shop".into(),
                environment: "production".into(),
                version: "v".into(),
                reason: "window closed".into(),
            },
        );
        log.at(
            at + 2,
            deploy("production", i as u64 + 1, Some(&format!("c{i}"))),
        );
        log.at(at + 3, finished("production", i as u64 + 1, Succeeded));
    }
    let mut dora = Dora::new();
    for e in &log.events {
        dora.apply(e);
    }
    let gear = dora.metrics("shop", "production", 0, DAY).gear.unwrap();
    assert_eq!(gear.limiting_factor, "environments");
    assert!(
        gear.explanation
            .contains("4 of 8 production deploys were refused"),
        "{}",
        gear.explanation
    );
}

#[test]
fn an_incident_on_a_frozen_release_lasts_until_resolved() {
    let mut log = Log::new();
    log.at(0, commit("c1", 0, ""));
    log.at(10, deploy("production", 1, Some("c1")));
    log.at(1_000, verdict("production", 1, "fail"));
    log.at(2_000, finished("production", 1, Frozen));
    log.at(3_000, incident(7, Some(1)));
    log.at(61_000, resolved(7));
    let mut dora = Dora::new();
    for e in &log.events {
        dora.apply(e);
    }
    let m = dora.metrics("shop", "production", 0, DAY);
    // Frozen does not restore: from the verdict (1 s) to the resolution (61 s).
    assert_eq!(m.time_to_restore_median_s, Some(60.0));
    assert_eq!(m.change_failure_rate, Some(1.0));
    assert_eq!(m.deployment_frequency_per_day, Some(0.0));
}

#[test]
fn production_is_named_or_last_in_promotion_order() {
    let process = "    target: { process: { command: ./app } }\n";
    let named = config(&format!("  production:\n{process}  staging:\n{process}"));
    assert_eq!(
        production_environment(&named.environments),
        Some("production")
    );
    let chain = config(&format!(
        "  live:\n    after: qa\n{process}  dev:\n{process}  qa:\n    after: dev\n{process}"
    ));
    assert_eq!(production_environment(&chain.environments), Some("live"));
    assert_eq!(production_environment(&[]), None);
}
