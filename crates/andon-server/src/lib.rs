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
//! - `flow`: the cord, DORA, incidents and boards of `andon-flow` as
//!   projections, and the events they append; `notify`: webhook delivery.
//! - `flags`: feature flags folded from the log, served by `api::flags`
//!   (management) and `api::ofrep` (OFREP evaluation, change streams).
//!
//! Invariant: only this crate knows HTTP and JSON wire types.

mod api;
mod auth;
mod deploy;
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
    queue: tokio::sync::mpsc::UnboundedReceiver<u64>,
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
        })?);
        if let Some(link) = &cfg.router {
            let ctl = deploy::controller(&state, link)
                .map_err(|e| ServerError::Bootstrap(format!("release controller: {e}")))?;
            let _ = state.controller.set(ctl);
        }
        let interrupted_runs = pipeline::reconcile(&state);
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
            queue: rx,
            first_admin_token,
            interrupted_runs,
        })
    }

    /// The HTTP application, for driving in-process (tests, fuzzing) without
    /// a socket. Background tasks (run queue, watcher) only start in [`Server::serve`].
    pub fn app(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let worker = tokio::spawn(pipeline::worker(self.state.clone(), self.queue));
        let watcher = tokio::spawn(watcher::run(self.state.clone()));
        let releases = tokio::spawn(release_upkeep(self.state.clone()));
        let notifier = tokio::spawn(notify::run(self.state.clone()));
        let flag_scheduler = tokio::spawn(flags::scheduler(self.state.clone()));
        let shutdown = flags::closing(self.state.clone(), shutdown);
        let app =
            api::router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve);
        worker.abort();
        watcher.abort();
        releases.abort();
        notifier.abort();
        flag_scheduler.abort();
        if let Some(ctl) = self.state.controller.get() {
            // Instances keep serving through a control-plane restart; the
            // next start adopts them.
            ctl.shutdown(false).await;
        }
        result
    }
}

/// Recovers releases a previous process left, then checks instances for
/// drift now and then.
async fn release_upkeep(state: std::sync::Arc<AppState>) {
    let Some(ctl) = state.controller.get() else {
        return;
    };
    deploy::recover(&state, ctl).await;
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
}
