//! The data plane: a reverse proxy that splits, pins, mirrors and measures traffic per version.
//!
//! `andon router` runs it as its own process so traffic survives a control-plane restart: the
//! control plane `PUT`s a whole [`RouteTable`] on the admin listener, the router saves it
//! atomically to `DATA/routes.json` and serves it, and serves it again after a restart.
//!
//! On the proxy listener (HTTP/1.1 and h2c), a request is routed by host and longest path
//! prefix to a service, then to one version of it: forced by the override header
//! (`x-andon-version: canary` or an artifact id, even at weight 0), else by the user's bucket
//! `0..100` (from a sticky header hash, a router-set cookie, or drawn per request) against the
//! cumulative weights, the newest version owning the low buckets. The answer carries
//! `x-andon-served-by: <version name>`. A share of requests can be mirrored to a dark version,
//! its answers compared and discarded. Each version counts requests, errors, in-flight
//! requests and a latency histogram (`/stats`, `/metrics`).
//!
//! # Layout
//! - `table`: the route table wire types and their validation (public).
//! - `compiled`: the table compiled for the request path (bucket layout, parsed endpoints).
//! - `select`: override, sticky bucket and weighted choice of a version.
//! - `proxy`: the request path; `forward`: request shaping, sending and the single retry.
//! - `mirror`: shadow copies and their comparison with the live answer.
//! - `stats`: per-version counters, `/stats` JSON and Prometheus text.
//! - `admin`: the admin API; `server`: accept loops and graceful drain.
//! - `state`: what connections share (table, pool, limits); `body`: body types.
//! - `persist`: atomic save and load of `routes.json`; `config`, `error`, `reply`.

mod admin;
mod body;
mod compiled;
mod config;
mod error;
mod forward;
mod mirror;
mod persist;
mod proxy;
mod reply;
mod select;
mod server;
mod state;
mod stats;
pub mod table;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::RouterConfig;
pub use error::RouterError;
pub use table::{MirrorSpec, RouteSpec, RouteTable, ServiceSpec, Sticky, TableError, VersionSpec};

/// Latency bucket upper bounds in seconds used by `/stats` and `/metrics` (the last is +Inf).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY,
];

/// Runs the router until `shutdown` completes, then stops accepting and lets requests in
/// flight finish (for at most the upstream timeout plus one second).
///
/// Fails only at start-up, when the saved table in `cfg.data_dir` cannot be read or is invalid.
pub async fn run(
    cfg: RouterConfig,
    proxy: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RouterError> {
    let shared = state::Shared::start(cfg)?;
    let drain = shared.cfg.upstream_timeout + Duration::from_secs(1);
    let (stop_tx, stop_rx) = watch::channel(false);

    let s = shared.clone();
    let proxy_task = tokio::spawn(server::serve(proxy, stop_rx.clone(), drain, move |remote, req| {
        proxy::handle(s.clone(), remote, req)
    }));
    let s = shared.clone();
    let admin_task = tokio::spawn(server::serve(admin, stop_rx, drain, move |_, req| {
        admin::handle(s.clone(), req)
    }));

    shutdown.await;
    let _ = stop_tx.send(true);
    for task in [proxy_task, admin_task] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "listener task failed");
        }
    }
    Ok(())
}
