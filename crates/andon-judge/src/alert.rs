//! Alert rules that keep watching an environment after its release is
//! done (`alerts:` in `andon.yaml`): a limit crossed for `for` fires, and a
//! fired alert resolves once the environment has been healthy for `for`.
//!
//! Unlike the judge, this is a threshold rule in the style of Prometheus'
//! `for:` clause, on a sliding window of the router's counters: there is no
//! baseline to compare with once a release is done, and an alert must
//! notice a version that *becomes* bad (a dependency failing, a leak), not
//! only one that was bad from the start. Three things keep it quiet when
//! it should be:
//! - the limit must be crossed at every check for the whole of `for`: one
//!   bad window resets nothing, but one good window resets the wait;
//! - a window with fewer than `min_requests` requests is no evidence at all;
//! - hysteresis: a fired alert resolves only below `limit × resolve_ratio`
//!   (for `for` as well), so a rate hovering at the limit cannot flap
//!   between fired and resolved.
//!
//! Pure: the caller passes the time and cumulative snapshots.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::JudgeError;
use crate::format;
use crate::stats::{LATENCY_BUCKETS_S, VersionStats, quantile};

/// What `alerts:` asks for, with the caller's choices of window and evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Fire when the error rate over the window is above this proportion.
    pub max_error_rate: Option<f64>,
    /// Fire when the p99 latency over the window is above this.
    pub max_p99: Option<Duration>,
    /// How long a limit must be crossed before firing, and how long the
    /// environment must be healthy before a fired alert resolves.
    pub for_: Duration,
    /// The span of traffic each check measures.
    pub window: Duration,
    /// Fewer requests than this in the window tell nothing either way.
    pub min_requests: u64,
    /// Healthy means at most `limit × resolve_ratio` (in (0, 1]).
    pub resolve_ratio: f64,
}

impl AlertConfig {
    /// A configuration with a window as long as `for` (at least 1 s, at
    /// most 1 min), 20 requests of evidence and resolution below 80% of a limit.
    pub fn new(max_error_rate: Option<f64>, max_p99: Option<Duration>, for_: Duration) -> Self {
        AlertConfig {
            max_error_rate,
            max_p99,
            for_,
            window: for_.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            min_requests: 20,
            resolve_ratio: 0.8,
        }
    }
}

/// Which limit an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertRule {
    /// `max_error_rate`.
    ErrorRate,
    /// `max_p99`.
    P99,
}

impl AlertRule {
    /// The name events carry: `max_error_rate` or `max_p99`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::ErrorRate => "max_error_rate",
            AlertRule::P99 => "max_p99",
        }
    }

    /// The inverse of [`AlertRule::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "max_error_rate" => Some(AlertRule::ErrorRate),
            "max_p99" => Some(AlertRule::P99),
            _ => None,
        }
    }
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// The limit was crossed for `for`.
    Fired { rule: AlertRule, sentence: String },
    /// Healthy again for `for`.
    Resolved { rule: AlertRule, sentence: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Ok,
    /// Crossed at every check since this time.
    Pending(u64),
    Firing,
    /// Healthy at every check since this time.
    Recovering(u64),
}

/// How one check read a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    /// Not enough requests in the window.
    Unknown,
    /// Above the limit.
    Bad(f64),
    /// At or below the limit, above the resolution level.
    Between(f64),
    /// At or below `limit × resolve_ratio`.
    Healthy(f64),
}

#[derive(Debug, Clone)]
struct RuleState {
    rule: AlertRule,
    limit: f64,
    phase: Phase,
}

/// Watches one environment's serving version; see the module docs.
#[derive(Debug, Clone)]
pub struct AlertMonitor {
    cfg: AlertConfig,
    /// (time ms, cumulative counters), oldest first; the first one is at or
    /// before the start of the window once the window is full.
    samples: VecDeque<(u64, VersionStats)>,
    rules: Vec<RuleState>,
}

