//! What the router reports per version, and the arithmetic on it: deltas
//! between cumulative snapshots and quantiles from a histogram.

/// Upper bounds in seconds of the router's latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// One version's counters as the router reports them.
///
/// The judge is given cumulative snapshots (since the version started);
/// its component tests are given deltas (one batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionStats {
    /// Requests answered.
    pub requests: u64,
    /// Of those, the ones that count as errors.
    pub errors: u64,
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS_S`].
    pub latency_buckets: [u64; 14],
}

impl VersionStats {
    /// The batch between two cumulative snapshots.
    ///
    /// A counter that went down means the router restarted and counts from
    /// zero again (Prometheus' reset rule), so the new snapshot is the batch.
    /// Errors are clamped to requests: a scrape can catch one counter updated
    /// and not the other.
    pub(crate) fn since(&self, previous: &VersionStats) -> VersionStats {
        let reset = self.requests < previous.requests
            || self.errors < previous.errors
            || self
                .latency_buckets
                .iter()
                .zip(&previous.latency_buckets)
                .any(|(a, b)| a < b);
        let mut d = if reset {
            *self
        } else {
            let mut buckets = [0u64; 14];
            for (slot, (a, b)) in buckets
                .iter_mut()
                .zip(self.latency_buckets.iter().zip(&previous.latency_buckets))
            {
                *slot = a - b;
            }
            VersionStats {
                requests: self.requests - previous.requests,
                errors: self.errors - previous.errors,
                latency_buckets: buckets,
            }
        };
        d.errors = d.errors.min(d.requests);
        d
    }

    /// Adds a batch to running totals, saturating.
    pub(crate) fn add(&mut self, batch: &VersionStats) {
        self.requests = self.requests.saturating_add(batch.requests);
        self.errors = self.errors.saturating_add(batch.errors);
        for (a, b) in self.latency_buckets.iter_mut().zip(&batch.latency_buckets) {
            *a = a.saturating_add(*b);
        }
    }

    /// Errors over requests, 0 without requests.
    pub(crate) fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The `q` quantile of a histogram, interpolated linearly inside its bucket
/// as Prometheus' `histogram_quantile` does (so it is only as precise as the
/// buckets). A quantile in the +Inf bucket is reported as the last finite
/// bound. `None` for an empty histogram.
pub(crate) fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: f64 = counts.iter().map(|c| *c as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut below = 0.0;
    let mut lower_bound = 0.0;
    for (bound, count) in bounds.iter().zip(counts) {
        let c = *count as f64;
        if below + c >= rank && c > 0.0 {
            if !bound.is_finite() {
                return Some(lower_bound);
            }
            return Some(
                lower_bound + (bound - lower_bound) * ((rank - below) / c).clamp(0.0, 1.0),
            );
        }
        below += c;
        lower_bound = *bound;
    }
    Some(lower_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, errors: u64, first_bucket: u64) -> VersionStats {
        let mut latency_buckets = [0; 14];
        latency_buckets[0] = first_bucket;
        VersionStats {
            requests,
            errors,
            latency_buckets,
        }
    }

    #[test]
    fn delta_subtracts_snapshots() {
        let d = stats(150, 7, 150).since(&stats(100, 5, 100));
        assert_eq!(d, stats(50, 2, 50));
    }

    #[test]
    fn a_counter_going_down_is_a_reset() {
        let d = stats(30, 1, 30).since(&stats(100, 5, 100));
        assert_eq!(d, stats(30, 1, 30));
    }

    #[test]
    fn errors_never_exceed_requests() {
        let d = stats(10, 12, 0).since(&VersionStats::default());
        assert_eq!(d.errors, 10);
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        let bounds = [1.0, 2.0, f64::INFINITY];
        assert_eq!(quantile(&bounds, &[0, 10, 0], 0.5), Some(1.5));
        assert_eq!(quantile(&bounds, &[10, 0, 0], 0.99), Some(0.99));
        assert_eq!(quantile(&bounds, &[0, 0, 5], 0.5), Some(2.0));
        assert_eq!(quantile(&bounds, &[0, 0, 0], 0.5), None);
    }
}
