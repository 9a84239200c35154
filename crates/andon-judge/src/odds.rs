//! The two-sample engine: a mixture of conditional likelihood ratios on the
//! odds ratio of two proportions, one factor per batch.
//!
//! Why conditional: in one batch the canary has `n1` trials with `x` events
//! and the baseline `n2` trials with `k - x` events. Given the batch's total
//! `k`, `x` follows Fisher's noncentral hypergeometric law, whose only
//! parameter is the odds ratio `ψ = odds(p_canary) / odds(p_baseline)`: the
//! unknown baseline rate (the nuisance) drops out. So the product over batches
//! of `P_ψ1(x | k) / P_ψ0(x | k)` is a martingale of mean one when the odds
//! ratio is `ψ0`, whatever the baseline rate is and however it drifts between
//! batches, and a supermartingale when `ψ < ψ0` (the family is an exponential
//! family in `ln ψ`, so `E_ψ[LR] = Z(ψψ1/ψ0)Z(ψ0)/(Z(ψ)Z(ψ1)) ≤ 1` by the
//! convexity of `ln Z` whenever `ψ ≤ ψ0 < ψ1`). A fixed mixture over `ψ1 > ψ0`
//! is then an e-process and Ville's inequality bounds the chance that it ever
//! reaches `1/α` by `α`: the judge may look after every batch.
//!
//! Conditioning on the batch total costs almost nothing: at the null the
//! conditional Fisher information of `ln ψ` equals the unconditional one.

use crate::math::{ln_factorial_diff, log_sum_exp};

/// Alternatives the mixture bets on, as odds ratios relative to the null's `ψ0`.
///
/// Spaced roughly geometrically: a true ratio between two points loses little
/// evidence against the nearer one, and each extra point costs `ln(N)` nats
/// of evidence once. From "25% worse" (smaller effects are better left to a
/// tolerance) to "50× worse" (an outage).
pub(crate) const RATIOS: [f64; 9] = [1.25, 1.5, 2.0, 3.0, 4.5, 7.0, 10.0, 20.0, 50.0];

/// Batches with more possible outcomes than this sum the likelihood on a
/// stride instead of term by term, which keeps the cost bounded for any count.
const EXACT_SUPPORT: f64 = 2048.0;

/// Counts above this are not exact in an `f64`; such a batch is ignored.
const MAX_TRIALS: u64 = 1 << 52;

/// `ln P_ψ(X = x)` under Fisher's noncentral hypergeometric law, for each
/// `ln ψ` in `log_psis`, written to `out`. Returns `false` when the batch
/// carries no information (a single possible outcome).
fn log_pmfs(x: u64, n1: u64, n2: u64, k: u64, log_psis: &[f64], out: &mut [f64]) -> bool {
    if n1 == 0 || n2 == 0 || k == 0 || n1.saturating_add(n2) <= k {
        return false;
    }
    if n1 > MAX_TRIALS || n2 > MAX_TRIALS {
        return false;
    }
    let lo = k.saturating_sub(n2);
    let hi = k.min(n1);
    if lo >= hi || x < lo || x > hi {
        return false;
    }
    let (xf, n1f, n2f, kf, lof, hif) = (
        x as f64, n1 as f64, n2 as f64, k as f64, lo as f64, hi as f64,
    );
    if hif - lof <= EXACT_SUPPORT {
        exact(xf, n1f, n2f, kf, lof, hif, log_psis, out);
    } else {
        for (lp, o) in log_psis.iter().zip(out.iter_mut()) {
            *o = strided(xf, n1f, n2f, kf, lof, hif, *lp);
        }
    }
    out.iter().all(|v| v.is_finite())
}

/// `ln` of the ratio of consecutive terms, `term(y+1) / term(y)` at `ψ = 1`.
fn log_step(y: f64, n1: f64, n2: f64, k: f64) -> f64 {
    ((n1 - y) * (k - y) / ((y + 1.0) * (n2 - k + y + 1.0))).ln()
}

