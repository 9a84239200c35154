//! The "gear" a team delivers in, and what keeps it from shifting up.
//!
//! The gears come from continuous delivery practice as the product states
//! them: 1st monthly, 2nd every sprint (two weeks), 3rd weekly, 4th every
//! 2–3 days, 5th every commit. A gear is read from the mean interval
//! between successful production deployments, with boundaries halfway
//! between the named intervals (22 days, 10.5 days, 5 days); 5th gear needs
//! 4th gear's pace *and* at most 1.5 trunk commits per deployment, because
//! "every commit" is about batch size, not only speed.
//!
//! The limiting factor is the one of four with the highest pressure, each
//! scaled so that 1.0 means "clearly a problem":
//! - deployment failure rate: change failure rate / 15%;
//! - environments: share of production deploys refused by a window or a
//!   freeze (not by the cord) / 10%;
//! - unready code: the larger of (share of trunk runs that failed / 20%)
//!   and (share of the period trunk was red / 10%);
//! - efficiency: time a change waits beyond its pipeline (median lead time
//!   minus median trunk pipeline duration), in days.
//!
//! Ties go to the first in that order.

use serde::{Deserialize, Serialize};

/// Which gear, and why not the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gear {
    /// 1 to 5.
    pub number: u8,
    /// `monthly`, `every sprint`, `weekly`, `every 2–3 days`, `every commit`.
    pub name: String,
    /// `deployment failure rate`, `environments`, `unready code` or `efficiency`.
    pub limiting_factor: String,
    /// One sentence computed from the numbers.
    pub explanation: String,
}

/// What the gear is read from, all over the same period.
#[derive(Debug, Clone, Default)]
pub(crate) struct GearInputs {
    pub(crate) per_day: f64,
    /// Successful production deployments of changes.
    pub(crate) deploys_ok: u64,
    /// Trunk commits those deployments brought to production.
    pub(crate) commits_shipped: u64,
    /// Finished production deployments of changes, and the failed ones.
    pub(crate) deploys_finished: u64,
    pub(crate) deploys_failed: u64,
    /// Production deploys refused by a window or freeze.
    pub(crate) refused: u64,
    pub(crate) trunk_runs: u64,
    pub(crate) trunk_runs_failed: u64,
    /// Fraction of the period trunk was red, 0..=1.
    pub(crate) red_share: f64,
    pub(crate) lead_median_s: Option<f64>,
    pub(crate) pipeline_median_s: Option<f64>,
}

const NAMES: [&str; 5] = [
    "monthly",
    "every sprint",
    "weekly",
    "every 2–3 days",
    "every commit",
];
const ORDINALS: [&str; 5] = ["1st", "2nd", "3rd", "4th", "5th"];

pub(crate) fn gear(i: &GearInputs) -> Gear {
    let number = gear_number(i);
    let index = usize::from(number.clamp(1, 5) - 1);
    let (factor, detail) = limiting_factor(i);
    let name = NAMES.get(index).copied().unwrap_or("monthly");
    let ordinal = ORDINALS.get(index).copied().unwrap_or("1st");
    Gear {
        number,
        name: name.to_string(),
        limiting_factor: factor.to_string(),
        explanation: format!(
            "{ordinal} gear ({name}): {}; limited by {factor}: {detail}",
            pace(i)
        ),
    }
}

fn gear_number(i: &GearInputs) -> u8 {
    if i.per_day <= 0.0 || !i.per_day.is_finite() {
        return 1;
    }
    let interval_days = 1.0 / i.per_day;
    if interval_days > 22.0 {
        1
    } else if interval_days > 10.5 {
        2
    } else if interval_days > 5.0 {
        3
    } else if i.deploys_ok > 0 && i.commits_shipped > 0 && per_deploy(i) <= 1.5 {
        5
    } else {
        4
    }
}

