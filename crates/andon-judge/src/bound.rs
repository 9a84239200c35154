//! The one-sample engine: anytime-valid tests and confidence bounds for a
//! single proportion (the canary's error rate, or the share of its requests
//! slower than a latency edge), used by the threshold rules.
//!
//! For `H0: p ≤ p0` the likelihood ratio of any `p1 > p0`,
//! `(p1/p0)^x ((1-p1)/(1-p0))^(n-x)`, is a supermartingale under every
//! `p ≤ p0` (its mean per trial is at most one there), and so is a fixed
//! mixture of them: reaching `1/α` ever has chance at most `α` (Ville). The
//! mirror image tests `H0: p ≥ p0`. Both depend on the data only through the
//! cumulative `(x, n)`, so they cost nothing to keep.
//!
//! Inverting them gives a confidence sequence: the lower bound is the largest
//! `p0` that the "above" test still rejects. The log-ratio of each
//! alternative decreases in `p0`, so the rejected set is an interval and
//! "lower bound above the limit" is the same event as "the test at the limit
//! rejects".

use crate::math::{log_sum_exp, logit, softplus};
use crate::odds::RATIOS;

/// Which side of `p0` the alternatives lie on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `H0: p ≤ p0` against `p > p0`.
    Above,
    /// `H0: p ≥ p0` against `p < p0`.
    Below,
}

/// `ln` of the mixture e-value for `x` events in `n` trials against the
/// null edge `p0` (strictly between 0 and 1).
pub(crate) fn log_e(x: u64, n: u64, p0: f64, side: Side) -> f64 {
    log_e_logit(x.min(n) as f64, n as f64, logit(p0), side)
}

fn log_e_logit(x: f64, n: f64, theta0: f64, side: Side) -> f64 {
    let sign = match side {
        Side::Above => 1.0,
        Side::Below => -1.0,
    };
    let a0 = softplus(theta0);
    let terms = RATIOS.map(|r| {
        let d = sign * r.ln();
        x * d - n * (softplus(theta0 + d) - a0)
    });
    let v = log_sum_exp(terms) - (RATIOS.len() as f64).ln();
    if v.is_nan() { 0.0 } else { v }
}

/// Anytime-valid lower confidence bound of the proportion at level `1 - alpha`.
pub(crate) fn lower(x: u64, n: u64, alpha: f64) -> f64 {
    if x == 0 || n == 0 {
        return 0.0;
    }
    invert(x.min(n) as f64, n as f64, alpha, Side::Above)
}

/// Anytime-valid upper confidence bound of the proportion at level `1 - alpha`.
pub(crate) fn upper(x: u64, n: u64, alpha: f64) -> f64 {
    if n == 0 || x >= n {
        return 1.0;
    }
    invert(x as f64, n as f64, alpha, Side::Below)
}

/// The edge of the rejected interval, in logit space, between the point
/// estimate and the far end. The evidence is smooth and monotone in the
/// logit, so regula falsi (Illinois variant) needs about ten evaluations
/// where bisection needs forty; it is bracketed, so it cannot diverge.
fn invert(x: f64, n: f64, alpha: f64, side: Side) -> f64 {
    let threshold = (1.0 / alpha).ln();
    let f = |theta: f64| log_e_logit(x, n, theta, side) - threshold;
    let estimate = logit((x / n).clamp(1e-12, 1.0 - 1e-12)).clamp(-40.0, 40.0);
    // `rejected` is the bracket end where f >= 0, `kept` where f < 0.
    let (rejected, kept) = match side {
        Side::Above => (-40.0, estimate),
        Side::Below => (40.0, estimate),
    };
    let (mut r, mut fr) = (rejected, f(rejected));
    if fr < 0.0 {
        // Not even the far end is rejected: the trivial bound.
        return if side == Side::Above { 0.0 } else { 1.0 };
    }
    let (mut k, mut fk) = (kept, f(kept));
    if fk >= 0.0 {
        return sigmoid(kept);
    }
    let mut last_side = 0i8;
    for _ in 0..100 {
        if (r - k).abs() < 1e-10 {
            break;
        }
        let mut mid = r - fr * (k - r) / (fk - fr);
        if !mid.is_finite() || (mid - r) * (mid - k) > 0.0 {
            mid = 0.5 * (r + k);
        }
        let fm = f(mid);
        if fm >= 0.0 {
            r = mid;
            fr = fm;
            if last_side == 1 {
                fk *= 0.5;
            }
            last_side = 1;
        } else {
            k = mid;
            fk = fm;
            if last_side == -1 {
                fr *= 0.5;
            }
            last_side = -1;
        }
    }
    sigmoid(r)
}

fn sigmoid(theta: f64) -> f64 {
    1.0 / (1.0 + (-theta).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_excess_rejects_and_fits_the_bounds() {
        // 50 errors in 1000 against a 2% limit.
        assert!(log_e(50, 1000, 0.02, Side::Above) > (1.0f64 / 0.01).ln());
        let lo = lower(50, 1000, 0.01);
        let hi = upper(50, 1000, 0.01);
        assert!(lo > 0.02 && lo < 0.05, "{lo}");
        assert!(hi > 0.05 && hi < 0.1, "{hi}");
    }

    #[test]
    fn the_lower_bound_crosses_the_limit_exactly_when_the_test_rejects() {
        let alpha: f64 = 0.01;
        for x in 0..80 {
            let rejects = log_e(x, 1000, 0.03, Side::Above) >= (1.0 / alpha).ln();
            let lb = lower(x, 1000, alpha);
            if (lb - 0.03).abs() > 1e-9 {
                assert_eq!(rejects, lb > 0.03, "x={x} lb={lb}");
            }
        }
    }

    #[test]
    fn no_data_gives_the_trivial_bounds() {
        assert_eq!(lower(0, 0, 0.01), 0.0);
        assert_eq!(upper(0, 0, 0.01), 1.0);
        assert_eq!(log_e(0, 0, 0.5, Side::Above), 0.0);
    }

    #[test]
    fn zero_events_shrink_the_upper_bound() {
        let a = upper(0, 100, 0.01);
        let b = upper(0, 10_000, 0.01);
        assert!(b < a && b < 0.002, "{a} {b}");
    }
}
