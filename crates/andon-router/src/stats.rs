//! Per-version counters and latency histograms, rendered as `/stats` JSON and Prometheus text.
//!
//! Counters live in a registry keyed by (service, role name, artifact id), not in the route
//! table: a new table generation that keeps a version keeps its counters (the judge reads
//! cumulative counts), and a version dropped from the table stays visible while requests sent
//! to it drain, so the controller can wait for its `inflight` to reach 0.
//! Everything on the request path is a relaxed atomic: no lock, no allocation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Upper bounds of the latency buckets in microseconds; the 14th bucket is +Inf.
/// Shared with the judge: 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s, 2.5s, 5s, 10s.
const BOUNDS_MICROS: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
const BOUNDS_LABELS: [&str; 14] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf",
];
pub(crate) const BUCKETS: usize = 14;
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counters of traffic copied to a version by mirroring.
#[derive(Default)]
pub(crate) struct MirrorStats {
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) status_class_mismatch: AtomicU64,
    pub(crate) latency_slower: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// Live-traffic counters of one version.
pub(crate) struct VersionStats {
    service: String,
    name: String,
    version: String,
    requests: AtomicU64,
    classes: [AtomicU64; 5],
    errors: AtomicU64,
    retries: AtomicU64,
    /// Requests sent to this version whose response has not finished streaming.
    pub(crate) inflight: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
    pub(crate) mirror: MirrorStats,
}

impl VersionStats {
    fn new(service: &str, name: &str, version: &str) -> Self {
        VersionStats {
            service: service.to_owned(),
            name: name.to_owned(),
            version: version.to_owned(),
            requests: AtomicU64::new(0),
            classes: Default::default(),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
            mirror: MirrorStats::default(),
        }
    }

    /// Records one finished exchange. `error` is a 5xx or a failure to get an answer.
    pub(crate) fn record(&self, status: u16, latency: Duration) {
        self.requests.fetch_add(1, Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_index(micros)].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    fn to_json(&self) -> Value {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let codes: serde_json::Map<String, Value> = CLASSES
            .iter()
            .zip(&self.classes)
            .map(|(c, n)| ((*c).to_owned(), json!(n.load(Relaxed))))
            .collect();
        let m = &self.mirror;
        json!({
            "version": self.version,
            "requests": self.requests.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "retries": self.retries.load(Relaxed),
            "inflight": self.inflight.load(Relaxed),
            "codes": codes,
            "latency_buckets": buckets,
            "latency_sum_seconds": self.sum_micros.load(Relaxed) as f64 / 1e6,
            "mirror": {
                "requests": m.requests.load(Relaxed),
                "errors": m.errors.load(Relaxed),
                "status_class_mismatch": m.status_class_mismatch.load(Relaxed),
                "latency_slower": m.latency_slower.load(Relaxed),
                "dropped": m.dropped.load(Relaxed),
            },
        })
    }
}

/// Index of the first bucket whose upper bound is at least `micros`.
pub(crate) fn bucket_index(micros: u64) -> usize {
    BOUNDS_MICROS
        .iter()
        .position(|b| micros <= *b)
        .unwrap_or(BUCKETS - 1)
}

type Key = (String, String, String);

/// All version counters ever created (pruned of retired, drained ones on table changes).
#[derive(Default)]
pub(crate) struct Registry {
    map: Mutex<BTreeMap<Key, Arc<VersionStats>>>,
    /// Requests refused with 503 because `max_inflight` was reached.
    pub(crate) rejected: AtomicU64,
    /// Requests answered 404 because no route matched.
    pub(crate) unrouted: AtomicU64,
    /// Mirror copies not sent because too many were in flight.
    pub(crate) mirror_dropped: AtomicU64,
}

impl Registry {
    /// The counters of a version, created on first use. Called when compiling a table, never
    /// per request, so the lock is uncontended.
    pub(crate) fn get(&self, service: &str, name: &str, version: &str) -> Arc<VersionStats> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (service.to_owned(), name.to_owned(), version.to_owned());
        map.entry(key)
            .or_insert_with(|| Arc::new(VersionStats::new(service, name, version)))
            .clone()
    }

