//! Small builders for hand-written histories.
#![allow(dead_code)]

use andon_core::{DeployOutcome, Envelope, Event, RunStatus, Trigger};

/// An event log under construction: seq numbers are assigned in order.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<Envelope>,
}

impl Log {
    pub(crate) fn new() -> Self {
        let mut l = Log::default();
        l.at(
            0,
            Event::ProjectAdded {
                project: "shop".into(),
                repo: "/r".into(),
                trunk: "main".into(),
                poll_s: None,
            },
        );
        l
    }

    pub(crate) fn at(&mut self, at_ms: i64, event: Event) -> Envelope {
        let env = Envelope {
            seq: self.events.len() as u64 + 1,
            at_ms,
            actor: "test".into(),
            event,
        };
        self.events.push(env.clone());
        env
    }
}

pub(crate) fn commit(c: &str, committed_at_ms: i64, message: &str) -> Event {
    Event::CommitSeen {
        project: "shop".into(),
        branch: "main".into(),
        commit: c.into(),
        message: message.into(),
        author: "ana".into(),
        committed_at_ms,
    }
}

pub(crate) fn queued(run_id: u64, c: &str) -> Event {
    Event::RunQueued {
        project: "shop".into(),
        run_id,
        commit: c.into(),
        branch: "main".into(),
        trigger: Trigger::Poll,
    }
}

pub(crate) fn run_finished(run_id: u64, status: RunStatus) -> Event {
    Event::RunFinished {
        run_id,
        status,
        reason: None,
    }
}

pub(crate) fn deploy(env: &str, id: u64, c: Option<&str>) -> Event {
    Event::DeployRequested {
        project: "shop".into(),
        environment: env.into(),
        deploy_id: id,
        version: format!("sha256:{id:064x}"),
        strategy: "canary".into(),
        run_id: None,
        commit: c.map(str::to_string),
        reason: None,
    }
}

pub(crate) fn rollback(env: &str, id: u64) -> Event {
    Event::DeployRequested {
        project: "shop".into(),
        environment: env.into(),
        deploy_id: id,
        version: "sha256:old".into(),
        strategy: "rollback".into(),
        run_id: None,
        commit: None,
        reason: Some("rollback".into()),
    }
}

pub(crate) fn finished(env: &str, id: u64, outcome: DeployOutcome) -> Event {
    Event::DeployFinished {
        project: "shop".into(),
        environment: env.into(),
        deploy_id: id,
        outcome,
        reason: None,
    }
}

pub(crate) fn verdict(env: &str, id: u64, outcome: &str) -> Event {
    Event::JudgeVerdict {
        environment: env.into(),
        deploy_id: id,
        outcome: outcome.into(),
        sentence: format!("judged {outcome}"),
    }
}

pub(crate) fn alert(env: &str) -> Event {
    Event::AlertFired {
        project: "shop".into(),
        environment: env.into(),
        rule: "error_rate".into(),
        sentence: "error rate 5% > 2%".into(),
    }
}

pub(crate) fn incident(id: u64, deploy_id: Option<u64>) -> Event {
    Event::IncidentOpened {
        project: "shop".into(),
        incident_id: id,
        environment: "production".into(),
        deploy_id,
        title: "release failed".into(),
    }
}

pub(crate) fn resolved(id: u64) -> Event {
    Event::IncidentResolved {
        incident_id: id,
        note: "fixed".into(),
    }
}

/// A config with `environments` written inline (YAML), for the release
/// rules and the production-environment choice.
pub(crate) fn config(environments_yaml: &str) -> andon_config::Config {
    let source = format!(
        "project: shop\npipeline:\n  stages:\n    - name: commit\n      jobs:\n        - name: t\n          run: 'true'\nenvironments:\n{environments_yaml}"
    );
    andon_config::parse("andon.yaml", &source).unwrap_or_else(|d| panic!("{d}"))
}
