//! Deploy windows, freezes and trains at chosen instants.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use andon_config::ReleaseMode;
use andon_flow::{ReleasePolicy, next_train};
use common::config;

fn ms(rfc3339: &str) -> i64 {
    // Minutes since the epoch are enough here; parse by hand to keep the
    // test independent of the crate's own parser.
    let (date, time) = rfc3339.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Hinnant), written out again.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000
}

const PROCESS: &str = "    target: { process: { command: ./app } }\n";

fn production(extra: &str) -> andon_config::Environment {
    let cfg = config(&format!("  production:\n{PROCESS}{extra}"));
    cfg.environments.into_iter().next().unwrap()
}

#[test]
fn outside_the_window_names_the_next_opening() {
    let env = production(
        "    window: { days: [mon, tue, wed, thu, fri], from: \"09:00\", to: \"17:00\" }\n",
    );
    // Saturday noon.
    let err = ReleasePolicy::check_deploy(&env, ms("2026-11-28T12:00:00Z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deploys to production are allowed mon–fri 09:00–17:00 UTC; next window opens Mon 2026-11-30 09:00 UTC"
    );
    assert_eq!(err.code(), "window_closed");
    assert_eq!(err.retry_at_ms(), Some(ms("2026-11-30T09:00:00Z")));
    assert!(ReleasePolicy::check_deploy(&env, ms("2026-11-30T09:00:00Z")).is_ok());
    assert!(ReleasePolicy::check_deploy(&env, ms("2026-12-04T16:59:00Z")).is_ok());
    let friday_evening = ReleasePolicy::check_deploy(&env, ms("2026-12-04T17:00:00Z")).unwrap_err();
    assert_eq!(
        friday_evening.retry_at_ms(),
        Some(ms("2026-12-07T09:00:00Z"))
    );
    // Monday before nine: later the same day.
    let early = ReleasePolicy::check_deploy(&env, ms("2026-11-30T08:59:00Z")).unwrap_err();
    assert_eq!(early.retry_at_ms(), Some(ms("2026-11-30T09:00:00Z")));
}

#[test]
fn windows_in_a_fixed_offset() {
    let env = production("    window: { from: \"09:00\", to: \"17:00\", timezone: \"+02:00\" }\n");
    // 06:30 UTC is 08:30 at +02:00.
    let err = ReleasePolicy::check_deploy(&env, ms("2026-11-30T06:30:00Z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deploys to production are allowed every day 09:00–17:00 +02:00; next window opens Mon 2026-11-30 09:00 +02:00"
    );
    assert_eq!(err.retry_at_ms(), Some(ms("2026-11-30T07:00:00Z")));
    assert!(ReleasePolicy::check_deploy(&env, ms("2026-11-30T14:59:00Z")).is_ok());
    assert!(ReleasePolicy::check_deploy(&env, ms("2026-11-30T15:00:00Z")).is_err());
}

#[test]
fn a_freeze_names_its_end_and_the_window_after_it() {
    let env = production(
        "    window: { days: [mon, tue, wed, thu, fri], from: \"09:00\", to: \"17:00\" }\n    freezes:\n      - { from: 2026-12-20T00:00:00Z, to: 2027-01-02T00:00:00Z, reason: year end }\n",
    );
    let err = ReleasePolicy::check_deploy(&env, ms("2026-12-24T10:00:00Z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deploys to production are frozen until Sat 2027-01-02 00:00 UTC (year end); next window opens Mon 2027-01-04 09:00 UTC"
    );
    assert_eq!(err.code(), "frozen");
    assert_eq!(err.retry_at_ms(), Some(ms("2027-01-04T09:00:00Z")));
    assert!(ReleasePolicy::check_deploy(&env, ms("2027-01-04T09:00:00Z")).is_ok());
    assert!(ReleasePolicy::check_deploy(&env, ms("2026-12-18T10:00:00Z")).is_ok());

    let no_window = production(
        "    freezes:\n      - { from: 2026-12-20T00:00:00Z, to: 2027-01-02T00:00:00+01:00 }\n",
    );
    let err = ReleasePolicy::check_deploy(&no_window, ms("2026-12-31T23:30:00Z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deploys to production are frozen until Fri 2027-01-01 23:00 UTC"
    );
    assert!(ReleasePolicy::check_deploy(&no_window, ms("2027-01-01T23:00:00Z")).is_ok());
}

#[test]
fn release_models_from_config() {
    let train = andon_config::Release {
        mode: ReleaseMode::Train,
        schedule: Some("wed 10:00 UTC".into()),
    };
    let policy = ReleasePolicy::new(Some(&train));
    assert!(!policy.should_auto_promote(true));
    assert_eq!(
        policy.next_departure(ms("2026-11-26T00:00:00Z")),
        Some(ms("2026-12-02T10:00:00Z"))
    );
    assert_eq!(
        next_train("wed 10:00 UTC", ms("2026-11-25T09:59:00Z")),
        Ok(ms("2026-11-25T10:00:00Z"))
    );
    let continuous = ReleasePolicy::new(None);
    assert_eq!(continuous.mode(), ReleaseMode::Continuous);
    assert!(continuous.should_auto_promote(true));
    assert_eq!(continuous.next_departure(0), None);
    assert!(ReleasePolicy::check_deploy(&production(""), 0).is_ok());
}
