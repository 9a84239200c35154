//! Power: real regressions are caught, in simulated time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

#[path = "support/sim.rs"]
mod sim;

use andon_judge::{Judge, JudgeConfig, Outcome, Rule, VersionStats};
// SmallRng (xoshiro) rather than ChaCha: these run unoptimized, where
// ChaCha's block function is most of the time. Seeded, so runs repeat.
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sim::{Arm, median};

/// 20 req/s per version, batches of 250 ms, up to 5 minutes.
const PER_BATCH: f64 = 5.0;
const BATCH_S: f64 = 0.25;
const BATCHES: u32 = 1200;

fn compare_only() -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        max_error_rate: None,
        max_p99: None,
        compare_to_baseline: true,
        min_requests: 100,
    }
}

/// Seconds until Fail, and the rule that failed.
fn time_to_fail(seed: u64, canary: Arm, baseline: Arm) -> Option<(f64, Rule)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut judge = Judge::new(compare_only()).unwrap();
    let (mut c, mut b) = (VersionStats::default(), VersionStats::default());
    for i in 1..=BATCHES {
        canary.batch(&mut rng, PER_BATCH, &mut c);
        baseline.batch(&mut rng, PER_BATCH, &mut b);
        let v = judge.observe(&c, &b);
        if v.outcome == Outcome::Fail {
            return Some((f64::from(i) * BATCH_S, v.rule?));
        }
    }
    None
}

#[test]
fn one_to_five_percent_errors_is_detected() {
    let mut times = Vec::new();
    for seed in 0..50 {
        let (t, rule) =
            time_to_fail(seed, Arm::new(0.05), Arm::new(0.01)).expect("detected within 5 minutes");
        assert_eq!(rule, Rule::ErrorRateVsBaseline);
        times.push(t);
    }
    let m = median(&mut times);
    println!("1% -> 5% at 20 req/s per version: median {m} s to Fail over 50 seeds");
    assert!(m <= 60.0, "median {m} s");
}

#[test]
fn a_slower_canary_is_detected() {
    let slow = Arm {
        median_s: 0.030,
        ..Arm::new(0.01)
    };
    for seed in 0..20 {
        let (_, rule) =
            time_to_fail(seed, slow, Arm::new(0.01)).expect("detected within 5 minutes");
        assert_eq!(rule, Rule::LatencyVsBaseline);
    }
}
