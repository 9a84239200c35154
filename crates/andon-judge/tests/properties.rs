//! Properties over arbitrary counts: nothing panics, p-values are
//! probabilities, and evidence moves the way the data says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use andon_judge::{
    ErrorCounts, ErrorRateTest, Judge, JudgeConfig, LatencyTest, Outcome, VersionStats,
};
use proptest::prelude::*;
use std::time::Duration;

fn any_stats() -> impl Strategy<Value = VersionStats> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::array::uniform14(any::<u64>()),
    )
        .prop_map(|(requests, errors, latency_buckets)| VersionStats {
            requests,
            errors,
            latency_buckets,
        })
}

/// Counts of a plausible size, where the statistics are exercised rather than short-circuited.
fn small_stats() -> impl Strategy<Value = VersionStats> {
    (0u64..5000, proptest::array::uniform14(0u64..400)).prop_flat_map(
        |(requests, latency_buckets)| {
            (0..=requests).prop_map(move |errors| VersionStats {
                requests,
                errors,
                latency_buckets,
            })
        },
    )
}

fn every_test() -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        max_error_rate: Some(0.02),
        max_p99: Some(Duration::from_millis(300)),
        compare_to_baseline: true,
        min_requests: 100,
    }
}

fn is_probability(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}

proptest! {
    #[test]
    fn the_judge_never_panics_and_reports_probabilities(
        snapshots in proptest::collection::vec((any_stats(), any_stats()), 1..6),
    ) {
        let mut judge = Judge::new(every_test()).unwrap();
        for (c, b) in &snapshots {
            let v = judge.observe(c, b);
            prop_assert!(v.p_value.is_some_and(is_probability), "{:?}", v.p_value);
            prop_assert!(is_probability(v.canary_rate) && is_probability(v.baseline_rate));
            prop_assert!(!v.sentence.is_empty());
        }
    }

    #[test]
    fn p_values_never_rise_and_fail_is_final(
        snapshots in proptest::collection::vec((small_stats(), small_stats()), 1..8),
    ) {
        let mut judge = Judge::new(every_test()).unwrap();
        let (mut c, mut b) = (VersionStats::default(), VersionStats::default());
        let mut last_p = 1.0;
        let mut failed = false;
        for (dc, db) in &snapshots {
            // Cumulative snapshots from the generated batches.
            c.requests += dc.requests; c.errors += dc.errors;
            b.requests += db.requests; b.errors += db.errors;
            for i in 0..14 { c.latency_buckets[i] += dc.latency_buckets[i]; b.latency_buckets[i] += db.latency_buckets[i]; }
            let v = judge.observe(&c, &b);
            let p = v.p_value.unwrap();
            prop_assert!(p <= last_p + 1e-12, "{p} after {last_p}");
            prop_assert!(!failed || v.outcome == Outcome::Fail);
            failed |= v.outcome == Outcome::Fail;
            prop_assert_eq!(failed, p <= 0.01);
            last_p = p;
        }
    }

    #[test]
    fn the_error_test_takes_any_counts(
        batches in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()), 1..6),
    ) {
        let mut t = ErrorRateTest::new();
        for (cr, ce, br, be) in batches {
            t.observe(ErrorCounts { requests: cr, errors: ce }, ErrorCounts { requests: br, errors: be });
            prop_assert!(is_probability(t.p_value()));
            prop_assert!(t.e_value() >= 0.0);
        }
    }

    #[test]
    fn the_latency_test_takes_any_counts(
        batches in proptest::collection::vec((proptest::array::uniform14(any::<u64>()), proptest::array::uniform14(any::<u64>())), 1..4),
    ) {
        let mut t = LatencyTest::router();
        for (c, b) in batches {
            t.observe(&c, &b).unwrap();
            prop_assert!(is_probability(t.p_value()));
        }
    }

    /// For a fixed batch total, each error moved from the baseline to the
    /// canary is more evidence of harm (the conditional likelihood ratio is
    /// monotone in the canary's share).
    #[test]
    fn moving_an_error_to_the_canary_raises_evidence(
        cr in 1u64..2000, br in 1u64..2000, total in 1u64..60, share in 0.0f64..1.0,
    ) {
        let total = total.min(cr + br - 1);
        let x = ((share * total as f64) as u64).min(cr - 1).max(total.saturating_sub(br));
        prop_assume!(x < cr && total - x >= 1 && x < total.min(cr));
        let e = |x: u64| {
            let mut t = ErrorRateTest::new();
            t.observe(ErrorCounts { requests: cr, errors: x }, ErrorCounts { requests: br, errors: total - x });
            t.e_value()
        };
        prop_assert!(e(x + 1) >= e(x), "{} < {}", e(x + 1), e(x));
    }

    /// Swapping a fast canary request with a slow baseline request (same
    /// pooled histogram) never lowers the evidence that the canary is slower.
    #[test]
    fn a_slower_canary_histogram_is_more_evidence(
        base in proptest::array::uniform14(0u64..30), other in proptest::array::uniform14(0u64..30),
        i in 0usize..13, gap in 1usize..13,
    ) {
        let j = (i + gap).min(13);
        let (mut c, mut b) = (base, other);
        c[i] += 1;
        b[j] += 1;
        let e = |c: &[u64; 14], b: &[u64; 14]| {
            let mut t = LatencyTest::router();
            t.observe(c, b).unwrap();
            t.e_value()
        };
        let before = e(&c, &b);
        let (mut c2, mut b2) = (c, b);
        c2[i] -= 1; c2[j] += 1;
        b2[j] -= 1; b2[i] += 1;
        prop_assert!(e(&c2, &b2) >= before * (1.0 - 1e-9), "{} < {before}", e(&c2, &b2));
    }

    /// More canary errors at the same volume never make a threshold failure less likely.
    #[test]
    fn more_canary_errors_never_help_against_a_limit(requests in 1u64..20_000, errors in 0u64..1000) {
        let errors = errors.min(requests - 1);
        let config = JudgeConfig { compare_to_baseline: false, max_error_rate: Some(0.02), ..every_test() };
        let p = |errors: u64| {
            let mut judge = Judge::new(config.clone()).unwrap();
            judge.observe(&VersionStats { requests, errors, ..Default::default() }, &VersionStats::default()).p_value.unwrap()
        };
        prop_assert!(p(errors + 1) <= p(errors) + 1e-12);
    }
}
