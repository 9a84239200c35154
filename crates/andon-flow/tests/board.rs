//! The board: WIP limits that refuse, cards that move with their commits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use andon_config::{Board as BoardConfig, Column};
use andon_core::{DeployOutcome::*, Envelope, Event, JobOutcome, PlannedJob, RunStatus};
use andon_flow::{Board, Refusal};
use common::*;

const DAY: i64 = 86_400_000;

fn created(id: u64, column: &str) -> Event {
    Event::CardCreated {
        project: "shop".into(),
        card_id: id,
        title: format!("card {id}"),
        column: column.into(),
    }
}

fn columns(spec: &[(&str, Option<u32>)]) -> BoardConfig {
    BoardConfig {
        columns: spec
            .iter()
            .map(|(n, w)| Column {
                name: (*n).to_string(),
                wip: *w,
            })
            .collect(),
    }
}

/// Applies `event`, then the moves the board asks for; returns those moves
/// as (card, from, to, over_limit).
fn step(
    board: &mut Board,
    log: &mut Log,
    at: i64,
    event: Event,
) -> Vec<(u64, String, String, bool)> {
    let env = log.at(at, event);
    board.apply(&env);
    let moves = board.auto_moves(&env, "production");
    let mut out = Vec::new();
    for m in moves {
        if let Event::CardMoved {
            card_id,
            from,
            to,
            over_limit,
            commit,
            ..
        } = &m
        {
            assert!(commit.is_some(), "automatic moves name their commit");
            out.push((*card_id, from.clone(), to.clone(), *over_limit));
        }
        let e: Envelope = log.at(at, m);
        board.apply(&e);
    }
    out
}

fn mv(card: u64, from: &str, to: &str) -> (u64, String, String, bool) {
    (card, from.to_string(), to.to_string(), false)
}

#[test]
fn a_full_column_refuses_with_the_cards_named() {
    let cfg = columns(&[("backlog", None), ("review", Some(3)), ("done", None)]);
    let mut board = Board::new("shop", Some(&cfg));
    let mut log = Log::new();
    for (id, col) in [(4, "review"), (7, "review"), (9, "review"), (12, "backlog")] {
        let e = log.at(0, created(id, col));
        board.apply(&e);
    }
    let err = board.check_move(12, "review", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column `review` is full (3/3 cards: #4, #7, #9); finish one first, or an admin may override with a reason"
    );
    assert!(board.check_move(12, "review", true).is_ok());
    assert!(
        board.check_move(4, "review", false).is_ok(),
        "already there"
    );
    assert!(board.check_move(12, "done", false).is_ok());
    assert!(matches!(
        board.check_create("review", false),
        Err(Refusal::WipLimit { .. })
    ));
    assert_eq!(
        board.check_move(99, "done", false),
        Err(Refusal::UnknownCard { card_id: 99 })
    );
    let unknown = board.check_move(12, "qa", false).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "there is no column `qa` on the board; columns are: backlog, review, done"
    );

    assert!(
        board.move_event(12, "review", Some("   ")).is_err(),
        "a blank reason is no override"
    );
    let ev = board
        .move_event(12, "review", Some("release blocker"))
        .unwrap();
    assert_eq!(
        ev,
        Event::CardMoved {
            project: "shop".into(),
            card_id: 12,
            from: "backlog".into(),
            to: "review".into(),
            over_limit: true,
            reason: Some("release blocker".into()),
            commit: None,
        }
    );
}

#[test]
fn cards_follow_their_commits_to_production() {
    let mut board = Board::new("shop", None);
    let mut log = Log::new();
    let h = 3_600_000;
    step(&mut board, &mut log, 0, created(1, "backlog"));
    step(&mut board, &mut log, 0, created(2, "backlog"));
    step(&mut board, &mut log, 0, created(3, "done"));
    assert!(
        step(
            &mut board,
            &mut log,
            h,
            commit("c1", h, "fix ANDON-1 (see #3)")
        )
        .is_empty()
    );
    step(&mut board, &mut log, h, commit("c2", h, "and #2"));
    assert_eq!(
        step(&mut board, &mut log, h, queued(1, "c1")),
        [mv(1, "backlog", "pipeline")],
        "#3 is done already"
    );
    step(
        &mut board,
        &mut log,
        2 * h,
        run_finished(1, RunStatus::Passed),
    );
    // Staging gets c2, which carries c1.
    assert_eq!(
        step(
            &mut board,
            &mut log,
            3 * h,
            deploy("staging", 1, Some("c2"))
        ),
        [mv(1, "pipeline", "staging"), mv(2, "backlog", "staging")]
    );
    assert!(
        step(
            &mut board,
            &mut log,
            3 * h,
            finished("staging", 1, Succeeded)
        )
        .is_empty()
    );
    assert_eq!(
        step(
            &mut board,
            &mut log,
            4 * h,
            deploy("production", 2, Some("c2"))
        )
        .len(),
        2
    );
    assert_eq!(board.card(1).unwrap().column, "production");
    // Rolled back: back to staging.
    assert_eq!(
        step(
            &mut board,
            &mut log,
            5 * h,
            finished("production", 2, RolledBack)
        ),
        [
            mv(1, "production", "staging"),
            mv(2, "production", "staging")
        ]
    );
    assert_eq!(board.card(1).unwrap().production_at_ms, None);
    step(
        &mut board,
        &mut log,
        6 * h,
        deploy("production", 3, Some("c2")),
    );
    assert_eq!(
        step(
            &mut board,
            &mut log,
            7 * h,
            finished("production", 3, Succeeded)
        ),
        [mv(1, "production", "done"), mv(2, "production", "done")]
    );
    let card = board.card(1).unwrap();
    assert_eq!(card.production_at_ms, Some(7 * h));
    assert_eq!(card.lead_time_ms(), Some(7 * h), "created at 0");
    assert_eq!(card.cycle_time_ms(), Some(6 * h), "left the backlog at 1 h");
    // Cycle times: #1 6 h, #2 4 h (left the backlog at 3 h), #3 0 (created done).
    assert_eq!(board.cycle_time_median_s(0, DAY), Some(4.0 * 3600.0));
    assert_eq!(board.lead_time_median_s(0, DAY), Some(7.0 * 3600.0));
    assert_eq!(board.lead_time_median_s(DAY, 2 * DAY), None);
    // A later deploy of the same commit moves nothing.
    assert!(
        step(
            &mut board,
            &mut log,
            8 * h,
            deploy("production", 4, Some("c2"))
        )
        .is_empty()
    );
}

