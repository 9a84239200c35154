//! Why Andon says no, in words a person can act on.
//!
//! Every refusal names what is blocking and what to do about it (wait for a
//! window, fix trunk, finish a card, or override with a reason), because a
//! bare "forbidden" only teaches people to look for the override.

use std::fmt::Write;

/// A rule refused an action. `Display` is the sentence shown to the user;
/// [`Refusal::code`] is the stable machine-readable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Trunk is red: production deploys wait until it is green again.
    #[error(
        "production deploys of `{project}` are refused: the line is stopped since {} (trunk run #{run_id} failed on commit {}){}; fix trunk first, or override with a reason",
        crate::time::format_minute(*since_ms, 0),
        short_commit(commit),
        fixer_note(fixer.as_deref())
    )]
    LineStopped {
        project: String,
        since_ms: i64,
        run_id: u64,
        commit: String,
        /// The author of the first trunk commit after the stop, if any.
        fixer: Option<String>,
    },
    /// Outside the environment's deploy window.
    #[error("deploys to {environment} are allowed {allowed}{}", next_note(next_open.as_deref()))]
    WindowClosed {
        environment: String,
        /// `mon–fri 09:00–17:00 UTC`
        allowed: String,
        /// `Mon 2026-11-30 09:00 UTC`
        next_open: Option<String>,
        next_open_ms: Option<i64>,
    },
    /// Inside a freeze.
    #[error(
        "deploys to {environment} are frozen until {until}{}{}",
        reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        next_note(next_open.as_deref())
    )]
    Frozen {
        environment: String,
        /// `Sat 2027-01-02 00:00 UTC`
        until: String,
        reason: Option<String>,
        /// When deploys are next allowed, if that is later than the end of
        /// the freeze (a window closed then), or the freeze's end.
        next_open: Option<String>,
        next_open_ms: Option<i64>,
    },
    /// The target column is at its WIP limit.
    #[error(
        "column `{column}` is full ({}/{limit} cards: {}); finish one first, or an admin may override with a reason",
        cards.len(),
        card_list(cards)
    )]
    WipLimit {
        column: String,
        limit: u32,
        cards: Vec<u64>,
    },
    #[error("there is no column `{column}` on the board; columns are: {}", known.join(", "))]
    UnknownColumn { column: String, known: Vec<String> },
    #[error("there is no card #{card_id} on the board")]
    UnknownCard { card_id: u64 },
}

impl Refusal {
    /// A stable code for API errors (`{"error": {"code": ...}}`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::LineStopped { .. } => "line_stopped",
            Refusal::WindowClosed { .. } => "window_closed",
            Refusal::Frozen { .. } => "frozen",
            Refusal::WipLimit { .. } => "wip_limit",
            Refusal::UnknownColumn { .. } => "unknown_column",
            Refusal::UnknownCard { .. } => "unknown_card",
        }
    }

    /// When trying again can succeed without anyone acting (windows and
    /// freezes), for a `Retry-After` or a train's departure.
    pub fn retry_at_ms(&self) -> Option<i64> {
        match self {
            Refusal::WindowClosed { next_open_ms, .. } | Refusal::Frozen { next_open_ms, .. } => {
                *next_open_ms
            }
            _ => None,
        }
    }
}

pub(crate) fn short_commit(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn fixer_note(fixer: Option<&str>) -> String {
    fixer
        .map(|f| format!("; {f} is fixing it"))
        .unwrap_or_default()
}

fn next_note(next: Option<&str>) -> String {
    next.map(|n| format!("; next window opens {n}"))
        .unwrap_or_default()
}

fn card_list(cards: &[u64]) -> String {
    let mut out = String::new();
    for (i, c) in cards.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "#{c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wip_message_names_the_cards() {
        let r = Refusal::WipLimit {
            column: "review".into(),
            limit: 3,
            cards: vec![4, 7, 9],
        };
        assert_eq!(
            r.to_string(),
            "column `review` is full (3/3 cards: #4, #7, #9); finish one first, or an admin may override with a reason"
        );
        assert_eq!(r.code(), "wip_limit");
    }

    #[test]
    fn line_stopped_message() {
        let r = Refusal::LineStopped {
            project: "shop".into(),
            since_ms: 0,
            run_id: 12,
            commit: "abcdef0123".into(),
            fixer: Some("ana".into()),
        };
        assert_eq!(
            r.to_string(),
            "production deploys of `shop` are refused: the line is stopped since Thu 1970-01-01 00:00 UTC (trunk run #12 failed on commit abcdef0); ana is fixing it; fix trunk first, or override with a reason"
        );
    }
}