impl AlertMonitor {
    /// Refuses a configuration without a limit, or with a limit or ratio
    /// that can never be judged.
    pub fn new(cfg: AlertConfig) -> Result<Self, JudgeError> {
        let mut rules = Vec::new();
        if let Some(r) = cfg.max_error_rate {
            if !(r > 0.0 && r < 1.0) {
                return Err(JudgeError::MaxErrorRate(r));
            }
            rules.push(RuleState {
                rule: AlertRule::ErrorRate,
                limit: r,
                phase: Phase::Ok,
            });
        }
        if let Some(p) = cfg.max_p99 {
            let s = p.as_secs_f64();
            let max_s = LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.len() - 2];
            if !(s >= LATENCY_BUCKETS_S[0] && s <= max_s) {
                return Err(JudgeError::MaxP99 {
                    got_ms: s * 1000.0,
                    min_ms: LATENCY_BUCKETS_S[0] * 1000.0,
                    max_s,
                });
            }
            rules.push(RuleState {
                rule: AlertRule::P99,
                limit: s,
                phase: Phase::Ok,
            });
        }
        if rules.is_empty() {
            return Err(JudgeError::NoAlertLimit);
        }
        if !(cfg.resolve_ratio > 0.0 && cfg.resolve_ratio <= 1.0) {
            return Err(JudgeError::ResolveRatio(cfg.resolve_ratio));
        }
        Ok(AlertMonitor {
            cfg,
            samples: VecDeque::new(),
            rules,
        })
    }

    /// The rules firing now.
    pub fn firing(&self) -> Vec<AlertRule> {
        self.rules
            .iter()
            .filter(|r| matches!(r.phase, Phase::Firing | Phase::Recovering(_)))
            .map(|r| r.rule)
            .collect()
    }

    /// Marks `rule` as firing without an event, e.g. when a restarted
    /// server finds in the log an alert that fired and never resolved.
    pub fn assume_firing(&mut self, rule: AlertRule) {
        for r in self.rules.iter_mut().filter(|r| r.rule == rule) {
            r.phase = Phase::Firing;
        }
    }

    /// Forgets the window (not the alerts): the counters fed next belong
    /// to another version, so a delta against the old ones means nothing.
    /// Pending alerts start waiting again.
    pub fn restart_window(&mut self) {
        self.samples.clear();
        for r in &mut self.rules {
            if matches!(r.phase, Phase::Pending(_)) {
                r.phase = Phase::Ok;
            }
        }
    }

    /// Feeds the version's cumulative counters at `now_ms` (non-decreasing)
    /// and returns what changed.
    pub fn observe(&mut self, now_ms: u64, cumulative: &VersionStats) -> Vec<AlertChange> {
        if let Some((_, last)) = self.samples.back()
            && went_down(last, cumulative)
        {
            // A counter went down: the router restarted. Start over.
            self.samples.clear();
        }
        self.samples.push_back((now_ms, *cumulative));
        let window_ms = u64::try_from(self.cfg.window.as_millis()).unwrap_or(u64::MAX);
        let start = now_ms.saturating_sub(window_ms);
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|(t, _)| *t <= start) {
            self.samples.pop_front();
        }
        let batch = match (self.samples.front(), self.samples.back()) {
            (Some((t0, first)), Some((t1, last))) if t1 > t0 => Some(last.since(first)),
            _ => None,
        };
        let for_ms = u64::try_from(self.cfg.for_.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let reading = self.read(self.rules[i].rule, self.rules[i].limit, batch.as_ref());
            let r = &mut self.rules[i];
            let (next, change) = step(r.phase, reading, now_ms, for_ms);
            r.phase = next;
            if let Some(fired) = change {
                let sentence = self.sentence(self.rules[i].rule, reading, batch.as_ref(), fired);
                let rule = self.rules[i].rule;
                out.push(if fired {
                    AlertChange::Fired { rule, sentence }
                } else {
                    AlertChange::Resolved { rule, sentence }
                });
            }
        }
        out
    }

    fn read(&self, rule: AlertRule, limit: f64, batch: Option<&VersionStats>) -> Reading {
        let Some(b) = batch.filter(|b| b.requests >= self.cfg.min_requests.max(1)) else {
            return Reading::Unknown;
        };
        let value = match rule {
            AlertRule::ErrorRate => b.error_rate(),
            AlertRule::P99 => match quantile(&LATENCY_BUCKETS_S, &b.latency_buckets, 0.99) {
                Some(v) => v,
                None => return Reading::Unknown,
            },
        };
        if value > limit {
            Reading::Bad(value)
        } else if value <= limit * self.cfg.resolve_ratio {
            Reading::Healthy(value)
        } else {
            Reading::Between(value)
        }
    }

    fn sentence(
        &self,
        rule: AlertRule,
        reading: Reading,
        batch: Option<&VersionStats>,
        fired: bool,
    ) -> String {
        let value = match reading {
            Reading::Bad(v) | Reading::Between(v) | Reading::Healthy(v) => v,
            Reading::Unknown => 0.0,
        };
        let limit = self
            .rules
            .iter()
            .find(|r| r.rule == rule)
            .map_or(0.0, |r| r.limit);
        let (what, value, limit) = match rule {
            AlertRule::ErrorRate => ("error rate", format::percent(value), format::percent(limit)),
            AlertRule::P99 => (
                "p99 latency",
                format::seconds(value),
                format::seconds(limit),
            ),
        };
        let requests = format::count(batch.map_or(0, |b| b.requests));
        let window = format::seconds(self.cfg.window.as_secs_f64());
        let for_ = format::seconds(self.cfg.for_.as_secs_f64());
        if fired {
            format!(
                "{what} {value} over the last {window} ({requests} requests), above the {limit} limit for {for_}"
            )
        } else {
            format!(
                "{what} back to {value} over the last {window} ({requests} requests), under the {limit} limit for {for_}"
            )
        }
    }
}

