//! Incidents with their timelines, and blameless postmortems.
//!
//! A timeline is filled from the log rather than typed in afterwards: the
//! deploy that started it, the first bad signal, the verdicts, the rollback
//! and the restoration, each with the time it happened. The postmortem
//! asks what went right, what went wrong and what to do next — it has no
//! field for who, on purpose: the question "who" makes people hide the
//! facts a team needs (and the author of a postmortem is not kept either).

use std::collections::{BTreeMap, VecDeque};

use andon_core::{DeployOutcome, Envelope, Event};
use serde::Serialize;

use crate::refusal::short_commit;

/// Alerts kept per environment to fill the start of a timeline.
const RECENT_ALERTS: usize = 50;
/// Without a linked deploy, alerts this long before the opening belong to it.
const LOOKBACK_MS: i64 = 3_600_000;
/// An incident that names no deploy is linked to the environment's latest
/// deploy if it started this recently: the first suspect, not an old one.
const SUSPECT_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub at_ms: i64,
    /// `deploy`, `first_bad_signal`, `alert`, `verdict`, `rollback`,
    /// `deploy_finished`, `restored`, `opened`, `resolved`, `postmortem`.
    pub kind: String,
    pub text: String,
}

/// What the team learned. No "who".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Postmortem {
    pub went_right: String,
    pub went_wrong: String,
    pub action_items: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentView {
    pub id: u64,
    pub project: String,
    pub environment: String,
    /// The deploy it is about: named when opened, else the environment's
    /// latest deploy if it was requested in the day before the opening.
    pub deploy_id: Option<u64>,
    pub title: String,
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// Oldest first.
    pub timeline: Vec<TimelineEntry>,
    pub postmortem: Option<Postmortem>,
}

#[derive(Debug, Clone)]
struct DeployNote {
    project: String,
    environment: String,
    version: String,
    commit: Option<String>,
    rollback: bool,
    requested_at: i64,
    /// (at, outcome, sentence)
    verdicts: Vec<(i64, String, String)>,
    finished: Option<(i64, DeployOutcome, Option<String>)>,
}

/// (at, rule, sentence), oldest first.
type RecentAlerts = VecDeque<(i64, String, String)>;

/// All incidents, folded.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    incidents: BTreeMap<u64, IncidentView>,
    deploys: BTreeMap<u64, DeployNote>,
    /// (project, environment) → recent alerts.
    alerts: BTreeMap<(String, String), RecentAlerts>,
}

fn entry(at_ms: i64, kind: &str, text: String) -> TimelineEntry {
    TimelineEntry {
        at_ms,
        kind: kind.to_string(),
        text,
    }
}

fn short_version(v: &str) -> &str {
    let hex = v.strip_prefix("sha256:").unwrap_or(v);
    hex.get(..12).unwrap_or(hex)
}

impl IncidentView {
    fn push(&mut self, e: TimelineEntry) {
        // Stable: equal times keep the order the log gave them.
        let at = self.timeline.partition_point(|t| t.at_ms <= e.at_ms);
        self.timeline.insert(at, e);
    }

    fn has_kind(&self, kind: &str) -> bool {
        self.timeline.iter().any(|t| t.kind == kind)
    }

    /// A bad signal: the first one is marked as such.
    fn bad_signal(&mut self, at: i64, kind: &str, text: String) {
        let first = !self.has_kind("first_bad_signal");
        self.push(entry(
            at,
            if first { "first_bad_signal" } else { kind },
            text,
        ));
    }
}

