//! Kayenta's latency benchmark (1000 pass cases N(25,1) vs N(25,1), 1000
//! fail cases N(26,1) vs N(25,1), ms, 60 samples each), bucketized: what the
//! router's buckets allow, and what finer buckets buy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

#[path = "support/sim.rs"]
mod sim;

use andon_judge::LATENCY_BUCKETS_S;
use rand::rngs::SmallRng;

#[test]
fn router_buckets_see_a_shift_across_an_edge() {
    // The router has an edge at 25 ms, right at the baseline's median.
    let (precision, recall) = sim::kayenta::<SmallRng>(&LATENCY_BUCKETS_S, 25.0, 0.02, 1.0, 60);
    println!("router buckets, mu 25: precision {precision:.3} recall {recall:.3}");
    assert!(precision >= 0.98, "{precision}");
    assert!(recall >= 0.4, "{recall}");
}

#[test]
fn router_buckets_are_blind_inside_a_bucket() {
    // 37 ms -> 38 ms stays inside 25-50 ms: no test on these buckets can see it.
    let (_, recall) = sim::kayenta::<SmallRng>(&LATENCY_BUCKETS_S, 37.0, 0.02, 1.0, 60);
    assert!(recall < 0.01, "{recall}");
}

#[test]
fn fine_buckets_see_a_one_ms_shift_anywhere() {
    let fine = sim::geometric_bounds(0.010, 1.02, 80);
    let (precision, recall) = sim::kayenta::<SmallRng>(&fine, 37.0, 0.02, 1.0, 60);
    println!("2% buckets, mu 37: precision {precision:.3} recall {recall:.3}");
    assert!(precision >= 0.98, "{precision}");
    assert!(recall >= 0.5, "{recall}");
}
