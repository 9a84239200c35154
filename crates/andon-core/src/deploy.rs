//! Environments and deployments as a projection of events.
//!
//! The controller that drives a release is restartable because everything it
//! needs to resume — which deploy is in flight, which instances exist, what
//! the router was last told, which version was last known good — is folded
//! here from the log.
//!
//! Environments are keyed by (project, environment): two projects may each
//! have a `production`. Events about instances and traffic name only the
//! environment; their project comes from the deploy they belong to, or
//! from the instance they are about.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Envelope, Event};
pub use crate::on_demand::OnDemandView;

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
    pub project: String,
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

/// (project, environment): what names an environment.
pub type EnvKey = (String, String);

/// All environments and deployments.
#[derive(Debug, Clone, Default)]
pub struct Deploys {
    /// By (project, environment).
    pub envs: BTreeMap<EnvKey, EnvView>,
    pub deploys: BTreeMap<u64, DeployView>,
    /// Environments made on demand (`andon env up`) and not torn down yet.
    pub on_demand: BTreeMap<EnvKey, OnDemandView>,
    /// Alert rules fired and not resolved yet, per environment: a
    /// restarted server keeps watching them until they resolve.
    pub alerts_firing: BTreeMap<EnvKey, std::collections::BTreeSet<String>>,
    /// Which environment each live instance belongs to: the events after
    /// `InstanceStarted` name only the instance and the environment.
    instance_env: BTreeMap<String, EnvKey>,
}

fn key(project: &str, environment: &str) -> EnvKey {
    (project.to_string(), environment.to_string())
}

impl Deploys {
    pub fn new() -> Self {
        Self::default()
    }

    /// One project's environment.
    pub fn env(&self, project: &str, environment: &str) -> Option<&EnvView> {
        self.envs.get(&key(project, environment))
    }

