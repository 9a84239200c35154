//! Pipeline runs as a projection of events.
//!
//! A run's state is never stored: it is the fold of its events. That makes the
//! API's answer after a crash the same as before it, minus what was not yet
//! committed — and the reconciler only has to look for runs whose fold is
//! still "running" to know what was interrupted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{Envelope, Event, JobOutcome, PlannedJob, RunStatus, TestCounts, Trigger};

/// One job of a run, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub name: String,
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub deps: Vec<String>,
    /// `pending`, `running`, or the last attempt's outcome.
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestCounts>,
    pub flaky: bool,
    pub allow_failure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// Artifacts by path → digest.
    pub artifacts: BTreeMap<String, String>,
    /// The remote agent that holds (or last held) the job, for `runs_on` jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl JobView {
    fn planned(p: &PlannedJob) -> Self {
        JobView {
            name: p.name.clone(),
            stage: p.stage.clone(),
            kind: p.kind.clone(),
            deps: p.deps.clone(),
            status: "pending".into(),
            attempts: 0,
            exit_code: None,
            duration_ms: 0,
            tests: None,
            flaky: false,
            allow_failure: p.allow_failure,
            pgid: None,
            started_at_ms: None,
            artifacts: BTreeMap::new(),
            agent: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// A run, folded from its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: u64,
    pub project: String,
    pub commit: String,
    pub branch: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub queued_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Jobs in plan order.
    pub jobs: Vec<JobView>,
}

impl RunView {
    pub fn job(&self, name: &str) -> Option<&JobView> {
        self.jobs.iter().find(|j| j.name == name)
    }

    fn job_mut(&mut self, name: &str) -> Option<&mut JobView> {
        self.jobs.iter_mut().find(|j| j.name == name)
    }

    /// Wall time from start to finish (or to `now_ms` while running).
    pub fn duration_ms(&self, now_ms: i64) -> Option<u64> {
        let start = self.started_at_ms?;
        let end = self.finished_at_ms.unwrap_or(now_ms);
        Some(end.saturating_sub(start).max(0) as u64)
    }

    /// Names of jobs that were flaky in this run.
    pub fn flaky_jobs(&self) -> Vec<&str> {
        self.jobs
            .iter()
            .filter(|j| j.flaky)
            .map(|j| j.name.as_str())
            .collect()
    }
}

/// All runs, folded from the log. Apply events in sequence order.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    runs: BTreeMap<u64, RunView>,
}

