//! Feature flags in-process, from an Andon server.
//!
//! A [`Client`] fetches the flags of one environment (`GET
//! /api/v1/flags/snapshot`), compiles them, and evaluates locally: no
//! network per evaluation, and the last snapshot keeps serving when the
//! server is away. It stays current through the server's change stream
//! (`GET /ofrep/v1/events`, Server-Sent Events, OFREP ADR-0008: each
//! `refetchEvaluation` triggers a conditional re-fetch), reconnecting with
//! exponential backoff; while the stream is down it polls. It counts which
//! variant each flag served and the outcomes the application reports, and
//! sends them in batches (`POST /api/v1/flags/exposures`), which is what a
//! guarded rollout judges.
//!
//! ```no_run
//! # async fn demo() {
//! use andon_flags_sdk::{Client, ClientConfig, Context};
//! let client = Client::connect(ClientConfig::new(
//!     "http://127.0.0.1:7070",
//!     "andon_…sdk token…",
//!     "production",
//! ))
//! .await;
//! let ctx = Context::with_key("user-42").attr("country", "no");
//! if client.bool_value("new-checkout", &ctx, false) {
//!     // ...
//!     client.record_outcome("new-checkout", "on", true);
//! }
//! # }
//! ```
//!
//! Use an SDK token: a viewer token scoped to the environment
//! (`andon token create web --role viewer --environment production`).
//!
//! # Layout
//! - `client`: [`Client`], [`ClientConfig`], evaluation and typed getters.
//! - `sync`: the snapshot fetch, the change stream with backoff, polling.
//! - `sse`: a Server-Sent Events parser.
//! - `report`: exposure and outcome counts, flushed in batches.
//! - `provider`: [`AndonProvider`], an OpenFeature `FeatureProvider`.
//! - `error`: [`SdkError`].

mod client;
mod error;
mod provider;
mod report;
mod sse;
mod sync;

pub use andon_flags::{Context, Evaluation, Reason};
pub use client::{Client, ClientConfig};
pub use error::SdkError;
pub use provider::AndonProvider;
