//! The four DORA keys (and time to green), measured from the event log.
//!
//! Definitions, for one project and one environment (production), over a
//! period `[since, until)`; an event belongs to the period by its `at_ms`:
//!
//! - **Deployments** are `deploy_requested` for that environment except
//!   rollbacks (strategy or reason `rollback`), which restore service and
//!   are not changes.
//! - **Deployment frequency**: deployments that finished `succeeded` in the
//!   period, per day of the period. Null while the environment has never
//!   finished a deployment.
//! - **Lead time for changes**: for every trunk commit, from its
//!   `committed_at_ms` to the `deploy_finished{succeeded}` of the first
//!   deployment that carried it. A deployment of commit C carries every
//!   trunk commit up to C (in `commit_seen` order) not yet in that
//!   environment; a commit from another branch carries only itself.
//!   Median and 90th percentile (nearest rank), by the deployment's finish.
//!   A commit dated after its deployment (a skewed clock) counts as 0.
//! - **Change failure rate**: failed deployments / deployments finished in
//!   the period (any outcome). Failed means: outcome `rolled_back`,
//!   `failed` or `frozen`, or a `judge_verdict` of `fail`, or an incident
//!   opened for it, or a rollback requested after it and before the next
//!   deployment. An `aborted` deployment with none of these is not a failure.
//! - **Time to restore**: from the first bad signal (a failing verdict, an
//!   `alert_fired`, or an `incident_opened`) to restoration: a
//!   `deploy_finished` `rolled_back`, `aborted` or `succeeded` in that
//!   environment, or the resolution of an incident opened during the
//!   episode. An incident opened for a deployment that was already rolled
//!   back adds no episode (service was restored before it opened). Median,
//!   by the restoration time.
//! - **Time to green**: `line_stopped` → `line_released` for trunk, median,
//!   by the release time.

use std::collections::BTreeMap;

use andon_core::{DeployOutcome, Envelope, Event, RunStatus};
use serde::{Deserialize, Serialize};

use crate::bands::{self, Band};
use crate::gear::{Gear, GearInputs, gear};
use crate::stats::{median, percentile};
use crate::time::DAY_MS;
use crate::trunk::TrunkLog;

/// The metrics of one project and environment over a period. Serialised
/// with exactly these keys; `null` where there is no data yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub deployment_frequency_per_day: Option<f64>,
    pub lead_time_median_s: Option<f64>,
    pub lead_time_p90_s: Option<f64>,
    /// 0..=1.
    pub change_failure_rate: Option<f64>,
    pub time_to_restore_median_s: Option<f64>,
    pub time_to_green_median_s: Option<f64>,
    /// `deployment_frequency`, `lead_time`, `change_failure_rate`,
    /// `time_to_restore` → band, for the keys that have data.
    pub bands: BTreeMap<String, Band>,
    pub gear: Option<Gear>,
}

#[derive(Debug, Clone)]
struct DeployRec {
    project: String,
    environment: String,
    commit: Option<String>,
    rollback: bool,
    finished: Option<(i64, DeployOutcome)>,
    /// A failing verdict, an incident or a later rollback named it.
    bad_signal: bool,
}

#[derive(Debug, Clone, Default)]
struct EnvFlow {
    /// (deploy finished at, lead time ms) per carried commit.
    leads: Vec<(i64, i64)>,
    /// (restored at, ms since the first bad signal).
    restores: Vec<(i64, i64)>,
    /// Open failure episode: (id, since).
    episode: Option<(u64, i64)>,
    episodes: u64,
    last_change: Option<u64>,
    first_finished: Option<i64>,
    /// Refusals while the line was green: windows and freezes.
    refused: Vec<i64>,
}

#[derive(Debug, Clone, Default)]
struct Flow {
    trunk: String,
    log: TrunkLog,
    /// Trunk runs: (finished at, failed, duration ms).
    runs: Vec<(i64, bool, i64)>,
    stopped_at: Option<i64>,
    /// Red periods of trunk: (from, to).
    red: Vec<(i64, i64)>,
    /// (released at, red for ms).
    greens: Vec<(i64, i64)>,
    envs: BTreeMap<String, EnvFlow>,
}

