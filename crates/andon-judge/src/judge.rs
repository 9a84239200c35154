//! The judge: every test the release asked for, one verdict after every scrape.

use std::time::Duration;

use crate::bound::{self, Side};
use crate::stats::{LATENCY_BUCKETS_S, VersionStats, quantile};
use crate::{ErrorCounts, ErrorRateTest, JudgeError, LatencyTest, format};

/// How much slower the canary may be before the latency comparison looks for
/// harm: its odds of a request slower than any bucket edge may be 25% higher
/// than the baseline's. Latency differs between instances for reasons other
/// than the release (placement, noisy neighbours) and, with thousands of
/// requests, a test without tolerance would eventually flag a 2% slowdown.
/// Errors get no tolerance: more failed requests is harm.
const LATENCY_TOLERANCE: f64 = 1.25;

/// The p99 rule is about the share of requests slower than the limit.
const P99_TAIL: f64 = 0.01;

/// What the release asked the judge to check (`judge:` in `andon.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    /// Bound on the chance of failing a canary that is not worse, over the
    /// whole release however often the judge looks (0.01 by default).
    pub alpha: f64,
    /// Fail when the canary's error rate is confidently above this proportion.
    pub max_error_rate: Option<f64>,
    /// Fail when the canary's p99 latency is confidently above this.
    pub max_p99: Option<Duration>,
    /// Compare the canary with the baseline (errors and latency), sequentially.
    pub compare_to_baseline: bool,
    /// Requests the canary (and the baseline, when compared) must have served before a Pass.
    pub min_requests: u64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            max_error_rate: None,
            max_p99: None,
            compare_to_baseline: true,
            min_requests: 100,
        }
    }
}

/// The judge's answer after a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No evidence of harm, at least `min_requests` served, and every limit
    /// confidently met. Not final: more data may still fail the canary; the
    /// caller promotes when the step's time is up and the verdict is Pass.
    Pass,
    /// Evidence of harm at level `alpha`. Final: the judge keeps answering
    /// the verdict of the moment it failed.
    Fail,
    /// Not enough data either way yet.
    Pending,
}

/// Which check a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The canary's error rate against the baseline's.
    ErrorRateVsBaseline,
    /// The canary's latency against the baseline's.
    LatencyVsBaseline,
    /// The canary's error rate against `max_error_rate`.
    MaxErrorRate,
    /// The canary's p99 latency against `max_p99`.
    MaxP99,
}

/// A verdict with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Pass, fail or not yet.
    pub outcome: Outcome,
    /// One line a person can act on, e.g.
    /// "canary 4.8% errors vs baseline 1.1% over 2,310 requests; p < 0.01".
    pub sentence: String,
    /// Anytime-valid p-value of "the canary is harmful", over all tests
    /// (`None` when no test is configured). Fail exactly when `p ≤ alpha`.
    pub p_value: Option<f64>,
    /// Canary errors / requests since the judge started.
    pub canary_rate: f64,
    /// Baseline errors / requests since the judge started.
    pub baseline_rate: f64,
    /// Canary requests since the judge started.
    pub requests: u64,
    /// The rule that failed the canary (only for Fail).
    pub rule: Option<Rule>,
}

/// Where `max_p99` falls among the buckets.
#[derive(Debug, Clone, Copy)]
struct P99Rule {
    limit_s: f64,
    /// Bucket whose upper bound is the first at or above the limit: more
    /// than 1% of requests slower than it proves p99 > limit.
    fail_edge: usize,
    /// Bucket whose upper bound is the last at or below the limit: fewer
    /// than 1% slower than it proves p99 ≤ limit.
    pass_edge: usize,
}

impl P99Rule {
    fn new(limit: Duration) -> Result<Self, JudgeError> {
        let limit_s = limit.as_secs_f64();
        let finite = &LATENCY_BUCKETS_S[..LATENCY_BUCKETS_S.len() - 1];
        let fail_edge = finite.iter().position(|b| *b >= limit_s);
        let pass_edge = finite.iter().rposition(|b| *b <= limit_s);
        match (fail_edge, pass_edge) {
            (Some(fail_edge), Some(pass_edge)) => Ok(Self {
                limit_s,
                fail_edge,
                pass_edge,
            }),
            _ => Err(JudgeError::MaxP99 {
                got_ms: limit_s * 1000.0,
                min_ms: finite[0] * 1000.0,
                max_s: finite[finite.len() - 1],
            }),
        }
    }
}

/// Requests in the buckets after `edge`: slower than its bound.
fn slower_than(buckets: &[u64; 14], edge: usize) -> u64 {
    buckets[edge + 1..]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
}

fn served(buckets: &[u64; 14]) -> u64 {
    buckets.iter().fold(0u64, |a, b| a.saturating_add(*b))
}

