//! Log-space numerics shared by the tests: log-factorials and log-sum-exp.
//!
//! Everything is in logs because likelihood ratios over thousands of requests
//! overflow `f64` long before they stop meaning something.

/// `ln(n!)` below this is summed exactly; above it Stirling's series is exact to `f64`.
const SMALL: f64 = 16.0;

/// Above 2^52 an `f64` no longer steps by one, so counting loops must not run there.
const EXACT_INTEGERS: f64 = 4_503_599_627_370_496.0;

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Stirling's correction terms of `ln Γ(z)` beyond `(z - 1/2) ln z - z + ln(2π)/2`.
fn stirling_tail(z: f64) -> f64 {
    let z2 = z * z;
    1.0 / (12.0 * z) - 1.0 / (360.0 * z * z2) + 1.0 / (1260.0 * z * z2 * z2)
}

/// `ln(n!)` for a non-negative integer-valued `n`.
pub(crate) fn ln_factorial(n: f64) -> f64 {
    if n < SMALL {
        let mut acc = 0.0;
        let mut i = 2.0;
        while i <= n {
            acc += f64::ln(i);
            i += 1.0;
        }
        acc
    } else {
        let z = n + 1.0;
        (z - 0.5) * z.ln() - z + HALF_LN_2PI + stirling_tail(z)
    }
}

/// `ln(a!) - ln(b!)` without the cancellation of subtracting two huge numbers:
/// with counts in the billions each log-factorial is ~1e10 and their
/// difference would keep only a few digits.
pub(crate) fn ln_factorial_diff(a: f64, b: f64) -> f64 {
    if a == b {
        return 0.0;
    }
    if a < b {
        return -ln_factorial_diff(b, a);
    }
    if a - b < SMALL && a < EXACT_INTEGERS {
        // A short product: exact.
        let mut acc = 0.0;
        let mut i = b + 1.0;
        while i <= a {
            acc += f64::ln(i);
            i += 1.0;
        }
        return acc;
    }
    if b < SMALL {
        // `ln(b!)` is small, so nothing cancels.
        return ln_factorial(a) - ln_factorial(b);
    }
    let (za, zb) = (a + 1.0, b + 1.0);
    let delta = a - b;
    (zb - 0.5) * (delta / zb).ln_1p() + delta * za.ln() - delta + stirling_tail(za)
        - stirling_tail(zb)
}

/// `ln Σ exp(xᵢ)`, `-∞` for an empty input.
pub(crate) fn log_sum_exp(xs: impl IntoIterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().into_iter().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.into_iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// `ln(1 + e^θ)`, stable at both ends.
pub(crate) fn softplus(theta: f64) -> f64 {
    if theta > 0.0 {
        theta + (-theta).exp().ln_1p()
    } else {
        theta.exp().ln_1p()
    }
}

/// `ln(p / (1 - p))`.
pub(crate) fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_ln_factorial(n: u64) -> f64 {
        (2..=n).map(|i| (i as f64).ln()).sum()
    }

    #[test]
    fn ln_factorial_matches_the_sum() {
        for n in [0u64, 1, 2, 5, 15, 16, 17, 50, 1000, 100_000] {
            let exact = naive_ln_factorial(n);
            let got = ln_factorial(n as f64);
            assert!(
                (got - exact).abs() < 1e-9 * exact.max(1.0),
                "n={n}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn ln_factorial_diff_matches_the_difference() {
        for (a, b) in [
            (20u64, 3u64),
            (1000, 990),
            (100_000, 50),
            (5000, 4000),
            (7, 30),
        ] {
            let exact = naive_ln_factorial(a) - naive_ln_factorial(b);
            let got = ln_factorial_diff(a as f64, b as f64);
            assert!(
                (got - exact).abs() < 1e-8 * exact.abs().max(1.0),
                "{a},{b}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn ln_factorial_diff_is_stable_for_huge_counts() {
        // ln((n+1)!/n!) = ln(n+1), which naive subtraction gets wrong at 1e12.
        let n = 1e12;
        assert!((ln_factorial_diff(n + 1.0, n) - (n + 1.0).ln()).abs() < 1e-9);
        let got = ln_factorial_diff(n + 100.0, n);
        let exact: f64 = (1..=100).map(|i| (n + i as f64).ln()).sum();
        assert!((got - exact).abs() < 1e-6, "{got} vs {exact}");
    }

    #[test]
    fn log_sum_exp_handles_empty_and_large() {
        assert_eq!(log_sum_exp(Vec::<f64>::new()), f64::NEG_INFINITY);
        let got = log_sum_exp(vec![1000.0, 1000.0]);
        assert!((got - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }

    #[test]
    fn softplus_is_stable() {
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((softplus(800.0) - 800.0).abs() < 1e-12);
        assert!(softplus(-800.0) >= 0.0);
    }
}