    /// A project's environments, by name.
    pub fn envs_of<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a EnvView> + 'a {
        self.envs
            .range(key(project, "")..)
            .take_while(move |((p, _), _)| p == project)
            .map(|(_, v)| v)
    }

    fn env_mut(&mut self, k: EnvKey) -> &mut EnvView {
        self.envs.entry(k.clone()).or_insert_with(|| EnvView {
            project: k.0,
            name: k.1,
            ..EnvView::default()
        })
    }

    /// The key of an event that names a deploy: its project, this environment.
    fn by_deploy(&self, deploy_id: u64, environment: &str) -> EnvKey {
        let project = self
            .deploys
            .get(&deploy_id)
            .map(|d| d.project.clone())
            .unwrap_or_default();
        (project, environment.to_string())
    }

    /// The key of an event that names an instance.
    fn by_instance(&self, instance_id: &str, environment: &str) -> Option<EnvKey> {
        self.instance_env
            .get(instance_id)
            .filter(|k| k.1 == environment)
            .cloned()
    }

    pub fn next_id(&self) -> u64 {
        self.deploys.keys().next_back().map_or(1, |k| k + 1)
    }

    /// The version to return to: the newest good version other than `not`.
    pub fn last_good(&self, project: &str, env: &str, not: &str) -> Option<String> {
        self.env(project, env)?
            .good_versions
            .iter()
            .rev()
            .find(|v| v.as_str() != not)
            .cloned()
    }

    pub fn apply(&mut self, env: &Envelope) {
        crate::on_demand::apply(self, env);
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
                self.env_mut(key(project, environment)).current_deploy = Some(*deploy_id);
            }
            Event::InstanceStarted {
                environment,
                deploy_id,
                instance_id,
                version,
                addr,
                pid,
            } => {
                let k = self.by_deploy(*deploy_id, environment);
                self.instance_env.insert(instance_id.clone(), k.clone());
                self.env_mut(k).instances.insert(
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
                if let Some(i) = self
                    .by_instance(instance_id, environment)
                    .and_then(|k| self.envs.get_mut(&k))
                    .and_then(|e| e.instances.get_mut(instance_id))
                {
                    i.ready = true;
                }
            }
            Event::InstanceStopped {
                environment,
                instance_id,
                ..
            } => {
                if let Some(k) = self.by_instance(instance_id, environment) {
                    self.instance_env.remove(instance_id);
                    if let Some(e) = self.envs.get_mut(&k) {
                        e.instances.remove(instance_id);
                    }
                }
            }
            Event::InstanceDrift {
                environment,
                instance_id,
                detail,
            } => {
                if let Some(i) = self
                    .by_instance(instance_id, environment)
                    .and_then(|k| self.envs.get_mut(&k))
                    .and_then(|e| e.instances.get_mut(instance_id))
                {
                    i.drift = Some(detail.clone());
                }
            }
            Event::TrafficShifted {
                environment,
                deploy_id,
                weights,
            } => {
                let k = self.by_deploy(*deploy_id, environment);
                self.env_mut(k).weights = weights.clone();
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
                project,
                environment,
                deploy_id,
                outcome,
                reason,
            } => {
                let version = self.deploys.get_mut(deploy_id).map(|d| {
                    d.phase = DeployPhase::Finished(*outcome);
                    d.finished_at_ms = Some(env.at_ms);
                    if reason.is_some() {
                        d.reason = reason.clone();
                    }
                    d.version.clone()
                });
                let e = self.env_mut(key(project, environment));
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
        assert_eq!(d.env("p", "prod").unwrap().current_deploy, Some(3));
        assert_eq!(d.last_good("p", "prod", "v3").as_deref(), Some("v2"));
        d.apply(&at(6, finished(3, DeployOutcome::RolledBack)));
        assert_eq!(d.env("p", "prod").unwrap().stable.as_deref(), Some("v2"));
        assert_eq!(d.last_good("p", "prod", "v2").as_deref(), Some("v1"));
        assert_eq!(d.next_id(), 4);
    }

    fn in_project(project: &str, e: Event) -> Event {
        match e {
            Event::DeployRequested {
                environment,
                deploy_id,
                version,
                strategy,
                ..
            } => Event::DeployRequested {
                project: project.into(),
                environment,
                deploy_id,
                version,
                strategy,
                run_id: None,
                commit: None,
                reason: None,
            },
            Event::DeployFinished {
                environment,
                deploy_id,
                outcome,
                ..
            } => Event::DeployFinished {
                project: project.into(),
                environment,
                deploy_id,
                outcome,
                reason: None,
            },
            other => other,
        }
    }

    #[test]
    fn two_projects_keep_their_own_production() {
        let mut d = Deploys::new();
        d.apply(&at(1, in_project("shop", requested(1, "s1"))));
        d.apply(&at(2, in_project("blog", requested(2, "b1"))));
        for (seq, (id, inst)) in [(1, "i-shop"), (2, "i-blog")].into_iter().enumerate() {
            d.apply(&at(
                3 + seq as u64,
                Event::InstanceStarted {
                    environment: "prod".into(),
                    deploy_id: id,
                    instance_id: inst.into(),
                    version: "v".into(),
                    addr: "127.0.0.1:1".into(),
                    pid: None,
                },
            ));
        }
        d.apply(&at(
            5,
            Event::InstanceReady {
                environment: "prod".into(),
                instance_id: "i-blog".into(),
            },
        ));
        d.apply(&at(
            6,
            in_project("shop", finished(1, DeployOutcome::Succeeded)),
        ));
        d.apply(&at(
            7,
            Event::TrafficShifted {
                environment: "prod".into(),
                deploy_id: 2,
                weights: BTreeMap::from([("b1".to_string(), 100)]),
            },
        ));
        let shop = d.env("shop", "prod").unwrap();
        let blog = d.env("blog", "prod").unwrap();
        assert_eq!(shop.stable.as_deref(), Some("s1"));
        assert_eq!(shop.current_deploy, None);
        assert_eq!(blog.stable, None);
        assert_eq!(blog.current_deploy, Some(2));
        assert_eq!(shop.instances.keys().collect::<Vec<_>>(), ["i-shop"]);
        assert!(!shop.instances["i-shop"].ready);
        assert!(blog.instances["i-blog"].ready);
        assert!(shop.weights.is_empty());
        assert_eq!(blog.weights["b1"], 100);
        assert_eq!(d.envs_of("blog").count(), 1);
        d.apply(&at(
            8,
            Event::InstanceStopped {
                environment: "prod".into(),
                instance_id: "i-shop".into(),
                reason: "x".into(),
            },
        ));
        assert!(d.env("shop", "prod").unwrap().instances.is_empty());
        assert_eq!(d.env("blog", "prod").unwrap().instances.len(), 1);
    }
}
