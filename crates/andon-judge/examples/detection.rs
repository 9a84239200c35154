//! Detection benchmark of the judge against Flagger-style threshold checks,
//! and Kayenta's latency benchmark. Run by `bench/judge.sh`; its last line is
//! the summary the project tracks.
//!
//! Traffic: 200 req/s in total, the canary and its baseline 10% each
//! (20 req/s, Poisson), scraped every 250 ms of simulated time. Baseline
//! errors 1%; the canary 5% (detection, 20 seeds) or 1% (A/A, false alarms,
//! 1000 seeds over 10 minutes). Latency log-normal, median 20 ms, the same
//! for both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/sim.rs"]
mod sim;

use std::time::Duration;

use andon_judge::{Judge, JudgeConfig, LATENCY_BUCKETS_S, Outcome, VersionStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim::{Arm, Flagger, kayenta, median};

const BATCH_S: f64 = 0.25;
const PER_ARM_RPS: f64 = 200.0 * 0.10;
const HORIZON_S: f64 = 600.0;
const DETECTION_SEEDS: u64 = 20;
const AA_RUNS: u64 = 1000;

/// The judge as `andon.yaml`'s example configures it.
fn product() -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        max_error_rate: Some(0.02),
        max_p99: Some(Duration::from_millis(300)),
        compare_to_baseline: true,
        min_requests: 100,
    }
}

