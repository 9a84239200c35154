//! False alarms: canary and baseline identical (A/A), judged after every
//! batch up to a horizon, over 1000 seeded runs. The anytime-valid bound
//! says at most `alpha` of them may ever fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use andon_judge::{Judge, JudgeConfig, Outcome, VersionStats};
// SmallRng (xoshiro) rather than ChaCha: these run unoptimized, where
// ChaCha's block function is most of the time. Seeded, so runs repeat.
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sim::Arm;

const RUNS: u64 = 1000;
/// Batches per run, and expected requests per version per batch: 4,000
/// requests each by the horizon, 100 looks. (The release benchmark,
/// `bench/judge.sh`, looks 2,400 times per run.)
const BATCHES: u32 = 100;
const PER_BATCH: f64 = 40.0;

fn every_test() -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        max_error_rate: Some(0.02),
        max_p99: Some(Duration::from_millis(300)),
        compare_to_baseline: true,
        min_requests: 100,
    }
}

/// Whether the judge ever failed an A/A run.
fn false_alarm(seed: u64) -> bool {
    let mut rng = SmallRng::seed_from_u64(seed);
    let arm = Arm::new(0.01);
    let mut judge = Judge::new(every_test()).unwrap();
    let (mut canary, mut baseline) = (VersionStats::default(), VersionStats::default());
    for _ in 0..BATCHES {
        arm.batch(&mut rng, PER_BATCH, &mut canary);
        arm.batch(&mut rng, PER_BATCH, &mut baseline);
        if judge.observe(&canary, &baseline).outcome == Outcome::Fail {
            return true;
        }
    }
    false
}

#[test]
fn a_and_a_false_alarm_rate_stays_below_alpha() {
    let alarms = std::thread::scope(|s| {
        let halves = [(0..RUNS / 2), (RUNS / 2..RUNS)];
        let handles: Vec<_> = halves
            .into_iter()
            .map(|seeds| s.spawn(move || seeds.filter(|seed| false_alarm(*seed)).count()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    let rate = alarms as f64 / RUNS as f64;
    println!(
        "A/A false alarm rate: {rate:.4} ({alarms} of {RUNS} runs, {BATCHES} looks each), alpha 0.01"
    );
    assert!(rate <= 0.01, "false alarm rate {rate} above alpha");
}