impl Incidents {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: u64) -> Option<&IncidentView> {
        self.incidents.get(&id)
    }

    /// A project's incidents, newest first.
    pub fn of_project(&self, project: &str) -> Vec<&IncidentView> {
        self.incidents
            .values()
            .rev()
            .filter(|i| i.project == project)
            .collect()
    }

    /// Incidents not resolved yet, oldest first.
    pub fn open(&self) -> impl Iterator<Item = &IncidentView> {
        self.incidents
            .values()
            .filter(|i| i.resolved_at_ms.is_none())
    }

    /// Open incidents of `project` in `environment`.
    fn open_in<'a>(
        &'a mut self,
        project: &'a str,
        environment: &'a str,
    ) -> impl Iterator<Item = &'a mut IncidentView> {
        self.incidents.values_mut().filter(move |i| {
            i.resolved_at_ms.is_none() && i.project == project && i.environment == environment
        })
    }

    pub fn apply(&mut self, env: &Envelope) {
        let at = env.at_ms;
        match &env.event {
            Event::DeployRequested {
                project,
                environment,
                deploy_id,
                version,
                strategy,
                commit,
                reason,
                ..
            } => {
                let rollback = strategy == "rollback" || reason.as_deref() == Some("rollback");
                let note = DeployNote {
                    project: project.clone(),
                    environment: environment.clone(),
                    version: version.clone(),
                    commit: commit.clone(),
                    rollback,
                    requested_at: at,
                    verdicts: Vec::new(),
                    finished: None,
                };
                if rollback {
                    let text = format!(
                        "rollback to {} requested (deploy #{deploy_id})",
                        short_version(version)
                    );
                    for i in self.open_in(project, environment) {
                        i.push(entry(at, "rollback", text.clone()));
                    }
                }
                self.deploys.insert(*deploy_id, note);
            }
            Event::JudgeVerdict {
                deploy_id,
                outcome,
                sentence,
                ..
            } => {
                let Some(d) = self.deploys.get_mut(deploy_id) else {
                    return;
                };
                d.verdicts.push((at, outcome.clone(), sentence.clone()));
                let text = format!("judge: {outcome} — {sentence}");
                let (p, e) = (d.project.clone(), d.environment.clone());
                for i in self
                    .open_in(&p, &e)
                    .filter(|i| i.deploy_id == Some(*deploy_id))
                {
                    if outcome == "fail" {
                        i.bad_signal(at, "verdict", text.clone());
                    } else {
                        i.push(entry(at, "verdict", text.clone()));
                    }
                }
            }
            Event::AlertFired {
                project,
                environment,
                rule,
                sentence,
            } => {
                let recent = self
                    .alerts
                    .entry((project.clone(), environment.clone()))
                    .or_default();
                recent.push_back((at, rule.clone(), sentence.clone()));
                if recent.len() > RECENT_ALERTS {
                    recent.pop_front();
                }
                let text = format!("alert `{rule}`: {sentence}");
                for i in self.open_in(project, environment) {
                    i.bad_signal(at, "alert", text.clone());
                }
            }
            Event::DeployFinished {
                project,
                environment,
                deploy_id,
                outcome,
                reason,
            } => {
                let rollback = match self.deploys.get_mut(deploy_id) {
                    Some(d) => {
                        d.finished = Some((at, *outcome, reason.clone()));
                        d.rollback
                    }
                    None => false,
                };
                let (p, e) = (project.clone(), environment.clone());
                for i in self.open_in(&p, &e) {
                    finished_entries(i, at, *deploy_id, rollback, *outcome, reason.as_deref());
                }
            }
            Event::IncidentOpened {
                project,
                incident_id,
                environment,
                deploy_id,
                title,
            } => {
                let view = self.opened(at, project, *incident_id, environment, *deploy_id, title);
                self.incidents.entry(*incident_id).or_insert(view);
            }
            Event::IncidentResolved { incident_id, note } => {
                if let Some(i) = self.incidents.get_mut(incident_id)
                    && i.resolved_at_ms.is_none()
                {
                    i.resolved_at_ms = Some(at);
                    let text = if note.trim().is_empty() {
                        "incident resolved".to_string()
                    } else {
                        format!("incident resolved: {note}")
                    };
                    i.push(entry(at, "resolved", text));
                }
            }
            Event::PostmortemWritten {
                incident_id,
                went_right,
                went_wrong,
                action_items,
            } => {
                if let Some(i) = self.incidents.get_mut(incident_id) {
                    i.postmortem = Some(Postmortem {
                        went_right: went_right.clone(),
                        went_wrong: went_wrong.clone(),
                        action_items: action_items.clone(),
                    });
                    let text = format!("postmortem written ({} action items)", action_items.len());
                    i.push(entry(at, "postmortem", text));
                }
            }
            _ => {}
        }
    }

    /// A new incident with what the log already knows about it.
    fn opened(
        &self,
        at: i64,
        project: &str,
        id: u64,
        environment: &str,
        deploy_id: Option<u64>,
        title: &str,
    ) -> IncidentView {
        let linked = deploy_id.or_else(|| {
            self.deploys
                .iter()
                .rev()
                .find(|(_, d)| {
                    d.project == project
                        && d.environment == environment
                        && !d.rollback
                        && d.requested_at <= at
                })
                .filter(|(_, d)| at.saturating_sub(d.requested_at) <= SUSPECT_MS)
                .map(|(id, _)| *id)
        });
        let mut view = IncidentView {
            id,
            project: project.to_string(),
            environment: environment.to_string(),
            deploy_id: linked,
            title: title.to_string(),
            opened_at_ms: at,
            resolved_at_ms: None,
            timeline: Vec::new(),
            postmortem: None,
        };
        let mut alerts_from = at.saturating_sub(LOOKBACK_MS);
        if let Some((d_id, d)) = linked.and_then(|d| self.deploys.get(&d).map(|n| (d, n))) {
            alerts_from = alerts_from.min(d.requested_at);
            let commit = d
                .commit
                .as_deref()
                .map(|c| format!(" (commit {})", short_commit(c)))
                .unwrap_or_default();
            view.push(entry(
                d.requested_at,
                "deploy",
                format!(
                    "deploy #{d_id} of {}{commit} to {environment} requested",
                    short_version(&d.version)
                ),
            ));
            for (v_at, outcome, sentence) in &d.verdicts {
                let text = format!("judge: {outcome} — {sentence}");
                if outcome == "fail" {
                    view.bad_signal(*v_at, "verdict", text);
                } else {
                    view.push(entry(*v_at, "verdict", text));
                }
            }
            if let Some((f_at, outcome, reason)) = &d.finished {
                finished_entries(&mut view, *f_at, d_id, false, *outcome, reason.as_deref());
            }
        }
        for (a_at, rule, sentence) in self
            .alerts
            .get(&(project.to_string(), environment.to_string()))
            .into_iter()
            .flatten()
            .filter(|(a_at, _, _)| alerts_from <= *a_at && *a_at <= at)
        {
            view.bad_signal(*a_at, "alert", format!("alert `{rule}`: {sentence}"));
        }
        view.push(entry(at, "opened", format!("incident opened: {title}")));
        view
    }
}

