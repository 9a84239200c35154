//! The board: the value stream as columns, with WIP limits that say no.
//!
//! One [`Board`] per project, built from the project's `board:` config and
//! folded from its events. Cards move by hand (checked against WIP limits
//! with [`Board::check_move`]) and by themselves: [`Board::auto_moves`] says
//! which `card_moved` events a commit naming a card earns as it flows
//! through the pipeline and the environments.

mod auto;
mod refs;
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use andon_config::Column;
use andon_core::{Envelope, Event, JobOutcome};
use serde::Serialize;

use crate::refusal::Refusal;
use crate::trunk::TrunkLog;

pub use refs::{DEFAULT_CARD_PREFIX, card_refs, card_refs_with_prefix};
pub use stats::{ColumnCount, FlowDay};

/// The columns of a board without a `board:` section.
pub const DEFAULT_COLUMNS: [&str; 7] = [
    "backlog",
    "in progress",
    "review",
    "pipeline",
    "staging",
    "production",
    "done",
];

/// One card, folded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub id: u64,
    pub title: String,
    pub column: String,
    pub created_at_ms: i64,
    /// First time it left the first column (or its creation, when created
    /// further right): where cycle time starts.
    pub started_at_ms: Option<i64>,
    /// First time it reached production: the column right after
    /// `production` (where a successful production deploy puts it), or on
    /// boards without one, `done` or else the last column.
    pub production_at_ms: Option<i64>,
    /// (time, column), creation first.
    pub history: Vec<(i64, String)>,
}

impl Card {
    /// Created → production, in ms.
    pub fn lead_time_ms(&self) -> Option<i64> {
        Some(
            self.production_at_ms?
                .saturating_sub(self.created_at_ms)
                .max(0),
        )
    }

    /// First move out of the backlog → production, in ms.
    pub fn cycle_time_ms(&self) -> Option<i64> {
        Some(
            self.production_at_ms?
                .saturating_sub(self.started_at_ms?)
                .max(0),
        )
    }
}

#[derive(Debug, Clone, Default)]
struct RunCards {
    commit: String,
    /// Stage → jobs not yet passed.
    pending: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone)]
struct DeployCards {
    environment: String,
    commit: Option<String>,
    cards: Vec<u64>,
}

/// A project's board.
#[derive(Debug, Clone)]
pub struct Board {
    project: String,
    columns: Vec<Column>,
    prefix: String,
    trunk: String,
    cards: BTreeMap<u64, Card>,
    log: TrunkLog,
    /// Commit → cards its message names (only commits naming some).
    commit_cards: HashMap<String, Vec<u64>>,
    runs: BTreeMap<u64, RunCards>,
    deploys: BTreeMap<u64, DeployCards>,
    /// The stage the event with this seq completed: (seq, run, stage).
    stage_done: Option<(u64, u64, String)>,
}

impl Board {
    /// `config` is the project's `board:` section; `None` gives
    /// [`DEFAULT_COLUMNS`] without limits.
    pub fn new(project: &str, config: Option<&andon_config::Board>) -> Self {
        let columns = match config {
            Some(b) if !b.columns.is_empty() => b.columns.clone(),
            _ => DEFAULT_COLUMNS
                .iter()
                .map(|n| Column {
                    name: (*n).to_string(),
                    wip: None,
                })
                .collect(),
        };
        Board {
            project: project.to_string(),
            columns,
            prefix: DEFAULT_CARD_PREFIX.to_string(),
            trunk: "main".to_string(),
            cards: BTreeMap::new(),
            log: TrunkLog::default(),
            commit_cards: HashMap::new(),
            runs: BTreeMap::new(),
            deploys: BTreeMap::new(),
            stage_done: None,
        }
    }

    /// Recognise `<prefix>-N` in commit messages instead of `ANDON-N`.
    pub fn with_card_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn card(&self, id: u64) -> Option<&Card> {
        self.cards.get(&id)
    }

    pub fn cards(&self) -> impl Iterator<Item = &Card> {
        self.cards.values()
    }

    /// Cards in `column`, by id.
    pub fn in_column(&self, column: &str) -> Vec<u64> {
        self.cards
            .values()
            .filter(|c| c.column == column)
            .map(|c| c.id)
            .collect()
    }

    fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == column)
    }

    /// The first column whose cards run in production. A `production`
    /// column holds cards whose deploy is in flight, so it is the one
    /// after it; without one, `done`, else the last column.
    fn production_index(&self) -> usize {
        let last = self.columns.len().saturating_sub(1);
        self.index("production")
            .map(|i| i + 1)
            .filter(|i| *i <= last)
            .or_else(|| self.index("done"))
            .unwrap_or(last)
    }

    pub fn apply(&mut self, env: &Envelope) {
        let at = env.at_ms;
        match &env.event {
            Event::ProjectAdded { project, trunk, .. } if *project == self.project => {
                self.trunk.clone_from(trunk);
            }
            Event::CardCreated {
                project,
                card_id,
                title,
                column,
            } if *project == self.project && !self.cards.contains_key(card_id) => {
                let idx = self.index(column);
                let mut card = Card {
                    id: *card_id,
                    title: title.clone(),
                    column: column.clone(),
                    created_at_ms: at,
                    started_at_ms: idx.filter(|i| *i > 0).map(|_| at),
                    production_at_ms: None,
                    history: vec![(at, column.clone())],
                };
                if idx.is_some_and(|i| i >= self.production_index()) {
                    card.production_at_ms = Some(at);
                }
                self.cards.insert(*card_id, card);
            }
            Event::CardMoved {
                project,
                card_id,
                to,
                ..
            } if *project == self.project => {
                let idx = self.index(to);
                let production = self.production_index();
                if let Some(card) = self.cards.get_mut(card_id) {
                    card.column.clone_from(to);
                    card.history.push((at, to.clone()));
                    if idx.is_some_and(|i| i > 0) && card.started_at_ms.is_none() {
                        card.started_at_ms = Some(at);
                    }
                    if idx.is_some_and(|i| i >= production) && card.production_at_ms.is_none() {
                        card.production_at_ms = Some(at);
                    }
                }
            }
            Event::CommitSeen {
                project,
                branch,
                commit,
                message,
                committed_at_ms,
                ..
            } if *project == self.project => {
                self.log
                    .seen(*branch == self.trunk, commit, *committed_at_ms);
                let refs = card_refs_with_prefix(message, &self.prefix);
                if !refs.is_empty() {
                    self.commit_cards.insert(commit.clone(), refs);
                }
            }
            Event::RunQueued {
                project,
                run_id,
                commit,
                ..
            } if *project == self.project && self.commit_cards.contains_key(commit) => {
                self.runs.insert(
                    *run_id,
                    RunCards {
                        commit: commit.clone(),
                        pending: BTreeMap::new(),
                    },
                );
            }
            Event::RunStarted { run_id, jobs } => {
                if let Some(run) = self.runs.get_mut(run_id) {
                    for j in jobs {
                        run.pending
                            .entry(j.stage.clone())
                            .or_default()
                            .insert(j.name.clone());
                    }
                }
            }
            Event::JobFinished {
                run_id,
                job,
                outcome,
                ..
            } => self.job_finished(env.seq, *run_id, job, *outcome),
            Event::RunFinished { run_id, .. } => {
                self.runs.remove(run_id);
            }
            Event::DeployRequested {
                project,
                environment,
                deploy_id,
                commit,
                ..
            } if *project == self.project => {
                let mut cards = Vec::new();
                if let Some(c) = commit {
                    for (carried, _) in self.log.carried(environment, c) {
                        for id in self.commit_cards.get(&carried).into_iter().flatten() {
                            if !cards.contains(id) {
                                cards.push(*id);
                            }
                        }
                    }
                }
                self.deploys.insert(
                    *deploy_id,
                    DeployCards {
                        environment: environment.clone(),
                        commit: commit.clone(),
                        cards,
                    },
                );
            }
            Event::DeployFinished {
                project,
                deploy_id,
                outcome,
                ..
            } if *project == self.project => {
                if let Some(d) = self.deploys.get(deploy_id)
                    && *outcome == andon_core::DeployOutcome::Succeeded
                    && let Some(c) = &d.commit
                {
                    self.log.shipped(&d.environment, c);
                }
            }
            _ => {}
        }
    }

    fn job_finished(&mut self, seq: u64, run_id: u64, job: &str, outcome: JobOutcome) {
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        if outcome != JobOutcome::Passed {
            return;
        }
        let mut completed = None;
        for (stage, jobs) in &mut run.pending {
            if jobs.remove(job) && jobs.is_empty() {
                completed = Some(stage.clone());
            }
        }
        if let Some(stage) = completed {
            self.stage_done = Some((seq, run_id, stage));
        }
    }

    /// Whether `card_id` may move to `to`. A full column refuses unless
    /// `is_admin_override` (the caller checked the role and has a reason).
    pub fn check_move(
        &self,
        card_id: u64,
        to: &str,
        is_admin_override: bool,
    ) -> Result<(), Refusal> {
        if !self.cards.contains_key(&card_id) {
            return Err(Refusal::UnknownCard { card_id });
        }
        self.check_room(to, Some(card_id), is_admin_override)
            .map(|_| ())
    }

    /// Whether a new card may be created in `column`.
    pub fn check_create(&self, column: &str, is_admin_override: bool) -> Result<(), Refusal> {
        self.check_room(column, None, is_admin_override).map(|_| ())
    }

    /// The `card_moved` event for a move by hand, checked. `override_reason`
    /// (non-blank) is an admin's reason to pass a full column: the event is
    /// then marked `over_limit` and carries it.
    pub fn move_event(
        &self,
        card_id: u64,
        to: &str,
        override_reason: Option<&str>,
    ) -> Result<Event, Refusal> {
        let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
        let card = self
            .cards
            .get(&card_id)
            .ok_or(Refusal::UnknownCard { card_id })?;
        let over_limit = self.check_room(to, Some(card_id), reason.is_some())?;
        Ok(Event::CardMoved {
            project: self.project.clone(),
            card_id,
            from: card.column.clone(),
            to: to.to_string(),
            over_limit,
            reason: reason.map(str::to_string),
            commit: None,
        })
    }

    /// `Ok(over_limit)`.
    fn check_room(&self, column: &str, moving: Option<u64>, admin: bool) -> Result<bool, Refusal> {
        let Some(col) = self.columns.iter().find(|c| c.name == column) else {
            return Err(Refusal::UnknownColumn {
                column: column.to_string(),
                known: self.columns.iter().map(|c| c.name.clone()).collect(),
            });
        };
        let already_there =
            moving.is_some_and(|id| self.cards.get(&id).is_some_and(|c| c.column == column));
        let Some(limit) = col.wip else {
            return Ok(false);
        };
        let cards = self.in_column(column);
        if already_there || cards.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(false);
        }
        if admin {
            Ok(true)
        } else {
            Err(Refusal::WipLimit {
                column: column.to_string(),
                limit,
                cards,
            })
        }
    }
}
