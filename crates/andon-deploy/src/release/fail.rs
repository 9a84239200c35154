//! The end of a release that does not complete: all traffic back to the
//! stable version in ONE route update, then the new instances (and the
//! baseline) drained and stopped, an incident and a page; or, after a
//! contract migration, a freeze.

use std::sync::atomic::Ordering;

use andon_artifacts::Digest;
use andon_core::{DeployOutcome, Event};

use crate::env::{EnvState, Frozen, Group};
use crate::error;
use crate::groups::role;
use crate::release::{Halt, Release, short};
use crate::routes::{BASELINE, STABLE};

impl Release {
    /// Traffic back to the stable version in one route update, then the
    /// new instances (and the baseline) drained and stopped; or, after a
    /// contract migration, a freeze.
    pub(super) async fn fail(&mut self, st: &mut EnvState, halt: Halt) {
        let (outcome, reason) = match &halt {
            Halt::Abort => (DeployOutcome::Aborted, "aborted by hand".to_string()),
            Halt::Judge(s) => (DeployOutcome::RolledBack, s.clone()),
            Halt::Smoke(s) => (DeployOutcome::RolledBack, format!("smoke test failed: {s}")),
            Halt::NotReady(s) => (DeployOutcome::Failed, s.clone()),
            Halt::Error(e) => (DeployOutcome::Failed, error::chain(e)),
        };
        if let Halt::Judge(sentence) = &halt
            && self.req.contract_migration
        {
            self.freeze(st, sentence);
            return;
        }
        if let Halt::Smoke(_) = &halt {
            self.emit(Event::JudgeVerdict {
                environment: self.slot.environment.clone(),
                deploy_id: self.req.deploy_id,
                outcome: "fail".to_string(),
                sentence: reason.clone(),
            });
        }
        self.restore(st).await;
        let fresh = std::mem::take(&mut self.fresh);
        let keys: Vec<(&str, Digest)> = fresh.iter().map(|(r, g)| (*r, g.version)).collect();
        let groups = fresh.into_iter().map(|(_, g)| g).collect();
        let why = format!("deploy {} {}", self.req.deploy_id, outcome.as_str());
        self.inner
            .retire(&self.slot.service, &keys, groups, &why)
            .await;
        self.emit(Event::DeployFinished {
            project: self.req.project.clone(),
            environment: self.slot.environment.clone(),
            deploy_id: self.req.deploy_id,
            outcome,
            reason: Some(reason.clone()),
        });
        let title = format!(
            "{}/{}: release {} {}",
            self.req.project,
            self.slot.environment,
            short(&self.req.version),
            outcome.as_str().replace('_', " ")
        );
        if !matches!(halt, Halt::Abort) {
            self.emit(Event::IncidentOpened {
                project: self.req.project.clone(),
                incident_id: self.inner.ctx.observer.next_incident_id(),
                environment: self.slot.environment.clone(),
                deploy_id: Some(self.req.deploy_id),
                title: format!("{title}: {reason}"),
            });
        }
        self.inner.ctx.observer.notify(&title, &reason);
    }

    /// All traffic to the stable version, in one route update; fresh
    /// instances of it first if there are none (recreate) or too few (rolling).
    async fn restore(&mut self, st: &mut EnvState) {
        let n = self.n();
        if st.stable.is_none()
            && let Some((version, launch)) = self.previous.clone()
        {
            let mut g = Group::new(version, launch, self.req.deploy_id);
            match self.inner.grow(&self.slot, &mut g, n).await {
                Ok(()) => st.stable = Some(g),
                Err(why) => {
                    tracing::error!(environment = %self.slot.service, %why, "cannot restart the previous version");
                    self.inner
                        .stop_all(g.instances, "could not restore the previous version")
                        .await;
                }
            }
        }
        let Some(stable) = st.stable.clone() else {
            // Nothing to go back to (a first release failed): no routes.
            if let Err(e) = self
                .inner
                .traffic(&self.slot.service)
                .set(&self.slot.service, None, &self.reach)
                .await
            {
                tracing::error!(error = %e, "cannot remove the routes of a failed first release");
            }
            self.emit(Event::TrafficShifted {
                environment: self.slot.environment.clone(),
                deploy_id: self.req.deploy_id,
                weights: Default::default(),
            });
            return;
        };
        if let Err(Halt::Error(e)) = self.publish(&[role(STABLE, &stable, 100)]).await {
            tracing::error!(error = %e, "cannot send traffic back to the stable version");
        }
        // A rolling update stopped some stable instances: bring them back.
        let missing = n.saturating_sub(stable.instances.len());
        if missing > 0 && self.previous.is_none() {
            let mut g = stable.clone();
            match self.inner.grow(&self.slot, &mut g, missing).await {
                Ok(()) => {
                    if let Err(Halt::Error(e)) = self.publish(&[role(STABLE, &g, 100)]).await {
                        tracing::error!(error = %e, "cannot publish the restored stable instances");
                    }
                    st.stable = Some(g);
                }
                Err(why) => {
                    tracing::warn!(%why, "cannot restore stable capacity");
                    let extra = g.instances.split_off(stable.instances.len());
                    self.inner
                        .stop_all(extra, "could not restore capacity")
                        .await;
                }
            }
        }
    }

    /// A judge failure after a contract migration: traffic stays where it
    /// is (the old version cannot run on the new schema), a human decides.
    fn freeze(&mut self, st: &mut EnvState, sentence: &str) {
        let mut canary = None;
        let mut baseline = None;
        for (r, g) in std::mem::take(&mut self.fresh) {
            match r {
                BASELINE => baseline = Some(g),
                _ => canary = Some(g),
            }
        }
        if let Some(canary) = canary {
            st.launches.insert(self.req.version, self.launch.clone());
            st.frozen = Some(Frozen {
                deploy_id: self.req.deploy_id,
                canary,
                baseline,
            });
            self.slot.frozen.store(true, Ordering::Relaxed);
        }
        let reason = format!(
            "judge failed after a contract migration, so rolling back is unsafe: traffic left as it is; promote or roll back by hand ({sentence})"
        );
        self.emit(Event::DeployFinished {
            project: self.req.project.clone(),
            environment: self.slot.environment.clone(),
            deploy_id: self.req.deploy_id,
            outcome: DeployOutcome::Frozen,
            reason: Some(reason.clone()),
        });
        let title = format!(
            "{}/{}: release {} frozen",
            self.req.project,
            self.slot.environment,
            short(&self.req.version)
        );
        self.emit(Event::IncidentOpened {
            project: self.req.project.clone(),
            incident_id: self.inner.ctx.observer.next_incident_id(),
            environment: self.slot.environment.clone(),
            deploy_id: Some(self.req.deploy_id),
            title: format!("{title}: {sentence}"),
        });
        self.inner.ctx.observer.notify(&title, &reason);
    }
}
