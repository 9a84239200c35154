//! DORA performance bands for each key.
//!
//! Source: DORA, *Accelerate State of DevOps Report 2024* (Google Cloud),
//! "Software delivery performance levels" — four clusters:
//!
//! | level  | deployment frequency        | change lead time   | change fail rate | failed deployment recovery time |
//! |--------|-----------------------------|--------------------|------------------|---------------------------------|
//! | elite  | on demand (multiple a day)  | < 1 day            | 5%               | < 1 hour                        |
//! | high   | daily to weekly             | 1 day – 1 week     | 20%              | < 1 day                         |
//! | medium | weekly to monthly           | 1 week – 1 month   | 10%              | < 1 day                         |
//! | low    | monthly to every six months | 1 – 6 months       | 40%              | 1 week – 1 month                |
//!
//! The report describes clusters of teams, not cut-offs for one number, so
//! a single metric needs thresholds. The ones used here (each band is the
//! best one whose condition holds, checked from elite down):
//!
//! - deployment frequency (per day): elite ≥ 1, high ≥ 1/7, medium ≥ 1/30,
//!   low below that.
//! - lead time: elite < 1 day, high < 7 days, medium < 30 days, low otherwise.
//! - change failure rate: elite ≤ 5%, high ≤ 20%, medium ≤ 30%, low above.
//!   The 2024 clusters are not ordered in this key (medium's 10% is better
//!   than high's 20%), so one rate cannot tell high from medium: up to 20%
//!   is high, and medium takes the range up to the midpoint between 20%
//!   and low's 40%.
//! - time to restore: elite < 1 hour, high < 1 day, medium < 1 week, low
//!   otherwise. High and medium share "< 1 day" in the report; the gap
//!   between 1 day and low's 1 week is given to medium.

use serde::{Deserialize, Serialize};

/// A DORA performance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Elite => "elite",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
        }
    }
}

const DAY_S: f64 = 86_400.0;

pub(crate) fn deployment_frequency(per_day: f64) -> Band {
    if per_day >= 1.0 {
        Band::Elite
    } else if per_day >= 1.0 / 7.0 {
        Band::High
    } else if per_day >= 1.0 / 30.0 {
        Band::Medium
    } else {
        Band::Low
    }
}

pub(crate) fn lead_time(seconds: f64) -> Band {
    if seconds < DAY_S {
        Band::Elite
    } else if seconds < 7.0 * DAY_S {
        Band::High
    } else if seconds < 30.0 * DAY_S {
        Band::Medium
    } else {
        Band::Low
    }
}

pub(crate) fn change_failure_rate(rate: f64) -> Band {
    if rate <= 0.05 {
        Band::Elite
    } else if rate <= 0.20 {
        Band::High
    } else if rate <= 0.30 {
        Band::Medium
    } else {
        Band::Low
    }
}

pub(crate) fn time_to_restore(seconds: f64) -> Band {
    if seconds < 3600.0 {
        Band::Elite
    } else if seconds < DAY_S {
        Band::High
    } else if seconds < 7.0 * DAY_S {
        Band::Medium
    } else {
        Band::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_at_their_edges() {
        assert_eq!(deployment_frequency(3.0), Band::Elite);
        assert_eq!(deployment_frequency(1.0), Band::Elite);
        assert_eq!(deployment_frequency(0.5), Band::High);
        assert_eq!(deployment_frequency(1.0 / 7.0), Band::High);
        assert_eq!(deployment_frequency(0.1), Band::Medium);
        assert_eq!(deployment_frequency(0.01), Band::Low);
        assert_eq!(deployment_frequency(0.0), Band::Low);

        assert_eq!(lead_time(3600.0), Band::Elite);
        assert_eq!(lead_time(DAY_S), Band::High);
        assert_eq!(lead_time(8.0 * DAY_S), Band::Medium);
        assert_eq!(lead_time(60.0 * DAY_S), Band::Low);

        assert_eq!(change_failure_rate(0.0), Band::Elite);
        assert_eq!(change_failure_rate(0.05), Band::Elite);
        assert_eq!(change_failure_rate(0.10), Band::High);
        assert_eq!(change_failure_rate(0.25), Band::Medium);
        assert_eq!(change_failure_rate(0.40), Band::Low);

        assert_eq!(time_to_restore(59.0 * 60.0), Band::Elite);
        assert_eq!(time_to_restore(3600.0), Band::High);
        assert_eq!(time_to_restore(2.0 * DAY_S), Band::Medium);
        assert_eq!(time_to_restore(10.0 * DAY_S), Band::Low);
    }
}
