//! HAProxy as the traffic driver of an environment: the same roles,
//! weights and drains as Andon's router, applied to the server slots of one
//! backend (`server-template`) through the runtime API, with no reload.
//!
//! Each instance (endpoint) gets a slot: `set server B/S addr IP port P`,
//! `weight W`, `state ready`. A role's share is spread over its slots
//! (HAProxy weights are 0..=256 per server). An endpoint that leaves the
//! table goes to `state drain` (no new requests, those in flight finish);
//! once it has no session it goes to `state maint` and its slot is free
//! again. Counters come from `show stat` per slot, taken relative to the
//! moment the slot got its role, so a reused slot brings no old counts.
//!
//! What HAProxy does not do here: the router's cookie stickiness and
//! version-forcing header (a team's own `cookie`/`use-server` rules still
//! apply), and latency histograms (`max_p99` is refused by validation;
//! latency is judged through Prometheus rules).

mod runtime;

use std::collections::HashSet;
use std::path::Path;

use andon_judge::VersionStats;
use andon_router::ServiceSpec;
use tokio::sync::Mutex;

use crate::error::DeployError;
use crate::router_api::{Counters, Stats};
use crate::routes::Reach;
use crate::traffic::{BoxFut, TrafficDriver};
use runtime::{Row, Runtime};

/// HAProxy's largest server weight: a role at 100% on one slot gets it.
const MAX_WEIGHT: u32 = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// Not given by this driver (found in service after a restart).
    Unknown,
    /// Serving a role of the service.
    Live { role: String, version: String },
    /// Taken out of the table, draining.
    Retired { role: String, version: String },
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    /// `ip:port` given to it, `None` while free (in maintenance).
    endpoint: Option<String>,
    label: Label,
    /// Counters when it got its label: what it reports is counted from here.
    origin: (u64, u64),
}

#[derive(Default)]
struct Book {
    loaded: bool,
    service: Option<String>,
    spec: Option<ServiceSpec>,
    slots: Vec<Slot>,
}

/// Drives one backend of one HAProxy.
pub(crate) struct Haproxy {
    rt: Runtime,
    backend: String,
    book: Mutex<Book>,
}

fn counts(r: &Row) -> (u64, u64) {
    (r.stot, r.hrsp_5xx + r.econ + r.eresp)
}

/// `127.0.0.1:4001` → (`127.0.0.1`, `4001`); IPv6 as `[::1]:4001`.
fn split_endpoint(endpoint: &str) -> Option<(&str, &str)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// Per-slot weight for a role holding `percent` of the traffic on `n` slots:
/// at least 1 while the role has traffic, 0 when it has none.
fn slot_weight(percent: u32, n: usize) -> u32 {
    if percent == 0 || n == 0 {
        return 0;
    }
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    let w = (percent.min(100) * MAX_WEIGHT + 50 * n) / (100 * n);
    w.clamp(1, MAX_WEIGHT)
}

/// One endpoint the table wants, with its role and slot weight.
struct Want {
    endpoint: String,
    role: String,
    version: String,
    weight: u32,
}

fn wants(spec: Option<&ServiceSpec>) -> Vec<Want> {
    let mut out: Vec<Want> = Vec::new();
    for v in spec.iter().flat_map(|s| s.versions.iter()) {
        let weight = slot_weight(v.weight, v.endpoints.len());
        for e in &v.endpoints {
            // The same endpoint twice in a table is one slot: first wins.
            if out.iter().all(|w| &w.endpoint != e) {
                out.push(Want {
                    endpoint: e.clone(),
                    role: v.name.clone(),
                    version: v.version.clone(),
                    weight,
                });
            }
        }
    }
    out
}

impl Haproxy {
    pub(crate) fn new(socket: &Path, backend: &str) -> Self {
        Haproxy {
            rt: Runtime::new(socket),
            backend: backend.to_string(),
            book: Mutex::new(Book::default()),
        }
    }

