//! Any event sequence, in any order, with any times: no view panics, and
//! the metrics stay within their ranges.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use andon_config::{DeployWindow, Weekday};
use andon_core::{DeployOutcome, Envelope, Event, JobOutcome, PlannedJob, RunStatus, Trigger};
use andon_flow::{Board, Cord, Dora, Incidents, ReleasePolicy, card_refs, next_train, notify};
use proptest::prelude::*;

fn name(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_string)
}

fn project() -> impl Strategy<Value = String> {
    name(&["shop", "other"])
}
fn environment() -> impl Strategy<Value = String> {
    name(&["production", "staging", "prod"])
}
fn commit() -> impl Strategy<Value = String> {
    name(&["a", "b", "c", "d", "é"])
}
fn column() -> impl Strategy<Value = String> {
    name(&[
        "backlog",
        "pipeline",
        "staging",
        "production",
        "done",
        "nowhere",
    ])
}
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -1_000_000_000i64..10_000_000_000, 1 => any::<i64>()]
}
fn outcome() -> impl Strategy<Value = DeployOutcome> {
    proptest::sample::select(
        &[
            DeployOutcome::Succeeded,
            DeployOutcome::RolledBack,
            DeployOutcome::Aborted,
            DeployOutcome::Failed,
            DeployOutcome::Frozen,
        ][..],
    )
}
fn status() -> impl Strategy<Value = RunStatus> {
    proptest::sample::select(
        &[
            RunStatus::Passed,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
        ][..],
    )
}

fn event() -> impl Strategy<Value = Event> {
    let id = 0u64..6;
    prop_oneof![
        (project(), name(&["main", "dev"])).prop_map(|(project, trunk)| Event::ProjectAdded {
            project,
            repo: "r".into(),
            trunk,
            poll_s: None
        }),
        project().prop_map(|project| Event::ProjectRemoved { project }),
        (
            project(),
            name(&["main", "dev"]),
            commit(),
            name(&["#1 ANDON-2", "x", "#3"]),
            time()
        )
            .prop_map(|(project, branch, commit, message, t)| Event::CommitSeen {
                project,
                branch,
                commit,
                message,
                author: "a".into(),
                committed_at_ms: t
            }),
        (project(), id.clone(), commit(), name(&["main", "dev"])).prop_map(
            |(project, run_id, commit, branch)| Event::RunQueued {
                project,
                run_id,
                commit,
                branch,
                trigger: Trigger::Manual
            }
        ),
        id.clone().prop_map(|run_id| Event::RunStarted {
            run_id,
            jobs: vec![PlannedJob {
                name: "j".into(),
                stage: "staging".into(),
                kind: None,
                deps: vec![],
                allow_failure: false
            }]
        }),
        id.clone().prop_map(|run_id| Event::JobFinished {
            run_id,
            job: "j".into(),
            attempt: 1,
            outcome: JobOutcome::Passed,
            exit_code: None,
            duration_ms: 1,
            tests: None,
            flaky: false
        }),
        (id.clone(), status()).prop_map(|(run_id, status)| Event::RunFinished {
            run_id,
            status,
            reason: None
        }),
        (
            project(),
            environment(),
            id.clone(),
            proptest::option::of(commit()),
            name(&["canary", "rollback"])
        )
            .prop_map(|(project, environment, deploy_id, commit, strategy)| {
                Event::DeployRequested {
                    project,
                    environment,
                    deploy_id,
                    version: "v".into(),
                    strategy,
                    run_id: None,
                    commit,
                    reason: None,
                }
            }),
        (project(), environment(), id.clone(), outcome()).prop_map(
            |(project, environment, deploy_id, outcome)| Event::DeployFinished {
                project,
                environment,
                deploy_id,
                outcome,
                reason: None
            }
        ),
        (project(), environment()).prop_map(|(project, environment)| Event::DeployRefused {
            project,
            environment,
            version: "v".into(),
            reason: "r".into()
        }),
        (
            environment(),
            id.clone(),
            name(&["pass", "fail", "pending"])
        )
            .prop_map(|(environment, deploy_id, outcome)| Event::JudgeVerdict {
                environment,
                deploy_id,
                outcome,
                sentence: "s".into()
            }),
        (
            project(),
            id.clone(),
            environment(),
            proptest::option::of(id.clone())
        )
            .prop_map(|(project, incident_id, environment, deploy_id)| {
                Event::IncidentOpened {
                    project,
                    incident_id,
                    environment,
                    deploy_id,
                    title: "t".into(),
                }
            }),
        id.clone().prop_map(|incident_id| Event::IncidentResolved {
            incident_id,
            note: String::new()
        }),
        id.clone().prop_map(|incident_id| Event::PostmortemWritten {
            incident_id,
            went_right: "r".into(),
            went_wrong: "w".into(),
            action_items: vec![]
        }),
        (project(), environment()).prop_map(|(project, environment)| Event::AlertFired {
            project,
            environment,
            rule: "r".into(),
            sentence: "s".into()
        }),
        (project(), id.clone(), commit()).prop_map(|(project, run_id, commit)| {
            Event::LineStopped {
                project,
                run_id,
                commit,
            }
        }),
        (project(), id.clone(), any::<u64>()).prop_map(|(project, run_id, red_for_ms)| {
            Event::LineReleased {
                project,
                run_id,
                red_for_ms,
            }
        }),
        (project(), id.clone(), column()).prop_map(|(project, card_id, column)| {
            Event::CardCreated {
                project,
                card_id,
                title: "c".into(),
                column,
            }
        }),
        (project(), id.clone(), column(), column()).prop_map(|(project, card_id, from, to)| {
            Event::CardMoved {
                project,
                card_id,
                from,
                to,
                over_limit: false,
                reason: None,
                commit: None,
            }
        }),
    ]
}