#[test]
fn stage_columns_and_full_columns_in_the_flow() {
    let cfg = columns(&[
        ("backlog", None),
        ("pipeline", Some(1)),
        ("acceptance", None),
        ("done", None),
    ]);
    let mut board = Board::new("shop", Some(&cfg)).with_card_prefix("SHOP");
    let mut log = Log::new();
    step(&mut board, &mut log, 0, created(1, "backlog"));
    step(&mut board, &mut log, 0, created(2, "backlog"));
    step(
        &mut board,
        &mut log,
        1,
        commit("c1", 1, "SHOP-1 shop-2 ANDON-3"),
    );
    let moves = step(&mut board, &mut log, 2, queued(1, "c1"));
    assert_eq!(
        moves,
        [
            (1, "backlog".into(), "pipeline".into(), false),
            (2, "backlog".into(), "pipeline".into(), true)
        ],
        "the second overflows the limit of 1, visibly"
    );
    let job = |name: &str, stage: &str| PlannedJob {
        name: name.into(),
        stage: stage.into(),
        kind: None,
        deps: vec![],
        allow_failure: false,
    };
    step(
        &mut board,
        &mut log,
        3,
        Event::RunStarted {
            run_id: 1,
            jobs: vec![
                job("unit", "commit"),
                job("api", "acceptance"),
                job("ui", "acceptance"),
            ],
        },
    );
    let finished_job = |name: &str, outcome| Event::JobFinished {
        run_id: 1,
        job: name.into(),
        attempt: 1,
        outcome,
        exit_code: None,
        duration_ms: 1,
        tests: None,
        flaky: false,
    };
    assert!(
        step(
            &mut board,
            &mut log,
            4,
            finished_job("unit", JobOutcome::Passed)
        )
        .is_empty(),
        "no `commit` column"
    );
    assert!(
        step(
            &mut board,
            &mut log,
            5,
            finished_job("api", JobOutcome::Passed)
        )
        .is_empty(),
        "ui pending"
    );
    assert!(
        step(
            &mut board,
            &mut log,
            6,
            finished_job("ui", JobOutcome::Failed)
        )
        .is_empty()
    );
    assert_eq!(
        step(
            &mut board,
            &mut log,
            7,
            finished_job("ui", JobOutcome::Passed)
        )
        .len(),
        2,
        "retry passed"
    );
    assert_eq!(board.card(2).unwrap().column, "acceptance");
}

#[test]
fn cumulative_flow_counts_cards_per_column_per_day() {
    let mut board = Board::new("shop", None);
    let mut log = Log::new();
    step(&mut board, &mut log, 10, created(1, "backlog"));
    step(&mut board, &mut log, DAY + 10, created(2, "backlog"));
    let e = log.at(2 * DAY + 10, board.move_event(1, "done", None).unwrap());
    board.apply(&e);
    let flow = board.cumulative_flow(0, 3 * DAY);
    let count = |day: usize, column: &str| {
        flow[day]
            .columns
            .iter()
            .find(|c| c.column == column)
            .unwrap()
            .cards
    };
    assert_eq!(flow.len(), 3);
    assert_eq!(flow[0].date, "1970-01-01");
    assert_eq!((count(0, "backlog"), count(0, "done")), (1, 0));
    assert_eq!((count(1, "backlog"), count(1, "done")), (2, 0));
    assert_eq!((count(2, "backlog"), count(2, "done")), (1, 1));
    assert_eq!(flow[0].columns.len(), 7, "every column, in board order");
    assert!(board.cumulative_flow(0, 0).is_empty());
    assert_eq!(
        board.cumulative_flow(i64::MIN, i64::MAX).len(),
        3660,
        "capped"
    );
}
