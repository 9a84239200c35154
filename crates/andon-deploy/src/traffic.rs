//! The traffic driver: what the release code asks of whatever steers an
//! environment's traffic. Andon's router (through its admin API) is the
//! default; a team's HAProxy (through its runtime API) is the other.
//!
//! The trait is as small as the release code needs: install a service's
//! roles, read back what was installed (recovery), and read counters and
//! in-flight requests per role (judge and drains). Strategies, rollback and
//! drains are written once, above it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use andon_config::Traffic;
use andon_router::ServiceSpec;

use crate::controller::Inner;
use crate::error::DeployError;
use crate::haproxy::Haproxy;
use crate::router_api::Stats;
use crate::routes::{Reach, RouteBook};

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(crate) trait TrafficDriver: Send + Sync {
    /// Installs the service's roles (or removes the service, with `None`)
    /// in one update, as far as the driver allows.
    fn set<'a>(
        &'a self,
        service: &'a str,
        spec: Option<ServiceSpec>,
        reach: &'a Reach,
    ) -> BoxFut<'a, Result<(), DeployError>>;

    /// The service as last installed (after a restart: as the data plane
    /// has it, where the driver can tell).
    fn current<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFut<'a, Result<Option<ServiceSpec>, DeployError>>;

    /// Counters and in-flight requests per (service, role).
    fn stats(&self) -> BoxFut<'_, Result<Stats, DeployError>>;
}

impl TrafficDriver for RouteBook {
    fn set<'a>(
        &'a self,
        service: &'a str,
        spec: Option<ServiceSpec>,
        reach: &'a Reach,
    ) -> BoxFut<'a, Result<(), DeployError>> {
        Box::pin(async move { RouteBook::set(self, service, spec, reach).await.map(|_| ()) })
    }

    fn current<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFut<'a, Result<Option<ServiceSpec>, DeployError>> {
        Box::pin(RouteBook::current(self, service))
    }

    fn stats(&self) -> BoxFut<'_, Result<Stats, DeployError>> {
        Box::pin(self.api().stats())
    }
}

/// An HAProxy driver with what it was built for.
pub(crate) struct Bound {
    pub(crate) config: andon_config::HaproxyTraffic,
    pub(crate) driver: Arc<Haproxy>,
}

impl Inner {
    /// Records which driver serves `service`, from its configuration. The
    /// same HAProxy backend keeps its driver (and what it knows of its
    /// slots) from one release to the next.
    pub(crate) fn bind_traffic(&self, service: &str, traffic: &Traffic) {
        let mut map = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        match traffic {
            Traffic::Router => {
                map.remove(service);
            }
            Traffic::Haproxy(cfg) => {
                if map.get(service).is_some_and(|b| &b.config == cfg) {
                    return;
                }
                let driver = Arc::new(Haproxy::new(&cfg.socket, &cfg.backend));
                map.insert(
                    service.to_string(),
                    Bound {
                        config: cfg.clone(),
                        driver,
                    },
                );
            }
        }
    }

    /// The driver of `service`: its HAProxy if bound, else the router.
    pub(crate) fn traffic(&self, service: &str) -> Arc<dyn TrafficDriver> {
        let map = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(service) {
            Some(b) => b.driver.clone(),
            None => self.routes.clone(),
        }
    }
}
