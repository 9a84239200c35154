//! Canary against baseline on error rates: "is the canary's error rate
//! higher than the baseline's?", answered continuously.

use crate::JudgeError;
use crate::odds::OddsMixture;

/// One batch of one version: requests and how many of them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorCounts {
    /// Requests in the batch.
    pub requests: u64,
    /// Errors among them (clamped to `requests`).
    pub errors: u64,
}

/// Anytime-valid one-sided test of `H0: odds(p_canary) ≤ τ · odds(p_baseline)`
/// against "the canary fails more often", with `τ ≥ 1` the tolerance
/// (`τ = 1`: `p_canary ≤ p_baseline`).
///
/// Method: a mixture sequential probability ratio test in the spirit of
/// Lindon, Sanden & Shirikian (KDD 2022). Each batch's canary errors are
/// scored conditionally on the batch's total errors, which removes the
/// unknown baseline rate exactly (no Poisson or normal approximation), and
/// the likelihood ratios are mixed over a grid of odds ratios. The result is
/// an e-process: [`ErrorRateTest::p_value`] is valid at every batch, however
/// often one looks, and a batch without errors simply carries no evidence.
///
/// The tolerance is relative (on the odds ratio) because an absolute
/// difference of rates would bring the baseline rate back as a nuisance.
#[derive(Debug, Clone)]
pub struct ErrorRateTest {
    mixture: OddsMixture,
    max_log_e: f64,
}

impl Default for ErrorRateTest {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorRateTest {
    /// No tolerance: any increase of the error rate is harm.
    pub fn new() -> Self {
        Self {
            mixture: OddsMixture::new(1.0),
            max_log_e: 0.0,
        }
    }

    /// Tolerates canary odds of error up to `odds_ratio` times the baseline's
    /// (1.25 lets the canary be 25% worse before the test looks for harm).
    pub fn with_tolerance(odds_ratio: f64) -> Result<Self, JudgeError> {
        if !(odds_ratio.is_finite() && odds_ratio >= 1.0) {
            return Err(JudgeError::Tolerance(odds_ratio));
        }
        Ok(Self {
            mixture: OddsMixture::new(odds_ratio),
            max_log_e: 0.0,
        })
    }

    /// Feeds one batch (deltas, not cumulative counts) of both versions.
    pub fn observe(&mut self, canary: ErrorCounts, baseline: ErrorCounts) {
        let (ce, be) = (
            canary.errors.min(canary.requests),
            baseline.errors.min(baseline.requests),
        );
        self.mixture.observe(
            ce,
            canary.requests,
            baseline.requests,
            ce.saturating_add(be),
        );
        self.max_log_e = self.max_log_e.max(self.mixture.log_e());
    }

    /// The current e-value: evidence of harm, 1 = none, `1/α` = enough.
    pub fn e_value(&self) -> f64 {
        self.mixture.log_e().exp()
    }

    pub(crate) fn log_e(&self) -> f64 {
        self.mixture.log_e()
    }

    /// Anytime-valid p-value, `min(1, 1 / max e-value so far)`: it only goes down.
    pub fn p_value(&self) -> f64 {
        (-self.max_log_e).exp().min(1.0)
    }

    /// Whether the evidence of harm has reached level `alpha` at some point.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.p_value() <= alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, errors: u64) -> ErrorCounts {
        ErrorCounts { requests, errors }
    }

    #[test]
    fn equal_rates_give_no_evidence() {
        let mut t = ErrorRateTest::new();
        for _ in 0..200 {
            t.observe(counts(100, 1), counts(100, 1));
        }
        assert!(!t.rejects(0.01), "p = {}", t.p_value());
    }

    #[test]
    fn a_fivefold_error_rate_is_rejected() {
        let mut t = ErrorRateTest::new();
        for _ in 0..30 {
            t.observe(counts(100, 5), counts(100, 1));
        }
        assert!(t.rejects(0.01), "p = {}", t.p_value());
    }

    #[test]
    fn a_better_canary_is_never_rejected() {
        let mut t = ErrorRateTest::new();
        for _ in 0..100 {
            t.observe(counts(100, 0), counts(100, 5));
        }
        assert_eq!(t.p_value(), 1.0);
    }

    #[test]
    fn a_tolerance_absorbs_small_increases() {
        let mut strict = ErrorRateTest::new();
        let mut tolerant = ErrorRateTest::with_tolerance(1.5).unwrap();
        for _ in 0..400 {
            strict.observe(counts(100, 12), counts(100, 10));
            tolerant.observe(counts(100, 12), counts(100, 10));
        }
        assert!(strict.rejects(0.01));
        assert!(!tolerant.rejects(0.01));
    }

    #[test]
    fn bad_tolerances_are_refused() {
        assert!(ErrorRateTest::with_tolerance(0.9).is_err());
        assert!(ErrorRateTest::with_tolerance(f64::NAN).is_err());
    }
}