    /// Forgets versions that left the table and have nothing in flight.
    pub(crate) fn prune(&self, live: &[Arc<VersionStats>]) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| live.iter().any(|l| Arc::ptr_eq(l, s)) || s.inflight.load(Relaxed) > 0);
    }

    fn snapshot(&self) -> Vec<Arc<VersionStats>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// `/stats`: versions of the current table under `services.<service>.<name>`; versions no
    /// longer in the table but still counted (draining) under `retired`.
    pub(crate) fn to_json(&self, generation: u64, live: &[Arc<VersionStats>]) -> Value {
        let mut services = serde_json::Map::new();
        let mut retired = Vec::new();
        let mut inflight = 0;
        for s in self.snapshot() {
            inflight += s.inflight.load(Relaxed);
            if live.iter().any(|l| Arc::ptr_eq(l, &s)) {
                let entry = services
                    .entry(s.service.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(s.name.clone(), s.to_json());
                }
            } else {
                let mut v = s.to_json();
                if let Value::Object(m) = &mut v {
                    m.insert("service".into(), json!(s.service));
                    m.insert("name".into(), json!(s.name));
                }
                retired.push(v);
            }
        }
        json!({
            "generation": generation,
            "inflight": inflight,
            "rejected": self.rejected.load(Relaxed),
            "unrouted": self.unrouted.load(Relaxed),
            "mirror_dropped": self.mirror_dropped.load(Relaxed),
            "services": services,
            "retired": retired,
        })
    }

    /// Prometheus text exposition format 0.0.4.
    pub(crate) fn to_prometheus(&self, generation: u64) -> String {
        let all = self.snapshot();
        let mut out = String::with_capacity(4096 + all.len() * 4096);
        let labels: Vec<String> = all
            .iter()
            .map(|s| {
                format!(
                    "service=\"{}\",name=\"{}\",version=\"{}\"",
                    escape(&s.service),
                    escape(&s.name),
                    escape(&s.version)
                )
            })
            .collect();
        let mut family =
            |name: &str, kind: &str, help: &str, f: &dyn Fn(&mut String, &str, &VersionStats)| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (s, l) in all.iter().zip(&labels) {
                    f(&mut out, l, s);
                }
            };
        family(
            "andon_router_requests_total",
            "counter",
            "Requests proxied to a version, by status class.",
            &|o, l, s| {
                for (c, n) in CLASSES.iter().zip(&s.classes) {
                    let _ = writeln!(
                        o,
                        "andon_router_requests_total{{{l},code_class=\"{c}\"}} {}",
                        n.load(Relaxed)
                    );
                }
            },
        );
        type Family = (
            &'static str,
            &'static str,
            &'static str,
            fn(&VersionStats) -> u64,
        );
        let simple: [Family; 8] = [
            (
                "andon_router_errors_total",
                "counter",
                "Answers that were 5xx or failures to reach the version.",
                |s| s.errors.load(Relaxed),
            ),
            (
                "andon_router_retries_total",
                "counter",
                "Requests retried on another endpoint after a connection failure.",
                |s| s.retries.load(Relaxed),
            ),
            (
                "andon_router_inflight",
                "gauge",
                "Requests sent to a version whose response has not finished.",
                |s| s.inflight.load(Relaxed),
            ),
            (
                "andon_router_mirror_requests_total",
                "counter",
                "Copies of live requests sent to a version by mirroring.",
                |s| s.mirror.requests.load(Relaxed),
            ),
            (
                "andon_router_mirror_errors_total",
                "counter",
                "Mirror copies answered 5xx or failed.",
                |s| s.mirror.errors.load(Relaxed),
            ),
            (
                "andon_router_mirror_status_mismatch_total",
                "counter",
                "Mirror copies whose status class differed from the live answer.",
                |s| s.mirror.status_class_mismatch.load(Relaxed),
            ),
            (
                "andon_router_mirror_slower_total",
                "counter",
                "Mirror copies answered more slowly than the live request.",
                |s| s.mirror.latency_slower.load(Relaxed),
            ),
            (
                "andon_router_mirror_dropped_total",
                "counter",
                "Mirror copies not sent because too many were in flight.",
                |s| s.mirror.dropped.load(Relaxed),
            ),
        ];
        for (name, kind, help, get) in simple {
            family(name, kind, help, &|o, l, s| {
                let _ = writeln!(o, "{name}{{{l}}} {}", get(s));
            });
        }
        family(
            "andon_router_request_duration_seconds",
            "histogram",
            "Time from sending a request to a version to receiving its response headers.",
            &|o, l, s| {
                let mut cumulative = 0;
                for (b, le) in s.buckets.iter().zip(BOUNDS_LABELS) {
                    cumulative += b.load(Relaxed);
                    let _ = writeln!(
                        o,
                        "andon_router_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
                    );
                }
                let sum = s.sum_micros.load(Relaxed) as f64 / 1e6;
                let _ = writeln!(o, "andon_router_request_duration_seconds_sum{{{l}}} {sum}");
                let _ = writeln!(
                    o,
                    "andon_router_request_duration_seconds_count{{{l}}} {cumulative}"
                );
            },
        );
        let globals = [
            (
                "andon_router_rejected_total",
                "counter",
                "Requests refused with 503 because max_inflight was reached.",
                self.rejected.load(Relaxed),
            ),
            (
                "andon_router_unrouted_total",
                "counter",
                "Requests answered 404 because no route matched.",
                self.unrouted.load(Relaxed),
            ),
            (
                "andon_router_routes_generation",
                "gauge",
                "Generation of the route table being served.",
                generation,
            ),
        ];
        for (name, kind, help, v) in globals {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_inclusive_and_the_last_is_infinite() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1_000), 0);
        assert_eq!(bucket_index(1_001), 1);
        assert_eq!(bucket_index(10_000_000), 12);
        assert_eq!(bucket_index(10_000_001), 13);
        assert_eq!(BOUNDS_LABELS.len(), BUCKETS);
    }

    #[test]
    fn record_counts_classes_errors_and_latency() {
        let s = VersionStats::new("a/b", "stable", "sha256:1");
        s.record(200, Duration::from_millis(3));
        s.record(503, Duration::from_millis(30));
        let j = s.to_json();
        assert_eq!(j["requests"], 2);
        assert_eq!(j["errors"], 1);
        assert_eq!(j["codes"]["5xx"], 1);
        assert_eq!(j["latency_buckets"][2], 1);
        assert_eq!(j["latency_buckets"][5], 1);
    }

    #[test]
    fn prometheus_histogram_is_cumulative_and_labels_escaped() {
        let r = Registry::default();
        let s = r.get("a\"b", "stable", "v1");
        s.record(200, Duration::from_micros(500));
        s.record(200, Duration::from_secs(20));
        let text = r.to_prometheus(3);
        assert!(text.contains(r#"service="a\"b""#), "{text}");
        assert!(text.contains(r#"le="0.001"} 1"#), "{text}");
        assert!(text.contains(r#"le="10"} 1"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 2"#), "{text}");
        assert!(text.contains("andon_router_routes_generation 3"));
    }

    #[test]
    fn prune_keeps_live_and_draining_versions() {
        let r = Registry::default();
        let live = r.get("s", "stable", "v2");
        let draining = r.get("s", "stable", "v1");
        draining.inflight.store(1, Relaxed);
        let _gone = r.get("s", "canary", "v3");
        r.prune(std::slice::from_ref(&live));
        assert_eq!(r.snapshot().len(), 2);
        let j = r.to_json(1, std::slice::from_ref(&live));
        assert_eq!(j["retired"][0]["version"], "v1");
        assert_eq!(j["services"]["s"]["stable"]["version"], "v2");
    }
}
