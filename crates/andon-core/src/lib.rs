//! Andon's pure domain core: the events every part of Andon appends to one log,
//! and the projections that turn that log back into state.
//!
//! Nothing here does IO or reads a clock: time arrives inside events. That is
//! what makes crash recovery, audit and metrics fall out of the same log — the
//! state after a restart is the fold of the events that were committed, and a
//! test can replay any history it likes.
//!
//! # Layout
//! - [`event`]: the [`Event`] enum (what happened) and its [`Envelope`]
//!   (sequence number, time, actor).
//! - [`run`]: the pipeline-run state machine, [`RunView`] folded from events.
//! - [`deploy`]: the deployment state machine, [`EnvView`] folded from events.
//! - `on_demand`: environments made on demand (review apps) and their TTL,
//!   [`OnDemandView`], part of the [`Deploys`] fold.
//! - [`project`]: watched repositories, [`Projects`].
//! - [`role`]: token roles and what each may do.

pub mod deploy;
pub mod event;
mod on_demand;
pub mod project;
pub mod role;
pub mod run;

pub use deploy::{
    DeployOutcome, DeployPhase, DeployView, Deploys, EnvKey, EnvView, InstanceView, OnDemandView,
};
pub use event::{
    Envelope, Event, ExposureCounts, JobOutcome, PlannedJob, RunStatus, TestCounts, Trigger,
};
pub use project::{ProjectView, Projects};
pub use role::Role;
pub use run::{JobView, RunView, Runs};
