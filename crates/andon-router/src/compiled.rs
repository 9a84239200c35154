//! The route table in the form the request path reads: parsed endpoints, header names,
//! the bucket layout, and a handle on each version's counters.
//!
//! A compiled table is immutable and shared through `Arc`; a request keeps the `Arc` of the
//! version it was sent to, so swapping the table never moves a request in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use http::uri::Authority;
use http::{HeaderName, HeaderValue};

use crate::stats::{Registry, VersionStats};
use crate::table::{RouteTable, Sticky, TableError, parse_endpoint};

/// One version, ready to receive requests.
pub(crate) struct Version {
    pub(crate) name: String,
    pub(crate) id: String,
    /// Value of `x-andon-served-by`, prebuilt.
    pub(crate) served_by: HeaderValue,
    pub(crate) endpoints: Vec<Authority>,
    next: AtomicUsize,
    pub(crate) stats: Arc<VersionStats>,
}

impl Version {
    /// Round-robin over the endpoints; `None` for a dark version without instances.
    pub(crate) fn pick(&self) -> Option<(usize, &Authority)> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed) % self.endpoints.len();
        Some((i, &self.endpoints[i]))
    }

    /// The endpoint after `i`, for the single retry after a connection failure.
    pub(crate) fn other_than(&self, i: usize) -> Option<&Authority> {
        if self.endpoints.len() < 2 {
            return None;
        }
        self.endpoints.get((i + 1) % self.endpoints.len())
    }
}

pub(crate) enum StickyBy {
    Cookie { name: String },
    Header(HeaderName),
}

pub(crate) struct Mirror {
    pub(crate) to: Arc<Version>,
    pub(crate) percent: f64,
}

/// One service: its versions and how a bucket maps to one of them.
pub(crate) struct Service {
    pub(crate) versions: Vec<Arc<Version>>,
    /// `(exclusive upper bucket, index in versions)`, ascending; empty when all are dark.
    pub(crate) layout: Vec<(u32, usize)>,
    pub(crate) sticky: Option<StickyBy>,
    pub(crate) override_header: Option<HeaderName>,
    pub(crate) mirror: Option<Mirror>,
}

impl Service {
    /// The version owning `bucket` (0..100).
    pub(crate) fn by_bucket(&self, bucket: u32) -> Option<&Arc<Version>> {
        self.layout
            .iter()
            .find(|(upper, _)| bucket < *upper)
            .and_then(|(_, i)| self.versions.get(*i))
    }

    /// A version by role name or artifact id, for overrides.
    pub(crate) fn by_key(&self, key: &str) -> Option<&Arc<Version>> {
        self.versions
            .iter()
            .find(|v| v.name == key)
            .or_else(|| self.versions.iter().find(|v| v.id == key))
    }
}

struct Route {
    /// Lowercased, without port.
    host: Option<String>,
    prefix: String,
    service: Arc<Service>,
}

/// A whole compiled table.
pub(crate) struct Compiled {
    pub(crate) spec: RouteTable,
    /// Most specific first: longest prefix, then host-specific before any-host.
    routes: Vec<Route>,
    /// Counters of every version in this table, to tell live from retired ones.
    pub(crate) live_stats: Vec<Arc<VersionStats>>,
}

impl Compiled {
    /// Validates and compiles `spec`, attaching counters from `registry`.
    pub(crate) fn new(spec: RouteTable, registry: &Registry) -> Result<Self, TableError> {
        spec.validate()?;
        let mut live_stats = Vec::new();
        let mut services = std::collections::BTreeMap::new();
        for (sname, s) in &spec.services {
            let mut versions = Vec::with_capacity(s.versions.len());
            for v in &s.versions {
                let endpoints = v
                    .endpoints
                    .iter()
                    .map(|e| parse_endpoint(e))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|message| TableError::Invalid {
                        at: format!("services.{sname}"),
                        message,
                    })?;
                let served_by =
                    HeaderValue::from_str(&v.name).map_err(|_| TableError::Invalid {
                        at: format!("services.{sname}"),
                        message: format!("version name '{}' is not a header value", v.name),
                    })?;
                let stats = registry.get(sname, &v.name, &v.version);
                live_stats.push(stats.clone());
                versions.push(Arc::new(Version {
                    name: v.name.clone(),
                    id: v.version.clone(),
                    served_by,
                    endpoints,
                    next: AtomicUsize::new(0),
                    stats,
                }));
            }
            // The last listed weighted version takes the lowest buckets (see ServiceSpec docs).
            let mut layout = Vec::new();
            let mut upper = 0;
            for (i, v) in s.versions.iter().enumerate().rev() {
                if v.weight > 0 {
                    upper += v.weight;
                    layout.push((upper, i));
                }
            }
            let sticky = s.sticky.as_ref().and_then(|st| match st {
                Sticky::Cookie(name) => Some(StickyBy::Cookie { name: name.clone() }),
                Sticky::Header(h) => HeaderName::from_bytes(h.as_bytes())
                    .ok()
                    .map(StickyBy::Header),
            });
            let override_header = s
                .override_header
                .as_ref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok());
            let mirror = s.mirror.as_ref().and_then(|m| {
                let to = s.find(&m.to)?;
                let idx = s.versions.iter().position(|v| std::ptr::eq(v, to))?;
                Some(Mirror {
                    to: versions[idx].clone(),
                    percent: m.percent,
                })
            });
            let service = Service {
                versions,
                layout,
                sticky,
                override_header,
                mirror,
            };
            services.insert(sname.clone(), Arc::new(service));
        }
        let mut routes: Vec<Route> = spec
            .routes
            .iter()
            .filter_map(|r| {
                Some(Route {
                    host: r.host.as_ref().map(|h| strip_port(h).to_ascii_lowercase()),
                    prefix: r.path_prefix.clone(),
                    service: services.get(&r.service)?.clone(),
                })
            })
            .collect();
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        Ok(Compiled {
            spec,
            routes,
            live_stats,
        })
    }

    /// The service for a request: host (any case, port ignored) and longest path prefix.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Service>> {
        let host = host.map(strip_port);
        self.routes
            .iter()
            .find(|r| {
                let host_ok = match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                    (Some(_), None) => false,
                };
                host_ok && prefix_matches(&r.prefix, path)
            })
            .map(|r| &r.service)
    }
}

