//! The router's admin API, over HTTP: the only way the controller talks to
//! the data plane, so that the router can be its own process and keep
//! serving while the controller restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use andon_judge::VersionStats;
use andon_router::RouteTable;
use serde::Deserialize;

use crate::error::DeployError;

/// Longest wait for one admin call: the router answers from memory (and an
/// fsync for `PUT /routes`), so a slow answer means it is in trouble.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct RouterApi {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Why a table was not installed.
pub(crate) enum PutError {
    /// The router already has a newer generation (another writer, or a
    /// router restored from a backup): reload it and try again above it.
    Stale,
    Other(DeployError),
}

/// Counters of one version (role) as `/stats` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) version: String,
    pub(crate) stats: VersionStats,
    pub(crate) inflight: u64,
}

/// One `/stats` answer: live versions by (service, role name), and retired
/// versions still counted because requests sent to them have not finished.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    live: BTreeMap<(String, String), Counters>,
    retired: Vec<(String, String, Counters)>,
}

impl Stats {
    /// Adds one endpoint's counters to a live role (another traffic driver
    /// reports per endpoint; the judge reads per role).
    pub(crate) fn add_live(&mut self, service: &str, role: &str, version: &str, c: &Counters) {
        let sum = self
            .live
            .entry((service.to_string(), role.to_string()))
            .or_default();
        sum.version = version.to_string();
        add(sum, c);
    }

    /// Adds one draining endpoint's counters to a retired role.
    pub(crate) fn add_retired(&mut self, service: &str, role: &str, version: &str, c: &Counters) {
        let found = self
            .retired
            .iter_mut()
            .find(|(s, r, x)| s == service && r == role && x.version == version);
        match found {
            Some((_, _, sum)) => add(sum, c),
            None => {
                let mut sum = Counters {
                    version: version.to_string(),
                    ..Counters::default()
                };
                add(&mut sum, c);
                self.retired
                    .push((service.to_string(), role.to_string(), sum));
            }
        }
    }

    pub(crate) fn live(&self, service: &str, role: &str) -> Option<&Counters> {
        self.live.get(&(service.to_string(), role.to_string()))
    }

    /// Requests in flight to `role` running `version`, live or retired.
    pub(crate) fn inflight(&self, service: &str, role: &str, version: &str) -> u64 {
        let live = self
            .live(service, role)
            .filter(|c| c.version == version)
            .map_or(0, |c| c.inflight);
        let retired: u64 = self
            .retired
            .iter()
            .filter(|(s, r, c)| s == service && r == role && c.version == version)
            .map(|(_, _, c)| c.inflight)
            .sum();
        live + retired
    }

    /// Whether `role` with `version` is still in the router's current table.
    pub(crate) fn is_live(&self, service: &str, role: &str, version: &str) -> bool {
        self.live(service, role)
            .is_some_and(|c| c.version == version)
    }
}

#[derive(Deserialize)]
struct VersionWire {
    #[serde(default)]
    version: String,
    #[serde(default)]
    requests: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    inflight: u64,
    #[serde(default)]
    latency_buckets: Vec<u64>,
}

#[derive(Deserialize)]
struct RetiredWire {
    #[serde(default)]
    service: String,
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    counters: VersionWire,
}

#[derive(Deserialize)]
struct StatsWire {
    #[serde(default)]
    services: BTreeMap<String, BTreeMap<String, VersionWire>>,
    #[serde(default)]
    retired: Vec<RetiredWire>,
}

impl From<VersionWire> for Counters {
    fn from(w: VersionWire) -> Self {
        let mut buckets = [0u64; 14];
        for (slot, n) in buckets.iter_mut().zip(w.latency_buckets) {
            *slot = n;
        }
        Counters {
            version: w.version,
            stats: VersionStats {
                requests: w.requests,
                errors: w.errors,
                latency_buckets: buckets,
            },
            inflight: w.inflight,
        }
    }
}

impl RouterApi {
    pub(crate) fn new(http: reqwest::Client, base: &str, token: Option<String>) -> Self {
        RouterApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn err(&self, path: &str, message: impl std::fmt::Display) -> DeployError {
        DeployError::Router {
            url: format!("{}{path}", self.base),
            message: message.to_string(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub(crate) async fn get_routes(&self) -> Result<RouteTable, DeployError> {
        let resp = self
            .request(reqwest::Method::GET, "/routes")
            .send()
            .await
            .map_err(|e| self.err("/routes", e))?;
        if !resp.status().is_success() {
            return Err(self.err("/routes", format!("answered {}", resp.status())));
        }
        resp.json().await.map_err(|e| self.err("/routes", e))
    }

    pub(crate) async fn put_routes(&self, table: &RouteTable) -> Result<(), PutError> {
        let resp = self
            .request(reqwest::Method::PUT, "/routes")
            .json(table)
            .send()
            .await
            .map_err(|e| PutError::Other(self.err("/routes", e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT && body.contains("stale_generation") {
            return Err(PutError::Stale);
        }
        Err(PutError::Other(self.err(
            "/routes",
            format!(
                "answered {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        )))
    }

    pub(crate) async fn stats(&self) -> Result<Stats, DeployError> {
        let resp = self
            .request(reqwest::Method::GET, "/stats")
            .send()
            .await
            .map_err(|e| self.err("/stats", e))?;
        if !resp.status().is_success() {
            return Err(self.err("/stats", format!("answered {}", resp.status())));
        }
        let wire: StatsWire = resp.json().await.map_err(|e| self.err("/stats", e))?;
        Ok(parse(wire))
    }
}

fn add(sum: &mut Counters, c: &Counters) {
    sum.stats.requests += c.stats.requests;
    sum.stats.errors += c.stats.errors;
    for (a, b) in sum
        .stats
        .latency_buckets
        .iter_mut()
        .zip(c.stats.latency_buckets)
    {
        *a += b;
    }
    sum.inflight += c.inflight;
}

fn parse(wire: StatsWire) -> Stats {
    let mut stats = Stats::default();
    for (service, roles) in wire.services {
        for (role, counters) in roles {
            stats.live.insert((service.clone(), role), counters.into());
        }
    }
    for r in wire.retired {
        stats.retired.push((r.service, r.name, r.counters.into()));
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_answer_is_read_with_retired_inflight() {
        let wire: StatsWire = serde_json::from_str(
            r#"{"generation":3,"inflight":2,"services":{"p/production":{
                "stable":{"version":"sha256:a","requests":10,"errors":1,"inflight":1,
                          "latency_buckets":[1,2,3,4,0,0,0,0,0,0,0,0,0,0],"codes":{}}}},
                "retired":[{"service":"p/production","name":"canary","version":"sha256:b","requests":5,
                            "errors":0,"inflight":1,"latency_buckets":[]}]}"#,
        )
        .unwrap();
        let s = parse(wire);
        let stable = s.live("p/production", "stable").unwrap();
        assert_eq!(stable.stats.requests, 10);
        assert_eq!(stable.stats.latency_buckets[3], 4);
        assert_eq!(s.inflight("p/production", "canary", "sha256:b"), 1);
        assert_eq!(s.inflight("p/production", "canary", "sha256:c"), 0);
        assert!(s.is_live("p/production", "stable", "sha256:a"));
        assert!(!s.is_live("p/production", "canary", "sha256:b"));
    }
}
