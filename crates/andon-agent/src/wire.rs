//! The JSON an agent exchanges with the server (see the server's
//! `api/agents.rs`, which owns the other side).

use std::collections::BTreeMap;

use andon_core::{JobOutcome, TestCounts};
use serde::{Deserialize, Serialize};

/// A leased attempt.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Offer {
    pub(crate) lease: String,
    pub(crate) ttl_ms: u64,
    pub(crate) heartbeat_ms: u64,
    pub(crate) run_id: u64,
    #[serde(default)]
    pub(crate) commit: Option<String>,
    pub(crate) job: String,
    pub(crate) attempt: u32,
    pub(crate) spec: OfferSpec,
    #[serde(default)]
    pub(crate) inputs: Vec<Artifact>,
}

/// The job, as the server's config resolved it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OfferSpec {
    pub(crate) name: String,
    pub(crate) stage: String,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    pub(crate) run: String,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Every secret the job names; those the server has are in `secrets`.
    #[serde(default)]
    pub(crate) secret_names: Vec<String>,
    /// Name → value of the secrets the job names.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) timeout_ms: Option<u64>,
    #[serde(default)]
    pub(crate) artifacts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Artifact {
    pub(crate) path: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// The attempt's one report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finish {
    pub(crate) outcome: JobOutcome,
    pub(crate) exit_code: Option<i32>,
    pub(crate) duration_ms: u64,
    pub(crate) tests: Option<TestCounts>,
    pub(crate) failed_tests: Vec<String>,
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) reason: Option<String>,
}
