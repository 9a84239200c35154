//! Andon's flow rules, as pure folds over the event log: the andon cord,
//! DORA metrics and the delivery "gear", the board, incidents, release
//! models, and notification payloads.
//!
//! Nothing here does IO or reads a clock: every view is built by calling
//! `apply(&Envelope)` for each event in log order, and "now" is an argument
//! wherever a rule needs it. That is what lets the server rebuild every
//! view after a restart, and lets tests replay months of generated history
//! in milliseconds. Views that make a decision (the cord, the board's
//! automatic moves) return the event the server should append rather than
//! changing themselves: every state change is an event.
//!
//! # Layout
//! - [`cord`]: [`Cord`] — is the line stopped, who is fixing it, and which
//!   `line_stopped` / `line_released` to append after a run.
//! - [`dora`]: [`Dora`] and [`Metrics`] — the four keys and time to green,
//!   with [`bands`] (DORA 2024 thresholds) and [`gear`] (1st–5th gear and
//!   the limiting factor).
//! - [`board`]: [`Board`] — columns, WIP limits, card references in commit
//!   messages, automatic moves, card lead/cycle time, cumulative flow.
//! - [`incidents`]: [`Incidents`] — timelines filled from events, blameless
//!   postmortems.
//! - [`release`]: [`ReleasePolicy`] — deploy windows, freezes, trains,
//!   continuous deployment.
//! - [`notify`]: JSON and Slack payloads, `sha256=` HMAC signatures.
//! - [`refusal`]: [`Refusal`], every "no" with what to do about it.
//! - `time`, `stats`, `trunk`: calendar arithmetic, median/percentile, and
//!   which commits a deploy carries (private).
//! - `testing` (feature `testing`): a seeded generator of realistic history
//!   with its own ground truth, for tests and demos.

pub mod bands;
pub mod board;
pub mod cord;
pub mod dora;
pub mod gear;
pub mod incidents;
pub mod notify;
pub mod refusal;
pub mod release;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod trunk;

pub use bands::Band;
pub use board::{Board, Card, card_refs, card_refs_with_prefix};
pub use cord::Cord;
pub use dora::{Dora, Metrics, production_environment};
pub use gear::Gear;
pub use incidents::{IncidentView, Incidents, Postmortem, TimelineEntry};
pub use notify::sign;
pub use refusal::Refusal;
pub use release::{ReleasePolicy, ScheduleError, next_train, should_auto_promote};