/// Judges one canary against its baseline, continuously.
///
/// Each configured test keeps an e-process (evidence of harm that, for a
/// canary that is not worse, stays below `1/α` forever with chance at least
/// `1 - α`). Alpha is split Bonferroni-style over the `K` tests in use, in
/// its e-value form: the judge fails when the average of the `K` e-values
/// reaches `1/α`. That fails whenever any single test reaches `K/α` (the
/// classic split, `α/K` each) and sometimes earlier, and the average of
/// e-processes is itself one, so false alarms stay below `α` overall.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    p99: Option<P99Rule>,
    errors: Option<ErrorRateTest>,
    latency: Option<LatencyTest>,
    tests: usize,
    previous_canary: VersionStats,
    previous_baseline: VersionStats,
    canary: VersionStats,
    baseline: VersionStats,
    max_log_e: f64,
    failed: Option<Verdict>,
}

impl Judge {
    /// A judge for one release step (or one whole release); start it when the canary starts.
    pub fn new(config: JudgeConfig) -> Result<Self, JudgeError> {
        if !(config.alpha > 0.0 && config.alpha < 1.0) {
            return Err(JudgeError::Alpha(config.alpha));
        }
        if let Some(m) = config.max_error_rate
            && !(m > 0.0 && m < 1.0)
        {
            return Err(JudgeError::MaxErrorRate(m));
        }
        let p99 = config.max_p99.map(P99Rule::new).transpose()?;
        let (errors, latency) = if config.compare_to_baseline {
            let latency = LatencyTest::new(&LATENCY_BUCKETS_S, LATENCY_TOLERANCE)?;
            (Some(ErrorRateTest::new()), Some(latency))
        } else {
            (None, None)
        };
        let tests = 2 * usize::from(config.compare_to_baseline)
            + usize::from(config.max_error_rate.is_some())
            + usize::from(p99.is_some());
        Ok(Self {
            config,
            p99,
            errors,
            latency,
            tests,
            previous_canary: VersionStats::default(),
            previous_baseline: VersionStats::default(),
            canary: VersionStats::default(),
            baseline: VersionStats::default(),
            max_log_e: 0.0,
            failed: None,
        })
    }

