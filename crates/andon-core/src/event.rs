//! What happened, in the order it happened.
//!
//! Events are facts: past tense, never edited, never deleted. Their JSON form
//! (`{"type": "run_started", ...}`) is what the store keeps and what the API
//! streams, so renaming a variant or a field is a data migration, not a
//! refactor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An event with the facts the log adds to it when it is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the log: strictly increasing, without gaps per store.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the event was appended.
    pub at_ms: i64,
    /// Who caused it: a token's name, `system`, or a webhook's source.
    pub actor: String,
    #[serde(flatten)]
    pub event: Event,
}

/// How a run came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `andon trigger` or the API.
    Manual,
    /// The repository watcher saw a new commit.
    Poll,
    /// A forge webhook (github, gitlab, gitea).
    Webhook(String),
    /// `andon run` on a developer's machine.
    Local,
}

/// The state of a run as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Cancelled,
    /// The server stopped (crash, kill -9) while the run was in flight; found
    /// and closed at the next start.
    Interrupted,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt of a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    Passed,
    Failed,
    TimedOut,
    /// Stopped because another job failed (fail fast) or the run was cancelled.
    Cancelled,
    /// Never started: a job it needs failed, or `when` excluded it.
    Skipped,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Passed => "passed",
            JobOutcome::Failed => "failed",
            JobOutcome::TimedOut => "timed_out",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Test results parsed from the JUnit XML a job produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// A job as planned when its run starts: the DAG is fixed at that moment so a
/// projection never needs the config that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    pub name: String,
    pub stage: String,
    /// Stage kind (`unit`, `acceptance`, ...), if the stage declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Effective dependencies (explicit `needs`, or the previous stage).
    #[serde(default)]
    pub deps: Vec<String>,
    #[serde(default)]
    pub allow_failure: bool,
}

