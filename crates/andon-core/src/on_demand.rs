//! Environments made on demand (`andon env up`), such as a review app per
//! branch, folded from `EnvironmentUp` and `EnvironmentDown`; and the alert
//! rules firing per environment (`AlertFired` until `AlertResolved`).
//!
//! The time an environment expires is part of the fold (the time of its
//! last `EnvironmentUp` plus its TTL), so a server that restarts tears it
//! down on time without any timer surviving the restart.

use serde::Serialize;

use crate::deploy::{Deploys, EnvKey};
use crate::event::{Envelope, Event};

/// An environment made on demand and not torn down yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnDemandView {
    pub project: String,
    pub name: String,
    /// The `environments:` entry of `andon.yaml` it was made from.
    pub template: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub commit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    pub up_at_ms: i64,
    /// When the server tears it down by itself; none: only by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// The first deploy into it since its last `EnvironmentUp`; none while
    /// it waits for its run to pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<u64>,
}

impl OnDemandView {
    /// Whether its TTL has passed at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|t| t <= now_ms)
    }
}

impl Deploys {
    /// On-demand environments whose TTL has passed at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> Vec<EnvKey> {
        self.on_demand
            .iter()
            .filter(|(_, v)| v.expired(now_ms))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

pub(crate) fn apply(d: &mut Deploys, env: &Envelope) {
    match &env.event {
        Event::EnvironmentUp {
            project,
            environment,
            template,
            reference,
            commit,
            run_id,
            host,
            ttl_ms,
        } => {
            let expires_at_ms = ttl_ms.map(|t| {
                env.at_ms
                    .saturating_add(i64::try_from(t).unwrap_or(i64::MAX))
            });
            d.on_demand.insert(
                (project.clone(), environment.clone()),
                OnDemandView {
                    project: project.clone(),
                    name: environment.clone(),
                    template: template.clone(),
                    reference: reference.clone(),
                    commit: commit.clone(),
                    run_id: *run_id,
                    host: host.clone(),
                    ttl_ms: *ttl_ms,
                    up_at_ms: env.at_ms,
                    expires_at_ms,
                    deploy_id: None,
                },
            );
        }
        Event::DeployRequested {
            project,
            environment,
            deploy_id,
            ..
        } => {
            if let Some(v) = d.on_demand.get_mut(&(project.clone(), environment.clone()))
                && v.deploy_id.is_none()
            {
                v.deploy_id = Some(*deploy_id);
            }
        }
        Event::EnvironmentDown {
            project,
            environment,
            ..
        } => {
            let k = (project.clone(), environment.clone());
            d.on_demand.remove(&k);
            d.envs.remove(&k);
            d.alerts_firing.remove(&k);
        }
        Event::AlertFired {
            project,
            environment,
            rule,
            ..
        } => {
            d.alerts_firing
                .entry((project.clone(), environment.clone()))
                .or_default()
                .insert(rule.clone());
        }
        Event::AlertResolved {
            project,
            environment,
            rule,
            ..
        } => {
            let k = (project.clone(), environment.clone());
            if let Some(set) = d.alerts_firing.get_mut(&k) {
                set.remove(rule);
                if set.is_empty() {
                    d.alerts_firing.remove(&k);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, at_ms: i64, event: Event) -> Envelope {
        Envelope {
            seq,
            at_ms,
            actor: "t".into(),
            event,
        }
    }

    fn up(ttl_ms: Option<u64>) -> Event {
        Event::EnvironmentUp {
            project: "shop".into(),
            environment: "pr-7".into(),
            template: "preview".into(),
            reference: "feature".into(),
            commit: "abc".into(),
            run_id: Some(3),
            host: Some("pr-7.preview.localhost".into()),
            ttl_ms,
        }
    }

    #[test]
    fn ttl_is_counted_from_the_last_up_and_down_forgets_it() {
        let mut d = Deploys::new();
        d.apply(&at(1, 1_000, up(Some(5_000))));
        assert!(d.expired(5_999).is_empty());
        assert_eq!(d.expired(6_000), vec![("shop".into(), "pr-7".into())]);
        // Up again: moved to a new commit, the TTL starts over.
        d.apply(&at(2, 4_000, up(Some(5_000))));
        assert!(d.expired(6_000).is_empty());
        assert_eq!(d.on_demand[&("shop".into(), "pr-7".into())].deploy_id, None);
        d.apply(&at(
            3,
            4_100,
            Event::DeployRequested {
                project: "shop".into(),
                environment: "pr-7".into(),
                deploy_id: 9,
                version: "v".into(),
                strategy: "recreate".into(),
                run_id: Some(3),
                commit: None,
                reason: None,
            },
        ));
        assert_eq!(
            d.on_demand[&("shop".into(), "pr-7".into())].deploy_id,
            Some(9)
        );
        assert!(d.env("shop", "pr-7").is_some());
        d.apply(&at(
            4,
            4_200,
            Event::EnvironmentDown {
                project: "shop".into(),
                environment: "pr-7".into(),
                reason: "by hand".into(),
            },
        ));
        assert!(d.on_demand.is_empty());
        assert!(d.env("shop", "pr-7").is_none());
        // Without a TTL it never expires.
        d.apply(&at(5, 5_000, up(None)));
        assert!(d.expired(i64::MAX).is_empty());
    }
}