/// Small supports: the ψ-free part of every term once, then one
/// log-sum-exp per ψ.
#[allow(clippy::too_many_arguments)]
fn exact(x: f64, n1: f64, n2: f64, k: f64, lo: f64, hi: f64, log_psis: &[f64], out: &mut [f64]) {
    let len = (hi - lo) as usize + 1;
    let mut base = Vec::with_capacity(len);
    let mut acc = 0.0;
    base.push(acc);
    let mut y = lo;
    while y < hi {
        acc += log_step(y, n1, n2, k);
        base.push(acc);
        y += 1.0;
    }
    let ix = (x - lo) as usize;
    for (lp, o) in log_psis.iter().zip(out.iter_mut()) {
        let log_z = log_sum_exp(base.iter().enumerate().map(|(i, b)| b + i as f64 * lp));
        *o = base[ix] + ix as f64 * lp - log_z;
    }
}

/// `ln term(y) - ln term(m)` at `ln ψ = lp`, from log-factorial differences
/// so that it is exact at any distance from `m`.
fn relative(y: f64, m: f64, n1: f64, n2: f64, k: f64, lp: f64) -> f64 {
    -ln_factorial_diff(y, m)
        - ln_factorial_diff(n1 - y, n1 - m)
        - ln_factorial_diff(k - y, k - m)
        - ln_factorial_diff(n2 - k + y, n2 - k + m)
        + (y - m) * lp
}

/// Large supports: find the mode, then sum on a stride of about an eighth of
/// a standard deviation over ±12 of them (the terms are a smooth bell there,
/// so the trapezoid sum is accurate far beyond what the test needs).
fn strided(x: f64, n1: f64, n2: f64, k: f64, lo: f64, hi: f64, lp: f64) -> f64 {
    // The term ratio decreases in y, so the mode is where it drops below one.
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = (a + (b - a) / 2.0).floor();
        if lp + log_step(mid, n1, n2, k) < 0.0 {
            b = mid;
        } else {
            a = mid + 1.0;
        }
    }
    let m = a;
    let curvature =
        1.0 / (m + 0.5) + 1.0 / (n1 - m + 0.5) + 1.0 / (k - m + 0.5) + 1.0 / (n2 - k + m + 0.5);
    let sd = 1.0 / curvature.sqrt();
    let h = (sd / 8.0).floor().max(1.0);
    let steps = (12.0 * sd / h).ceil().min(1.0e4);
    let mut terms = vec![0.0];
    for dir in [-1.0, 1.0] {
        let mut i = 1.0;
        while i <= steps {
            let y = m + dir * i * h;
            if y < lo || y > hi {
                break;
            }
            let r = relative(y, m, n1, n2, k, lp);
            terms.push(r + h.ln());
            if r < -60.0 {
                break;
            }
            i += 1.0;
        }
    }
    // The mode's own term also stands for h integers.
    terms[0] = h.ln();
    relative(x, m, n1, n2, k, lp) - log_sum_exp(terms.iter().copied())
}

/// A fixed mixture over [`RATIOS`] of products of conditional likelihood
/// ratios: the e-process of "the canary's odds of an event are more than
/// `ψ0` times the baseline's".
#[derive(Debug, Clone)]
pub(crate) struct OddsMixture {
    log_psi0: f64,
    /// Cumulative log likelihood ratio of each alternative against `ψ0`.
    cum: [f64; RATIOS.len()],
    /// `ln` of the mixture, kept because it is read far more often than it changes.
    log_e: f64,
}

impl OddsMixture {
    /// `psi0` is the null's odds ratio: 1 for "not worse", above 1 for a tolerance.
    pub(crate) fn new(psi0: f64) -> Self {
        Self {
            log_psi0: psi0.ln(),
            cum: [0.0; RATIOS.len()],
            log_e: 0.0,
        }
    }

    /// One batch: `x` of the canary's `n1` trials and `k - x` of the
    /// baseline's `n2` trials were events. Counts are clamped to be
    /// consistent; a batch with a single possible outcome changes nothing.
    pub(crate) fn observe(&mut self, x: u64, n1: u64, n2: u64, k: u64) {
        let x = x.min(n1);
        let k = k.max(x).min(x.saturating_add(n2));
        let mut log_psis = [0.0; RATIOS.len() + 1];
        log_psis[0] = self.log_psi0;
        for (slot, r) in log_psis[1..].iter_mut().zip(RATIOS) {
            *slot = self.log_psi0 + r.ln();
        }
        let mut out = [0.0; RATIOS.len() + 1];
        if !log_pmfs(x, n1, n2, k, &log_psis, &mut out) {
            return;
        }
        for (c, l) in self.cum.iter_mut().zip(&out[1..]) {
            *c += l - out[0];
        }
        self.log_e = log_sum_exp(self.cum.iter().copied()) - (RATIOS.len() as f64).ln();
    }

