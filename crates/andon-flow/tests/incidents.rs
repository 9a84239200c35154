//! Incident timelines filled from the log, and blameless postmortems.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use andon_core::{DeployOutcome::*, Event};
use andon_flow::Incidents;
use common::*;

fn fold(log: &Log) -> Incidents {
    let mut i = Incidents::new();
    for e in &log.events {
        i.apply(e);
    }
    i
}

fn kinds(i: &andon_flow::IncidentView) -> Vec<(i64, &str)> {
    i.timeline
        .iter()
        .map(|t| (t.at_ms, t.kind.as_str()))
        .collect()
}

#[test]
fn a_judged_rollback_tells_its_story() {
    let mut log = Log::new();
    log.at(100, deploy("production", 5, Some("abcdef0123")));
    log.at(200, verdict("production", 5, "pass"));
    log.at(300, verdict("production", 5, "fail"));
    log.at(400, finished("production", 5, RolledBack));
    log.at(500, incident(1, Some(5)));
    log.at(600, alert("production"));
    log.at(900, resolved(1));
    let pm = log.at(
        2000,
        Event::PostmortemWritten {
            incident_id: 1,
            went_right: "the judge caught it at 5%".into(),
            went_wrong: "no test for the empty cart".into(),
            action_items: vec!["add an acceptance test".into()],
        },
    );
    assert_eq!(pm.actor, "test");
    let incidents = fold(&log);
    let i = incidents.get(1).unwrap();
    assert_eq!(
        (i.opened_at_ms, i.resolved_at_ms, i.deploy_id),
        (500, Some(900), Some(5))
    );
    assert_eq!(
        kinds(i),
        [
            (100, "deploy"),
            (200, "verdict"),
            (300, "first_bad_signal"),
            (400, "rollback"),
            (400, "restored"),
            (500, "opened"),
            (600, "alert"),
            (900, "resolved"),
            (2000, "postmortem"),
        ]
    );
    assert_eq!(
        i.timeline[0].text,
        "deploy #5 of 000000000000 (commit abcdef0) to production requested"
    );
    assert_eq!(i.timeline[2].text, "judge: fail — judged fail");
    let json = serde_json::to_value(i).unwrap();
    assert_eq!(
        json["postmortem"]["action_items"][0],
        "add an acceptance test"
    );
    let text = json.to_string();
    for forbidden in ["who", "author", "actor", "\"test\""] {
        assert!(
            !text.contains(forbidden),
            "blameless: `{forbidden}` in {text}"
        );
    }
    let pm_keys: Vec<&String> = json["postmortem"].as_object().unwrap().keys().collect();
    assert_eq!(pm_keys, ["action_items", "went_right", "went_wrong"]);
}

#[test]
fn an_alert_incident_picks_up_recent_alerts_and_the_restoring_rollback() {
    let mut log = Log::new();
    log.at(0, deploy("production", 1, Some("c1")));
    log.at(1_000, finished("production", 1, Succeeded));
    log.at(10_000, alert("production"));
    log.at(20_000, alert("staging"));
    log.at(30_000, incident(2, None));
    log.at(40_000, rollback("production", 2));
    log.at(50_000, finished("production", 2, Succeeded));
    log.at(60_000, alert("production"));
    log.at(70_000, resolved(2));
    log.at(80_000, alert("production"));
    let incidents = fold(&log);
    let i = incidents.get(2).unwrap();
    assert_eq!(
        i.deploy_id,
        Some(1),
        "the latest deploy is the first suspect"
    );
    assert_eq!(
        kinds(i),
        [
            (0, "deploy"),
            (1_000, "deploy_finished"),
            (10_000, "first_bad_signal"),
            (30_000, "opened"),
            (40_000, "rollback"),
            (50_000, "deploy_finished"),
            (50_000, "restored"),
            (60_000, "alert"),
            (70_000, "resolved"),
        ]
    );
    assert_eq!(incidents.open().count(), 0);
    assert!(incidents.get(3).is_none());
}

#[test]
fn old_deploys_are_not_suspects() {
    let mut log = Log::new();
    log.at(0, deploy("production", 1, Some("c1")));
    log.at(1_000, finished("production", 1, Succeeded));
    log.at(3 * 86_400_000, incident(9, None));
    let incidents = fold(&log);
    let i = incidents.get(9).unwrap();
    assert_eq!(i.deploy_id, None);
    assert_eq!(kinds(i), [(3 * 86_400_000, "opened")]);
    assert_eq!(incidents.open().count(), 1);
    assert_eq!(incidents.of_project("shop").len(), 1);
    assert!(incidents.of_project("other").is_empty());
}
