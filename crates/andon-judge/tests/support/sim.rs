//! Simulated router traffic for the judge's statistical tests and its
//! detection benchmark (shared with `examples/detection.rs` by `#[path]`).
// Test support: a panic here is a failed test, which is what we want.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use andon_judge::{LATENCY_BUCKETS_S, LatencyTest, VersionStats};
use rand::{Rng, SeedableRng};

/// Poisson(λ) by multiplying uniforms (Knuth); fine for the small λ of one batch.
pub fn poisson<R: Rng>(rng: &mut R, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 200.0 {
        // Normal approximation: only used for large batches.
        return (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let limit = (-lambda).exp();
    let mut product: f64 = rng.random();
    let mut n = 0;
    while product > limit {
        product *= rng.random::<f64>();
        n += 1;
    }
    n
}

/// Standard normal by Box-Muller.
pub fn normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Index of the bucket (upper bounds, last +Inf) a value falls into.
pub fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds
        .iter()
        .position(|b| value <= *b)
        .unwrap_or(bounds.len() - 1)
}

/// One version's behaviour: error probability and log-normal latency.
#[derive(Debug, Clone, Copy)]
pub struct Arm {
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Median latency in seconds.
    pub median_s: f64,
    /// Standard deviation of ln(latency).
    pub sigma: f64,
}

impl Arm {
    pub fn new(error_rate: f64) -> Self {
        Self {
            error_rate,
            median_s: 0.020,
            sigma: 0.5,
        }
    }

    /// Adds one batch of `lambda` expected requests to cumulative `stats`.
    pub fn batch<R: Rng>(&self, rng: &mut R, lambda: f64, stats: &mut VersionStats) {
        let n = poisson(rng, lambda);
        stats.requests += n;
        for _ in 0..n {
            if rng.random::<f64>() < self.error_rate {
                stats.errors += 1;
            }
            let latency = self.median_s * (self.sigma * normal(rng)).exp();
            stats.latency_buckets[bucket(&LATENCY_BUCKETS_S, latency)] += 1;
        }
    }
}

/// Flagger's rule: every `interval_s` the canary's error rate over that
/// interval is checked against `max_rate`; the release rolls back at the
/// `threshold`-th failed check (failed checks are counted, not necessarily
/// consecutive).
#[derive(Debug, Clone)]
pub struct Flagger {
    pub interval_s: f64,
    pub max_rate: f64,
    pub threshold: u32,
    next_check_s: f64,
    at_last_check: VersionStats,
    failed_checks: u32,
    pub rolled_back_at_s: Option<f64>,
}

impl Flagger {
    pub fn new(interval_s: f64, max_rate: f64, threshold: u32) -> Self {
        Self {
            interval_s,
            max_rate,
            threshold,
            next_check_s: interval_s,
            at_last_check: VersionStats::default(),
            failed_checks: 0,
            rolled_back_at_s: None,
        }
    }

    /// Called with the cumulative canary counters at simulated time `now_s`.
    pub fn observe(&mut self, now_s: f64, canary: &VersionStats) {
        if self.rolled_back_at_s.is_some() || now_s + 1e-9 < self.next_check_s {
            return;
        }
        self.next_check_s += self.interval_s;
        let requests = canary.requests - self.at_last_check.requests;
        let errors = canary.errors - self.at_last_check.errors;
        self.at_last_check = *canary;
        // Flagger fails a check without data too (metric "no values found").
        let failed = requests == 0 || errors as f64 / requests as f64 > self.max_rate;
        if failed {
            self.failed_checks += 1;
            if self.failed_checks >= self.threshold {
                self.rolled_back_at_s = Some(now_s);
            }
        }
    }
}

pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Kayenta's benchmark: 1000 pass cases N(mu,1) vs N(mu,1) and 1000 fail
/// cases N(mu+1,1) vs N(mu,1), in ms, 60 samples per version each,
/// bucketized on `bounds_s` (seconds) and fed to a [`LatencyTest`] in batches
/// of `batch` samples per version. Returns (precision, recall) at `alpha`.
pub fn kayenta<R: Rng + SeedableRng>(
    bounds_s: &[f64],
    mu_ms: f64,
    alpha: f64,
    tolerance: f64,
    batch: usize,
) -> (f64, f64) {
    let cases = 1000;
    let mut rng = R::seed_from_u64(7);
    let (mut tp, mut fp) = (0u32, 0u32);
    for case in 0..2 * cases {
        let shift = if case < cases { 0.0 } else { 1.0 };
        let mut test = LatencyTest::new(bounds_s, tolerance).unwrap();
        let len = test.bounds().len();
        let mut done = 0;
        while done < 60 {
            let (mut c, mut b) = (vec![0u64; len], vec![0u64; len]);
            for _ in 0..batch.min(60 - done) {
                c[bucket(test.bounds(), (mu_ms + shift + normal(&mut rng)) / 1000.0)] += 1;
                b[bucket(test.bounds(), (mu_ms + normal(&mut rng)) / 1000.0)] += 1;
            }
            test.observe(&c, &b).unwrap();
            done += batch;
        }
        if test.rejects(alpha) {
            if shift > 0.0 { tp += 1 } else { fp += 1 }
        }
    }
    let precision = if tp + fp == 0 {
        1.0
    } else {
        f64::from(tp) / f64::from(tp + fp)
    };
    (precision, f64::from(tp) / f64::from(cases))
}

/// Geometric bucket bounds: `count` bounds from `first_s`, each `ratio` times the last.
pub fn geometric_bounds(first_s: f64, ratio: f64, count: i32) -> Vec<f64> {
    (0..count).map(|i| first_s * ratio.powi(i)).collect()
}