    fn server(&self, slot: &str) -> String {
        format!("{}/{slot}", self.backend)
    }

    /// Brings the book in line with the backend's servers. On the first
    /// call, slots already serving keep their address (a restarted
    /// controller adopts them by endpoint in the next `set`).
    fn sync(&self, book: &mut Book, rows: &[Row]) {
        if !book.loaded {
            book.slots = rows
                .iter()
                .map(|r| Slot {
                    name: r.name.clone(),
                    endpoint: (!r.in_maint()).then(|| r.addr.clone()),
                    label: Label::Unknown,
                    origin: counts(r),
                })
                .collect();
            book.loaded = true;
            return;
        }
        // A reload of HAProxy may have changed the template: follow it.
        book.slots.retain(|s| rows.iter().any(|r| r.name == s.name));
        for r in rows {
            if !book.slots.iter().any(|s| s.name == r.name) {
                book.slots.push(Slot {
                    name: r.name.clone(),
                    endpoint: None,
                    label: Label::Unknown,
                    origin: counts(r),
                });
            }
        }
    }

    async fn apply(&self, service: &str, spec: Option<ServiceSpec>) -> Result<(), DeployError> {
        let rows = self.rt.servers(&self.backend).await?;
        let mut book = self.book.lock().await;
        self.sync(&mut book, &rows);
        let row = |name: &str| rows.iter().find(|r| r.name == name);
        let wanted = wants(spec.as_ref());
        let mut taken: HashSet<usize> = HashSet::new();
        let mut pending = Vec::new();
        // (slot index, want index, fresh) in the order the commands go out.
        let mut plan: Vec<(usize, usize, bool)> = Vec::new();
        for (wi, w) in wanted.iter().enumerate() {
            let kept = book.slots.iter().enumerate().position(|(i, s)| {
                !taken.contains(&i)
                    && s.endpoint.as_deref() == Some(w.endpoint.as_str())
                    && row(&s.name).is_some_and(|r| !r.in_maint())
            });
            match kept {
                Some(i) => {
                    taken.insert(i);
                    plan.push((i, wi, false));
                }
                None => pending.push(wi),
            }
        }
        let desired: HashSet<&str> = wanted.iter().map(|w| w.endpoint.as_str()).collect();
        for wi in pending {
            // A slot in maintenance first, else a drained one with nothing in flight.
            let free = |prefer_maint: bool| {
                book.slots.iter().enumerate().position(|(i, s)| {
                    let Some(r) = row(&s.name) else { return false };
                    let idle = s.endpoint.as_deref().is_none_or(|e| !desired.contains(e))
                        && !matches!(s.label, Label::Live { .. })
                        && r.inflight() == 0;
                    !taken.contains(&i) && if prefer_maint { r.in_maint() } else { idle }
                })
            };
            let Some(i) = free(true).or_else(|| free(false)) else {
                return Err(self.rt.err(format!(
                    "backend {} has {} server slots and this table needs {}: raise the count of its `server-template`",
                    self.backend,
                    book.slots.len(),
                    wanted.len()
                )));
            };
            taken.insert(i);
            plan.push((i, wi, true));
        }
        // New and kept slots first, so traffic always has somewhere to go;
        // drains last.
        for (i, wi, fresh) in plan {
            let w = &wanted[wi];
            let name = book.slots[i].name.clone();
            let srv = self.server(&name);
            let r = row(&name).cloned().unwrap_or_default();
            if fresh {
                let (host, port) = split_endpoint(&w.endpoint)
                    .ok_or_else(|| self.rt.err(format!("bad endpoint {}", w.endpoint)))?;
                if !r.in_maint() {
                    self.rt
                        .set(&format!("set server {srv} state maint"))
                        .await?;
                }
                self.rt
                    .set(&format!("set server {srv} addr {host} port {port}"))
                    .await?;
            }
            self.rt
                .set(&format!("set server {srv} weight {}", w.weight))
                .await?;
            if fresh || r.draining() {
                self.rt
                    .set(&format!("set server {srv} state ready"))
                    .await?;
            }
            let label = Label::Live {
                role: w.role.clone(),
                version: w.version.clone(),
            };
            let slot = &mut book.slots[i];
            if fresh || slot.label != label {
                slot.origin = counts(&r);
            }
            slot.endpoint = Some(w.endpoint.clone());
            slot.label = label;
        }
        for i in 0..book.slots.len() {
            let slot = &book.slots[i];
            let Some(r) = row(&slot.name) else { continue };
            if taken.contains(&i) || r.in_maint() || slot.endpoint.is_none() {
                continue;
            }
            if !r.draining() {
                let srv = self.server(&slot.name);
                self.rt
                    .set(&format!("set server {srv} state drain"))
                    .await?;
            }
            let slot = &mut book.slots[i];
            if let Label::Live { role, version } = &slot.label {
                slot.label = Label::Retired {
                    role: role.clone(),
                    version: version.clone(),
                };
            }
        }
        book.service = Some(service.to_string());
        book.spec = spec;
        Ok(())
    }

