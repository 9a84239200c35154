#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn set(ramp: serde_json::Value) -> FlagSet {
    let mut s: FlagSet = serde_json::from_value(json!({"flags": {"checkout": {
        "environments": {"production": {"enabled": true, "ramp": ramp}}
    }}}))
    .unwrap();
    s.normalize();
    s
}

fn env(s: &FlagSet) -> &FlagEnv {
    &s.flags["checkout"].environments["production"]
}

fn state(s: &FlagSet) -> RampState {
    env(s).ramp.as_ref().unwrap().state.clone().unwrap()
}

fn obs(evidence: Evidence, step_outcomes: u64) -> Observation {
    Observation {
        evidence,
        sentence: "judge says".into(),
        step_outcomes,
    }
}

fn plan() -> serde_json::Value {
    json!({"steps": [1, 5, 25, 100], "every": "10s", "min_outcomes": 50})
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("500ms"), Some(500));
    assert_eq!(parse_duration_ms("30s"), Some(30_000));
    assert_eq!(parse_duration_ms("10m"), Some(600_000));
    assert_eq!(parse_duration_ms("1.5h"), Some(5_400_000));
    assert_eq!(parse_duration_ms("2"), Some(2_000));
    assert_eq!(parse_duration_ms("10 parsecs"), None);
    assert_eq!(parse_duration_ms("0s"), None);
    assert_eq!(parse_duration_ms(""), None);
}

#[test]
fn validation_checks_the_plan() {
    assert!(set(plan()).validate().is_ok());
    for bad in [
        json!({"steps": [], "every": "1s"}),
        json!({"steps": [5, 1], "every": "1s"}),
        json!({"steps": [1, 150], "every": "1s"}),
        json!({"steps": [0, 10], "every": "1s"}),
        json!({"steps": [1], "every": "soon"}),
        json!({"steps": [1], "every": "1s", "alpha": 1.5}),
        json!({"steps": [1], "every": "1s", "min_outcomes": 0}),
        json!({"steps": [1], "every": "1s", "variant": "nope"}),
        json!({"steps": [1], "every": "1s", "control": "on"}),
    ] {
        assert!(set(bad.clone()).validate().is_err(), "{bad}");
    }
}

#[test]
fn variants_default_to_the_catch_all_and_the_default() {
    let s = set(plan());
    let f = &s.flags["checkout"];
    assert_eq!(
        ramp_variants(f, env(&s)),
        Some(("on".to_owned(), "off".to_owned()))
    );
}

#[test]
fn a_new_plan_starts_at_the_first_step_and_an_edit_keeps_progress() {
    let old = FlagSet::default();
    let mut new = set(plan());
    let lines = reconcile_ramps(&old, &mut new, 1_000);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(env(&new).rollout_percentage(), Some(1.0));
    let st = state(&new);
    assert_eq!(st.status, RampStatus::Running);
    assert_eq!((st.step, st.started_ms, st.before), (0, 1_000, 0.0));

    // The guard advances it...
    let d = Decision::Advance { to: 1 };
    apply_decision(&mut new, "checkout", "production", &d, "ok", 20_000).unwrap();
    assert_eq!(env(&new).rollout_percentage(), Some(5.0));
    // ...then flags as code re-applies the same document (no state, the
    // percentage the document says): progress and percentage are kept.
    let mut doc = set(plan());
    doc.flags.get_mut("checkout").unwrap().description = Some("new words".into());
    let lines = reconcile_ramps(&new, &mut doc, 30_000);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(state(&doc).step, 1);
    assert_eq!(env(&doc).rollout_percentage(), Some(5.0));

    // A changed plan is a new ramp.
    let mut changed = set(json!({"steps": [10, 100], "every": "1m"}));
    reconcile_ramps(&doc, &mut changed, 40_000);
    let st = state(&changed);
    assert_eq!((st.step, st.started_ms), (0, 40_000));
    assert_eq!(env(&changed).rollout_percentage(), Some(10.0));
}

#[test]
fn a_plain_flag_that_was_on_for_everyone_turns_back_to_everyone() {
    let mut old = set(plan());
    old.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .ramp = None;
    let mut new = set(plan());
    reconcile_ramps(&old, &mut new, 0);
    assert_eq!(state(&new).before, 100.0);
}

#[test]
fn switching_the_flag_off_stops_a_running_ramp() {
    let mut running = set(plan());
    reconcile_ramps(&FlagSet::default(), &mut running, 0);
    let mut off = running.clone();
    off.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .enabled = false;
    let lines = reconcile_ramps(&running, &mut off, 5);
    assert_eq!(lines.len(), 1);
    assert_eq!(state(&off).status, RampStatus::Stopped);
}

#[test]
fn a_disabled_flag_waits_to_start() {
    let mut s = set(plan());
    s.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .enabled = false;
    reconcile_ramps(&FlagSet::default(), &mut s, 0);
    assert!(env(&s).ramp.as_ref().unwrap().state.is_none());
}