/// Segment-aware prefix match: `/api` matches `/api` and `/api/x` but not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host[..end + 2];
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{RouteSpec, ServiceSpec, VersionSpec};

    fn svc(weights: &[(&str, u32)]) -> ServiceSpec {
        ServiceSpec {
            versions: weights
                .iter()
                .map(|(n, w)| VersionSpec {
                    name: (*n).into(),
                    version: format!("id-{n}"),
                    weight: *w,
                    endpoints: vec!["127.0.0.1:1".into()],
                })
                .collect(),
            sticky: None,
            override_header: None,
            mirror: None,
        }
    }

    fn compile(
        services: Vec<(&str, ServiceSpec)>,
        routes: Vec<(Option<&str>, &str, &str)>,
    ) -> Compiled {
        let spec = RouteTable {
            generation: 1,
            services: services
                .into_iter()
                .map(|(n, s)| (n.to_owned(), s))
                .collect(),
            routes: routes
                .into_iter()
                .map(|(h, p, s)| RouteSpec {
                    host: h.map(str::to_owned),
                    path_prefix: p.into(),
                    service: s.into(),
                })
                .collect(),
        };
        Compiled::new(spec, &Registry::default()).unwrap()
    }

    fn owner(c: &Compiled, bucket: u32) -> String {
        let s = c.route(None, "/").unwrap();
        s.by_bucket(bucket).unwrap().name.clone()
    }

    #[test]
    fn canary_owns_the_low_buckets_and_keeps_them_as_it_grows() {
        let mut last_on_canary = 0;
        for w in [1, 5, 10, 25, 50, 75, 100] {
            let c = compile(
                vec![("s", svc(&[("stable", 100 - w), ("canary", w)]))],
                vec![(None, "/", "s")],
            );
            for b in 0..100 {
                let expected = if b < w { "canary" } else { "stable" };
                assert_eq!(owner(&c, b), expected, "bucket {b} at weight {w}");
            }
            assert!(w >= last_on_canary);
            last_on_canary = w;
        }
    }

    #[test]
    fn dark_versions_take_no_bucket() {
        let c = compile(
            vec![("s", svc(&[("stable", 100), ("dark", 0)]))],
            vec![(None, "/", "s")],
        );
        assert!((0..100).all(|b| owner(&c, b) == "stable"));
        let s = c.route(None, "/").unwrap();
        assert_eq!(s.by_key("dark").unwrap().name, "dark");
        assert_eq!(s.by_key("id-dark").unwrap().name, "dark");
        assert!(s.by_bucket(100).is_none());
    }

    #[test]
    fn longest_prefix_and_host_specific_routes_win() {
        let c = compile(
            vec![
                ("old", svc(&[("old", 100)])),
                ("api", svc(&[("api", 100)])),
                ("host", svc(&[("host", 100)])),
            ],
            vec![
                (None, "/", "old"),
                (None, "/api", "api"),
                (Some("Shop.Localhost"), "/", "host"),
            ],
        );
        let pick =
            |h: Option<&str>, p: &str| c.route(h, p).unwrap().by_bucket(0).unwrap().name.clone();
        assert_eq!(pick(None, "/api/x"), "api");
        assert_eq!(pick(None, "/api"), "api");
        assert_eq!(pick(None, "/apix"), "old");
        assert_eq!(pick(Some("shop.localhost:8080"), "/x"), "host");
        assert_eq!(pick(Some("shop.localhost"), "/api/x"), "api");
        assert_eq!(pick(Some("other"), "/x"), "old");
    }

    #[test]
    fn strip_port_handles_ipv6_and_plain_hosts() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