    async fn read(&self) -> Result<Stats, DeployError> {
        let rows = self.rt.servers(&self.backend).await?;
        let mut book = self.book.lock().await;
        self.sync(&mut book, &rows);
        let service = book.service.clone().unwrap_or_default();
        let mut stats = Stats::default();
        for i in 0..book.slots.len() {
            let slot = &book.slots[i];
            let Some(r) = rows.iter().find(|r| r.name == slot.name) else {
                continue;
            };
            let (req, err) = counts(r);
            let c = Counters {
                version: String::new(),
                stats: VersionStats {
                    requests: req.saturating_sub(slot.origin.0),
                    errors: err
                        .saturating_sub(slot.origin.1)
                        .min(req.saturating_sub(slot.origin.0)),
                    latency_buckets: [0; 14],
                },
                inflight: r.inflight(),
            };
            match &slot.label {
                Label::Live { role, version } => stats.add_live(&service, role, version, &c),
                Label::Retired { role, version } => {
                    if r.inflight() == 0 && !r.in_maint() {
                        // Drained: out of reach of persistence cookies too,
                        // before its instance is stopped.
                        let srv = self.server(&slot.name);
                        self.rt
                            .set(&format!("set server {srv} state maint"))
                            .await?;
                        let slot = &mut book.slots[i];
                        slot.endpoint = None;
                        slot.label = Label::Unknown;
                    } else {
                        stats.add_retired(&service, role, version, &c);
                    }
                }
                Label::Unknown => {}
            }
        }
        Ok(stats)
    }
}

impl TrafficDriver for Haproxy {
    fn set<'a>(
        &'a self,
        service: &'a str,
        spec: Option<ServiceSpec>,
        _reach: &'a Reach,
    ) -> BoxFut<'a, Result<(), DeployError>> {
        Box::pin(self.apply(service, spec))
    }

    fn current<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFut<'a, Result<Option<ServiceSpec>, DeployError>> {
        Box::pin(async move {
            let book = self.book.lock().await;
            Ok(book
                .spec
                .clone()
                .filter(|_| book.service.as_deref() == Some(service)))
        })
    }

    fn stats(&self) -> BoxFut<'_, Result<Stats, DeployError>> {
        Box::pin(self.read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_share_is_spread_over_its_slots() {
        assert_eq!(slot_weight(100, 1), 256);
        assert_eq!(slot_weight(50, 2), 64);
        assert_eq!(slot_weight(10, 1), 26);
        assert_eq!(slot_weight(1, 3), 1);
        assert_eq!(slot_weight(0, 3), 0);
        assert_eq!(
            split_endpoint("127.0.0.1:4001"),
            Some(("127.0.0.1", "4001"))
        );
        assert_eq!(split_endpoint("[::1]:80"), Some(("::1", "80")));
    }
}
