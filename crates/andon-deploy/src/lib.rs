//! Deploys versions: process targets, strategies (recreate, rolling,
//! blue/green, canary), judged releases, rollback and crash recovery.
//!
//! The [`Controller`] is the control plane's side of a release. It starts
//! instances of an artifact (each a fresh extraction: phoenix, never
//! changed in place), tells the router where traffic goes (only through the
//! router's admin HTTP API, so the data plane keeps serving when the
//! controller is down; or, per environment, a team's HAProxy through its
//! runtime API), watches a canary through the router's counters with
//! the judge, and on a failure sends all traffic back to the stable version
//! in ONE route update before cleaning up. Every state change is an
//! [`andon_core::Event`] given to the [`DeployObserver`]; the state after a
//! restart is rebuilt from those events ([`Controller::recover`]).
//!
//! Invariants:
//! - The stable version's instances are never scaled down during a release,
//!   so going back never waits for a process to start.
//! - Instances leave the router's table before they are drained (in-flight
//!   count 0 in the router's `/stats`) and only then stopped.
//! - A release ends in exactly one of: new version stable, old version
//!   stable with nothing new left running, or frozen (contract migration).
//!
//! # Layout
//! - `api`: the public types ([`ControllerConfig`], [`DeployRequest`],
//!   [`RollbackRequest`], [`Command`], [`DeployObserver`], reports).
//! - `controller`: [`Controller`] and the state it shares with its tasks.
//! - `release`: the release task and its strategies (`recreate`, `rolling`,
//!   `blue_green`, `canary`); `release::fail`: rollback or freeze.
//! - `rollback`: rollback by hand, end of the rollback window, leaving a freeze.
//! - `recover`: rebuilding from the `Deploys` projection after a restart.
//! - `groups`: starting, publishing, draining, stopping groups of instances.
//! - `env`: per-environment state (stable group, warm blue, frozen canary).
//! - `instance`: one instance and its supervisor (readiness, restarts with
//!   backoff, graceful stop); `process`: process groups, signals, ports;
//!   `health`: readiness probes.
//! - `runtime`: what an instance runs as (process group or container);
//!   `container`: container instances through the Docker Engine API
//!   (labels, graceful stop, adoption, drift); `container_ops`: the
//!   controller's container-specific steps (image check, adoption, orphans).
//! - `traffic`: the traffic driver trait (install roles, read them back,
//!   read counters) and which driver serves each environment.
//! - `routes`: the route table the controller owns; `router_api`: the
//!   router's admin API client (the default driver).
//! - `haproxy`: the HAProxy driver (server slots through the runtime API).
//! - `prometheus`: the judge's PromQL rules.
//! - `teardown`: removing an environment (review apps), live counters of
//!   the version it serves (alerts after a release).
//! - `smoke`: smoke tests through the router; `drift`: artifact manifests
//!   and instance comparison; `error`: [`DeployError`].

mod api;
mod container;
mod container_ops;
mod controller;
mod drift;
mod env;
mod error;
mod groups;
mod haproxy;
mod health;
mod instance;
mod process;
mod prometheus;
mod recover;
mod release;
mod rollback;
mod router_api;
mod routes;
mod runtime;
mod smoke;
mod teardown;
mod traffic;

pub use api::{
    Command, ControllerConfig, DeployObserver, DeployRequest, DriftReport, EnvSpec, InstanceInfo,
    RecoveryReport, RollbackRequest,
};
pub use controller::Controller;
pub use error::DeployError;

/// The header that forces a version through the router (`x-andon-version`).
pub const VERSION_HEADER: &str = routes::OVERRIDE_HEADER;
