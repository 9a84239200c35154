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
//! - `admin`: the admin API; `server`: accept loops, hand-off of proxy connections to the
//!   per-core proxy threads, graceful drain.
//! - `state`: what requests share (table, counters, limits) and each proxy thread's own pool;
//!   `body`: body types.
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
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

pub use config::RouterConfig;
pub use error::RouterError;
pub use table::{MirrorSpec, RouteSpec, RouteTable, ServiceSpec, Sticky, TableError, VersionSpec};

/// Latency bucket upper bounds in seconds used by `/stats` and `/metrics` (the last is +Inf).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// Runs the router until `shutdown` completes, then stops accepting and lets requests in
/// flight finish (for at most the upstream timeout plus one second).
///
/// Proxy connections are accepted on the caller's runtime and each handed to one of
/// `cfg.workers` proxy threads of the router's own (one per core by default), so requests do
/// not share the caller's runtime; the admin listener is served on the caller's runtime.
///
/// Fails only at start-up: the saved table in `cfg.data_dir` cannot be read or is invalid, or
/// a proxy thread cannot be started.
pub async fn run(
    cfg: RouterConfig,
    proxy: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RouterError> {
    let shared = state::Shared::start(cfg)?;
    let drain = shared.cfg.upstream_timeout + Duration::from_secs(1);
    let (stop_tx, stop_rx) = watch::channel(false);

    let workers = match shared.cfg.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut lanes = Vec::with_capacity(workers);
    let mut finished = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        lanes.push(server::Lane {
            tx,
            open: open.clone(),
        });
        let (shared, stop_rx) = (shared.clone(), stop_rx.clone());
        let (done_tx, done_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("andon-proxy-{i}"))
            .spawn(move || {
                proxy_thread(shared, rx, open, stop_rx, drain);
                let _ = done_tx.send(());
            })
            .map_err(RouterError::Start)?;
        finished.push(done_rx);
    }
    let acceptor = tokio::spawn(server::distribute(proxy, lanes, stop_rx.clone()));

    let s = shared.clone();
    let admin_task = tokio::spawn(server::serve(admin, stop_rx, drain, move |_, req| {
        admin::handle(s.clone(), req)
    }));

    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = acceptor.await;
    for done in finished {
        let _ = done.await;
    }
    if let Err(e) = admin_task.await {
        tracing::error!(error = %e, "admin listener task failed");
    }
    Ok(())
}

/// One proxy thread: a single-threaded runtime serving the connections the acceptor hands
/// it, with its own upstream pool (see `state::Worker`).
fn proxy_thread(
    shared: Arc<state::Shared>,
    incoming: mpsc::UnboundedReceiver<server::Handoff>,
    open: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a proxy runtime");
            return;
        }
    };
    rt.block_on(async move {
        let worker = state::Worker::new(shared);
        server::serve_handoffs(incoming, open, stop, drain, move |remote, req| {
            proxy::handle(worker.clone(), remote, req)
        })
        .await;
    });
}
