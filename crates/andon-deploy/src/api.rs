//! The types callers of the [`crate::Controller`] build and read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use andon_artifacts::Digest;

/// Receives every state change the controller makes, and the pages it sends.
///
/// `event` is called synchronously on the release path (a judge failure
/// reports its verdict before the rollback route update is sent), so it
/// must be quick: append to the log or queue, never block on the network.
pub trait DeployObserver: Send + Sync + 'static {
    /// One event to append to the log. The controller never emits
    /// `DeployRequested`: the caller appends it before calling `deploy`.
    fn event(&self, event: andon_core::Event);

    /// A human must hear about this (rollback, freeze, incident).
    fn notify(&self, title: &str, detail: &str) {
        let _ = (title, detail);
    }

    /// A fresh id for an `IncidentOpened` event. The server overrides this
    /// with its own sequence; the default (milliseconds since the epoch) is
    /// unique enough for a single controller.
    fn next_incident_id(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Where the controller keeps instances and how it reaches the router.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `DATA`: instances live under `DATA/instances/<project>/<env>/<instance-id>/`.
    pub data_dir: PathBuf,
    /// Base URL of the router's admin API, e.g. `http://127.0.0.1:8081`.
    pub router_admin: String,
    /// Base URL of the router's proxy listener, given to smoke tests as `ANDON_URL`.
    pub router_url: String,
    /// Bearer token of the router's admin API, if it has one.
    pub router_token: Option<String>,
    /// How often a canary's counters are read and judged (default 250ms).
    pub scrape_every: Duration,
    /// Longest wait for requests in flight to a retired version to finish
    /// before its instances are told to stop (default 30s).
    pub drain_timeout: Duration,
    /// Time between SIGTERM and SIGKILL of an instance's process group (default 10s).
    pub stop_timeout: Duration,
    /// Docker Engine API endpoint for `container` targets (`unix:///…` or
    /// `tcp://…`); None means `DOCKER_HOST`, then Docker's default socket.
    pub docker_host: Option<String>,
}

impl ControllerConfig {
    /// A configuration with the defaults above.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        router_admin: impl Into<String>,
        router_url: impl Into<String>,
    ) -> Self {
        ControllerConfig {
            data_dir: data_dir.into(),
            router_admin: router_admin.into(),
            router_url: router_url.into(),
            router_token: None,
            scrape_every: Duration::from_millis(250),
            drain_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            docker_host: None,
        }
    }
}

/// A release to carry out. The caller has appended `DeployRequested` with
/// the same `deploy_id` before calling [`crate::Controller::deploy`].
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub project: String,
    pub deploy_id: u64,
    /// The environment as configured; its `name` names it in events.
    pub environment: andon_config::Environment,
    /// The artifact to run.
    pub version: Digest,
    /// Values of the secrets the target lists (by name).
    pub secrets: BTreeMap<String, String>,
    /// What the caller believes is stable. The controller trusts what it
    /// runs itself; this is only used to say so in a log line when they differ.
    pub stable: Option<Digest>,
    /// The release ran a `contract` database migration: the previous version
    /// cannot run against the new schema, so a failed judgement freezes the
    /// environment (and pages) instead of rolling back.
    pub contract_migration: bool,
}

/// A hand-made rollback. The caller has appended `DeployRequested` for
/// `deploy_id` naming the target (see [`crate::Controller::rollback_target`]);
/// the controller finishes that deploy `Succeeded` when traffic is on it.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub project: String,
    pub environment: String,
    pub deploy_id: u64,
    /// The version to return to; `None` means the last known good one.
    pub to: Option<Digest>,
}

/// A person's say in a release in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Hold the current step (the judge keeps watching).
    Pause,
    /// Continue after a pause or a `pause: true` step.
    Resume,
    /// Skip the remaining steps: all traffic to the new version. On a frozen
    /// environment, promotes the frozen canary.
    Promote,
    /// Stop the release; traffic goes back to the stable version.
    Abort,
}

/// An environment as the server knows it, for [`crate::Controller::recover`].
#[derive(Debug, Clone)]
pub struct EnvSpec {
    pub project: String,
    pub environment: andon_config::Environment,
    /// Secret values, needed to start fresh instances of the stable version.
    pub secrets: BTreeMap<String, String>,
}

/// One running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub id: String,
    pub project: String,
    pub environment: String,
    pub version: Digest,
    pub deploy_id: u64,
    pub addr: SocketAddr,
    /// Process (and process group) id of the current process; `None` while
    /// it is being restarted.
    pub pid: Option<i32>,
    pub ready: bool,
    pub restarts: u32,
    pub dir: PathBuf,
}

/// What a recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Live, healthy instances of a stable version, kept.
    pub adopted: Vec<String>,
    /// Processes of instances that were not adopted, stopped.
    pub killed: Vec<String>,
    /// Fresh instances started because too few stable ones survived.
    pub started: Vec<String>,
    /// Deploys that were in flight, rolled back.
    pub rolled_back: Vec<u64>,
}

/// An instance whose files no longer match its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftReport {
    pub instance_id: String,
    pub environment: String,
    pub version: Digest,
    /// What differs, e.g. `modified: app/release.env; added: app/x`.
    pub detail: String,
}
