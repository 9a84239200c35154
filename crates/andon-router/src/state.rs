//! What every connection shares: the current table, the counters, the backend pool, the limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::UpstreamBody;
use crate::compiled::{Compiled, Version};
use crate::config::RouterConfig;
use crate::error::RouterError;
use crate::persist;
use crate::stats::Registry;
use crate::table::RouteTable;

pub(crate) type Upstream = Client<HttpConnector, UpstreamBody>;

pub(crate) struct Shared {
    pub(crate) cfg: RouterConfig,
    /// Swapped whole on `PUT /routes`; readers never block and keep the table they loaded.
    pub(crate) table: ArcSwap<Compiled>,
    pub(crate) registry: Registry,
    inflight: AtomicUsize,
    pub(crate) mirror_inflight: AtomicUsize,
    /// Serialises table replacement so generation check, persist and swap are one step.
    pub(crate) update: tokio::sync::Mutex<()>,
}

impl Shared {
    /// Loads the saved table (or starts empty) and builds the pool.
    pub(crate) fn start(cfg: RouterConfig) -> Result<Arc<Self>, RouterError> {
        let saved = persist::load(&cfg.data_dir)?;
        let registry = Registry::default();
        let spec = saved.unwrap_or_else(RouteTable::default);
        let compiled =
            Compiled::new(spec, &registry).map_err(|source| RouterError::InvalidRoutes {
                path: persist::routes_path(&cfg.data_dir),
                source,
            })?;
        Ok(Arc::new(Shared {
            cfg,
            table: ArcSwap::from_pointee(compiled),
            registry,
            inflight: AtomicUsize::new(0),
            mirror_inflight: AtomicUsize::new(0),
            update: tokio::sync::Mutex::new(()),
        }))
    }
}

/// One proxy thread: the shared state plus this thread's own keep-alive HTTP/1.1 pool.
///
/// Each proxy thread runs a single-threaded runtime and owns its pool, so a request, its
/// upstream connection and their wake-ups stay on one core: no cross-thread hand-off per
/// request (the cost that dominated profiles with one multi-threaded runtime).
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: Upstream,
}

impl Worker {
    /// Must be called inside the runtime that will drive the pool's connections.
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(shared.cfg.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Arc::new(Worker { shared, client })
    }
}

/// Counts one request as in flight, globally and (once chosen) on its version, until dropped
/// or released. Travels inside the response body so streaming answers stay counted.
pub(crate) struct Inflight {
    worker: Option<Arc<Worker>>,
    version: Option<Arc<Version>>,
}

impl Inflight {
    /// `None` when `max_inflight` requests are already in flight.
    pub(crate) fn admit(worker: &Arc<Worker>) -> Option<Self> {
        let shared = &worker.shared;
        let before = shared.inflight.fetch_add(1, Relaxed);
        if before >= shared.cfg.max_inflight {
            shared.inflight.fetch_sub(1, Relaxed);
            return None;
        }
        Some(Inflight {
            worker: Some(worker.clone()),
            version: None,
        })
    }

    pub(crate) fn attach(&mut self, version: Arc<Version>) {
        version.stats.inflight.fetch_add(1, Relaxed);
        self.version = Some(version);
    }

    pub(crate) fn release(&mut self) {
        if let Some(w) = self.worker.take() {
            w.shared.inflight.fetch_sub(1, Relaxed);
        }
        if let Some(v) = self.version.take() {
            v.stats.inflight.fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.release();
    }
}
