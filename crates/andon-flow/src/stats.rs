//! The two summaries the metrics use, defined once so every key agrees.

/// The median: the middle value, or the mean of the two middle values for an
/// even count. `None` for no samples.
pub(crate) fn median(samples: &[i64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let hi = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        return Some(hi as f64);
    }
    let lo = *sorted.get(n / 2 - 1)?;
    Some((lo as f64 + hi as f64) / 2.0)
}

/// A percentile by the nearest-rank method: the smallest sample with at
/// least `pct` percent of the samples at or below it. No interpolation, so
/// the answer is always a value that was observed.
pub(crate) fn percentile(samples: &[i64], pct: u32) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // ceil(pct/100 * n), at least 1.
    let rank = (usize::try_from(pct).ok()?.saturating_mul(n))
        .div_ceil(100)
        .max(1);
    sorted.get(rank.min(n) - 1).map(|v| *v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5, 1, 3]), Some(3.0));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2.5));
    }

    #[test]
    fn p90_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 90), Some(9.0));
        assert_eq!(percentile(&[7], 90), Some(7.0));
        let v: Vec<i64> = (1..=11).collect();
        assert_eq!(percentile(&v, 90), Some(10.0));
        assert_eq!(percentile(&[], 90), None);
    }
}