    /// The configuration this judge applies.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// Feeds the latest cumulative snapshots of both versions and answers.
    /// Call it after every scrape; looking often costs no false alarms.
    pub fn observe(&mut self, canary: &VersionStats, baseline: &VersionStats) -> Verdict {
        let dc = canary.since(&self.previous_canary);
        let db = baseline.since(&self.previous_baseline);
        self.previous_canary = *canary;
        self.previous_baseline = *baseline;
        self.canary.add(&dc);
        self.baseline.add(&db);
        if let Some(v) = &self.failed {
            return v.clone();
        }
        if let Some(t) = &mut self.errors {
            t.observe(
                ErrorCounts {
                    requests: dc.requests,
                    errors: dc.errors,
                },
                ErrorCounts {
                    requests: db.requests,
                    errors: db.errors,
                },
            );
        }
        if let Some(t) = &mut self.latency {
            // Both arrays have the router's 14 buckets, as the test expects.
            let _ = t.observe(&dc.latency_buckets, &db.latency_buckets);
        }
        let evidence = self.evidence();
        let p_value = if evidence.is_empty() {
            None
        } else {
            let log_e = crate::math::log_sum_exp(evidence.iter().map(|(_, e)| *e))
                - (self.tests as f64).ln();
            self.max_log_e = self.max_log_e.max(log_e);
            Some((-self.max_log_e).exp().min(1.0))
        };
        if p_value.is_some_and(|p| p <= self.config.alpha) {
            let rule = evidence
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(r, _)| r)
                .unwrap_or(Rule::ErrorRateVsBaseline);
            let v = self.verdict(Outcome::Fail, self.fail_sentence(rule), p_value, Some(rule));
            self.failed = Some(v.clone());
            return v;
        }
        let (outcome, sentence) = self.pass_or_pending(p_value);
        self.verdict(outcome, sentence, p_value, None)
    }

    /// `ln` e-value of every test in use.
    fn evidence(&self) -> Vec<(Rule, f64)> {
        let mut out = Vec::with_capacity(4);
        if let Some(t) = &self.errors {
            out.push((Rule::ErrorRateVsBaseline, t.log_e()));
        }
        if let Some(t) = &self.latency {
            out.push((Rule::LatencyVsBaseline, t.log_e()));
        }
        if let Some(limit) = self.config.max_error_rate {
            let e = bound::log_e(self.canary.errors, self.canary.requests, limit, Side::Above);
            out.push((Rule::MaxErrorRate, e));
        }
        if let Some(rule) = &self.p99 {
            let b = &self.canary.latency_buckets;
            let e = bound::log_e(
                slower_than(b, rule.fail_edge),
                served(b),
                P99_TAIL,
                Side::Above,
            );
            out.push((Rule::MaxP99, e));
        }
        out
    }

    /// The level each test is held to on its own (for confidence bounds).
    fn alpha_per_test(&self) -> f64 {
        self.config.alpha / self.tests.max(1) as f64
    }

    fn verdict(
        &self,
        outcome: Outcome,
        sentence: String,
        p_value: Option<f64>,
        rule: Option<Rule>,
    ) -> Verdict {
        Verdict {
            outcome,
            sentence,
            p_value,
            canary_rate: self.canary.error_rate(),
            baseline_rate: self.baseline.error_rate(),
            requests: self.canary.requests,
            rule,
        }
    }

    /// "canary 4.8% errors vs baseline 1.1% over 2,310 requests".
    fn rates_clause(&self) -> String {
        let canary = format::percent(self.canary.error_rate());
        let requests = format::count(self.canary.requests);
        if self.config.compare_to_baseline {
            let baseline = format::percent(self.baseline.error_rate());
            format!("canary {canary} errors vs baseline {baseline} over {requests} requests")
        } else {
            format!("canary {canary} errors over {requests} requests")
        }
    }

    fn p99_of(stats: &VersionStats) -> Option<f64> {
        quantile(&LATENCY_BUCKETS_S, &stats.latency_buckets, 0.99)
    }

    fn fail_sentence(&self, rule: Rule) -> String {
        let alpha = format::probability(self.config.alpha);
        let requests = format::count(self.canary.requests);
        let ms = |s: Option<f64>| s.map_or_else(|| "?".to_string(), format::seconds);
        match rule {
            Rule::ErrorRateVsBaseline => format!("{}; p < {alpha}", self.rates_clause()),
            Rule::MaxErrorRate => format!(
                "canary {} errors over {requests} requests, above the {} limit (at least {}); p < {alpha}",
                format::percent(self.canary.error_rate()),
                format::percent(self.config.max_error_rate.unwrap_or(0.0)),
                format::percent(bound::lower(
                    self.canary.errors,
                    self.canary.requests,
                    self.alpha_per_test()
                )),
            ),
            Rule::LatencyVsBaseline => {
                let q = |s: &VersionStats, q| quantile(&LATENCY_BUCKETS_S, &s.latency_buckets, q);
                format!(
                    "canary slower than baseline: median {} vs {}, p99 {} vs {} over {requests} requests; p < {alpha}",
                    ms(q(&self.canary, 0.5)),
                    ms(q(&self.baseline, 0.5)),
                    ms(q(&self.canary, 0.99)),
                    ms(q(&self.baseline, 0.99)),
                )
            }
            Rule::MaxP99 => format!(
                "canary p99 {} over {requests} requests, above the {} limit; p < {alpha}",
                ms(Self::p99_of(&self.canary)),
                format::seconds(self.p99.map_or(0.0, |r| r.limit_s)),
            ),
        }
    }

    /// Pass needs every condition; Pending names the first one missing.
    fn pass_or_pending(&self, p_value: Option<f64>) -> (Outcome, String) {
        let alpha = self.alpha_per_test();
        let mut clauses = vec![self.rates_clause()];
        if let Some(p) = p_value {
            clauses.push(format!("no evidence of harm ({})", format::p_value(p)));
        }
        let mut waiting = Vec::new();
        let min = self.config.min_requests;
        if self.canary.requests < min {
            waiting.push(format!("waiting for {} requests", format::count(min)));
        } else if self.config.compare_to_baseline && self.baseline.requests < min {
            waiting.push(format!(
                "waiting for {} baseline requests",
                format::count(min)
            ));
        }
        if let Some(limit) = self.config.max_error_rate {
            let upper = bound::upper(self.canary.errors, self.canary.requests, alpha);
            let limit_s = format::percent(limit);
            if upper < limit {
                clauses.push(format!(
                    "errors below {limit_s} (at most {})",
                    format::percent(upper)
                ));
            } else {
                waiting.push(format!(
                    "errors not yet shown below {limit_s} (at most {})",
                    format::percent(upper)
                ));
            }
        }
        if let Some(rule) = &self.p99 {
            let b = &self.canary.latency_buckets;
            let e = bound::log_e(
                slower_than(b, rule.pass_edge),
                served(b),
                P99_TAIL,
                Side::Below,
            );
            let limit = format::seconds(rule.limit_s);
            let estimate = Self::p99_of(&self.canary)
                .map_or_else(String::new, |s| format!(" (about {})", format::seconds(s)));
            if e >= (1.0 / alpha).ln() {
                clauses.push(format!("p99 below {limit}{estimate}"));
            } else {
                waiting.push(format!("p99 not yet shown below {limit}{estimate}"));
            }
        }
        if waiting.is_empty() {
            (Outcome::Pass, clauses.join("; "))
        } else {
            clauses.truncate(2);
            clauses.extend(waiting);
            (Outcome::Pending, clauses.join("; "))
        }
    }
}