fn per_deploy(i: &GearInputs) -> f64 {
    i.commits_shipped as f64 / i.deploys_ok.max(1) as f64
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn limiting_factor(i: &GearInputs) -> (&'static str, String) {
    let failure_rate = share(i.deploys_failed, i.deploys_finished);
    let refused_share = share(i.refused, i.refused + i.deploys_finished);
    let runs_failed = share(i.trunk_runs_failed, i.trunk_runs);
    let red = i.red_share.clamp(0.0, 1.0);
    let wait_s = match (i.lead_median_s, i.pipeline_median_s) {
        (Some(lead), pipe) => (lead - pipe.unwrap_or(0.0)).max(0.0),
        (None, _) => 0.0,
    };
    let pressures = [
        failure_rate / 0.15,
        refused_share / 0.10,
        (runs_failed / 0.20).max(red / 0.10),
        wait_s / 86_400.0,
    ];
    let mut best = 0;
    for (k, p) in pressures.iter().enumerate() {
        if *p > pressures[best] {
            best = k;
        }
    }
    match best {
        0 => (
            "deployment failure rate",
            format!(
                "{} of production deployments failed ({} of {}: rolled back, failed judgement or incident)",
                pct(failure_rate),
                i.deploys_failed,
                i.deploys_finished
            ),
        ),
        1 => (
            "environments",
            format!(
                "{} of {} production deploys were refused by a deploy window or freeze",
                i.refused,
                i.refused + i.deploys_finished
            ),
        ),
        2 => (
            "unready code",
            format!(
                "trunk was red {} of the time and {} of trunk runs failed ({} of {})",
                pct(red),
                pct(runs_failed),
                i.trunk_runs_failed,
                i.trunk_runs
            ),
        ),
        _ => match i.lead_median_s {
            Some(lead) => (
                "efficiency",
                format!(
                    "a change waits {} beyond its pipeline (median lead time {}, median trunk pipeline {})",
                    duration(wait_s),
                    duration(lead),
                    i.pipeline_median_s
                        .map_or_else(|| "unknown".to_string(), duration)
                ),
            ),
            None => (
                "efficiency",
                "no change reached production in this period, so nothing else can be measured yet"
                    .to_string(),
            ),
        },
    }
}

fn pace(i: &GearInputs) -> String {
    let f = i.per_day;
    let base = if f >= 1.0 {
        format!("{f:.1} production deployments a day")
    } else if f * 7.0 >= 1.0 {
        format!("{:.1} production deployments a week", f * 7.0)
    } else if f > 0.0 {
        format!("one production deployment every {:.0} days", 1.0 / f)
    } else {
        "no successful production deployment in this period".to_string()
    };
    if i.deploys_ok > 0 && i.commits_shipped > 0 {
        format!("{base}, {:.1} commits per deployment", per_deploy(i))
    } else {
        base
    }
}

fn pct(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// `45 s`, `12 min`, `3.5 h`, `2.1 days`.
pub(crate) fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} days", seconds / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(per_day: f64) -> GearInputs {
        GearInputs {
            per_day,
            deploys_ok: 10,
            commits_shipped: 30,
            deploys_finished: 10,
            ..GearInputs::default()
        }
    }

    #[test]
    fn gears_from_pace_and_batch_size() {
        assert_eq!(gear(&inputs(0.0)).number, 1);
        assert_eq!(gear(&inputs(1.0 / 30.0)).number, 1);
        assert_eq!(gear(&inputs(1.0 / 14.0)).number, 2);
        assert_eq!(gear(&inputs(1.0 / 7.0)).number, 3);
        assert_eq!(gear(&inputs(1.0 / 2.5)).number, 4);
        assert_eq!(
            gear(&inputs(4.0)).number,
            4,
            "fast but three commits a deploy"
        );
        let every_commit = GearInputs {
            commits_shipped: 11,
            ..inputs(4.0)
        };
        let g = gear(&every_commit);
        assert_eq!((g.number, g.name.as_str()), (5, "every commit"));
    }

    #[test]
    fn limiting_factor_is_the_biggest_pressure() {
        let failing = GearInputs {
            deploys_failed: 4,
            trunk_runs: 10,
            trunk_runs_failed: 1,
            ..inputs(1.0 / 7.0)
        };
        let g = gear(&failing);
        assert_eq!(g.limiting_factor, "deployment failure rate");
        assert_eq!(
            g.explanation,
            "3rd gear (weekly): 1.0 production deployments a week, 3.0 commits per deployment; limited by deployment failure rate: 40% of production deployments failed (4 of 10: rolled back, failed judgement or incident)"
        );

        let red = GearInputs {
            red_share: 0.3,
            ..inputs(1.0)
        };
        assert_eq!(gear(&red).limiting_factor, "unready code");

        let refused = GearInputs {
            refused: 5,
            ..inputs(1.0)
        };
        assert_eq!(gear(&refused).limiting_factor, "environments");

        let waiting = GearInputs {
            lead_median_s: Some(3.0 * 86_400.0),
            pipeline_median_s: Some(600.0),
            ..inputs(1.0)
        };
        let g = gear(&waiting);
        assert_eq!(g.limiting_factor, "efficiency");
        assert!(
            g.explanation.contains("waits 3.0 days"),
            "{}",
            g.explanation
        );
    }
}
