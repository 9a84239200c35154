//! The flow rules of `andon-flow` as projections of the log, and the
//! events they make the server append.
//!
//! [`FlowViews`] lives inside [`crate::state::Views`] and is folded with the
//! rest, so the cord, DORA metrics, incidents and boards are rebuilt from
//! the log at every start. The rules that decide (the cord after a run, the
//! board's automatic moves) only return events; [`after_append`] appends
//! them as actor `andon`, under the same append lock, so the log always
//! says why the line stopped or a card moved.

use std::collections::{BTreeMap, VecDeque};

use andon_core::{Envelope, Event};
use andon_flow::{Board, Cord, Dora, Incidents};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Follow-up rounds after one append: a card move never causes another
/// decision today, the bound only guards against a future rule loop.
const MAX_FOLLOW_UP_ROUNDS: usize = 4;
/// Notification attempts kept per project for the API.
const MAX_ATTEMPTS_KEPT: usize = 1000;
/// New trunk commits recorded for one push: a huge push (an import) is
/// recorded by its newest commits only.
const MAX_NEW_COMMITS: usize = 200;

/// One notification delivery attempt, as `GET .../notifications` lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Attempt {
    pub(crate) seq: u64,
    pub(crate) at_ms: i64,
    pub(crate) subscription: String,
    pub(crate) about_seq: u64,
    pub(crate) attempt: u32,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// The flow projections.
#[derive(Default)]
pub(crate) struct FlowViews {
    pub(crate) cord: Cord,
    pub(crate) dora: Dora,
    pub(crate) incidents: Incidents,
    /// One board per project, default columns until the project's trunk
    /// `andon.yaml` names others (see [`ensure_board_config`]).
    pub(crate) boards: BTreeMap<String, Board>,
    /// The columns each board was built with (`None`: the defaults).
    board_configs: BTreeMap<String, Option<andon_config::Board>>,
    /// Project → production environment, learnt from its trunk config.
    production_env: BTreeMap<String, String>,
    pub(crate) attempts: BTreeMap<String, VecDeque<Attempt>>,
}

impl FlowViews {
    pub(crate) fn apply(&mut self, env: &Envelope) {
        self.cord.apply(env);
        self.dora.apply(env);
        self.incidents.apply(env);
        if let Event::ProjectAdded { project, .. } = &env.event {
            let cfg = self.board_configs.get(project).cloned().flatten();
            self.boards
                .entry(project.clone())
                .or_insert_with(|| Board::new(project, cfg.as_ref()));
        }
        for board in self.boards.values_mut() {
            board.apply(env);
        }
        if let Event::NotificationAttempted {
            project,
            subscription,
            about_seq,
            attempt,
            ok,
            detail,
        } = &env.event
        {
            let list = self.attempts.entry(project.clone()).or_default();
            list.push_back(Attempt {
                seq: env.seq,
                at_ms: env.at_ms,
                subscription: subscription.clone(),
                about_seq: *about_seq,
                attempt: *attempt,
                ok: *ok,
                detail: detail.clone(),
            });
            while list.len() > MAX_ATTEMPTS_KEPT {
                list.pop_front();
            }
        }
    }

    /// The events the rules earn from `env` (already folded).
    fn follow_ups(&self, env: &Envelope) -> Vec<Event> {
        let mut out: Vec<Event> = self.cord.decide(env).into_iter().collect();
        for (project, board) in &self.boards {
            let prod = self
                .production_env
                .get(project)
                .map_or("production", String::as_str);
            out.extend(board.auto_moves(env, prod));
        }
        out
    }

    pub(crate) fn production_env(&self, project: &str) -> Option<&str> {
        self.production_env.get(project).map(String::as_str)
    }
}

/// Appends what the flow rules decide after `envs` were appended and
/// folded. Called by
/// [`AppState::append_with`] under the append lock. A failure here is
/// logged, not returned: the caller's own events are already in the log.
pub(crate) fn after_append(state: &AppState, envs: &[Envelope]) {
    let mut pending: Vec<Envelope> = envs.to_vec();
    for _ in 0..MAX_FOLLOW_UP_ROUNDS {
        let events: Vec<Event> = {
            let views = state.read_views();
            pending
                .iter()
                .flat_map(|e| views.flow.follow_ups(e))
                .collect()
        };
        if events.is_empty() {
            return;
        }
        // Folded and published there; other servers' events caught up on
        // the way come back too, and get their follow-ups next round.
        pending = match state.append_reaction(events) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "could not record a flow decision");
                return;
            }
        };
    }
}

/// Makes the project's board use the columns of its trunk `andon.yaml`,
/// and remembers its production environment. A board whose columns
/// change is rebuilt from the log, under the views' write lock so no
/// event is folded twice or missed.
pub(crate) fn learn_config(state: &AppState, project: &str, cfg: &andon_config::Config) {
    let prod = andon_flow::production_environment(&cfg.environments)
        .unwrap_or("production")
        .to_string();
    let mut views = state
        .views
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    views.flow.production_env.insert(project.to_string(), prod);
    let same = views
        .flow
        .board_configs
        .get(project)
        .is_some_and(|c| *c == cfg.board);
    if same || (cfg.board.is_none() && !views.flow.board_configs.contains_key(project)) {
        return;
    }
    let mut board = Board::new(project, cfg.board.as_ref());
    let until = views.last_seq;
    let mut after = 0;
    while after < until {
        let batch = match state.store.read(after, 10_000) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "could not rebuild a board");
                return;
            }
        };
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for env in batch.iter().filter(|e| e.seq <= until) {
            board.apply(env);
        }
    }
    views
        .flow
        .board_configs
        .insert(project.to_string(), cfg.board.clone());
    views.flow.boards.insert(project.to_string(), board);
}

/// The trunk config of a project, learnt into the flow views on the way.
pub(crate) async fn trunk_config(
    state: &AppState,
    project: &str,
) -> Result<andon_config::Config, ApiError> {
    let (_, cfg) = crate::deploy::trunk_config(state, project).await?;
    learn_config(state, project, &cfg);
    Ok(cfg)
}

/// Trunk commits between the branch's last seen head and `commit`, oldest
/// first, without `commit` itself: (commit, subject, author, time ms).
pub(crate) async fn new_commits(
    mirror: &std::path::Path,
    old: &str,
    commit: &str,
) -> Vec<(String, String, String, i64)> {
    let range = format!("{old}..{commit}");
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(mirror)
        .args([
            "log",
            "--reverse",
            "--first-parent",
            "--format=%H%x00%s%x00%an%x00%ct",
            &range,
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output()
        .await;
    let Ok(out) = out else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut all: Vec<(String, String, String, i64)> = text
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(4, '\0');
            let id = p.next()?.to_string();
            let subject = p.next()?.to_string();
            let author = p.next()?.to_string();
            let secs: i64 = p.next()?.trim().parse().ok()?;
            Some((id, subject, author, secs * 1000))
        })
        .filter(|c| c.0 != commit)
        .collect();
    if all.len() > MAX_NEW_COMMITS {
        all.drain(..all.len() - MAX_NEW_COMMITS);
    }
    all
}
