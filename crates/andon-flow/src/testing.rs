//! A seeded generator of realistic history, for tests and demos (feature
//! `testing`).
//!
//! It plays a team for months: commits on trunk (some naming cards), runs
//! that sometimes fail and stop the line, promotions through staging to
//! production, judge rollbacks, alerts followed by manual rollbacks,
//! incidents unrelated to any deploy, deploys refused by a window, and the
//! server's own `line_stopped` / `line_released` / automatic `card_moved`.
//!
//! Alongside the events it returns its own ground truth, kept by the most
//! direct bookkeeping possible while it decides what happens (a list of
//! commits not yet in production, the time each failure began), so tests
//! can compare [`crate::Dora`] and [`crate::Board`], which only see events,
//! with answers reached by a different route.

use std::collections::BTreeMap;

use andon_core::{DeployOutcome, Envelope, Event, JobOutcome, PlannedJob, RunStatus, Trigger};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// What kind of team to play.
#[derive(Debug, Clone)]
pub struct HistoryParams {
    pub project: String,
    /// Start of the first day (UTC midnight is best).
    pub start_ms: i64,
    pub days: u32,
    /// Trunk commits per working day, inclusive range.
    pub commits_per_day: (u32, u32),
    /// Chance a trunk run fails.
    pub run_failure: f64,
    /// Chance a green trunk run is promoted to production.
    pub promote: f64,
    /// Chance the judge rolls a production deploy back.
    pub judge_rollback: f64,
    /// Chance a successful production deploy is followed by an alert, an
    /// incident and a manual rollback.
    pub alert_after_deploy: f64,
    /// Chance per day of an alert and incident unrelated to any deploy.
    pub unrelated_incident: f64,
    /// Chance a production deploy is first refused by the deploy window.
    pub refused: f64,
    /// Chance a trunk commit names a card.
    pub names_card: f64,
    /// Chance per trunk commit of an extra commit on a feature branch.
    pub branch_commit: f64,
}

impl Default for HistoryParams {
    fn default() -> Self {
        HistoryParams {
            project: "shop".to_string(),
            // Monday 2026-01-05 00:00 UTC.
            start_ms: 1_767_571_200_000,
            days: 120,
            commits_per_day: (0, 6),
            run_failure: 0.12,
            promote: 0.6,
            judge_rollback: 0.08,
            alert_after_deploy: 0.05,
            unrelated_incident: 0.03,
            refused: 0.05,
            names_card: 0.5,
            branch_commit: 0.2,
        }
    }
}

/// What really happened, by the generator's own account.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Finish times of successful production deploys of changes.
    pub deploys_ok: Vec<i64>,
    /// Every finished production deploy of a change: (finish, failed).
    pub deploys_finished: Vec<(i64, bool)>,
    /// (deploy finish, lead time ms) per commit reaching production.
    pub lead_times: Vec<(i64, i64)>,
    /// (restored at, ms since the failure was first detected).
    pub restores: Vec<(i64, i64)>,
    /// (released at, red for ms) per red period of trunk.
    pub time_to_green: Vec<(i64, i64)>,
    /// Card → when a successful production deploy first carried it.
    pub card_in_production: BTreeMap<u64, i64>,
    /// Trunk runs that finished: (finish, failed).
    pub trunk_runs: Vec<(i64, bool)>,
    /// Production deploys refused while the line was green.
    pub refused: Vec<i64>,
}

/// The events and the truth.
#[derive(Debug, Clone)]
pub struct History {
    pub events: Vec<Envelope>,
    pub truth: Truth,
    /// The name of the production environment (`production`).
    pub production: String,
}

/// The board columns the generator moves cards through (the defaults).
const COLUMNS: [&str; 7] = crate::board::DEFAULT_COLUMNS;

