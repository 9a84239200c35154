//! Why a judge or a test could not be built or fed.

/// A configuration or input the judge refuses, with what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    /// `alpha` is the bound on false rollbacks: a probability strictly between 0 and 1.
    #[error("alpha must be strictly between 0 and 1 (e.g. 0.01), got {0}")]
    Alpha(f64),
    /// `max_error_rate` is a proportion strictly between 0 and 1.
    #[error("max_error_rate must be strictly between 0% and 100% (e.g. 2%), got {0}")]
    MaxErrorRate(f64),
    /// With the router's buckets, a p99 limit outside them can never pass or never fail.
    #[error(
        "max_p99 must lie within the latency buckets ({min_ms} ms to {max_s} s) to be judged, got {got_ms} ms"
    )]
    MaxP99 {
        /// The limit given, in milliseconds.
        got_ms: f64,
        /// Smallest bucket bound, in milliseconds.
        min_ms: f64,
        /// Largest finite bucket bound, in seconds.
        max_s: f64,
    },
    /// `alerts:` needs `max_error_rate` or `max_p99` to watch anything.
    #[error("alerts need a limit: max_error_rate and/or max_p99")]
    NoAlertLimit,
    /// Hysteresis: a fired alert resolves below `limit × ratio`, a ratio in (0, 1].
    #[error("resolve_ratio must be in (0, 1], got {0}")]
    ResolveRatio(f64),
    /// A tolerance is an odds ratio of at least 1 (1 = no tolerance).
    #[error("tolerance must be a finite odds ratio >= 1 (1 = none, 1.25 = 25%), got {0}")]
    Tolerance(f64),
    /// Histogram bounds must be positive, finite except the last, and strictly increasing.
    #[error("latency bucket bounds must be positive and strictly increasing: {0}")]
    Bounds(String),
    /// Both histograms of a batch must have one count per bucket.
    #[error(
        "expected {expected} bucket counts, got {canary} for the canary and {baseline} for the baseline"
    )]
    BucketCount {
        /// Number of buckets of the test.
        expected: usize,
        /// Counts given for the canary.
        canary: usize,
        /// Counts given for the baseline.
        baseline: usize,
    },
}