#[test]
fn the_guard_rule() {
    let mut s = set(plan());
    reconcile_ramps(&FlagSet::default(), &mut s, 0);
    let ramp = env(&s).ramp.clone().unwrap();
    let st = state(&s);
    // Harm turns back at once, even before the step's time is up.
    assert_eq!(
        decide(&ramp, &st, 1, &obs(Evidence::Harm, 0)),
        Decision::RollBack
    );
    // Time, outcomes and a pass are all needed to advance.
    assert!(matches!(
        decide(&ramp, &st, 9_999, &obs(Evidence::NoHarm, 500)),
        Decision::Hold(_)
    ));
    assert!(matches!(
        decide(&ramp, &st, 10_000, &obs(Evidence::NoHarm, 49)),
        Decision::Hold(_)
    ));
    assert!(matches!(
        decide(&ramp, &st, 10_000, &obs(Evidence::NotEnough, 50)),
        Decision::Hold(_)
    ));
    assert_eq!(
        decide(&ramp, &st, 10_000, &obs(Evidence::NoHarm, 50)),
        Decision::Advance { to: 1 }
    );
    // A ramp that is not running is left alone.
    let stopped = RampState {
        status: RampStatus::Stopped,
        ..st
    };
    assert!(matches!(
        decide(&ramp, &stopped, 99_999, &obs(Evidence::Harm, 0)),
        Decision::Hold(_)
    ));
}

#[test]
fn the_last_step_at_100_completes_and_a_failure_goes_back() {
    let mut s = set(plan());
    reconcile_ramps(&FlagSet::default(), &mut s, 0);
    for to in 1..4 {
        let line = apply_decision(
            &mut s,
            "checkout",
            "production",
            &Decision::Advance { to },
            "fine",
            to as i64,
        )
        .unwrap();
        assert!(line.contains("passed"), "{line}");
    }
    assert_eq!(env(&s).rollout_percentage(), Some(100.0));
    assert_eq!(state(&s).status, RampStatus::Completed);

    let mut s = set(json!({"steps": [1, 5, 25, 100], "every": "1s"}));
    // Before the ramp, 2% already had the new code path.
    s.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .rules =
        serde_json::from_value(json!([{"rollout": {"percentage": 2}, "serve": "on"}])).unwrap();
    let mut old = s.clone();
    old.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .ramp = None;
    reconcile_ramps(&old, &mut s, 0);
    assert_eq!(state(&s).before, 2.0);
    apply_decision(
        &mut s,
        "checkout",
        "production",
        &Decision::Advance { to: 1 },
        "ok",
        1,
    )
    .unwrap();
    let line = apply_decision(
        &mut s,
        "checkout",
        "production",
        &Decision::RollBack,
        "variant 9% errors vs control 1%",
        2,
    )
    .unwrap();
    assert!(line.contains("turned back: 5% -> 2%"), "{line}");
    assert_eq!(env(&s).rollout_percentage(), Some(2.0));
    let st = state(&s);
    assert_eq!(st.status, RampStatus::RolledBack);
    assert!(st.detail.contains("9% errors"));
}

#[test]
fn a_ramp_below_100_completes_after_its_last_step() {
    let mut s = set(json!({"steps": [10, 50], "every": "1s"}));
    reconcile_ramps(&FlagSet::default(), &mut s, 0);
    apply_decision(
        &mut s,
        "checkout",
        "production",
        &Decision::Advance { to: 1 },
        "ok",
        1,
    )
    .unwrap();
    assert_eq!(state(&s).status, RampStatus::Running);
    let ramp = env(&s).ramp.clone().unwrap();
    let d = decide(&ramp, &state(&s), 5_000, &obs(Evidence::NoHarm, 100));
    assert_eq!(d, Decision::Complete);
    apply_decision(&mut s, "checkout", "production", &d, "ok", 5_000).unwrap();
    assert_eq!(state(&s).status, RampStatus::Completed);
    assert_eq!(env(&s).rollout_percentage(), Some(50.0));
}

#[test]
fn explicit_start_and_stop() {
    let mut s = set(plan());
    let line = set_ramp(&mut s, "checkout", "production", None, true, 7, "go").unwrap();
    assert!(line.contains("started"), "{line}");
    assert_eq!(state(&s).started_ms, 7);
    set_ramp(&mut s, "checkout", "production", None, false, 8, "pause").unwrap();
    assert_eq!(state(&s).status, RampStatus::Stopped);
    assert!(set_ramp(&mut s, "checkout", "production", None, false, 9, "again").is_err());
    let mut bare = set(plan());
    bare.flags
        .get_mut("checkout")
        .unwrap()
        .environments
        .get_mut("production")
        .unwrap()
        .ramp = None;
    assert!(set_ramp(&mut bare, "checkout", "production", None, true, 1, "x").is_err());
}

#[test]
fn the_diff_shows_ramp_progress() {
    let mut s = set(plan());
    reconcile_ramps(&FlagSet::default(), &mut s, 0);
    let before = s.clone();
    apply_decision(
        &mut s,
        "checkout",
        "production",
        &Decision::Advance { to: 1 },
        "ok",
        1,
    )
    .unwrap();
    let lines: Vec<String> = crate::diff(&before, &s)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("rollout 1% -> 5%")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ramp running (step 1) -> running (step 2)")),
        "{lines:?}"
    );
}
