//! The route table the controller owns: every environment's service, kept in
//! memory and sent whole with a higher generation on every change.
//!
//! The router refuses a table older than the one it serves, so the first
//! change after a start reads the router's table (its generation and the
//! services of environments not touched yet) and continues from there: a
//! restarted controller never rolls routing back, nor drops environments it
//! has not recovered yet.

use std::time::Duration;

use andon_artifacts::Digest;
use andon_router::{RouteSpec, RouteTable, ServiceSpec, Sticky, VersionSpec};
use tokio::sync::Mutex;

use crate::error::DeployError;
use crate::router_api::{PutError, RouterApi};

/// Role names in the router. A version's counters are keyed by role and
/// artifact, so a canary keeps its counters across weight changes.
pub(crate) const STABLE: &str = "stable";
pub(crate) const CANARY: &str = "canary";
pub(crate) const BASELINE: &str = "baseline";
pub(crate) const GREEN: &str = "green";
/// Blue kept warm (dark) during the rollback window after a blue/green switch.
pub(crate) const PREVIOUS: &str = "previous";
/// New instances during a rolling update.
pub(crate) const NEXT: &str = "next";

/// The header the router reads to force a version (smoke tests use it).
pub(crate) const OVERRIDE_HEADER: &str = andon_router::table::DEFAULT_OVERRIDE_HEADER;
/// Users keep their bucket, so a user who saw the canary keeps seeing it.
const STICKY_COOKIE: &str = "andon_bucket";

/// Attempts at sending a table before giving up: a rollback must get through
/// a router that restarts at that moment.
const ATTEMPTS: u32 = 6;

/// One version of a service as the controller lays it out.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub(crate) name: &'static str,
    pub(crate) version: Digest,
    pub(crate) weight: u32,
    pub(crate) endpoints: Vec<String>,
}

/// Builds a service from roles listed oldest first: the router gives the
/// LOW buckets to the last listed, so the canary goes last and the users
/// who have it keep it as its weight grows.
pub(crate) fn service(roles: &[Role]) -> ServiceSpec {
    ServiceSpec {
        versions: roles
            .iter()
            .map(|r| VersionSpec {
                name: r.name.to_string(),
                version: r.version.to_string(),
                weight: r.weight,
                endpoints: r.endpoints.clone(),
            })
            .collect(),
        sticky: Some(Sticky::Cookie(STICKY_COOKIE.to_string())),
        override_header: Some(OVERRIDE_HEADER.to_string()),
        mirror: None,
    }
}

/// Which requests reach an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach {
    /// The environment's `host:` (review apps, routed by host name).
    pub(crate) host: Option<String>,
    /// Also every request no other route takes (`production`).
    pub(crate) catch_all: bool,
}

impl Reach {
    pub(crate) fn of(env: &andon_config::Environment) -> Self {
        Reach {
            host: env.host.clone(),
            catch_all: env.name == "production",
        }
    }
}

struct Book {
    loaded: bool,
    table: RouteTable,
}

pub(crate) struct RouteBook {
    api: RouterApi,
    book: Mutex<Book>,
}

fn is_catch_all(r: &RouteSpec) -> bool {
    r.host.is_none() && r.path_prefix == "/"
}

impl RouteBook {
    pub(crate) fn new(api: RouterApi) -> Self {
        RouteBook {
            api,
            book: Mutex::new(Book {
                loaded: false,
                table: RouteTable::default(),
            }),
        }
    }

    pub(crate) fn api(&self) -> &RouterApi {
        &self.api
    }

    /// The service as last sent (or as the router had it at start).
    pub(crate) async fn current(&self, service: &str) -> Result<Option<ServiceSpec>, DeployError> {
        let mut book = self.book.lock().await;
        self.load(&mut book).await?;
        Ok(book.table.services.get(service).cloned())
    }

    async fn load(&self, book: &mut Book) -> Result<(), DeployError> {
        if !book.loaded {
            book.table = self.api.get_routes().await?;
            book.loaded = true;
        }
        Ok(())
    }

