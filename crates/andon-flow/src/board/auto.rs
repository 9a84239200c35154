//! Cards that move by themselves as the commits naming them flow.
//!
//! The rules, for a card named by a commit (`#12`, `ANDON-12`):
//! - a run of that commit is queued → column `pipeline`;
//! - every job of a stage passed → the column named like the stage, if any;
//! - a deploy carrying the commit (it, or an older undeployed trunk commit)
//!   is requested to an environment → the column named like the
//!   environment (the production environment may also use `production`);
//! - that deploy succeeds in production → `done` (else the last column);
//! - a deploy that does not succeed sends the cards it moved back where
//!   they were.
//!
//! Moves only go right (except that undo), so a card a person already moved
//! further is left alone. The flow of commits is never blocked by a WIP
//! limit: an automatic move into a full column is marked `over_limit`, so
//! the board shows the overload instead of hiding where the work is.

use andon_core::{DeployOutcome, Envelope, Event};

use super::Board;

impl Board {
    /// The `card_moved` events `env` earns. Call it after
    /// [`Board::apply`]`(env)` and append what it returns; `production_env`
    /// names the production environment.
    pub fn auto_moves(&self, env: &Envelope, production_env: &str) -> Vec<Event> {
        match &env.event {
            Event::RunQueued {
                project, commit, ..
            } if *project == self.project => {
                let cards = self.commit_cards.get(commit).cloned().unwrap_or_default();
                self.forward(&cards, "pipeline", commit)
            }
            Event::JobFinished { run_id, .. } => match (&self.stage_done, self.runs.get(run_id)) {
                (Some((seq, run, stage)), Some(r)) if *seq == env.seq && run == run_id => {
                    let cards = self
                        .commit_cards
                        .get(&r.commit)
                        .cloned()
                        .unwrap_or_default();
                    self.forward(&cards, stage, &r.commit)
                }
                _ => Vec::new(),
            },
            Event::DeployRequested {
                project,
                environment,
                deploy_id,
                ..
            } if *project == self.project => {
                let (Some(d), Some(column)) = (
                    self.deploys.get(deploy_id),
                    self.env_column(environment, production_env),
                ) else {
                    return Vec::new();
                };
                self.forward(&d.cards, &column, d.commit.as_deref().unwrap_or_default())
            }
            Event::DeployFinished {
                project,
                environment,
                deploy_id,
                outcome,
                ..
            } if *project == self.project => {
                let Some(d) = self.deploys.get(deploy_id) else {
                    return Vec::new();
                };
                let commit = d.commit.as_deref().unwrap_or_default();
                if *outcome == DeployOutcome::Succeeded {
                    if environment != production_env {
                        return Vec::new();
                    }
                    let done = self
                        .index("done")
                        .or_else(|| self.columns.len().checked_sub(1))
                        .and_then(|i| self.columns.get(i))
                        .map(|c| c.name.clone());
                    done.map(|c| self.forward(&d.cards, &c, commit))
                        .unwrap_or_default()
                } else {
                    self.undo(
                        &d.cards,
                        self.env_column(environment, production_env),
                        commit,
                    )
                }
            }
            _ => Vec::new(),
        }
    }

    fn env_column(&self, environment: &str, production_env: &str) -> Option<String> {
        if self.index(environment).is_some() {
            return Some(environment.to_string());
        }
        (environment == production_env && self.index("production").is_some())
            .then(|| "production".to_string())
    }

    fn forward(&self, cards: &[u64], to: &str, commit: &str) -> Vec<Event> {
        let Some(target) = self.index(to) else {
            return Vec::new();
        };
        let limit = self.columns.get(target).and_then(|c| c.wip);
        let mut occupied = self.in_column(to).len();
        let mut moves = Vec::new();
        for id in cards {
            let Some(card) = self.cards.get(id) else {
                continue;
            };
            let here = self.index(&card.column);
            if here.is_some_and(|h| h >= target) {
                continue;
            }
            let over_limit =
                limit.is_some_and(|l| occupied >= usize::try_from(l).unwrap_or(usize::MAX));
            occupied += 1;
            moves.push(self.auto_move(*id, &card.column, to, over_limit, commit));
        }
        moves
    }

    fn undo(&self, cards: &[u64], column: Option<String>, commit: &str) -> Vec<Event> {
        let Some(column) = column else {
            return Vec::new();
        };
        cards
            .iter()
            .filter_map(|id| self.cards.get(id))
            .filter(|c| c.column == column)
            .filter_map(|c| {
                let before = c
                    .history
                    .len()
                    .checked_sub(2)
                    .and_then(|i| c.history.get(i))?;
                Some(self.auto_move(c.id, &c.column, &before.1, false, commit))
            })
            .collect()
    }

    fn auto_move(&self, id: u64, from: &str, to: &str, over_limit: bool, commit: &str) -> Event {
        Event::CardMoved {
            project: self.project.clone(),
            card_id: id,
            from: from.to_string(),
            to: to.to_string(),
            over_limit,
            reason: None,
            commit: (!commit.is_empty()).then(|| commit.to_string()),
        }
    }
}
