//! Canary against baseline on latency: "is the canary slower?", from
//! histogram buckets only.

use crate::JudgeError;
use crate::math::log_sum_exp;
use crate::odds::OddsMixture;
use crate::stats::LATENCY_BUCKETS_S;

/// Anytime-valid one-sided test that the canary is slower than the baseline.
///
/// `H0`: at every bucket edge `e`, the canary's odds of a request slower
/// than `e` are at most `τ` times the baseline's (`τ = 1`: the canary is
/// stochastically no slower, `P(canary > e) ≤ P(baseline > e)` for all `e`).
/// `H1`: at some edge the canary is slower.
///
/// Method: every edge turns a histogram batch into a 2×2 table (slower than
/// `e` or not, canary or baseline), scored like [`crate::ErrorRateTest`]
/// (conditional odds-ratio mixture, exact under `H0` at that edge). The
/// edges' e-processes are then combined with predictable weights: each
/// batch's bet is split over the edges in proportion to their evidence so
/// far, among the edges that have ever seen requests on both sides
/// (before that batch). An edge no request has straddled can carry no
/// evidence, so it gets no share; the weights are fixed before the batch is
/// seen, so the product of the batch factors is still a supermartingale
/// under `H0` and Ville's inequality bounds false alarms by `α` at any
/// stopping time.
///
/// What the buckets allow: only differences that move requests across a
/// bucket edge are visible. A shift inside one bucket is invisible (e.g.
/// 30 ms to 31 ms falls inside the router's 25–50 ms bucket); the same shift
/// across an edge (25 ms to 26 ms) is seen well. For finer judgement give
/// finer bounds with [`LatencyTest::new`].
#[derive(Debug, Clone)]
pub struct LatencyTest {
    bounds: Vec<f64>,
    edges: Vec<Edge>,
    log_m: f64,
    max_log_m: f64,
}

#[derive(Debug, Clone)]
struct Edge {
    mixture: OddsMixture,
    seen_below: bool,
    seen_above: bool,
}

impl LatencyTest {
    /// On the router's buckets ([`LATENCY_BUCKETS_S`]), without tolerance.
    pub fn router() -> Self {
        Self::build(LATENCY_BUCKETS_S.to_vec(), 1.0)
    }

    /// On custom bucket upper bounds (any unit, strictly increasing; a final
    /// +Inf bucket is added when missing) with a tolerance `odds_ratio ≥ 1`
    /// (1 = none; 1.25 lets the canary's odds of being slower than an edge
    /// be 25% higher, in the spirit of Kayenta's effect-size tolerance).
    pub fn new(bounds: &[f64], odds_ratio: f64) -> Result<Self, JudgeError> {
        if !(odds_ratio.is_finite() && odds_ratio >= 1.0) {
            return Err(JudgeError::Tolerance(odds_ratio));
        }
        let mut b = bounds.to_vec();
        if b.last().is_none_or(|last| last.is_finite()) {
            b.push(f64::INFINITY);
        }
        if b.len() < 2 {
            return Err(JudgeError::Bounds(
                "at least one finite bound is needed".into(),
            ));
        }
        let finite = &b[..b.len() - 1];
        if let Some(bad) = finite.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(JudgeError::Bounds(format!(
                "{bad} is not a positive finite bound"
            )));
        }
        if let Some(w) = finite.windows(2).find(|w| w[0] >= w[1]) {
            return Err(JudgeError::Bounds(format!(
                "{} is not below {}",
                w[0], w[1]
            )));
        }
        Ok(Self::build(b, odds_ratio))
    }

    fn build(bounds: Vec<f64>, odds_ratio: f64) -> Self {
        let edges = (0..bounds.len() - 1)
            .map(|_| Edge {
                mixture: OddsMixture::new(odds_ratio),
                seen_below: false,
                seen_above: false,
            })
            .collect();
        Self {
            bounds,
            edges,
            log_m: 0.0,
            max_log_m: 0.0,
        }
    }

    /// The bucket upper bounds, ending with +Inf: one count per bucket is expected.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Feeds one batch: per-bucket counts (deltas, non-cumulative buckets).
    pub fn observe(&mut self, canary: &[u64], baseline: &[u64]) -> Result<(), JudgeError> {
        let expected = self.bounds.len();
        if canary.len() != expected || baseline.len() != expected {
            return Err(JudgeError::BucketCount {
                expected,
                canary: canary.len(),
                baseline: baseline.len(),
            });
        }
        let sum = |c: &[u64]| c.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let (n1, n2) = (sum(canary), sum(baseline));
        if n1 == 0 && n2 == 0 {
            return Ok(());
        }
        // Which edges get a share of this batch's bet: decided before
        // looking at the batch.
        let any_active = self.edges.iter().any(Edge::active);
        let share: Vec<bool> = self
            .edges
            .iter()
            .map(|e| !any_active || e.active())
            .collect();
        let before = self.shared_log_e(&share);
        // Requests slower than edge i: the buckets after i.
        let (mut above1, mut above2) = (n1, n2);
        for (i, edge) in self.edges.iter_mut().enumerate() {
            above1 = above1.saturating_sub(canary[i]);
            above2 = above2.saturating_sub(baseline[i]);
            edge.mixture
                .observe(above1, n1, n2, above1.saturating_add(above2));
            let below = n1.saturating_add(n2) - above1.saturating_add(above2);
            edge.seen_below |= below > 0;
            edge.seen_above |= above1 > 0 || above2 > 0;
        }
        let after = self.shared_log_e(&share);
        if after.is_finite() && before.is_finite() {
            self.log_m += after - before;
        }
        self.max_log_m = self.max_log_m.max(self.log_m);
        Ok(())
    }

    fn shared_log_e(&self, share: &[bool]) -> f64 {
        log_sum_exp(
            self.edges
                .iter()
                .zip(share)
                .filter(|(_, s)| **s)
                .map(|(e, _)| e.mixture.log_e()),
        )
    }

    /// The current e-value: evidence that the canary is slower.
    pub fn e_value(&self) -> f64 {
        self.log_m.exp()
    }

    pub(crate) fn log_e(&self) -> f64 {
        self.log_m
    }

    /// Anytime-valid p-value, `min(1, 1 / max e-value so far)`.
    pub fn p_value(&self) -> f64 {
        (-self.max_log_m).exp().min(1.0)
    }

    /// Whether the evidence has reached level `alpha` at some point.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.p_value() <= alpha
    }
}

