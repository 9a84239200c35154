//! Runs a pipeline: DAG scheduling (fastest feedback first, fail fast), one
//! shell process group per job attempt, masked streamed logs, JUnit results,
//! and content-addressed artifacts.
//!
//! The runner does no storage of its own: everything it learns goes out
//! through a [`RunObserver`] as [`andon_core::Event`]s and masked log lines,
//! and comes back as a [`RunSummary`]. The caller prepares a clean checkout
//! first ([`git::checkout`]) and owns the scratch directory.
//!
//! # Layout
//! - [`spec`]: what to run ([`RunSpec`], [`JobSpec`]) and what came of it
//!   ([`RunSummary`], [`JobReport`]), plus the [`RunObserver`] trait.
//! - `pipeline`: [`run_pipeline`], the scheduler (private).
//! - `job`: attempts, retries, flakiness, artifacts and JUnit of one job
//!   (private).
//! - `process`: one process group, its logs, timeout and kill (private).
//! - `config`: [`jobs_from_config`], from `andon.yaml`'s model to
//!   [`JobSpec`]s.
//! - [`executor`]: how a script becomes a process: [`LocalExecutor`]
//!   (`sh -c`) and [`BwrapExecutor`] (bubblewrap sandbox).
//! - [`mask`]: [`Masker`], secret masking of log lines.
//! - `junit`: JUnit XML parsing (private).
//! - [`git`]: HEAD, refs, commit info and disposable checkouts.
//! - [`reap`]: [`reap_orphans`], ending jobs a killed server left behind;
//!   `reap_containers`: [`reap_orphan_containers`], the same for containers.
//! - `attempt`: where one attempt runs (process group, sandbox or
//!   container), private; `container`: a job attempt in a container through
//!   the Docker Engine API, private; [`docker`]: finding and pinging the
//!   engine (`DOCKER_HOST`), [`ContainerError`].
//! - [`remote`]: [`RemoteJobs`], how jobs with `runs_on` are handed to
//!   remote agents, and the attempts loop for them.

mod attempt;
mod config;
mod container;
pub mod docker;
pub mod executor;
pub mod git;
mod job;
mod junit;
pub mod mask;
mod pipeline;
mod process;
pub mod reap;
mod reap_containers;
pub mod remote;
pub mod spec;

pub use config::jobs_from_config;
pub use docker::ContainerError;
pub use executor::{BwrapExecutor, Executor, Invocation, LocalExecutor};
pub use mask::Masker;
pub use pipeline::run_pipeline;
pub use reap::{reap_orphans, reap_orphans_of};
pub use reap_containers::reap_orphan_containers;
pub use remote::{RemoteAttempt, RemoteJobs, RemoteOutcome};
pub use spec::{JobReport, JobSpec, RunObserver, RunSpec, RunSummary, StoredArtifact};
