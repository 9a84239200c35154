//! Months of generated history: every view, which only sees events, must
//! agree with the generator's own bookkeeping of what happened.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use andon_core::Event;
use andon_flow::testing::{History, HistoryParams, Truth, generate_history};
use andon_flow::{Board, Cord, Dora, Incidents};

const DAY: i64 = 86_400_000;
const SEEDS: [u64; 6] = [1, 2, 3, 42, 1234, 99_999];

/// The test's own median: sort, take the middle (mean of two for even).
fn median(mut v: Vec<i64>) -> Option<f64> {
    v.sort();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2] as f64),
        _ => Some((v[n / 2 - 1] + v[n / 2]) as f64 / 2.0),
    }
}

/// Nearest rank: the value at rank ceil(0.9 n).
fn p90(mut v: Vec<i64>) -> Option<f64> {
    v.sort();
    let n = v.len();
    (n > 0).then(|| v[((9 * n).div_ceil(10)).max(1) - 1] as f64)
}

fn within(truth: &[(i64, i64)], since: i64, until: i64) -> Vec<i64> {
    truth
        .iter()
        .filter(|(at, _)| since <= *at && *at < until)
        .map(|(_, v)| *v)
        .collect()
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (None, None) => {}
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-9 * y.abs().max(1.0),
            "{what}: {x} != {y}"
        ),
        _ => panic!("{what}: {a:?} != {b:?}"),
    }
}

fn check_window(dora: &Dora, t: &Truth, since: i64, until: i64) {
    let m = dora.metrics("shop", "production", since, until);
    let ctx = format!("[{since}, {until})");
    let days = (until - since) as f64 / DAY as f64;
    let ok = t
        .deploys_ok
        .iter()
        .filter(|at| since <= **at && **at < until)
        .count();
    let any_before = t.deploys_finished.iter().any(|(at, _)| *at < until);
    close(
        m.deployment_frequency_per_day,
        any_before.then(|| ok as f64 / days),
        &format!("frequency {ctx}"),
    );

    let leads = within(&t.lead_times, since, until);
    close(
        m.lead_time_median_s,
        median(leads.clone()).map(|v| v / 1000.0),
        &format!("lead median {ctx}"),
    );
    close(
        m.lead_time_p90_s,
        p90(leads.clone()).map(|v| v / 1000.0),
        &format!("lead p90 {ctx}"),
    );

    let finished: Vec<bool> = t
        .deploys_finished
        .iter()
        .filter(|(at, _)| since <= *at && *at < until)
        .map(|(_, failed)| *failed)
        .collect();
    let failed = finished.iter().filter(|f| **f).count();
    close(
        m.change_failure_rate,
        (!finished.is_empty()).then(|| failed as f64 / finished.len() as f64),
        &format!("cfr {ctx}"),
    );
    close(
        m.time_to_restore_median_s,
        median(within(&t.restores, since, until)).map(|v| v / 1000.0),
        &format!("restore {ctx}"),
    );
    close(
        m.time_to_green_median_s,
        median(within(&t.time_to_green, since, until)).map(|v| v / 1000.0),
        &format!("time to green {ctx}"),
    );

    // The gear, from the truth's numbers and the documented boundaries.
    if let (Some(g), true) = (&m.gear, ok > 0) {
        let per_day = ok as f64 / days;
        let interval = 1.0 / per_day;
        let per_deploy = leads.len() as f64 / ok as f64;
        let expected = if interval > 22.0 {
            1
        } else if interval > 10.5 {
            2
        } else if interval > 5.0 {
            3
        } else if per_deploy <= 1.5 {
            5
        } else {
            4
        };
        assert_eq!(g.number, expected, "gear {ctx}: {}", g.explanation);
    }
}

fn history(seed: u64) -> History {
    generate_history(seed, &HistoryParams::default())
}

#[test]
fn dora_keys_equal_the_generators_truth() {
    for seed in SEEDS {
        let h = history(seed);
        assert!(
            h.events.len() > 1000,
            "months of history: {}",
            h.events.len()
        );
        assert!(
            h.truth.deploys_ok.len() > 20 && h.truth.restores.len() > 3,
            "seed {seed} too quiet"
        );
        let mut dora = Dora::new();
        for e in &h.events {
            dora.apply(e);
        }
        let start = HistoryParams::default().start_ms;
        let end = h.events.last().unwrap().at_ms + 1;
        check_window(&dora, &h.truth, start, end);
        for month in 0..4 {
            check_window(
                &dora,
                &h.truth,
                start + month * 30 * DAY,
                start + (month + 1) * 30 * DAY,
            );
        }
        // Odd windows, cutting through days and episodes.
        check_window(
            &dora,
            &h.truth,
            start + 3 * DAY + 12_345_678,
            start + 17 * DAY + 1,
        );
        check_window(&dora, &h.truth, start - 10 * DAY, start + 5 * DAY);
        check_window(&dora, &h.truth, end, end + 30 * DAY);
    }
}

