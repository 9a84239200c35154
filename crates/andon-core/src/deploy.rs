//! Environments and deployments as a projection of events.
//!
//! The controller that drives a release is restartable because everything it
//! needs to resume — which deploy is in flight, which instances exist, what
//! the router was last told, which version was last known good — is folded
//! here from the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Envelope, Event};

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployOutcome {
    /// The new version serves all traffic.
    Succeeded,
    /// The judge (or a person) failed it and traffic went back.
    RolledBack,
    /// Stopped by hand before completion; traffic went back.
    Aborted,
    /// Could not start (instances never became ready, ...).
    Failed,
    /// A contract migration forbade rollback: frozen, a human decides.
    Frozen,
}

impl DeployOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployOutcome::Succeeded => "succeeded",
            DeployOutcome::RolledBack => "rolled_back",
            DeployOutcome::Aborted => "aborted",
            DeployOutcome::Failed => "failed",
            DeployOutcome::Frozen => "frozen",
        }
    }
}

/// Where a deployment is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPhase {
    InProgress,
    Paused,
    Finished(DeployOutcome),
}

/// One deployment, folded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployView {
    pub id: u64,
    pub project: String,
    pub environment: String,
    pub version: String,
    pub strategy: String,
    pub phase: DeployPhase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub requested_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The judge's verdicts, newest last: (time, outcome, sentence).
    pub verdicts: Vec<(i64, String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A running instance of some version in an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub version: String,
    pub addr: String,
    pub pid: Option<i32>,
    pub ready: bool,
    pub deploy_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

/// An environment, folded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnvView {
    pub name: String,
    /// The version serving all traffic when no deploy is in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// Versions that once completed here, newest last (for rollback).
    pub good_versions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_deploy: Option<u64>,
    pub weights: BTreeMap<String, u8>,
    pub instances: BTreeMap<String, InstanceView>,
}

/// All environments and deployments.
#[derive(Debug, Clone, Default)]
pub struct Deploys {
    pub envs: BTreeMap<String, EnvView>,
    pub deploys: BTreeMap<u64, DeployView>,
}

impl Deploys {
    pub fn new() -> Self {
        Self::default()
    }

    fn env_mut(&mut self, name: &str) -> &mut EnvView {
        self.envs
            .entry(name.to_string())
            .or_insert_with(|| EnvView {
                name: name.to_string(),
                ..EnvView::default()
            })
    }

    pub fn next_id(&self) -> u64 {
        self.deploys.keys().next_back().map_or(1, |k| k + 1)
    }

    /// The version to return to: the newest good version other than `not`.
    pub fn last_good(&self, env: &str, not: &str) -> Option<String> {
        self.envs
            .get(env)?
            .good_versions
            .iter()
            .rev()
            .find(|v| v.as_str() != not)
            .cloned()
    }

    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::DeployRequested {
                project,
                environment,
                deploy_id,
                version,
                strategy,
                run_id,
                commit,
                reason,
            } => {
                self.deploys.insert(
                    *deploy_id,
                    DeployView {
                        id: *deploy_id,
                        project: project.clone(),
                        environment: environment.clone(),
                        version: version.clone(),
                        strategy: strategy.clone(),
                        phase: DeployPhase::InProgress,
                        run_id: *run_id,
                        commit: commit.clone(),
                        requested_at_ms: env.at_ms,
                        finished_at_ms: None,
                        verdicts: Vec::new(),
                        reason: reason.clone(),
                    },
                );
                self.env_mut(environment).current_deploy = Some(*deploy_id);
            }
            Event::InstanceStarted {
                environment,
                deploy_id,
                instance_id,
                version,
                addr,
                pid,
            } => {
                self.env_mut(environment).instances.insert(
                    instance_id.clone(),
                    InstanceView {
                        id: instance_id.clone(),
                        version: version.clone(),
                        addr: addr.clone(),
                        pid: *pid,
                        ready: false,
                        deploy_id: *deploy_id,
                        drift: None,
                    },
                );
            }
            Event::InstanceReady {
                environment,
                instance_id,
            } => {
                if let Some(i) = self.env_mut(environment).instances.get_mut(instance_id) {
                    i.ready = true;
                }
            }
            Event::InstanceStopped {
                environment,
                instance_id,
                ..
            } => {
                self.env_mut(environment).instances.remove(instance_id);
            }
            Event::InstanceDrift {
                environment,
                instance_id,
                detail,
            } => {
                if let Some(i) = self.env_mut(environment).instances.get_mut(instance_id) {
                    i.drift = Some(detail.clone());
                }
            }
            Event::TrafficShifted {
                environment,
                weights,
                ..
            } => {
                self.env_mut(environment).weights = weights.clone();
            }
            Event::DeployPaused { deploy_id, .. } => {
                if let Some(d) = self.deploys.get_mut(deploy_id) {
                    d.phase = DeployPhase::Paused;
                }
            }
            Event::DeployResumed { deploy_id, .. } => {
                if let Some(d) = self.deploys.get_mut(deploy_id) {
                    d.phase = DeployPhase::InProgress;
                }
            }
            Event::JudgeVerdict {
                deploy_id,
                outcome,
                sentence,
                ..
            } => {
                if let Some(d) = self.deploys.get_mut(deploy_id) {
                    d.verdicts
                        .push((env.at_ms, outcome.clone(), sentence.clone()));
                }
            }
            Event::DeployFinished {
                environment,
                deploy_id,
                outcome,
                reason,
                ..
            } => {
                let version = self.deploys.get_mut(deploy_id).map(|d| {
                    d.phase = DeployPhase::Finished(*outcome);
                    d.finished_at_ms = Some(env.at_ms);
                    if reason.is_some() {
                        d.reason = reason.clone();
                    }
                    d.version.clone()
                });
                let e = self.env_mut(environment);
                if e.current_deploy == Some(*deploy_id) {
                    e.current_deploy = None;
                }
                if let (DeployOutcome::Succeeded, Some(v)) = (outcome, version) {
                    e.good_versions.retain(|g| g != &v);
                    e.good_versions.push(v.clone());
                    e.stable = Some(v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at_ms: seq as i64,
            actor: "t".into(),
            event,
        }
    }

    fn requested(id: u64, version: &str) -> Event {
        Event::DeployRequested {
            project: "p".into(),
            environment: "prod".into(),
            deploy_id: id,
            version: version.into(),
            strategy: "canary".into(),
            run_id: None,
            commit: None,
            reason: None,
        }
    }

    fn finished(id: u64, outcome: DeployOutcome) -> Event {
        Event::DeployFinished {
            project: "p".into(),
            environment: "prod".into(),
            deploy_id: id,
            outcome,
            reason: None,
        }
    }

    #[test]
    fn rollback_target_is_last_good_version() {
        let mut d = Deploys::new();
        d.apply(&at(1, requested(1, "v1")));
        d.apply(&at(2, finished(1, DeployOutcome::Succeeded)));
        d.apply(&at(3, requested(2, "v2")));
        d.apply(&at(4, finished(2, DeployOutcome::Succeeded)));
        d.apply(&at(5, requested(3, "v3")));
        assert_eq!(d.envs["prod"].current_deploy, Some(3));
        assert_eq!(d.last_good("prod", "v3").as_deref(), Some("v2"));
        d.apply(&at(6, finished(3, DeployOutcome::RolledBack)));
        assert_eq!(d.envs["prod"].stable.as_deref(), Some("v2"));
        assert_eq!(d.last_good("prod", "v2").as_deref(), Some("v1"));
        assert_eq!(d.next_id(), 4);
    }
}