/// The fold behind [`Dora::metrics`]: feed it every event in order.
#[derive(Debug, Clone, Default)]
pub struct Dora {
    flows: BTreeMap<String, Flow>,
    deploys: BTreeMap<u64, DeployRec>,
    /// Trunk runs in flight: run → (project, queued at).
    runs: BTreeMap<u64, (String, i64)>,
    /// Incident → (project, environment, episode it belongs to).
    incidents: BTreeMap<u64, (String, String, Option<u64>)>,
}

impl Flow {
    fn env(&mut self, name: &str) -> &mut EnvFlow {
        self.envs.entry(name.to_string()).or_default()
    }
}

impl EnvFlow {
    /// Opens a failure episode unless one is open; returns its id.
    fn bad_signal(&mut self, at: i64) -> u64 {
        if let Some((id, _)) = self.episode {
            return id;
        }
        self.episodes += 1;
        self.episode = Some((self.episodes, at));
        self.episodes
    }

    fn restored(&mut self, at: i64) {
        if let Some((_, since)) = self.episode.take() {
            self.restores.push((at, at.saturating_sub(since).max(0)));
        }
    }
}

impl Dora {
    pub fn new() -> Self {
        Self::default()
    }

    fn flow(&mut self, project: &str) -> &mut Flow {
        self.flows
            .entry(project.to_string())
            .or_insert_with(|| Flow {
                trunk: "main".to_string(),
                ..Flow::default()
            })
    }

    fn trunk(&self, project: &str) -> &str {
        self.flows.get(project).map_or("main", |f| f.trunk.as_str())
    }

    pub fn apply(&mut self, env: &Envelope) {
        let at = env.at_ms;
        match &env.event {
            Event::ProjectAdded { project, trunk, .. } => {
                self.flow(project).trunk.clone_from(trunk)
            }
            Event::ProjectRemoved { project } => {
                self.flows.remove(project);
            }
            Event::CommitSeen {
                project,
                branch,
                commit,
                committed_at_ms,
                ..
            } => {
                let flow = self.flow(project);
                let on_trunk = *branch == flow.trunk;
                flow.log.seen(on_trunk, commit, *committed_at_ms);
            }
            Event::RunQueued {
                project,
                run_id,
                branch,
                ..
            } if *branch == self.trunk(project) => {
                self.runs.insert(*run_id, (project.clone(), at));
            }
            Event::RunFinished { run_id, status, .. } => {
                if let Some((project, queued)) = self.runs.remove(run_id)
                    && matches!(status, RunStatus::Passed | RunStatus::Failed)
                {
                    let failed = *status == RunStatus::Failed;
                    self.flow(&project)
                        .runs
                        .push((at, failed, at.saturating_sub(queued)));
                }
            }
            Event::DeployRequested {
                project,
                environment,
                deploy_id,
                strategy,
                commit,
                reason,
                ..
            } => {
                let rollback = strategy == "rollback" || reason.as_deref() == Some("rollback");
                let e = self.flow(project).env(environment);
                let previous = e.last_change;
                if !rollback {
                    e.last_change = Some(*deploy_id);
                }
                if rollback && let Some(d) = previous.and_then(|p| self.deploys.get_mut(&p)) {
                    d.bad_signal = true;
                }
                self.deploys.insert(
                    *deploy_id,
                    DeployRec {
                        project: project.clone(),
                        environment: environment.clone(),
                        commit: commit.clone(),
                        rollback,
                        finished: None,
                        bad_signal: false,
                    },
                );
            }
            Event::DeployRefused {
                project,
                environment,
                ..
            } => {
                let flow = self.flow(project);
                if flow.stopped_at.is_none() {
                    flow.env(environment).refused.push(at);
                }
            }
            Event::JudgeVerdict {
                deploy_id, outcome, ..
            } if outcome == "fail" => {
                if let Some(d) = self.deploys.get_mut(deploy_id) {
                    d.bad_signal = true;
                    let (p, e) = (d.project.clone(), d.environment.clone());
                    self.flow(&p).env(&e).bad_signal(at);
                }
            }
            Event::AlertFired {
                project,
                environment,
                ..
            } => {
                self.flow(project).env(environment).bad_signal(at);
            }
            Event::DeployFinished {
                project,
                environment,
                deploy_id,
                outcome,
                ..
            } => self.deploy_finished(at, project, environment, *deploy_id, *outcome),
            Event::IncidentOpened {
                project,
                incident_id,
                environment,
                deploy_id,
                ..
            } => {
                let mut already_restored = false;
                if let Some(d) = deploy_id.and_then(|d| self.deploys.get_mut(&d)) {
                    d.bad_signal = true;
                    already_restored = matches!(
                        d.finished,
                        Some((
                            _,
                            DeployOutcome::RolledBack
                                | DeployOutcome::Aborted
                                | DeployOutcome::Failed
                        ))
                    );
                }
                let episode =
                    (!already_restored).then(|| self.flow(project).env(environment).bad_signal(at));
                self.incidents.insert(
                    *incident_id,
                    (project.clone(), environment.clone(), episode),
                );
            }
            Event::IncidentResolved { incident_id, .. } => {
                if let Some((project, environment, Some(episode))) =
                    self.incidents.get(incident_id).cloned()
                {
                    let e = self.flow(&project).env(&environment);
                    if e.episode.is_some_and(|(id, _)| id == episode) {
                        e.restored(at);
                    }
                }
            }
            Event::LineStopped { project, .. } => {
                let flow = self.flow(project);
                if flow.stopped_at.is_none() {
                    flow.stopped_at = Some(at);
                }
            }
            Event::LineReleased {
                project,
                red_for_ms,
                ..
            } => {
                let flow = self.flow(project);
                match flow.stopped_at.take() {
                    Some(since) => {
                        flow.red.push((since, at));
                        flow.greens.push((at, at.saturating_sub(since).max(0)));
                    }
                    None => flow
                        .greens
                        .push((at, i64::try_from(*red_for_ms).unwrap_or(i64::MAX))),
                }
            }
            _ => {}
        }
    }