#[test]
fn the_cord_decides_what_the_server_appended() {
    for seed in SEEDS {
        let h = history(seed);
        let mut cord = Cord::new();
        let mut expected: Option<Event> = None;
        let mut stops = 0;
        for e in &h.events {
            match (&e.event, expected.take()) {
                (Event::LineStopped { .. }, Some(d)) => {
                    assert_eq!(d, e.event, "seed {seed} seq {}", e.seq);
                    stops += 1;
                }
                (
                    Event::LineReleased {
                        run_id, red_for_ms, ..
                    },
                    Some(Event::LineReleased {
                        run_id: r,
                        red_for_ms: ms,
                        ..
                    }),
                ) => {
                    assert_eq!(*run_id, r);
                    // Decided at the run's end, appended a millisecond later.
                    assert!(red_for_ms.abs_diff(ms) <= 1, "{red_for_ms} vs {ms}");
                }
                (Event::LineStopped { .. } | Event::LineReleased { .. }, None) => {
                    panic!(
                        "seed {seed}: the server appended {:?} but the cord decided nothing",
                        e.event
                    )
                }
                (_, Some(d)) => {
                    panic!("seed {seed}: the cord decided {d:?} but the server did not append it")
                }
                _ => {}
            }
            cord.apply(e);
            expected = cord.decide(e);
        }
        assert!(stops > 3, "seed {seed}: the line should stop now and then");
        let greens: Vec<i64> = cord
            .time_to_green("shop")
            .iter()
            .map(|g| g.red_for_ms as i64)
            .collect();
        let truth: Vec<i64> = h.truth.time_to_green.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(greens, truth);
    }
}

#[test]
fn cards_move_as_the_generator_moved_them() {
    for seed in SEEDS {
        let h = history(seed);
        let mut board = Board::new("shop", None);
        let mut pending: Vec<(u64, String, String)> = Vec::new();
        let mut checked = 0;
        for e in &h.events {
            if let Event::CardMoved {
                card_id,
                from,
                to,
                commit: Some(_),
                ..
            } = &e.event
            {
                let moved = (*card_id, from.clone(), to.clone());
                let at = pending.iter().position(|p| *p == moved);
                assert!(
                    at.is_some(),
                    "seed {seed}: generator moved {moved:?}, board expected {pending:?}"
                );
                pending.remove(at.unwrap());
                checked += 1;
            } else {
                assert!(
                    pending.is_empty(),
                    "seed {seed}: board wanted {pending:?} before seq {}",
                    e.seq
                );
            }
            board.apply(e);
            for m in board.auto_moves(e, &h.production) {
                let Event::CardMoved {
                    card_id,
                    from,
                    to,
                    over_limit,
                    ..
                } = m
                else {
                    panic!("not a move: {m:?}")
                };
                assert!(!over_limit, "the default board has no limits");
                pending.push((card_id, from, to));
            }
        }
        assert!(checked > 50, "seed {seed}: only {checked} automatic moves");
        for (card, at) in &h.truth.card_in_production {
            let c = board.card(*card).unwrap();
            assert_eq!(c.column, "done", "card {card}");
            let reached = c.production_at_ms.unwrap();
            assert!(
                *at <= reached && reached - at < 1000,
                "card {card}: {reached} vs {at}"
            );
            assert!(c.cycle_time_ms().unwrap() <= c.lead_time_ms().unwrap());
        }
        let start = HistoryParams::default().start_ms;
        let flow = board.cumulative_flow(start, start + 120 * DAY);
        assert_eq!(flow.len(), 120);
        let last = flow.last().unwrap();
        let total: u64 = last.columns.iter().map(|c| c.cards).sum();
        assert_eq!(total as usize, board.cards().count());
        let done = last
            .columns
            .iter()
            .find(|c| c.column == "done")
            .unwrap()
            .cards;
        assert_eq!(done as usize, h.truth.card_in_production.len());
    }
}

#[test]
fn every_incident_has_a_timeline() {
    for seed in SEEDS {
        let h = history(seed);
        let mut incidents = Incidents::new();
        let mut opened = 0;
        for e in &h.events {
            incidents.apply(e);
            opened += usize::from(matches!(e.event, Event::IncidentOpened { .. }));
        }
        let all = incidents.of_project("shop");
        assert_eq!(all.len(), opened);
        assert_eq!(
            incidents.open().count(),
            0,
            "the generator resolves them all"
        );
        for i in all {
            let kinds: Vec<&str> = i.timeline.iter().map(|t| t.kind.as_str()).collect();
            assert!(kinds.contains(&"first_bad_signal"), "{kinds:?}");
            assert!(
                kinds.contains(&"opened") && kinds.ends_with(&["resolved"]),
                "{kinds:?}"
            );
            assert!(i.timeline.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            if i.title == "release rolled back" {
                assert_eq!(
                    kinds,
                    [
                        "deploy",
                        "first_bad_signal",
                        "rollback",
                        "restored",
                        "opened",
                        "resolved"
                    ],
                    "{i:#?}"
                );
            }
            if i.title == "error rate alert" {
                assert!(
                    kinds.contains(&"restored"),
                    "the manual rollback restored it: {kinds:?}"
                );
            }
        }
    }
}

#[test]
fn the_generator_is_deterministic() {
    let a = history(7);
    let b = history(7);
    assert_eq!(a.events, b.events);
    assert_ne!(a.events, history(8).events);
    assert!(
        a.events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at_ms < w[1].at_ms)
    );
}