    /// `ln` of the current e-value (uniform weights over [`RATIOS`]).
    pub(crate) fn log_e(&self) -> f64 {
        self.log_e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ln_choose(n: u64, k: u64) -> f64 {
        crate::math::ln_factorial(n as f64)
            - crate::math::ln_factorial(k as f64)
            - crate::math::ln_factorial((n - k) as f64)
    }

    /// The textbook definition, term by term.
    fn naive_log_pmf(x: u64, n1: u64, n2: u64, k: u64, lp: f64) -> f64 {
        let lo = k.saturating_sub(n2);
        let hi = k.min(n1);
        let term = |y: u64| ln_choose(n1, y) + ln_choose(n2, k - y) + y as f64 * lp;
        term(x) - log_sum_exp((lo..=hi).map(term))
    }

    #[test]
    fn exact_path_matches_the_definition() {
        for (x, n1, n2, k) in [(3, 10, 12, 5), (0, 5, 5, 1), (5, 5, 5, 6), (40, 60, 60, 80)] {
            for lp in [0.0, 1.5f64.ln(), 5f64.ln(), -0.7] {
                let mut out = [0.0];
                assert!(log_pmfs(x, n1, n2, k, &[lp], &mut out));
                let want = naive_log_pmf(x, n1, n2, k, lp);
                assert!(
                    (out[0] - want).abs() < 1e-9,
                    "{x},{n1},{n2},{k},{lp}: {} vs {want}",
                    out[0]
                );
            }
        }
    }

    #[test]
    fn strided_path_matches_the_exact_one() {
        // Force both paths on the same large batch.
        let (n1, n2, k) = (20_000.0, 30_000.0, 10_000.0);
        let (lo, hi) = (0.0, 10_000.0);
        for x in [3_900.0, 4_000.0, 4_300.0] {
            for lp in [0.0, 0.3, 2.0] {
                let mut out = [0.0];
                exact(x, n1, n2, k, lo, hi, &[lp], &mut out);
                let approx = strided(x, n1, n2, k, lo, hi, lp);
                assert!(
                    (approx - out[0]).abs() < 1e-6,
                    "x={x} lp={lp}: {approx} vs {}",
                    out[0]
                );
            }
        }
    }

    #[test]
    fn uninformative_batches_change_nothing() {
        let mut m = OddsMixture::new(1.0);
        m.observe(0, 100, 100, 0); // no events
        m.observe(5, 5, 7, 12); // every trial an event
        m.observe(3, 0, 10, 3); // no canary trials: clamped, single outcome
        m.observe(0, 10, 0, 0); // no baseline trials
        assert!(m.log_e().abs() < 1e-12);
    }

    #[test]
    fn canary_events_raise_evidence_and_baseline_events_lower_it() {
        let mut worse = OddsMixture::new(1.0);
        let mut better = OddsMixture::new(1.0);
        for _ in 0..20 {
            worse.observe(1, 10, 10, 1);
            better.observe(0, 10, 10, 1);
        }
        assert!(worse.log_e() > 5.0, "{}", worse.log_e());
        assert!(better.log_e() < 0.0);
    }

    #[test]
    fn the_likelihood_ratio_has_mean_one_at_the_null() {
        // E_ψ0[P_ψ1(X)/P_ψ0(X)] = Σ P_ψ1(x) = 1 for a batch.
        let (n1, n2, k) = (7u64, 9u64, 5u64);
        let lo = k.saturating_sub(n2);
        let hi = k.min(n1);
        let mut total = 0.0;
        for x in lo..=hi {
            let mut out = [0.0, 0.0];
            assert!(log_pmfs(x, n1, n2, k, &[0.0, 3f64.ln()], &mut out));
            total += out[0].exp() * (out[1] - out[0]).exp();
        }
        assert!((total - 1.0).abs() < 1e-12);
    }
}
