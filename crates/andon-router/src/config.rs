//! Settings of one router process.

use std::path::PathBuf;
use std::time::Duration;

/// How the router runs. Build with [`RouterConfig::new`] and change fields as needed.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Where `routes.json` (the last table received) is kept, so a restart serves it again
    /// even when the control plane is down. Created if missing.
    pub data_dir: PathBuf,
    /// Bearer token required on every admin call; `None` leaves the admin API open (bind it
    /// to loopback then).
    pub admin_token: Option<String>,
    /// Longest wait for a backend's response headers (both attempts together); then 504.
    pub upstream_timeout: Duration,
    /// Longest wait to open a connection to one backend endpoint.
    pub connect_timeout: Duration,
    /// Requests in flight beyond this are answered 503 at once: a slow backend must not make
    /// the router queue without limit.
    pub max_inflight: usize,
    /// Mirror copies in flight beyond this are dropped (and counted): shadow traffic must
    /// never pile up behind a slow dark version.
    pub max_mirror_inflight: usize,
    /// Proxy threads, each with its own single-threaded runtime and connection pool;
    /// 0 means one per core.
    pub workers: usize,
}

impl RouterConfig {
    /// Defaults: no token, 30s upstream timeout, 1s connect timeout, 10,000 requests and 256
    /// mirror copies in flight, one proxy thread per core.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RouterConfig {
            data_dir: data_dir.into(),
            admin_token: None,
            upstream_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            max_inflight: 10_000,
            max_mirror_inflight: 256,
            workers: 0,
        }
    }
}
