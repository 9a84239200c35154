//! Flow measures of a board: card lead and cycle times, cumulative flow.

use serde::Serialize;

use super::{Board, Card};
use crate::stats::median;
use crate::time::{DAY_MS, format_date};

/// At most this many days in one cumulative flow answer (ten years):
/// bounds the work a hostile `since` can ask for.
const MAX_FLOW_DAYS: i64 = 3660;

/// The cards in each column at the end of one UTC day (or at `until`, for
/// the last, partial day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDay {
    /// `2026-11-30`
    pub date: String,
    /// In board order.
    pub columns: Vec<ColumnCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnCount {
    pub column: String,
    pub cards: u64,
}

impl Board {
    /// Median card cycle time (first move out of the backlog → production),
    /// in seconds, over cards that reached production in `[since, until)`.
    pub fn cycle_time_median_s(&self, since_ms: i64, until_ms: i64) -> Option<f64> {
        self.median_over(since_ms, until_ms, Card::cycle_time_ms)
    }

    /// Median card lead time (created → production), in seconds, over cards
    /// that reached production in `[since, until)`.
    pub fn lead_time_median_s(&self, since_ms: i64, until_ms: i64) -> Option<f64> {
        self.median_over(since_ms, until_ms, Card::lead_time_ms)
    }

    fn median_over(
        &self,
        since_ms: i64,
        until_ms: i64,
        f: fn(&Card) -> Option<i64>,
    ) -> Option<f64> {
        let samples: Vec<i64> = self
            .cards
            .values()
            .filter(|c| {
                c.production_at_ms
                    .is_some_and(|p| since_ms <= p && p < until_ms)
            })
            .filter_map(f)
            .collect();
        median(&samples).map(|ms| ms / 1000.0)
    }

    /// Cumulative flow data: per UTC day of `[since, until)`, how many
    /// cards each column held at the end of the day. Capped at ten years.
    pub fn cumulative_flow(&self, since_ms: i64, until_ms: i64) -> Vec<FlowDay> {
        let first = since_ms.div_euclid(DAY_MS);
        let last = until_ms.saturating_sub(1).div_euclid(DAY_MS);
        let mut days = Vec::new();
        let mut day = first;
        while day <= last && day - first < MAX_FLOW_DAYS {
            let end = day.saturating_add(1).saturating_mul(DAY_MS).min(until_ms);
            let mut counts: Vec<ColumnCount> = self
                .columns
                .iter()
                .map(|c| ColumnCount {
                    column: c.name.clone(),
                    cards: 0,
                })
                .collect();
            for card in self.cards.values() {
                // The column it was in just before `end`.
                let column = card.history.iter().take_while(|(at, _)| *at < end).last();
                if let Some((_, column)) = column
                    && let Some(slot) = counts.iter_mut().find(|c| &c.column == column)
                {
                    slot.cards += 1;
                }
            }
            days.push(FlowDay {
                date: format_date(day.saturating_mul(DAY_MS)),
                columns: counts,
            });
            day += 1;
        }
        days
    }
}
