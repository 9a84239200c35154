//! The control plane: the HTTP API, token auth, forge webhooks, the
//! repository watcher and the run queue, all over one event store.
//!
//! # Layout
//! - [`state`]: the store, the projections folded from it, live channels.
//!   `AppState::append` is the only way state changes.
//! - `api`: HTTP handlers, one module per resource; one error boundary in
//!   [`error`].
//! - `auth`: bearer tokens with roles, hashed at rest, failures rate-limited.
//! - `pipeline`: queueing runs, driving the runner, reconciling runs a crash
//!   interrupted.
//! - `watcher` and `repo`: the mirror of each watched repository, polled.
//! - `logs`: job logs on disk and live.
//! - `metrics`: `/metrics` computed from the projections.
//! - `agents`: the dispatch queue of jobs with `runs_on` (labels, leases,
//!   heartbeats, expiry), served to `andon agent` by `api::agents`.
//! - `flow`: the cord, DORA, incidents and boards of `andon-flow` as
//!   projections, and the events they append; `notify`: webhook delivery.
//! - `environments`: environments made on demand (review apps), their
//!   deploys and TTL; `alerts`: alert rules on live environments after
//!   their release (rollback inside the rollback window, else an incident).
//! - `cluster`: several servers over one PostgreSQL store: leader
//!   election, following the log, forwarding leader-only requests, takeover.
//! - `flags`: feature flags folded from the log, served by `api::flags`
//!   (management) and `api::ofrep` (OFREP evaluation, change streams).
//!
//! Invariant: only this crate knows HTTP and JSON wire types.

mod agents;
mod alerts;
mod api;
mod auth;
mod cluster;
mod deploy;
mod environments;
mod error;
mod flags;
mod flow;
mod logs;
mod metrics;
mod notify;
mod pipeline;
mod repo;
mod state;
mod watcher;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use andon_core::Role;
use tokio::net::TcpListener;

pub use crate::deploy::RouterLink;
use crate::state::{AppState, StateParts};

/// Name under which a project's webhook secret is kept with its secrets;
/// hidden from listings and never given to jobs.
pub(crate) const WEBHOOK_SECRET: &str = "_andon_webhook";

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database, artifacts, logs and mirrors live.
    pub data_dir: PathBuf,
    /// `sqlite:PATH`, a PostgreSQL URL, or `None` for SQLite in the data directory.
    pub store_url: Option<String>,
    /// Sets the first admin token (for automation) instead of generating one.
    pub admin_token: Option<String>,
    /// Jobs run at once per run.
    pub parallelism: usize,
    /// The router releases go through; without one, deploy calls are refused.
    pub router: Option<RouterLink>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not open the store")]
    Store(#[from] andon_store::StoreError),
    #[error("could not open the artifact store in {path}")]
    Artifacts {
        path: PathBuf,
        #[source]
        source: andon_artifacts::Error,
    },
    #[error("could not create the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create the first admin token: {0}")]
    Bootstrap(String),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A server whose state is loaded and reconciled, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    queue: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<u64>>>,
    /// The generated admin token on first start, to print once. `None` on
    /// later starts or when `admin_token` was given.
    pub first_admin_token: Option<String>,
    /// Runs found in flight from a previous process and marked interrupted.
    pub interrupted_runs: usize,
}

impl Server {
    /// Opens the store, folds the log, closes what a crash left open, and
    /// creates the first admin token if there is none.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServerError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let url = cfg
            .store_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", cfg.data_dir.join("andon.db").display()));
        let store = andon_store::open(&url, &cfg.data_dir)?;
        // Other servers may append to a PostgreSQL store; a SQLite file has
        // one owner.
        let shared = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let art_dir = cfg.data_dir.join("artifacts");
        let artifacts = andon_artifacts::ArtifactStore::open(&art_dir).map_err(|source| {
            ServerError::Artifacts {
                path: art_dir.clone(),
                source,
            }
        })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let state = Arc::new(AppState::load(StateParts {
            store,
            data_dir: cfg.data_dir.clone(),
            artifacts,
            queue: tx,
            parallelism: cfg.parallelism.max(1),
            shared,
        })?);
        if let Some(link) = &cfg.router {
            let ctl = deploy::controller(&state, link)
                .map_err(|e| ServerError::Bootstrap(format!("release controller: {e}")))?;
            let _ = state.controller.set(ctl);
        }
        // Alone on its store, the server leads from the start and what is in
        // flight is its own previous process's. Sharing a store, in-flight
        // runs belong to the leader, whoever that is: the server that takes
        // the leadership recovers them (`cluster::take_over`).
        let interrupted_runs = if shared {
            0
        } else {
            pipeline::reconcile(&state)
        };
        let first_admin_token = if state.store.tokens()?.is_empty() {
            let given = cfg.admin_token.clone();
            let (_, secret) =
                auth::create_token(&state, "system", "admin", Role::Admin, None, given.clone())
                    .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
            given.is_none().then_some(secret)
        } else {
            None
        };
        Ok(Server {
            state,
            queue: Arc::new(tokio::sync::Mutex::new(rx)),
            first_admin_token,
            interrupted_runs,
        })
    }

    /// The HTTP application, for driving in-process (tests, fuzzing) without
    /// a socket. Background tasks (run queue, watcher) only start in [`Server::serve`].
    pub fn app(&self) -> axum::Router {
        router(&self.state)
    }

    /// The base URL other servers reach this one's API at, recorded in the
    /// store while it leads (default: `http://` and the listening address).
    /// Only matters when several servers share a PostgreSQL store.
    pub fn advertise(&self, url: impl Into<String>) {
        self.state.cluster.set_advertise(url.into());
    }

    /// Whether this server runs the schedulers and controllers now. Always
    /// true on SQLite; with PostgreSQL, decided by election once serving.
    pub fn is_leader(&self) -> bool {
        self.state.cluster.is_leader()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        if let Ok(addr) = listener.local_addr()
            && self.state.cluster.advertised_is_empty()
        {
            self.state.cluster.set_advertise(format!("http://{addr}"));
        }
        // The run queue, watcher, release upkeep, notifier and flag
        // schedulers run on the leader only (always this server on SQLite).
        let cluster = tokio::spawn(cluster::run(self.state.clone(), self.queue.clone()));
        let shutdown = flags::closing(self.state.clone(), shutdown);
        let app = router(&self.state).into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve);
        cluster.abort();
        let _ = cluster.await;
        if let Some(ctl) = self.state.controller.get() {
            // Instances keep serving through a control-plane restart; the
            // next start adopts them.
            ctl.shutdown(false).await;
        }
        result
    }
}

/// The API, with leader-only requests forwarded to the leader.
fn router(state: &Arc<AppState>) -> axum::Router {
    api::router(state.clone()).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        cluster::forward,
    ))
}

/// Recovers releases a previous process left, then checks instances for
/// drift now and then.
pub(crate) async fn release_upkeep(state: std::sync::Arc<AppState>) {
    let Some(ctl) = state.controller.get() else {
        return;
    };
    deploy::recover(&state, ctl).await;
    let drift = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let drifted = ctl.check_drift().await;
            if !drifted.is_empty() {
                tracing::warn!(
                    instances = drifted.len(),
                    "instances drifted from their artifacts"
                );
            }
        }
    };
    // In this one task, so that stopping the server stops them all.
    tokio::join!(
        drift,
        environments::upkeep(state.clone()),
        alerts::run(state.clone())
    );
}