/// Only the sequential comparison with the baseline.
fn compare_only() -> JudgeConfig {
    JudgeConfig {
        max_error_rate: None,
        max_p99: None,
        ..product()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    judge_fail_s: Option<f64>,
    judge_first_pass_s: Option<f64>,
    compare_fail_s: Option<f64>,
    flagger10_s: Option<f64>,
    flagger60_s: Option<f64>,
}

fn run(seed: u64, canary_rate: f64) -> Run {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (canary_arm, baseline_arm) = (Arm::new(canary_rate), Arm::new(0.01));
    let mut judge = Judge::new(product()).unwrap();
    let mut compare = Judge::new(compare_only()).unwrap();
    let mut f10 = Flagger::new(10.0, 0.02, 5);
    let mut f60 = Flagger::new(60.0, 0.02, 5);
    let (mut canary, mut baseline) = (VersionStats::default(), VersionStats::default());
    let mut out = Run::default();
    let batches = (HORIZON_S / BATCH_S).round() as u64;
    for b in 1..=batches {
        let now = b as f64 * BATCH_S;
        canary_arm.batch(&mut rng, PER_ARM_RPS * BATCH_S, &mut canary);
        baseline_arm.batch(&mut rng, PER_ARM_RPS * BATCH_S, &mut baseline);
        if out.judge_fail_s.is_none() {
            let v = judge.observe(&canary, &baseline);
            match v.outcome {
                Outcome::Fail => out.judge_fail_s = Some(now),
                Outcome::Pass if out.judge_first_pass_s.is_none() => {
                    out.judge_first_pass_s = Some(now)
                }
                _ => {}
            }
        }
        if out.compare_fail_s.is_none()
            && compare.observe(&canary, &baseline).outcome == Outcome::Fail
        {
            out.compare_fail_s = Some(now);
        }
        f10.observe(now, &canary);
        f60.observe(now, &canary);
    }
    out.flagger10_s = f10.rolled_back_at_s;
    out.flagger60_s = f60.rolled_back_at_s;
    out
}

/// Runs seeds on both cores.
fn runs(seeds: std::ops::Range<u64>, canary_rate: f64) -> Vec<Run> {
    let seeds: Vec<u64> = seeds.collect();
    let halves: Vec<&[u64]> = seeds.chunks(seeds.len().div_ceil(2).max(1)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .iter()
            .map(|h| {
                s.spawn(move || {
                    h.iter()
                        .map(|seed| run(*seed, canary_rate))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Median time to the event; runs without it count as the horizon (so a
/// median at the horizon means "mostly not detected").
fn median_s(rs: &[Run], pick: impl Fn(&Run) -> Option<f64>) -> f64 {
    let mut xs: Vec<f64> = rs.iter().map(|r| pick(r).unwrap_or(HORIZON_S)).collect();
    median(&mut xs)
}

fn rate(rs: &[Run], pick: impl Fn(&Run) -> Option<f64>) -> f64 {
    rs.iter().filter(|r| pick(r).is_some()).count() as f64 / rs.len() as f64
}

fn main() {
    let detect = runs(1..1 + DETECTION_SEEDS, 0.05);
    let aa = runs(10_000..10_000 + AA_RUNS, 0.01);

    println!(
        "traffic: {PER_ARM_RPS} req/s canary and baseline, batches of {BATCH_S} s, horizon {HORIZON_S} s"
    );
    println!(
        "detection 1% -> 5% errors over {DETECTION_SEEDS} seeds (median s; undetected count as {HORIZON_S}):"
    );
    let judge_times: Vec<String> = detect
        .iter()
        .map(|r| r.judge_fail_s.map_or("-".into(), |t| format!("{t}")))
        .collect();
    println!(
        "  judge (product config) fail times: {}",
        judge_times.join(" ")
    );
    let lines = [
        (
            "judge, alpha 0.01, max_error_rate 2%, max_p99 300ms, compare",
            median_s(&detect, |r| r.judge_fail_s),
            rate(&detect, |r| r.judge_fail_s),
            rate(&aa, |r| r.judge_fail_s),
        ),
        (
            "judge, alpha 0.01, compare_to_baseline only",
            median_s(&detect, |r| r.compare_fail_s),
            rate(&detect, |r| r.compare_fail_s),
            rate(&aa, |r| r.compare_fail_s),
        ),
        (
            "flagger interval 10s, max_error_rate 2%, threshold 5",
            median_s(&detect, |r| r.flagger10_s),
            rate(&detect, |r| r.flagger10_s),
            rate(&aa, |r| r.flagger10_s),
        ),
        (
            "flagger interval 60s, max_error_rate 2%, threshold 5",
            median_s(&detect, |r| r.flagger60_s),
            rate(&detect, |r| r.flagger60_s),
            rate(&aa, |r| r.flagger60_s),
        ),
    ];
    for (name, med, power, far) in lines {
        println!(
            "  {name:<62} median {med:>6.2} s  detected {:>5.1}%  A/A false alarms {:>5.2}% ({AA_RUNS} runs)",
            power * 100.0,
            far * 100.0
        );
    }
    println!(
        "  judge (product config) on A/A: first Pass after median {:.1} s; {:.1}% of runs reached Pass",
        median_s(&aa, |r| r.judge_first_pass_s),
        rate(&aa, |r| r.judge_first_pass_s) * 100.0
    );

    println!(
        "kayenta latency benchmark: 1000 pass N(mu,1) vs N(mu,1), 1000 fail N(mu+1,1) vs N(mu,1), ms, 60 samples each"
    );
    let fine = sim::geometric_bounds(0.010, 1.02, 80);
    let one_ms: Vec<f64> = (10..=60).map(|ms| f64::from(ms) / 1000.0).collect();
    let cases: [(&str, &[f64], f64, f64, usize); 8] = [
        (
            "router buckets, mu 25 (an edge sits at 25 ms)",
            &LATENCY_BUCKETS_S,
            25.0,
            0.02,
            60,
        ),
        (
            "router buckets, mu 25, streamed 5 per batch",
            &LATENCY_BUCKETS_S,
            25.0,
            0.02,
            5,
        ),
        (
            "router buckets, mu 37 (inside the 25-50 ms bucket)",
            &LATENCY_BUCKETS_S,
            37.0,
            0.02,
            60,
        ),
        ("1 ms buckets 10..60 ms, mu 25", &one_ms, 25.0, 0.02, 60),
        ("1 ms buckets 10..60 ms, mu 37", &one_ms, 37.0, 0.02, 60),
        ("2% log buckets from 10 ms, mu 25", &fine, 25.0, 0.02, 60),
        ("2% log buckets from 10 ms, mu 37", &fine, 37.0, 0.02, 60),
        (
            "2% log buckets from 10 ms, mu 37, alpha 0.01, streamed 5",
            &fine,
            37.0,
            0.01,
            5,
        ),
    ];
    for (name, bounds, mu, alpha, batch) in cases {
        let (precision, recall) = kayenta::<ChaCha8Rng>(bounds, mu, alpha, 1.0, batch);
        println!("  {name:<58} alpha {alpha}: precision {precision:.3} recall {recall:.3}");
    }

    println!(
        "judge detection_median_s: {:.2} false_alarm_rate: {:.4} flagger10s_median_s: {:.2} flagger60s_median_s: {:.2}",
        median_s(&detect, |r| r.judge_fail_s),
        rate(&aa, |r| r.judge_fail_s),
        median_s(&detect, |r| r.flagger10_s),
        median_s(&detect, |r| r.flagger60_s),
    );
}