    /// Replaces one service (or removes it, with `None`) and its routes,
    /// and sends the whole table. Returns the generation installed.
    pub(crate) async fn set(
        &self,
        name: &str,
        spec: Option<ServiceSpec>,
        reach: &Reach,
    ) -> Result<u64, DeployError> {
        let mut book = self.book.lock().await;
        let mut last_err = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
            if let Err(e) = self.load(&mut book).await {
                last_err = Some(e);
                continue;
            }
            let next = edit(&book.table, name, spec.clone(), reach);
            next.validate().map_err(|e| DeployError::Router {
                url: self.api_url(),
                message: format!("the controller built an invalid table: {e}"),
            })?;
            match self.api.put_routes(&next).await {
                Ok(()) => {
                    let generation = next.generation;
                    book.table = next;
                    return Ok(generation);
                }
                Err(PutError::Stale) => {
                    // Someone is ahead: read their generation and go above it.
                    book.loaded = false;
                    last_err = Some(DeployError::Router {
                        url: self.api_url(),
                        message: "stale generation".to_string(),
                    });
                }
                Err(PutError::Other(e)) => {
                    tracing::warn!(error = %e, attempt, "route update failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| DeployError::Router {
            url: self.api_url(),
            message: "route update failed".to_string(),
        }))
    }

    fn api_url(&self) -> String {
        "PUT /routes".to_string()
    }
}

/// The table with one service replaced, at the next generation.
fn edit(table: &RouteTable, name: &str, spec: Option<ServiceSpec>, reach: &Reach) -> RouteTable {
    let mut next = table.clone();
    next.generation = table.generation + 1;
    next.routes.retain(|r| r.service != name);
    match spec {
        None => {
            next.services.remove(name);
        }
        Some(spec) => {
            next.services.insert(name.to_string(), spec);
            if let Some(host) = &reach.host {
                next.routes.push(RouteSpec {
                    host: Some(host.clone()),
                    path_prefix: "/".to_string(),
                    service: name.to_string(),
                });
            }
            // Production takes the catch-all from whoever had it; another
            // environment gets it only while nobody has it, so a lone
            // staging environment is reachable without a host name.
            let free = !next.routes.iter().any(is_catch_all);
            if reach.catch_all || (free && reach.host.is_none()) {
                next.routes.retain(|r| !is_catch_all(r));
                next.routes.push(RouteSpec {
                    host: None,
                    path_prefix: "/".to_string(),
                    service: name.to_string(),
                });
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> Digest {
        Digest::of(b)
    }

    fn one(name: &'static str, w: u32) -> ServiceSpec {
        service(&[Role {
            name,
            version: digest(b"a"),
            weight: w,
            endpoints: vec!["127.0.0.1:1".into()],
        }])
    }

    #[test]
    fn production_takes_the_catch_all_and_hosts_get_their_route() {
        let t = RouteTable::default();
        let staging = Reach {
            host: None,
            catch_all: false,
        };
        let t = edit(&t, "p/staging", Some(one(STABLE, 100)), &staging);
        assert_eq!(t.generation, 1);
        assert_eq!(t.routes.len(), 1, "a lone environment is reachable");
        let prod = Reach {
            host: Some("shop.example".into()),
            catch_all: true,
        };
        let t = edit(&t, "p/production", Some(one(STABLE, 100)), &prod);
        t.validate().unwrap();
        let catch_alls: Vec<_> = t.routes.iter().filter(|r| is_catch_all(r)).collect();
        assert_eq!(catch_alls.len(), 1);
        assert_eq!(catch_alls[0].service, "p/production");
        assert!(
            t.routes
                .iter()
                .any(|r| r.host.as_deref() == Some("shop.example"))
        );
        // Re-sending staging does not steal it back.
        let t = edit(&t, "p/staging", Some(one(STABLE, 100)), &staging);
        assert!(
            t.routes
                .iter()
                .filter(|r| is_catch_all(r))
                .all(|r| r.service == "p/production")
        );
        let t = edit(&t, "p/production", None, &prod);
        assert!(!t.services.contains_key("p/production"));
        assert!(t.routes.iter().all(|r| r.service != "p/production"));
        assert_eq!(t.generation, 4);
    }

    #[test]
    fn the_canary_is_listed_last_and_gets_the_low_buckets() {
        let s = service(&[
            Role {
                name: STABLE,
                version: digest(b"1"),
                weight: 80,
                endpoints: vec!["127.0.0.1:1".into()],
            },
            Role {
                name: BASELINE,
                version: digest(b"1"),
                weight: 10,
                endpoints: vec!["127.0.0.1:2".into()],
            },
            Role {
                name: CANARY,
                version: digest(b"2"),
                weight: 10,
                endpoints: vec!["127.0.0.1:3".into()],
            },
        ]);
        assert_eq!(s.versions.last().unwrap().name, CANARY);
        assert_eq!(s.override_header.as_deref(), Some("x-andon-version"));
    }
}