/// Everything that can happen in Andon. Grouped by the part that appends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    // --- projects and access -------------------------------------------
    ProjectAdded {
        project: String,
        repo: String,
        trunk: String,
        poll_s: Option<u64>,
    },
    ProjectRemoved {
        project: String,
    },
    /// A token was created. Only its id, name and role: never the secret or its hash.
    TokenCreated {
        token_id: String,
        name: String,
        role: crate::Role,
        /// Restricts the token to one environment (SDK and scoped deploy tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
    },
    TokenRevoked {
        token_id: String,
    },
    /// A secret's value changed. The value is never in an event.
    SecretSet {
        project: String,
        name: String,
    },

    // --- pipeline runs --------------------------------------------------
    CommitSeen {
        project: String,
        branch: String,
        commit: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        author: String,
        /// Commit time, ms since epoch (for lead time).
        committed_at_ms: i64,
    },
    RunQueued {
        project: String,
        run_id: u64,
        commit: String,
        branch: String,
        trigger: Trigger,
    },
    RunStarted {
        run_id: u64,
        jobs: Vec<PlannedJob>,
    },
    JobStarted {
        run_id: u64,
        job: String,
        attempt: u32,
        /// Process group of the job's shell, so a restarted server can end it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pgid: Option<i32>,
        /// Where it runs: `local`, `bwrap`, `container`, or an agent's name.
        #[serde(default)]
        executor: String,
    },
    JobFinished {
        run_id: u64,
        job: String,
        attempt: u32,
        outcome: JobOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tests: Option<TestCounts>,
        /// A job that failed and then passed on retry, on the same commit.
        #[serde(default)]
        flaky: bool,
    },
    /// A job never ran: a dependency failed, or the run was cancelled first.
    JobSkipped {
        run_id: u64,
        job: String,
        reason: String,
    },
    ArtifactStored {
        run_id: u64,
        job: String,
        /// Path as written in `artifacts:`, relative to the checkout.
        path: String,
        /// `sha256:<hex>` of the artifact's deterministic tar stream (always a
        /// tar, for a single file too, so names and modes travel with it).
        digest: String,
        size: u64,
    },
    RunFinished {
        run_id: u64,
        status: RunStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },

    // --- remote agents ----------------------------------------------------
    /// An agent asked for work for the first time (or again after it was
    /// gone): `andon agent --name NAME --labels ...`.
    AgentConnected {
        agent: String,
        labels: Vec<String>,
    },
    /// An attempt of a job with `runs_on` is ready and waits for an agent
    /// that has all of `runs_on`.
    JobQueued {
        run_id: u64,
        job: String,
        attempt: u32,
        runs_on: Vec<String>,
    },
    /// An agent took the attempt. Only the holder of `lease` may report on
    /// it, and only while it renews the lease with heartbeats.
    JobLeased {
        run_id: u64,
        job: String,
        attempt: u32,
        agent: String,
        lease: String,
    },
    /// The lease ran out (the agent died or lost the network): the attempt
    /// is recorded failed, and the job is queued again as a new attempt.
    LeaseExpired {
        run_id: u64,
        job: String,
        attempt: u32,
        agent: String,
        lease: String,
        reason: String,
    },

    // --- environments and deployments -----------------------------------
    DeployRequested {
        project: String,
        environment: String,
        deploy_id: u64,
        /// Artifact digest being deployed.
        version: String,
        strategy: String,
        /// The run that built it, when known (for lead time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Deployment refused before it started (line stopped, window closed, ...).
    DeployRefused {
        project: String,
        environment: String,
        version: String,
        reason: String,
    },
    InstanceStarted {
        environment: String,
        deploy_id: u64,
        instance_id: String,
        version: String,
        addr: String,
        pid: Option<i32>,
    },
    InstanceReady {
        environment: String,
        instance_id: String,
    },
    InstanceStopped {
        environment: String,
        instance_id: String,
        reason: String,
    },
    InstanceDrift {
        environment: String,
        instance_id: String,
        detail: String,
    },
    /// The router's weights for an environment changed: version digest → percent.
    TrafficShifted {
        environment: String,
        deploy_id: u64,
        weights: BTreeMap<String, u8>,
    },
    DeployPaused {
        environment: String,
        deploy_id: u64,
    },
    DeployResumed {
        environment: String,
        deploy_id: u64,
    },
    JudgeVerdict {
        environment: String,
        deploy_id: u64,
        /// `pass`, `fail` or `pending`.
        outcome: String,
        sentence: String,
    },
    DeployFinished {
        project: String,
        environment: String,
        deploy_id: u64,
        outcome: crate::DeployOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    IncidentOpened {
        project: String,
        incident_id: u64,
        environment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deploy_id: Option<u64>,
        title: String,
    },
    IncidentResolved {
        incident_id: u64,
        #[serde(default)]
        note: String,
    },

    // --- the andon cord -------------------------------------------------
    LineStopped {
        project: String,
        run_id: u64,
        commit: String,
    },
    LineReleased {
        project: String,
        run_id: u64,
        red_for_ms: u64,
    },
    LineOverridden {
        project: String,
        environment: String,
        reason: String,
    },

    /// An alert rule on a live environment fired (error rate, latency).
    AlertFired {
        project: String,
        environment: String,
        rule: String,
        sentence: String,
    },
    /// An alert that fired is healthy again (below its limit, with margin,
    /// for the rule's `for`), or its version no longer serves.
    AlertResolved {
        project: String,
        environment: String,
        rule: String,
        sentence: String,
    },
    /// An environment made on demand from a template (`andon env up`), e.g.
    /// a review app for a branch. Again for the same name: it moves to the
    /// new commit and its TTL starts over.
    EnvironmentUp {
        project: String,
        environment: String,
        /// The `environments:` entry it was made from.
        template: String,
        #[serde(rename = "ref")]
        reference: String,
        commit: String,
        /// The run whose artifact it gets (found or started for `commit`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// Torn down this long after this event; none: until `env down`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// An on-demand environment was torn down: instances stopped, routes removed.
    EnvironmentDown {
        project: String,
        environment: String,
        reason: String,
    },
    PostmortemWritten {
        incident_id: u64,
        #[serde(default)]
        went_right: String,
        #[serde(default)]
        went_wrong: String,
        #[serde(default)]
        action_items: Vec<String>,
    },
    /// One attempt to deliver a notification to a subscriber's webhook.
    NotificationAttempted {
        project: String,
        subscription: String,
        /// The event that caused the notification.
        about_seq: u64,
        attempt: u32,
        ok: bool,
        #[serde(default)]
        detail: String,
    },

    // --- the board ------------------------------------------------------
    CardCreated {
        project: String,
        card_id: u64,
        title: String,
        column: String,
    },
    CardMoved {
        project: String,
        card_id: u64,
        from: String,
        to: String,
        /// Moved past a full column's WIP limit by an admin.
        #[serde(default)]
        over_limit: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Moved by the flow of a commit naming the card, not by a person.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
    },

    // --- feature flags ----------------------------------------------------
    /// A flag's definition changed; `after` is the flag as JSON, null when deleted.
    FlagChanged {
        project: String,
        flag: String,
        after: serde_json::Value,
        #[serde(default)]
        reason: String,
    },
    /// A segment (a named, reusable set of conditions) changed; null when deleted.
    SegmentChanged {
        project: String,
        segment: String,
        after: serde_json::Value,
        #[serde(default)]
        reason: String,
    },
    /// Counts SDKs reported: which variant users got per flag and
    /// environment, and how many of their requests failed, since the last
    /// report. Guarded rollouts judge on these.
    FlagExposures {
        environment: String,
        /// `flag` → `variant` → counts.
        counts: BTreeMap<String, BTreeMap<String, ExposureCounts>>,
    },
}

/// What SDKs saw of one variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureCounts {
    pub evaluations: u64,
    /// Outcomes the application reported as errors for users on this variant.
    #[serde(default)]
    pub errors: u64,
    /// Outcomes reported at all (errors included).
    #[serde(default)]
    pub outcomes: u64,
}

impl Event {
    /// The `type` tag, for filters and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ProjectAdded { .. } => "project_added",
            Event::ProjectRemoved { .. } => "project_removed",
            Event::TokenCreated { .. } => "token_created",
            Event::TokenRevoked { .. } => "token_revoked",
            Event::SecretSet { .. } => "secret_set",
            Event::CommitSeen { .. } => "commit_seen",
            Event::RunQueued { .. } => "run_queued",
            Event::RunStarted { .. } => "run_started",
            Event::JobStarted { .. } => "job_started",
            Event::JobFinished { .. } => "job_finished",
            Event::JobSkipped { .. } => "job_skipped",
            Event::ArtifactStored { .. } => "artifact_stored",
            Event::RunFinished { .. } => "run_finished",
            Event::AgentConnected { .. } => "agent_connected",
            Event::JobQueued { .. } => "job_queued",
            Event::JobLeased { .. } => "job_leased",
            Event::LeaseExpired { .. } => "lease_expired",
            Event::DeployRequested { .. } => "deploy_requested",
            Event::DeployRefused { .. } => "deploy_refused",
            Event::InstanceStarted { .. } => "instance_started",
            Event::InstanceReady { .. } => "instance_ready",
            Event::InstanceStopped { .. } => "instance_stopped",
            Event::InstanceDrift { .. } => "instance_drift",
            Event::TrafficShifted { .. } => "traffic_shifted",
            Event::DeployPaused { .. } => "deploy_paused",
            Event::DeployResumed { .. } => "deploy_resumed",
            Event::JudgeVerdict { .. } => "judge_verdict",
            Event::DeployFinished { .. } => "deploy_finished",
            Event::IncidentOpened { .. } => "incident_opened",
            Event::IncidentResolved { .. } => "incident_resolved",
            Event::LineStopped { .. } => "line_stopped",
            Event::LineReleased { .. } => "line_released",
            Event::LineOverridden { .. } => "line_overridden",
            Event::AlertFired { .. } => "alert_fired",
            Event::AlertResolved { .. } => "alert_resolved",
            Event::EnvironmentUp { .. } => "environment_up",
            Event::EnvironmentDown { .. } => "environment_down",
            Event::PostmortemWritten { .. } => "postmortem_written",
            Event::NotificationAttempted { .. } => "notification_attempted",
            Event::CardCreated { .. } => "card_created",
            Event::CardMoved { .. } => "card_moved",
            Event::FlagChanged { .. } => "flag_changed",
            Event::SegmentChanged { .. } => "segment_changed",
            Event::FlagExposures { .. } => "flag_exposures",
        }
    }

    /// The run this event belongs to, if any: lets the store index by run.
    pub fn run_id(&self) -> Option<u64> {
        match self {
            Event::RunQueued { run_id, .. }
            | Event::RunStarted { run_id, .. }
            | Event::JobStarted { run_id, .. }
            | Event::JobFinished { run_id, .. }
            | Event::JobSkipped { run_id, .. }
            | Event::ArtifactStored { run_id, .. }
            | Event::RunFinished { run_id, .. }
            | Event::JobQueued { run_id, .. }
            | Event::JobLeased { run_id, .. }
            | Event::LeaseExpired { run_id, .. } => Some(*run_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_tagged_and_flat() {
        let env = Envelope {
            seq: 3,
            at_ms: 10,
            actor: "ci".into(),
            event: Event::RunFinished {
                run_id: 7,
                status: RunStatus::Passed,
                reason: None,
            },
        };
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq":3,"at_ms":10,"actor":"ci","type":"run_finished","run_id":7,"status":"passed"})
        );
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.event.kind(), "run_finished");
    }
}
