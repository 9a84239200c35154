//! Anytime-valid sequential tests that judge a canary against its baseline.
//!
//! The judge watches a release continuously: after every scrape of the
//! router (about every 250 ms) it says Pass, Fail or Pending. Looking that
//! often is safe because every test here is an *e-process*: a running
//! measure of evidence that, for a canary that is not worse, stays below
//! `1/α` forever with probability at least `1 - α` (Ville's inequality).
//! Rules that compare a fresh measurement with a threshold every interval
//! (Flagger, Argo Rollouts) raise their false-alarm rate with every extra
//! look; these do not, so the judge can stop as soon as the evidence is
//! enough. See Lindon, Sanden & Shirikian (KDD 2022) and Howard, Ramdas,
//! McAuliffe & Sekhon (Ann. Statist. 2021).
//!
//! The crate is pure: no IO and no clock. The caller feeds snapshots and
//! decides how long a step lasts.
//!
//! ```
//! use andon_judge::{Judge, JudgeConfig, Outcome, VersionStats};
//!
//! let mut judge = Judge::new(JudgeConfig { alpha: 0.01, max_error_rate: None,
//!     max_p99: None, compare_to_baseline: true, min_requests: 100 })?;
//! let canary = VersionStats { requests: 2310, errors: 111, ..Default::default() };
//! let baseline = VersionStats { requests: 2290, errors: 25, ..Default::default() };
//! let verdict = judge.observe(&canary, &baseline);
//! assert_eq!(verdict.outcome, Outcome::Fail);
//! assert_eq!(verdict.sentence, "canary 4.8% errors vs baseline 1.1% over 2,310 requests; p < 0.01");
//! # Ok::<(), andon_judge::JudgeError>(())
//! ```
//!
//! # Layout
//!
//! - `judge`: [`Judge`], [`JudgeConfig`], [`Verdict`]: every configured test,
//!   alpha split over them, sentences.
//! - `error_rate`: [`ErrorRateTest`], canary vs baseline error rates.
//! - `latency`: [`LatencyTest`], canary vs baseline latency histograms.
//! - `odds`: the two-sample engine both comparisons share (conditional
//!   odds-ratio mixture, one factor per batch).
//! - `alert`: [`AlertMonitor`], threshold-for-a-duration alert rules with
//!   hysteresis, for monitoring after a release is done.
//! - `bound`: the one-sample engine of the threshold rules (tests and
//!   confidence bounds for one proportion).
//! - `stats`: [`VersionStats`], [`LATENCY_BUCKETS_S`], snapshot deltas, quantiles.
//! - `math`: log-factorials and log-sum-exp.
//! - `format`: numbers in sentences.
//! - `error`: [`JudgeError`].

mod alert;
mod bound;
mod error;
mod error_rate;
mod format;
mod judge;
mod latency;
mod math;
mod odds;
mod stats;

pub use alert::{AlertChange, AlertConfig, AlertMonitor, AlertRule};
pub use error::JudgeError;
pub use error_rate::{ErrorCounts, ErrorRateTest};
pub use judge::{Judge, JudgeConfig, Outcome, Rule, Verdict};
pub use latency::LatencyTest;
pub use stats::{LATENCY_BUCKETS_S, VersionStats};