fn history() -> impl Strategy<Value = Vec<Envelope>> {
    proptest::collection::vec((event(), time()), 0..80).prop_map(|events| {
        events
            .into_iter()
            .enumerate()
            .map(|(i, (event, at_ms))| Envelope {
                seq: i as u64 + 1,
                at_ms,
                actor: "p".into(),
                event,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn folds_never_panic_and_metrics_stay_in_range(events in history(), since in time(), until in time()) {
        let mut dora = Dora::new();
        let mut cord = Cord::new();
        let mut board = Board::new("shop", None);
        let mut incidents = Incidents::new();
        for e in &events {
            dora.apply(e);
            cord.apply(e);
            let _ = cord.decide(e);
            board.apply(e);
            let _ = board.auto_moves(e, "production");
            incidents.apply(e);
            let _ = notify::slack_payload(e);
            let _ = notify::json_payload(e);
        }
        for (s, u) in [(since, until), (i64::MIN, i64::MAX), (0, 10_000_000_000)] {
            for env in ["production", "staging", "nowhere"] {
                let m = dora.metrics("shop", env, s, u);
                if let Some(cfr) = m.change_failure_rate {
                    prop_assert!((0.0..=1.0).contains(&cfr), "cfr {cfr}");
                }
                for v in [m.lead_time_median_s, m.lead_time_p90_s, m.time_to_restore_median_s, m.time_to_green_median_s, m.deployment_frequency_per_day].into_iter().flatten() {
                    prop_assert!(v >= 0.0, "negative {v}");
                }
                if let (Some(med), Some(p90)) = (m.lead_time_median_s, m.lead_time_p90_s) {
                    prop_assert!(p90 >= med || (p90 - med).abs() < 1e-6 * med.abs().max(1.0));
                }
                if let Some(g) = &m.gear {
                    prop_assert!((1..=5).contains(&g.number));
                }
                prop_assert!(serde_json::to_string(&m).is_ok());
            }
        }
        let _ = board.cumulative_flow(since, until);
        let _ = board.cycle_time_median_s(since, until);
        let _ = cord.production_deploy_allowed("shop", None);
        for i in incidents.of_project("shop") {
            prop_assert!(i.timeline.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        }
    }

    #[test]
    fn calendars_never_panic(now in any::<i64>(), from in (0u8..24, 0u8..60), to in (0u8..24, 0u8..60), days in proptest::sample::subsequence(Weekday::ALL.to_vec(), 0..=7), tz in name(&["UTC", "+14:00", "-12:00", "+05:30", "bogus"])) {
        let _ = next_train("wed 10:00 UTC", now);
        let _ = next_train("sun 23:59 -12:00", now);
        let cfg = common_env(DeployWindow { days, from, to, timezone: tz });
        if let Err(r) = ReleasePolicy::check_deploy(&cfg, now) {
            prop_assert!(!r.to_string().is_empty());
        }
    }

    #[test]
    fn card_refs_never_panic(message in ".{0,200}", prefix in "[A-Za-z]{0,6}") {
        for n in andon_flow::card_refs_with_prefix(&message, &prefix) {
            prop_assert!(n > 0);
        }
        let _ = card_refs(&message);
        let _ = andon_flow::sign(message.as_bytes(), prefix.as_bytes());
    }
}

fn common_env(window: DeployWindow) -> andon_config::Environment {
    let source = "pipeline:\n  stages:\n    - name: c\n      jobs:\n        - name: t\n          run: 'true'\nenvironments:\n  production:\n    target: { process: { command: ./app } }\n    freezes:\n      - { from: 2026-12-20T00:00:00Z, to: 2027-01-02T00:00:00Z }\n";
    let mut env = andon_config::parse("andon.yaml", source)
        .unwrap()
        .environments
        .remove(0);
    env.window = Some(window);
    env
}