impl Edge {
    /// Some request has been on each side of this edge.
    fn active(&self) -> bool {
        self.seen_below && self.seen_above
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(bucket_counts: &[(usize, u64)]) -> [u64; 14] {
        let mut h = [0; 14];
        for (i, c) in bucket_counts {
            h[*i] = *c;
        }
        h
    }

    #[test]
    fn a_slower_canary_is_rejected() {
        let mut t = LatencyTest::router();
        // Baseline mostly in 10-25 ms, canary mostly in 25-50 ms.
        for _ in 0..20 {
            t.observe(&hist(&[(4, 3), (5, 7)]), &hist(&[(4, 7), (5, 3)]))
                .unwrap();
        }
        assert!(t.rejects(0.01), "p = {}", t.p_value());
    }

    #[test]
    fn a_faster_canary_is_not() {
        let mut t = LatencyTest::router();
        for _ in 0..20 {
            t.observe(&hist(&[(4, 7), (5, 3)]), &hist(&[(4, 3), (5, 7)]))
                .unwrap();
        }
        assert!(t.p_value() > 0.5, "p = {}", t.p_value());
    }

    #[test]
    fn identical_histograms_give_no_evidence() {
        let mut t = LatencyTest::router();
        for _ in 0..100 {
            let h = hist(&[(3, 2), (4, 5), (5, 3), (8, 1)]);
            t.observe(&h, &h).unwrap();
        }
        assert!(t.p_value() > 0.1, "p = {}", t.p_value());
    }

    #[test]
    fn a_shift_inside_one_bucket_is_invisible() {
        let mut t = LatencyTest::router();
        // 30 ms and 31 ms both land in 25-50 ms.
        for _ in 0..100 {
            t.observe(&hist(&[(5, 10)]), &hist(&[(5, 10)])).unwrap();
        }
        assert_eq!(t.p_value(), 1.0);
    }

    #[test]
    fn custom_bounds_are_checked_and_completed() {
        let t = LatencyTest::new(&[1.0, 2.0], 1.0).unwrap();
        assert_eq!(t.bounds(), &[1.0, 2.0, f64::INFINITY]);
        assert!(LatencyTest::new(&[2.0, 1.0], 1.0).is_err());
        assert!(LatencyTest::new(&[], 1.0).is_err());
        assert!(LatencyTest::new(&[0.0, 1.0], 1.0).is_err());
        assert!(LatencyTest::new(&[1.0], 0.5).is_err());
        let mut t = LatencyTest::new(&[1.0, 2.0], 1.0).unwrap();
        assert!(t.observe(&[1, 2], &[1, 2, 3]).is_err());
    }
}