    fn deploy_finished(
        &mut self,
        at: i64,
        project: &str,
        environment: &str,
        id: u64,
        outcome: DeployOutcome,
    ) {
        let rec = self.deploys.entry(id).or_insert_with(|| DeployRec {
            project: project.to_string(),
            environment: environment.to_string(),
            commit: None,
            rollback: false,
            finished: None,
            bad_signal: false,
        });
        if rec.finished.is_some() {
            return;
        }
        rec.finished = Some((at, outcome));
        let (rollback, commit) = (rec.rollback, rec.commit.clone());
        let flow = self.flow(project);
        if outcome == DeployOutcome::Succeeded
            && !rollback
            && let Some(c) = &commit
        {
            let carried = flow.log.carried(environment, c);
            flow.log.shipped(environment, c);
            let e = flow.env(environment);
            e.leads.extend(
                carried
                    .iter()
                    .map(|(_, committed)| (at, at.saturating_sub(*committed).max(0))),
            );
        }
        let e = flow.env(environment);
        if !rollback {
            e.first_finished = Some(e.first_finished.map_or(at, |f| f.min(at)));
        }
        if matches!(
            outcome,
            DeployOutcome::Succeeded | DeployOutcome::RolledBack | DeployOutcome::Aborted
        ) {
            e.restored(at);
        }
    }