/// Whether any counter is lower than before (Prometheus' reset rule).
fn went_down(before: &VersionStats, now: &VersionStats) -> bool {
    now.requests < before.requests
        || now.errors < before.errors
        || now
            .latency_buckets
            .iter()
            .zip(&before.latency_buckets)
            .any(|(a, b)| a < b)
}

/// One rule's next phase, and `Some(true)` when it fires, `Some(false)`
/// when it resolves.
fn step(phase: Phase, reading: Reading, now: u64, for_ms: u64) -> (Phase, Option<bool>) {
    let waited = |since: u64| now.saturating_sub(since) >= for_ms;
    match (phase, reading) {
        (Phase::Ok, Reading::Bad(_)) if for_ms == 0 => (Phase::Firing, Some(true)),
        (Phase::Ok, Reading::Bad(_)) => (Phase::Pending(now), None),
        (Phase::Ok, _) => (Phase::Ok, None),
        (Phase::Pending(since), Reading::Bad(_)) if waited(since) => (Phase::Firing, Some(true)),
        (Phase::Pending(since), Reading::Bad(_)) => (Phase::Pending(since), None),
        // Crossing must be continuous: anything else starts the wait over.
        (Phase::Pending(_), _) => (Phase::Ok, None),
        (Phase::Firing, Reading::Healthy(_)) if for_ms == 0 => (Phase::Ok, Some(false)),
        (Phase::Firing, Reading::Healthy(_)) => (Phase::Recovering(now), None),
        (Phase::Firing, _) => (Phase::Firing, None),
        (Phase::Recovering(since), Reading::Healthy(_)) if waited(since) => {
            (Phase::Ok, Some(false))
        }
        // No traffic is no evidence either way: keep waiting.
        (Phase::Recovering(since), Reading::Healthy(_) | Reading::Unknown) => {
            (Phase::Recovering(since), None)
        }
        (Phase::Recovering(_), _) => (Phase::Firing, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cumulative counters fed every 100 ms with a given error rate and
    /// latency bucket per batch of 100 requests.
    struct Feed {
        now: u64,
        total: VersionStats,
    }

    impl Feed {
        fn new() -> Self {
            Feed {
                now: 0,
                total: VersionStats::default(),
            }
        }

        /// `ms` of traffic, `per_100ms` requests per tick, `errors` of them failing,
        /// each in latency bucket `bucket`.
        fn run(
            &mut self,
            m: &mut AlertMonitor,
            ms: u64,
            per_tick: u64,
            errors: u64,
            bucket: usize,
        ) -> Vec<AlertChange> {
            let mut out = Vec::new();
            for _ in 0..ms / 100 {
                self.now += 100;
                self.total.requests += per_tick;
                self.total.errors += errors;
                self.total.latency_buckets[bucket] += per_tick;
                out.extend(m.observe(self.now, &self.total));
            }
            out
        }
    }

    fn errors_monitor(for_s: u64) -> AlertMonitor {
        AlertMonitor::new(AlertConfig::new(
            Some(0.05),
            None,
            Duration::from_secs(for_s),
        ))
        .unwrap()
    }

    fn fired(c: &[AlertChange]) -> usize {
        c.iter()
            .filter(|c| matches!(c, AlertChange::Fired { .. }))
            .count()
    }

    fn resolved(c: &[AlertChange]) -> usize {
        c.iter()
            .filter(|c| matches!(c, AlertChange::Resolved { .. }))
            .count()
    }

    #[test]
    fn fires_only_after_the_limit_is_crossed_for_the_whole_duration() {
        let mut m = errors_monitor(2);
        let mut f = Feed::new();
        assert!(f.run(&mut m, 5_000, 10, 0, 3).is_empty(), "healthy");
        // 20% errors, but only for 1 s, then healthy: no alert.
        assert!(f.run(&mut m, 1_000, 10, 2, 3).is_empty());
        assert!(f.run(&mut m, 5_000, 10, 0, 3).is_empty());
        assert!(m.firing().is_empty());
        // 20% errors for long: fires once, after the window fills and `for` passes.
        let c = f.run(&mut m, 2_500, 10, 2, 3);
        assert!(c.is_empty(), "not before `for`: {c:?}");
        let c = f.run(&mut m, 3_000, 10, 2, 3);
        assert_eq!(fired(&c), 1, "{c:?}");
        assert_eq!(m.firing(), vec![AlertRule::ErrorRate]);
        let AlertChange::Fired { sentence, .. } = &c[0] else {
            panic!()
        };
        assert!(
            sentence.starts_with(
                "error rate 20% over the last 2 s (200 requests), above the 5% limit for 2 s"
            ),
            "{sentence}"
        );
        // Stays fired without repeating itself.
        assert_eq!(fired(&f.run(&mut m, 5_000, 10, 2, 3)), 0);
    }

    #[test]
    fn hysteresis_a_rate_hovering_at_the_limit_does_not_resolve() {
        let mut m = errors_monitor(1);
        let mut f = Feed::new();
        assert_eq!(fired(&f.run(&mut m, 4_000, 100, 10, 3)), 1);
        // 4.5%: under the 5% limit, above 80% of it: still firing.
        let c = f.run(&mut m, 10_000, 200, 9, 3);
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(m.firing(), vec![AlertRule::ErrorRate]);
        // 1%: healthy; resolves after `for` (and the window) of it.
        let c = f.run(&mut m, 4_000, 100, 1, 3);
        assert_eq!(resolved(&c), 1, "{c:?}");
        assert!(m.firing().is_empty());
        let AlertChange::Resolved { sentence, .. } = &c[0] else {
            panic!()
        };
        assert!(sentence.starts_with("error rate back to 1%"), "{sentence}");
    }

    #[test]
    fn too_few_requests_is_no_evidence() {
        let mut m = errors_monitor(1);
        let mut f = Feed::new();
        // 100% errors at 1 request per tick: 10 per 1 s window < 20.
        assert!(f.run(&mut m, 10_000, 1, 1, 3).is_empty());
        // Once fired, a quiet period does not resolve it.
        assert_eq!(fired(&f.run(&mut m, 3_000, 50, 50, 3)), 1);
        assert!(f.run(&mut m, 10_000, 0, 0, 3).is_empty());
        assert_eq!(m.firing(), vec![AlertRule::ErrorRate]);
    }

    #[test]
    fn p99_rule_fires_on_slow_answers() {
        let mut m = AlertMonitor::new(AlertConfig::new(
            None,
            Some(Duration::from_millis(300)),
            Duration::from_secs(1),
        ))
        .unwrap();
        let mut f = Feed::new();
        // Bucket 5 is 25-50 ms: fine.
        assert!(f.run(&mut m, 5_000, 50, 0, 5).is_empty());
        // Bucket 9 is 0.5-1 s: slow.
        let c = f.run(&mut m, 3_000, 50, 0, 9);
        assert_eq!(fired(&c), 1, "{c:?}");
        assert!(
            matches!(&c[0], AlertChange::Fired { rule: AlertRule::P99, sentence } if sentence.starts_with("p99 latency"))
        );
    }

    #[test]
    fn a_new_version_or_a_router_restart_does_not_look_like_a_burst() {
        let mut m = errors_monitor(1);
        let mut f = Feed::new();
        assert_eq!(fired(&f.run(&mut m, 4_000, 100, 50, 3)), 1);
        // Rolled back: the next counters are another version's, smaller.
        m.restart_window();
        f.total = VersionStats::default();
        let c = f.run(&mut m, 4_000, 100, 0, 3);
        assert_eq!(resolved(&c), 1, "{c:?}");
        // A router restart (counters drop) with healthy traffic: nothing fires.
        f.total = VersionStats::default();
        assert!(f.run(&mut m, 4_000, 100, 0, 3).is_empty());
    }

    #[test]
    fn assumed_alerts_resolve_when_healthy() {
        let mut m = errors_monitor(1);
        m.assume_firing(AlertRule::ErrorRate);
        m.assume_firing(AlertRule::P99); // not configured: ignored
        assert_eq!(m.firing(), vec![AlertRule::ErrorRate]);
        let mut f = Feed::new();
        assert_eq!(resolved(&f.run(&mut m, 3_000, 100, 0, 3)), 1);
    }

    #[test]
    fn configurations_that_cannot_be_judged_are_refused() {
        let no_limit = AlertConfig::new(None, None, Duration::from_secs(1));
        assert_eq!(
            AlertMonitor::new(no_limit).unwrap_err(),
            JudgeError::NoAlertLimit
        );
        let bad_rate = AlertConfig::new(Some(1.5), None, Duration::from_secs(1));
        assert!(AlertMonitor::new(bad_rate).is_err());
        let bad_p99 = AlertConfig::new(None, Some(Duration::from_secs(60)), Duration::from_secs(1));
        assert!(AlertMonitor::new(bad_p99).is_err());
        let mut ratio = AlertConfig::new(Some(0.1), None, Duration::from_secs(1));
        ratio.resolve_ratio = 0.0;
        assert!(AlertMonitor::new(ratio).is_err());
        assert_eq!(AlertRule::parse("max_p99"), Some(AlertRule::P99));
        assert_eq!(
            AlertRule::parse(AlertRule::ErrorRate.as_str()),
            Some(AlertRule::ErrorRate)
        );
    }
}