impl Runs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event in. Events for unknown runs are ignored rather than
    /// trusted: a projection must survive a log that starts mid-history.
    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::RunQueued {
                project,
                run_id,
                commit,
                branch,
                trigger,
            } => {
                self.runs.insert(
                    *run_id,
                    RunView {
                        id: *run_id,
                        project: project.clone(),
                        commit: commit.clone(),
                        branch: branch.clone(),
                        trigger: trigger.clone(),
                        status: RunStatus::Queued,
                        queued_at_ms: env.at_ms,
                        started_at_ms: None,
                        finished_at_ms: None,
                        reason: None,
                        jobs: Vec::new(),
                    },
                );
            }
            Event::RunStarted { run_id, jobs } => {
                if let Some(run) = self.runs.get_mut(run_id) {
                    run.status = RunStatus::Running;
                    run.started_at_ms = Some(env.at_ms);
                    run.jobs = jobs.iter().map(JobView::planned).collect();
                }
            }
            Event::JobStarted {
                run_id,
                job,
                attempt,
                pgid,
                ..
            } => {
                if let Some(j) = self.runs.get_mut(run_id).and_then(|r| r.job_mut(job)) {
                    j.status = "running".into();
                    j.attempts = *attempt;
                    j.pgid = *pgid;
                    j.started_at_ms.get_or_insert(env.at_ms);
                }
            }
            Event::JobFinished {
                run_id,
                job,
                attempt,
                outcome,
                exit_code,
                duration_ms,
                tests,
                flaky,
            } => {
                if let Some(j) = self.runs.get_mut(run_id).and_then(|r| r.job_mut(job)) {
                    j.status = outcome.as_str().into();
                    j.attempts = *attempt;
                    j.exit_code = *exit_code;
                    j.duration_ms += duration_ms;
                    if tests.is_some() {
                        j.tests = *tests;
                    }
                    j.flaky |= *flaky;
                    j.pgid = None;
                }
            }
            // Waiting for an agent is still `pending`; a lease names the agent.
            Event::JobLeased {
                run_id, job, agent, ..
            } => {
                if let Some(j) = self.runs.get_mut(run_id).and_then(|r| r.job_mut(job)) {
                    j.agent = Some(agent.clone());
                }
            }
            Event::JobSkipped { run_id, job, .. } => {
                if let Some(j) = self.runs.get_mut(run_id).and_then(|r| r.job_mut(job)) {
                    j.status = JobOutcome::Skipped.as_str().into();
                }
            }
            Event::ArtifactStored {
                run_id,
                job,
                path,
                digest,
                ..
            } => {
                if let Some(j) = self.runs.get_mut(run_id).and_then(|r| r.job_mut(job)) {
                    j.artifacts.insert(path.clone(), digest.clone());
                }
            }
            Event::RunFinished {
                run_id,
                status,
                reason,
            } => {
                if let Some(run) = self.runs.get_mut(run_id) {
                    run.status = *status;
                    run.finished_at_ms = Some(env.at_ms);
                    run.reason = reason.clone();
                    for j in &mut run.jobs {
                        if j.status == "running" || j.status == "pending" {
                            j.status = JobOutcome::Cancelled.as_str().into();
                            j.pgid = None;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub fn get(&self, id: u64) -> Option<&RunView> {
        self.runs.get(&id)
    }

    /// Runs of a project, newest first.
    pub fn of_project<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a RunView> + 'a {
        self.runs
            .values()
            .rev()
            .filter(move |r| r.project == project)
    }

    pub fn all(&self) -> impl Iterator<Item = &RunView> {
        self.runs.values().rev()
    }

    /// Runs the log says are still queued or running: after a restart these
    /// are exactly the ones the crash interrupted.
    pub fn unfinished(&self) -> impl Iterator<Item = &RunView> {
        self.runs.values().filter(|r| !r.status.is_finished())
    }

    pub fn next_id(&self) -> u64 {
        self.runs.keys().next_back().map_or(1, |k| k + 1)
    }

    /// Median duration of each job's passed attempts over the given runs, for
    /// "fastest feedback first" ordering.
    pub fn job_medians(&self, project: &str) -> BTreeMap<String, u64> {
        let mut samples: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for run in self.of_project(project).take(20) {
            for j in &run.jobs {
                if j.status == "passed" {
                    samples
                        .entry(j.name.clone())
                        .or_default()
                        .push(j.duration_ms);
                }
            }
        }
        samples
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                let m = v[v.len() / 2];
                (k, m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at_ms: seq as i64 * 1000,
            actor: "t".into(),
            event,
        }
    }

    fn planned(name: &str) -> PlannedJob {
        PlannedJob {
            name: name.into(),
            stage: "s".into(),
            kind: None,
            deps: vec![],
            allow_failure: false,
        }
    }

    #[test]
    fn fold_a_run_with_a_flaky_job() {
        let mut runs = Runs::new();
        let events = [
            Event::RunQueued {
                project: "p".into(),
                run_id: 1,
                commit: "abc".into(),
                branch: "main".into(),
                trigger: Trigger::Manual,
            },
            Event::RunStarted {
                run_id: 1,
                jobs: vec![planned("a"), planned("b")],
            },
            Event::JobStarted {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                pgid: Some(42),
                executor: "local".into(),
            },
            Event::JobFinished {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                outcome: JobOutcome::Failed,
                exit_code: Some(1),
                duration_ms: 5,
                tests: None,
                flaky: false,
            },
            Event::JobStarted {
                run_id: 1,
                job: "a".into(),
                attempt: 2,
                pgid: Some(43),
                executor: "local".into(),
            },
            Event::JobFinished {
                run_id: 1,
                job: "a".into(),
                attempt: 2,
                outcome: JobOutcome::Passed,
                exit_code: Some(0),
                duration_ms: 7,
                tests: None,
                flaky: true,
            },
        ];
        for (i, e) in events.into_iter().enumerate() {
            runs.apply(&env(i as u64 + 1, e));
        }
        let run = runs.get(1).unwrap();
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.job("a").unwrap().status, "passed");
        assert_eq!(run.job("a").unwrap().attempts, 2);
        assert_eq!(run.flaky_jobs(), vec!["a"]);
        assert_eq!(runs.unfinished().count(), 1);

        runs.apply(&env(
            10,
            Event::RunFinished {
                run_id: 1,
                status: RunStatus::Interrupted,
                reason: Some("server restarted".into()),
            },
        ));
        let run = runs.get(1).unwrap();
        assert_eq!(run.job("b").unwrap().status, "cancelled");
        assert_eq!(runs.unfinished().count(), 0);
        assert_eq!(runs.next_id(), 2);
    }

    #[test]
    fn a_lost_agent_is_one_failed_attempt_then_a_retry() {
        let mut runs = Runs::new();
        let leased = |attempt: u32, agent: &str| Event::JobLeased {
            run_id: 1,
            job: "a".into(),
            attempt,
            agent: agent.into(),
            lease: format!("l{attempt}"),
        };
        let events = [
            Event::RunQueued {
                project: "p".into(),
                run_id: 1,
                commit: "abc".into(),
                branch: "main".into(),
                trigger: Trigger::Manual,
            },
            Event::RunStarted {
                run_id: 1,
                jobs: vec![planned("a")],
            },
            Event::JobQueued {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                runs_on: vec!["linux".into()],
            },
            leased(1, "one"),
            Event::JobStarted {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                pgid: None,
                executor: "agent:one".into(),
            },
            Event::LeaseExpired {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                agent: "one".into(),
                lease: "l1".into(),
                reason: "agent one lost".into(),
            },
            Event::JobFinished {
                run_id: 1,
                job: "a".into(),
                attempt: 1,
                outcome: JobOutcome::Failed,
                exit_code: None,
                duration_ms: 5,
                tests: None,
                flaky: false,
            },
        ];
        for (i, e) in events.into_iter().enumerate() {
            runs.apply(&env(i as u64 + 1, e));
        }
        let job = runs.get(1).unwrap().job("a").unwrap().clone();
        assert_eq!((job.status.as_str(), job.attempts), ("failed", 1));
        assert_eq!(job.agent.as_deref(), Some("one"));
        runs.apply(&env(20, leased(2, "two")));
        assert_eq!(
            runs.get(1).unwrap().job("a").unwrap().agent.as_deref(),
            Some("two")
        );
        assert_eq!(runs.get(1).unwrap().job("a").unwrap().status, "failed");
    }
}
