//! The andon cord: a red trunk stops the line until trunk is green again.
//!
//! The cord is a fold like every other view, but it never pulls itself:
//! the server asks [`Cord::decide`] after each finished run and appends the
//! `line_stopped` / `line_released` event it returns. Keeping the decision
//! as an event (rather than recomputing "is trunk red?" from runs) means
//! the audit log says exactly when the line stopped, and a rule change can
//! never rewrite history.

use std::collections::BTreeMap;

use andon_core::{Envelope, Event, RunStatus};
use serde::Serialize;

use crate::refusal::Refusal;
use crate::trunk::TrunkLog;

/// The trunk branch assumed before `project_added` names one (the config's
/// default too).
const DEFAULT_TRUNK: &str = "main";

/// Why the line is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stop {
    pub since_ms: i64,
    pub run_id: u64,
    pub commit: String,
}

/// One red period of trunk, from stop to release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeToGreen {
    pub released_at_ms: i64,
    pub red_for_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct Line {
    trunk: String,
    commits: TrunkLog,
    stop: Option<Stop>,
    fixer: Option<String>,
    /// Position of the newest trunk commit whose run passed: a failure of
    /// an older commit that finishes late must not stop a green line.
    newest_green: Option<usize>,
    greens: Vec<TimeToGreen>,
}

#[derive(Debug, Clone)]
struct TrunkRun {
    project: String,
    commit: String,
}

/// The state of every project's line.
#[derive(Debug, Clone, Default)]
pub struct Cord {
    lines: BTreeMap<String, Line>,
    /// Trunk runs only: other branches never pull the cord.
    runs: BTreeMap<u64, TrunkRun>,
}

impl Cord {
    pub fn new() -> Self {
        Self::default()
    }

    fn line_mut(&mut self, project: &str) -> &mut Line {
        self.lines
            .entry(project.to_string())
            .or_insert_with(|| Line {
                trunk: DEFAULT_TRUNK.to_string(),
                ..Line::default()
            })
    }