fn col(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

struct Sim {
    rng: StdRng,
    p: HistoryParams,
    now: i64,
    seq: u64,
    events: Vec<Envelope>,
    truth: Truth,
    ids: u64,
    /// Trunk commits not yet in production / staging: (commit, committed at, cards).
    pending_prod: Vec<(String, i64, Vec<u64>)>,
    pending_staging: Vec<(String, i64, Vec<u64>)>,
    head: Option<String>,
    /// Card → (column index, previous column index).
    cards: BTreeMap<u64, (usize, usize)>,
    stopped_since: Option<i64>,
    last_good_version: Option<String>,
}

/// Months of history for one project, deterministic for a seed.
pub fn generate_history(seed: u64, params: &HistoryParams) -> History {
    let mut sim = Sim {
        rng: StdRng::seed_from_u64(seed),
        now: params.start_ms,
        p: params.clone(),
        seq: 0,
        events: Vec::new(),
        truth: Truth::default(),
        ids: 0,
        pending_prod: Vec::new(),
        pending_staging: Vec::new(),
        head: None,
        cards: BTreeMap::new(),
        stopped_since: None,
        last_good_version: None,
    };
    sim.emit(Event::ProjectAdded {
        project: sim.p.project.clone(),
        repo: "/srv/git/shop".into(),
        trunk: "main".into(),
        poll_s: Some(60),
    });
    for day in 0..i64::from(params.days) {
        let day_start = params.start_ms + day * DAY_MS;
        // Weekdays only: start_ms is a Monday in the defaults; any start
        // works, weekends just fall elsewhere.
        if day % 7 >= 5 {
            continue;
        }
        sim.now = sim.now.max(day_start + 9 * HOUR_MS);
        let (lo, hi) = params.commits_per_day;
        let n = sim.rng.random_range(lo.min(hi)..=hi.max(lo));
        for _ in 0..n {
            sim.wait(10 * MINUTE_MS, 90 * MINUTE_MS);
            sim.trunk_commit();
        }
        if sim.chance(params.unrelated_incident) {
            sim.wait(10 * MINUTE_MS, 60 * MINUTE_MS);
            sim.unrelated_incident();
        }
    }
    History {
        events: sim.events,
        truth: sim.truth,
        production: "production".to_string(),
    }
}

impl Sim {
    fn emit(&mut self, event: Event) {
        self.seq += 1;
        self.now += 1;
        let actor = match &event {
            Event::CardCreated { .. } => "ana",
            Event::DeployRequested {
                reason: Some(_), ..
            } => "bo",
            _ => "system",
        };
        self.events.push(Envelope {
            seq: self.seq,
            at_ms: self.now,
            actor: actor.to_string(),
            event,
        });
    }

    fn wait(&mut self, min_ms: i64, max_ms: i64) {
        self.now += self.rng.random_range(min_ms..=max_ms);
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    fn project(&self) -> String {
        self.p.project.clone()
    }

    fn trunk_commit(&mut self) {
        let id = self.next_id();
        let commit = format!(
            "{:032x}{id:08x}",
            u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        let mut cards = Vec::new();
        if self.chance(self.p.names_card) {
            let card = self.next_id();
            self.emit(Event::CardCreated {
                project: self.project(),
                card_id: card,
                title: format!("story {card}"),
                column: "backlog".into(),
            });
            self.emit(Event::CardMoved {
                project: self.project(),
                card_id: card,
                from: "backlog".into(),
                to: "in progress".into(),
                over_limit: false,
                reason: None,
                commit: None,
            });
            self.cards
                .insert(card, (col("in progress"), col("backlog")));
            cards.push(card);
        }
        let message = match cards.first() {
            Some(c) if c % 2 == 0 => format!("ANDON-{c}: implement"),
            Some(c) => format!("implement the story (#{c})"),
            None => "refactor".to_string(),
        };
        let committed_at = self.now - self.rng.random_range(MINUTE_MS..=60 * MINUTE_MS);
        let author = ["ana", "bo", "cy", "di"][self.rng.random_range(0..4)].to_string();
        self.emit(Event::CommitSeen {
            project: self.project(),
            branch: "main".into(),
            commit: commit.clone(),
            message,
            author,
            committed_at_ms: committed_at,
        });
        self.head = Some(commit.clone());
        self.pending_prod
            .push((commit.clone(), committed_at, cards.clone()));
        self.pending_staging
            .push((commit.clone(), committed_at, cards.clone()));
        let failed = self.chance(self.p.run_failure);
        let run_id = self.run(&commit, "main", &cards, failed);
        self.truth.trunk_runs.push((self.now, failed));
        self.cord(run_id, &commit, failed);
        if self.chance(self.p.branch_commit) {
            self.branch_commit();
        }
        if !failed && self.stopped_since.is_none() && self.chance(self.p.promote) {
            self.promote(run_id, &commit);
        }
    }

    fn branch_commit(&mut self) {
        self.wait(MINUTE_MS, 10 * MINUTE_MS);
        let id = self.next_id();
        let commit = format!("b{id:039x}");
        // It may name the newest card, wherever it is: automatic moves only
        // go right, so a card further along stays where it is.
        let card = self
            .cards
            .keys()
            .next_back()
            .copied()
            .filter(|_| self.rng.random_bool(0.5));
        let message = card.map_or_else(|| "spike".to_string(), |c| format!("wip #{c}"));
        self.emit(Event::CommitSeen {
            project: self.project(),
            branch: "feature/x".into(),
            commit: commit.clone(),
            message,
            author: "cy".into(),
            committed_at_ms: self.now,
        });
        let failed = self.chance(0.5);
        self.run(
            &commit,
            "feature/x",
            &card.into_iter().collect::<Vec<_>>(),
            failed,
        );
    }

    /// Queue, run and finish a pipeline; returns the run id.
    fn run(&mut self, commit: &str, branch: &str, cards: &[u64], failed: bool) -> u64 {
        let run_id = self.next_id();
        self.wait(1000, 5000);
        self.emit(Event::RunQueued {
            project: self.project(),
            run_id,
            commit: commit.to_string(),
            branch: branch.to_string(),
            trigger: Trigger::Poll,
        });
        self.move_cards(cards, "pipeline", commit);
        let jobs = [("unit", "commit"), ("api", "acceptance")];
        self.emit(Event::RunStarted {
            run_id,
            jobs: jobs
                .iter()
                .enumerate()
                .map(|(i, (name, stage))| PlannedJob {
                    name: (*name).to_string(),
                    stage: (*stage).to_string(),
                    kind: None,
                    deps: if i == 0 {
                        Vec::new()
                    } else {
                        vec!["unit".to_string()]
                    },
                    allow_failure: false,
                })
                .collect(),
        });
        for (i, (name, _)) in jobs.iter().enumerate() {
            let last = i == jobs.len() - 1;
            let duration = self.rng.random_range(60_000..=6 * MINUTE_MS);
            self.emit(Event::JobStarted {
                run_id,
                job: (*name).to_string(),
                attempt: 1,
                pgid: None,
                executor: "local".into(),
            });
            self.now += duration;
            let outcome = if failed && last {
                JobOutcome::Failed
            } else {
                JobOutcome::Passed
            };
            self.emit(Event::JobFinished {
                run_id,
                job: (*name).to_string(),
                attempt: 1,
                outcome,
                exit_code: Some(i32::from(outcome == JobOutcome::Failed)),
                duration_ms: u64::try_from(duration).unwrap_or(0),
                tests: None,
                flaky: false,
            });
        }
        self.emit(Event::RunFinished {
            run_id,
            status: if failed {
                RunStatus::Failed
            } else {
                RunStatus::Passed
            },
            reason: None,
        });
        run_id
    }

    /// What the server appends after a trunk run, by the plain rule.
    fn cord(&mut self, run_id: u64, commit: &str, failed: bool) {
        match (failed, self.stopped_since) {
            (true, None) => {
                self.emit(Event::LineStopped {
                    project: self.project(),
                    run_id,
                    commit: commit.to_string(),
                });
                self.stopped_since = Some(self.now);
            }
            (false, Some(since)) => {
                let red = (self.now + 1) - since;
                self.emit(Event::LineReleased {
                    project: self.project(),
                    run_id,
                    red_for_ms: u64::try_from(red).unwrap_or(0),
                });
                self.truth.time_to_green.push((self.now, red));
                self.stopped_since = None;
            }
            _ => {}
        }
    }

    fn move_cards(&mut self, cards: &[u64], to: &str, commit: &str) {
        let target = col(to);
        for card in cards {
            let Some((here, _)) = self.cards.get(card).copied() else {
                continue;
            };
            if here >= target {
                continue;
            }
            self.emit(Event::CardMoved {
                project: self.project(),
                card_id: *card,
                from: COLUMNS[here].to_string(),
                to: to.to_string(),
                over_limit: false,
                reason: None,
                commit: Some(commit.to_string()),
            });
            self.cards.insert(*card, (target, here));
        }
    }

    fn deploy_requested(
        &mut self,
        env: &str,
        id: u64,
        commit: Option<&str>,
        rollback: bool,
        version: &str,
    ) {
        self.emit(Event::DeployRequested {
            project: self.project(),
            environment: env.to_string(),
            deploy_id: id,
            version: version.to_string(),
            strategy: if rollback {
                "rollback".into()
            } else {
                "canary".into()
            },
            run_id: None,
            commit: commit.map(str::to_string),
            reason: rollback.then(|| "rollback".to_string()),
        });
    }

    fn deploy_finished(&mut self, env: &str, id: u64, outcome: DeployOutcome) {
        self.emit(Event::DeployFinished {
            project: self.project(),
            environment: env.to_string(),
            deploy_id: id,
            outcome,
            reason: None,
        });
    }

    fn promote(&mut self, run_id: u64, commit: &str) {
        let version = format!("sha256:{commit}{:024x}", run_id);
        // Staging: always succeeds.
        let staging = self.next_id();
        self.wait(MINUTE_MS, 3 * MINUTE_MS);
        self.deploy_requested("staging", staging, Some(commit), false, &version);
        let cards: Vec<u64> = self
            .pending_staging
            .drain(..)
            .flat_map(|(_, _, c)| c)
            .collect();
        self.move_cards(&cards, "staging", commit);
        self.wait(MINUTE_MS, 3 * MINUTE_MS);
        self.deploy_finished("staging", staging, DeployOutcome::Succeeded);

        if self.chance(self.p.refused) {
            self.wait(MINUTE_MS, 5 * MINUTE_MS);
            self.emit(Event::DeployRefused {
                project: self.project(),
                environment: "production".into(),
                version: version.clone(),
                reason: "deploys to production are allowed mon–fri 09:00–17:00 UTC".into(),
            });
            self.truth.refused.push(self.now);
            self.wait(30 * MINUTE_MS, 90 * MINUTE_MS);
        }

        let prod = self.next_id();
        self.wait(MINUTE_MS, 5 * MINUTE_MS);
        self.deploy_requested("production", prod, Some(commit), false, &version);
        let cards: Vec<u64> = self
            .pending_prod
            .iter()
            .flat_map(|(_, _, c)| c.clone())
            .collect();
        self.move_cards(&cards, "production", commit);
        self.wait(2 * MINUTE_MS, 10 * MINUTE_MS);

        if self.chance(self.p.judge_rollback) {
            self.emit(Event::JudgeVerdict {
                environment: "production".into(),
                deploy_id: prod,
                outcome: "fail".into(),
                sentence: "error rate 4.1% > 2%".into(),
            });
            let detected = self.now;
            self.wait(10_000, 60_000);
            self.deploy_finished("production", prod, DeployOutcome::RolledBack);
            self.truth.deploys_finished.push((self.now, true));
            self.truth.restores.push((self.now, self.now - detected));
            // The board's undo: back to where they came from.
            for card in &cards {
                if let Some((here, before)) = self.cards.get(card).copied()
                    && here == col("production")
                {
                    self.emit(Event::CardMoved {
                        project: self.project(),
                        card_id: *card,
                        from: "production".into(),
                        to: COLUMNS[before].to_string(),
                        over_limit: false,
                        reason: None,
                        commit: Some(commit.to_string()),
                    });
                    self.cards.insert(*card, (before, here));
                }
            }
            let incident = self.next_id();
            self.emit(Event::IncidentOpened {
                project: self.project(),
                incident_id: incident,
                environment: "production".into(),
                deploy_id: Some(prod),
                title: "release rolled back".into(),
            });
            self.wait(5 * MINUTE_MS, 60 * MINUTE_MS);
            self.emit(Event::IncidentResolved {
                incident_id: incident,
                note: String::new(),
            });
            return;
        }

        self.emit(Event::JudgeVerdict {
            environment: "production".into(),
            deploy_id: prod,
            outcome: "pass".into(),
            sentence: "error rate 0.1% ≤ 2%".into(),
        });
        self.deploy_finished("production", prod, DeployOutcome::Succeeded);
        let finished = self.now;
        self.truth.deploys_ok.push(finished);
        for (_, committed, cards) in std::mem::take(&mut self.pending_prod) {
            self.truth.lead_times.push((finished, finished - committed));
            for card in cards {
                self.truth
                    .card_in_production
                    .entry(card)
                    .or_insert(finished);
            }
        }
        self.move_cards(&cards, "done", commit);
        let previous = self.last_good_version.replace(version);

        if self.chance(self.p.alert_after_deploy) {
            self.wait(5 * MINUTE_MS, 30 * MINUTE_MS);
            self.emit(Event::AlertFired {
                project: self.project(),
                environment: "production".into(),
                rule: "error_rate".into(),
                sentence: "error rate 3% > 2% for 1m".into(),
            });
            let detected = self.now;
            self.wait(MINUTE_MS, 5 * MINUTE_MS);
            let incident = self.next_id();
            self.emit(Event::IncidentOpened {
                project: self.project(),
                incident_id: incident,
                environment: "production".into(),
                deploy_id: None,
                title: "error rate alert".into(),
            });
            self.wait(5 * MINUTE_MS, 40 * MINUTE_MS);
            let rollback = self.next_id();
            let to = previous.unwrap_or_else(|| "sha256:0".to_string());
            self.deploy_requested("production", rollback, None, true, &to);
            self.wait(MINUTE_MS, 2 * MINUTE_MS);
            self.deploy_finished("production", rollback, DeployOutcome::Succeeded);
            self.truth.restores.push((self.now, self.now - detected));
            self.truth.deploys_finished.push((finished, true));
            self.last_good_version = Some(to);
            self.wait(10 * MINUTE_MS, 60 * MINUTE_MS);
            self.emit(Event::IncidentResolved {
                incident_id: incident,
                note: "rolled back".into(),
            });
        } else {
            self.truth.deploys_finished.push((finished, false));
        }
    }

    fn unrelated_incident(&mut self) {
        self.emit(Event::AlertFired {
            project: self.project(),
            environment: "production".into(),
            rule: "p99".into(),
            sentence: "p99 450ms > 300ms for 1m".into(),
        });
        let detected = self.now;
        self.wait(MINUTE_MS, 10 * MINUTE_MS);
        let incident = self.next_id();
        self.emit(Event::IncidentOpened {
            project: self.project(),
            incident_id: incident,
            environment: "production".into(),
            deploy_id: None,
            title: "latency alert".into(),
        });
        self.wait(10 * MINUTE_MS, 3 * HOUR_MS);
        self.emit(Event::IncidentResolved {
            incident_id: incident,
            note: "database failover".into(),
        });
        self.truth.restores.push((self.now, self.now - detected));
    }
}