/// Timeline entries for a deploy finishing while `view` is open.
fn finished_entries(
    view: &mut IncidentView,
    at: i64,
    deploy_id: u64,
    rollback: bool,
    outcome: DeployOutcome,
    reason: Option<&str>,
) {
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let linked = view.deploy_id == Some(deploy_id);
    let restores = match outcome {
        DeployOutcome::RolledBack | DeployOutcome::Aborted if linked => {
            let verb = if outcome == DeployOutcome::RolledBack {
                "rolled back"
            } else {
                "aborted"
            };
            view.push(entry(
                at,
                "rollback",
                format!("deploy #{deploy_id} {verb}{why}"),
            ));
            true
        }
        DeployOutcome::Succeeded if !linked || rollback => {
            let what = if rollback { "rollback" } else { "deploy" };
            view.push(entry(
                at,
                "deploy_finished",
                format!("{what} #{deploy_id} succeeded{why}"),
            ));
            true
        }
        _ => {
            view.push(entry(
                at,
                "deploy_finished",
                format!(
                    "deploy #{deploy_id} {}{why}",
                    outcome.as_str().replace('_', " ")
                ),
            ));
            false
        }
    };
    if restores && !view.has_kind("restored") {
        view.push(entry(at, "restored", "service restored".to_string()));
    }
}