    fn trunk(&self, project: &str) -> &str {
        self.lines
            .get(project)
            .map_or(DEFAULT_TRUNK, |l| l.trunk.as_str())
    }

    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::ProjectAdded { project, trunk, .. } => {
                self.line_mut(project).trunk.clone_from(trunk);
            }
            Event::ProjectRemoved { project } => {
                self.lines.remove(project);
                self.runs.retain(|_, r| &r.project != project);
            }
            Event::CommitSeen {
                project,
                branch,
                commit,
                author,
                committed_at_ms,
                ..
            } => {
                let line = self.line_mut(project);
                let on_trunk = *branch == line.trunk;
                line.commits.seen(on_trunk, commit, *committed_at_ms);
                if on_trunk
                    && line.stop.is_some()
                    && line.fixer.is_none()
                    && !author.trim().is_empty()
                {
                    line.fixer = Some(author.clone());
                }
            }
            Event::RunQueued {
                project,
                run_id,
                commit,
                branch,
                ..
            } if *branch == self.trunk(project) => {
                self.line_mut(project);
                self.runs.insert(
                    *run_id,
                    TrunkRun {
                        project: project.clone(),
                        commit: commit.clone(),
                    },
                );
            }
            Event::RunFinished {
                run_id,
                status: RunStatus::Passed,
                ..
            } => {
                if let Some(run) = self.runs.get(run_id) {
                    let (project, commit) = (run.project.clone(), run.commit.clone());
                    let line = self.line_mut(&project);
                    if let Some(p) = line.commits.position(&commit) {
                        line.newest_green = Some(line.newest_green.map_or(p, |g| g.max(p)));
                    }
                }
            }
            Event::LineStopped {
                project,
                run_id,
                commit,
            } => {
                let line = self.line_mut(project);
                line.stop = Some(Stop {
                    since_ms: env.at_ms,
                    run_id: *run_id,
                    commit: commit.clone(),
                });
                line.fixer = None;
            }
            Event::LineReleased {
                project,
                red_for_ms,
                ..
            } => {
                let line = self.line_mut(project);
                // Measured from our own record of the stop when we have it,
                // so a wrong `red_for_ms` cannot skew time to green.
                let red = match &line.stop {
                    Some(s) => u64::try_from(env.at_ms.saturating_sub(s.since_ms)).unwrap_or(0),
                    None => *red_for_ms,
                };
                line.greens.push(TimeToGreen {
                    released_at_ms: env.at_ms,
                    red_for_ms: red,
                });
                line.stop = None;
                line.fixer = None;
            }
            _ => {}
        }
    }

    /// What the server should append after `env`, a `run_finished` (call it
    /// before or after [`Cord::apply`] of that event, the answer is the same):
    /// `line_stopped` when a trunk run failed on a green line (unless a newer
    /// trunk commit already passed), `line_released` when a trunk run passed
    /// on a stopped line for the stopping commit or a newer one.
    pub fn decide(&self, env: &Envelope) -> Option<Event> {
        let Event::RunFinished { run_id, status, .. } = &env.event else {
            return None;
        };
        let run = self.runs.get(run_id)?;
        let line = self.lines.get(&run.project)?;
        let pos = line.commits.position(&run.commit);
        match (status, &line.stop) {
            (RunStatus::Failed, None) => {
                let superseded = matches!((pos, line.newest_green), (Some(p), Some(g)) if g > p);
                (!superseded).then(|| Event::LineStopped {
                    project: run.project.clone(),
                    run_id: *run_id,
                    commit: run.commit.clone(),
                })
            }
            (RunStatus::Passed, Some(stop)) => {
                let older = matches!((pos, line.commits.position(&stop.commit)), (Some(p), Some(s)) if p < s);
                (!older).then(|| Event::LineReleased {
                    project: run.project.clone(),
                    run_id: *run_id,
                    red_for_ms: u64::try_from(env.at_ms.saturating_sub(stop.since_ms)).unwrap_or(0),
                })
            }
            _ => None,
        }
    }

    pub fn is_stopped(&self, project: &str) -> bool {
        self.stop(project).is_some()
    }

    pub fn stopped_since(&self, project: &str) -> Option<i64> {
        self.stop(project).map(|s| s.since_ms)
    }

    pub fn stop(&self, project: &str) -> Option<&Stop> {
        self.lines.get(project)?.stop.as_ref()
    }

    /// Who is fixing trunk: the author of the first trunk commit after the stop.
    pub fn fixer(&self, project: &str) -> Option<&str> {
        self.lines.get(project)?.fixer.as_deref()
    }

    /// Every red period so far, oldest first.
    pub fn time_to_green(&self, project: &str) -> &[TimeToGreen] {
        self.lines.get(project).map_or(&[], |l| l.greens.as_slice())
    }

    /// Whether a production deploy may start. A stopped line refuses it
    /// unless `override_reason` is a non-blank reason; the server then
    /// appends `line_overridden` with that reason, for the audit log.
    pub fn production_deploy_allowed(
        &self,
        project: &str,
        override_reason: Option<&str>,
    ) -> Result<(), Refusal> {
        let Some(stop) = self.stop(project) else {
            return Ok(());
        };
        if override_reason.is_some_and(|r| !r.trim().is_empty()) {
            return Ok(());
        }
        Err(Refusal::LineStopped {
            project: project.to_string(),
            since_ms: stop.since_ms,
            run_id: stop.run_id,
            commit: stop.commit.clone(),
            fixer: self.fixer(project).map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andon_core::Trigger;

    struct Log {
        seq: u64,
        cord: Cord,
    }

    impl Log {
        fn new() -> Self {
            let mut l = Log {
                seq: 0,
                cord: Cord::new(),
            };
            l.push(
                0,
                Event::ProjectAdded {
                    project: "shop".into(),
                    repo: "/r".into(),
                    trunk: "trunk".into(),
                    poll_s: None,
                },
            );
            l
        }

        fn push(&mut self, at_ms: i64, event: Event) -> Option<Event> {
            self.seq += 1;
            let env = Envelope {
                seq: self.seq,
                at_ms,
                actor: "t".into(),
                event,
            };
            self.cord.apply(&env);
            let decided = self.cord.decide(&env);
            if let Some(e) = decided.clone() {
                self.push(at_ms, e);
            }
            decided
        }

        fn commit(&mut self, at: i64, branch: &str, commit: &str, author: &str) {
            self.push(
                at,
                Event::CommitSeen {
                    project: "shop".into(),
                    branch: branch.into(),
                    commit: commit.into(),
                    message: String::new(),
                    author: author.into(),
                    committed_at_ms: at,
                },
            );
        }

        fn run(
            &mut self,
            at: i64,
            id: u64,
            branch: &str,
            commit: &str,
            status: RunStatus,
        ) -> Option<Event> {
            self.push(
                at,
                Event::RunQueued {
                    project: "shop".into(),
                    run_id: id,
                    commit: commit.into(),
                    branch: branch.into(),
                    trigger: Trigger::Poll,
                },
            );
            self.push(
                at + 10,
                Event::RunFinished {
                    run_id: id,
                    status,
                    reason: None,
                },
            )
        }
    }

    #[test]
    fn red_trunk_stops_the_line_and_green_releases_it() {
        let mut l = Log::new();
        l.commit(100, "trunk", "c1", "ana");
        let stopped = l.run(100, 1, "trunk", "c1", RunStatus::Failed);
        assert!(matches!(
            stopped,
            Some(Event::LineStopped { run_id: 1, .. })
        ));
        assert!(l.cord.is_stopped("shop"));
        assert_eq!(l.cord.stopped_since("shop"), Some(110));
        let refusal = l.cord.production_deploy_allowed("shop", None).unwrap_err();
        assert_eq!(refusal.code(), "line_stopped");
        assert!(
            l.cord
                .production_deploy_allowed("shop", Some("  "))
                .is_err()
        );
        assert!(
            l.cord
                .production_deploy_allowed("shop", Some("hotfix for outage"))
                .is_ok()
        );

        // A second failure does not stop it again.
        l.commit(200, "trunk", "c2", "bo");
        assert_eq!(l.cord.fixer("shop"), Some("bo"));
        assert_eq!(l.run(200, 2, "trunk", "c2", RunStatus::Failed), None);
        l.commit(300, "trunk", "c3", "cy");
        assert_eq!(
            l.cord.fixer("shop"),
            Some("bo"),
            "the first commit after the stop"
        );
        let released = l.run(1_000, 3, "trunk", "c3", RunStatus::Passed);
        assert!(matches!(
            released,
            Some(Event::LineReleased {
                red_for_ms: 900,
                ..
            })
        ));
        assert!(!l.cord.is_stopped("shop"));
        assert_eq!(l.cord.time_to_green("shop")[0].red_for_ms, 900);
        assert!(l.cord.production_deploy_allowed("shop", None).is_ok());
    }

    #[test]
    fn other_branches_never_pull_the_cord() {
        let mut l = Log::new();
        l.commit(1, "feature/x", "f1", "ana");
        assert_eq!(l.run(1, 1, "feature/x", "f1", RunStatus::Failed), None);
        assert_eq!(
            l.run(2, 2, "main", "f1", RunStatus::Failed),
            None,
            "trunk is `trunk` here"
        );
        assert!(!l.cord.is_stopped("shop"));
    }

    #[test]
    fn late_results_of_older_commits_do_not_flip_the_line() {
        let mut l = Log::new();
        l.commit(1, "trunk", "old", "ana");
        l.commit(2, "trunk", "new", "bo");
        assert_eq!(l.run(10, 2, "trunk", "new", RunStatus::Passed), None);
        assert_eq!(
            l.run(20, 1, "trunk", "old", RunStatus::Failed),
            None,
            "superseded by a green newer commit"
        );
        l.commit(30, "trunk", "newer", "cy");
        assert!(l.run(40, 3, "trunk", "newer", RunStatus::Failed).is_some());
        assert_eq!(
            l.run(50, 4, "trunk", "new", RunStatus::Passed),
            None,
            "an older commit passing proves nothing"
        );
        assert!(l.cord.is_stopped("shop"));
        assert_eq!(l.run(60, 5, "trunk", "newer", RunStatus::Cancelled), None);
        assert!(
            l.run(70, 6, "trunk", "newer", RunStatus::Passed).is_some(),
            "a retry of the same commit"
        );
    }
}
