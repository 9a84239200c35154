//! The judge's user-visible behaviour: outcomes, sentences, configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::time::Duration;

use andon_judge::{Judge, JudgeConfig, JudgeError, Outcome, Rule, VersionStats};

fn stats(requests: u64, errors: u64) -> VersionStats {
    // Every request in the 10-25 ms bucket.
    let mut latency_buckets = [0; 14];
    latency_buckets[4] = requests;
    VersionStats {
        requests,
        errors,
        latency_buckets,
    }
}

fn compare_only() -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        max_error_rate: None,
        max_p99: None,
        compare_to_baseline: true,
        min_requests: 500,
    }
}

#[test]
fn a_clearly_worse_canary_fails_with_a_readable_sentence() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let v = judge.observe(&stats(2310, 111), &stats(2290, 25));
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(
        v.sentence,
        "canary 4.8% errors vs baseline 1.1% over 2,310 requests; p < 0.01"
    );
    assert_eq!(v.rule, Some(Rule::ErrorRateVsBaseline));
    assert_eq!(v.requests, 2310);
    assert!(v.p_value.unwrap() <= 0.01);
    assert!((v.canary_rate - 111.0 / 2310.0).abs() < 1e-12);
    assert!((v.baseline_rate - 25.0 / 2290.0).abs() < 1e-12);
}

#[test]
fn too_few_requests_is_pending_and_says_what_it_waits_for() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let v = judge.observe(&stats(120, 1), &stats(118, 1));
    assert_eq!(v.outcome, Outcome::Pending);
    assert!(
        v.sentence.contains("waiting for 500 requests"),
        "{}",
        v.sentence
    );
    assert!(
        v.sentence
            .starts_with("canary 0.8% errors vs baseline 0.8% over 120 requests"),
        "{}",
        v.sentence
    );
}

#[test]
fn enough_requests_without_harm_pass_and_more_data_can_still_fail() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let v = judge.observe(&stats(600, 6), &stats(600, 6));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.sentence);
    assert!(v.sentence.contains("no evidence of harm"), "{}", v.sentence);
    // Pass is not final: a burst of canary errors afterwards fails it.
    let v = judge.observe(&stats(1600, 206), &stats(1600, 16));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.sentence);
}

#[test]
fn fail_is_final() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let failed = judge.observe(&stats(1000, 100), &stats(1000, 5));
    assert_eq!(failed.outcome, Outcome::Fail);
    let later = judge.observe(&stats(100_000, 1100), &stats(100_000, 1000));
    assert_eq!(later, failed);
}

#[test]
fn the_baseline_must_have_served_too_before_a_pass() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let v = judge.observe(&stats(600, 0), &stats(10, 0));
    assert_eq!(v.outcome, Outcome::Pending);
    assert!(
        v.sentence.contains("waiting for 500 baseline requests"),
        "{}",
        v.sentence
    );
}

#[test]
fn max_error_rate_fails_on_the_lower_bound_and_passes_on_the_upper() {
    let config = JudgeConfig {
        max_error_rate: Some(0.02),
        compare_to_baseline: false,
        min_requests: 100,
        ..compare_only()
    };
    let mut judge = Judge::new(config.clone()).unwrap();
    let v = judge.observe(&stats(2000, 100), &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.rule, Some(Rule::MaxErrorRate));
    assert!(
        v.sentence
            .starts_with("canary 5% errors over 2,000 requests, above the 2% limit (at least"),
        "{}",
        v.sentence
    );

    // 1% errors: not yet shown below 2% at 500 requests, shown at 20,000.
    let mut judge = Judge::new(config).unwrap();
    let v = judge.observe(&stats(500, 5), &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Pending);
    assert!(
        v.sentence.contains("errors not yet shown below 2%"),
        "{}",
        v.sentence
    );
    let v = judge.observe(&stats(20_000, 200), &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.sentence);
    assert!(
        v.sentence.contains("errors below 2% (at most"),
        "{}",
        v.sentence
    );
}

#[test]
fn max_p99_fails_when_the_tail_is_clearly_slow() {
    let config = JudgeConfig {
        max_p99: Some(Duration::from_millis(300)),
        compare_to_baseline: false,
        min_requests: 100,
        ..compare_only()
    };
    let mut judge = Judge::new(config.clone()).unwrap();
    // 5% of requests in 0.5-1 s: p99 well above 300 ms.
    let mut canary = stats(950, 0);
    canary.requests = 1000;
    canary.latency_buckets[9] = 50;
    let v = judge.observe(&canary, &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.sentence);
    assert_eq!(v.rule, Some(Rule::MaxP99));
    assert!(
        v.sentence.contains("above the 300 ms limit"),
        "{}",
        v.sentence
    );

    // All fast: passes once enough requests show p99 below the limit.
    let mut judge = Judge::new(config).unwrap();
    let v = judge.observe(&stats(3000, 0), &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.sentence);
    assert!(v.sentence.contains("p99 below 300 ms"), "{}", v.sentence);
}

#[test]
fn a_slower_canary_fails_on_latency() {
    let mut judge = Judge::new(compare_only()).unwrap();
    let (mut canary, mut baseline) = (VersionStats::default(), VersionStats::default());
    let mut verdict = None;
    for _ in 0..200 {
        canary.requests += 10;
        canary.latency_buckets[5] += 6; // 25-50 ms
        canary.latency_buckets[4] += 4;
        baseline.requests += 10;
        baseline.latency_buckets[5] += 2;
        baseline.latency_buckets[4] += 8;
        let v = judge.observe(&canary, &baseline);
        if v.outcome == Outcome::Fail {
            verdict = Some(v);
            break;
        }
    }
    let v = verdict.expect("latency regression detected");
    assert_eq!(v.rule, Some(Rule::LatencyVsBaseline));
    assert!(
        v.sentence
            .starts_with("canary slower than baseline: median"),
        "{}",
        v.sentence
    );
}

#[test]
fn a_router_restart_is_a_counter_reset_not_a_negative_batch() {
    let mut judge = Judge::new(compare_only()).unwrap();
    judge.observe(&stats(400, 4), &stats(400, 4));
    let v = judge.observe(&stats(300, 3), &stats(300, 3));
    assert_eq!(v.requests, 700);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.sentence);
}

#[test]
fn no_tests_configured_passes_on_volume_alone() {
    let config = JudgeConfig {
        compare_to_baseline: false,
        min_requests: 10,
        ..compare_only()
    };
    let mut judge = Judge::new(config).unwrap();
    let v = judge.observe(&stats(20, 20), &VersionStats::default());
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(v.p_value, None);
    assert_eq!(v.sentence, "canary 100% errors over 20 requests");
}

#[test]
fn bad_configurations_say_what_to_change() {
    let bad = |c: JudgeConfig| Judge::new(c).unwrap_err();
    assert_eq!(
        bad(JudgeConfig {
            alpha: 0.0,
            ..compare_only()
        }),
        JudgeError::Alpha(0.0)
    );
    assert_eq!(
        bad(JudgeConfig {
            max_error_rate: Some(2.0),
            ..compare_only()
        }),
        JudgeError::MaxErrorRate(2.0)
    );
    let e = bad(JudgeConfig {
        max_p99: Some(Duration::from_secs(30)),
        ..compare_only()
    });
    assert!(
        e.to_string()
            .contains("max_p99 must lie within the latency buckets"),
        "{e}"
    );
    assert!(
        Judge::new(JudgeConfig {
            max_p99: Some(Duration::from_micros(500)),
            ..compare_only()
        })
        .is_err()
    );
}