    /// The metrics of `project` in `environment` over `[since_ms, until_ms)`.
    pub fn metrics(
        &self,
        project: &str,
        environment: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Metrics {
        let empty_env = EnvFlow::default();
        let empty_flow = Flow::default();
        let flow = self.flows.get(project).unwrap_or(&empty_flow);
        let e = flow.envs.get(environment).unwrap_or(&empty_env);
        let inside = |at: i64| since_ms <= at && at < until_ms;
        let span_ms = until_ms.saturating_sub(since_ms);
        let days = span_ms as f64 / DAY_MS as f64;

        let (mut ok, mut finished, mut failed) = (0u64, 0u64, 0u64);
        for d in self.deploys.values() {
            if d.rollback || d.project != project || d.environment != environment {
                continue;
            }
            let Some((at, outcome)) = d.finished else {
                continue;
            };
            if !inside(at) {
                continue;
            }
            finished += 1;
            ok += u64::from(outcome == DeployOutcome::Succeeded);
            let bad = d.bad_signal
                || matches!(
                    outcome,
                    DeployOutcome::RolledBack | DeployOutcome::Failed | DeployOutcome::Frozen
                );
            failed += u64::from(bad);
        }

        let per_day = (days > 0.0 && e.first_finished.is_some_and(|f| f < until_ms))
            .then(|| ok as f64 / days);
        let leads: Vec<i64> = e
            .leads
            .iter()
            .filter(|(at, _)| inside(*at))
            .map(|(_, ms)| *ms)
            .collect();
        let restores: Vec<i64> = e
            .restores
            .iter()
            .filter(|(at, _)| inside(*at))
            .map(|(_, ms)| *ms)
            .collect();
        let greens: Vec<i64> = flow
            .greens
            .iter()
            .filter(|(at, _)| inside(*at))
            .map(|(_, ms)| *ms)
            .collect();
        let secs = |ms: Option<f64>| ms.map(|v| v / 1000.0);

        let lead_median = secs(median(&leads));
        let cfr = (finished > 0).then(|| failed as f64 / finished as f64);
        let restore_median = secs(median(&restores));
        let mut band_map = BTreeMap::new();
        if let Some(f) = per_day {
            band_map.insert(
                "deployment_frequency".to_string(),
                bands::deployment_frequency(f),
            );
        }
        if let Some(l) = lead_median {
            band_map.insert("lead_time".to_string(), bands::lead_time(l));
        }
        if let Some(c) = cfr {
            band_map.insert(
                "change_failure_rate".to_string(),
                bands::change_failure_rate(c),
            );
        }
        if let Some(r) = restore_median {
            band_map.insert("time_to_restore".to_string(), bands::time_to_restore(r));
        }

        let gear = per_day.map(|f| {
            let runs: Vec<&(i64, bool, i64)> =
                flow.runs.iter().filter(|(at, _, _)| inside(*at)).collect();
            let pipeline: Vec<i64> = runs.iter().filter(|r| !r.1).map(|r| r.2).collect();
            gear(&GearInputs {
                per_day: f,
                deploys_ok: ok,
                commits_shipped: leads.len() as u64,
                deploys_finished: finished,
                deploys_failed: failed,
                refused: e.refused.iter().filter(|at| inside(**at)).count() as u64,
                trunk_runs: runs.len() as u64,
                trunk_runs_failed: runs.iter().filter(|r| r.1).count() as u64,
                red_share: red_share(flow, since_ms, until_ms),
                lead_median_s: lead_median,
                pipeline_median_s: secs(median(&pipeline)),
            })
        });

        Metrics {
            deployment_frequency_per_day: per_day,
            lead_time_median_s: lead_median,
            lead_time_p90_s: secs(percentile(&leads, 90)),
            change_failure_rate: cfr,
            time_to_restore_median_s: restore_median,
            time_to_green_median_s: secs(median(&greens)),
            bands: band_map,
            gear,
        }
    }
}

/// Fraction of `[since, until)` during which trunk was red.
fn red_share(flow: &Flow, since: i64, until: i64) -> f64 {
    let span = until.saturating_sub(since);
    if span <= 0 {
        return 0.0;
    }
    let open = flow.stopped_at.map(|s| (s, until));
    let red: i64 = flow
        .red
        .iter()
        .copied()
        .chain(open)
        .map(|(a, b)| b.min(until).saturating_sub(a.max(since)).max(0))
        .fold(0i64, i64::saturating_add);
    (red as f64 / span as f64).clamp(0.0, 1.0)
}

/// The environment the metrics are about when none is named: one called
/// `production`, otherwise the last in promotion order (the deepest along
/// `after`, the last in file order on a tie).
pub fn production_environment(envs: &[andon_config::Environment]) -> Option<&str> {
    if let Some(p) = envs.iter().find(|e| e.name == "production") {
        return Some(&p.name);
    }
    let depth = |start: &andon_config::Environment| {
        let mut d = 0usize;
        let mut cur = start.after.as_deref();
        // Bounded: the config rejects cycles, but this must not loop anyway.
        while let Some(name) = cur
            && d < envs.len()
        {
            d += 1;
            cur = envs
                .iter()
                .find(|e| e.name == name)
                .and_then(|e| e.after.as_deref());
        }
        d
    };
    let mut best: Option<(usize, &str)> = None;
    for e in envs {
        let d = depth(e);
        if best.is_none_or(|(bd, _)| d >= bd) {
            best = Some((d, &e.name));
        }
    }
    best.map(|(_, n)| n)
}
