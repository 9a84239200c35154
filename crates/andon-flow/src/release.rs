//! Release models: continuous deployment, trains, deploy windows, freezes.
//!
//! All times are UTC or a fixed offset (the config refuses named zones), and
//! "now" is an argument, so every rule is a pure function a test can run at
//! any instant.

use andon_config::{DeployWindow, Environment, Release, ReleaseMode, Weekday};

use crate::refusal::Refusal;
use crate::time::{
    DAY_MS, MINUTE_MS, format_minute, parse_clock, parse_offset_s, parse_rfc3339_ms, weekday,
};

/// Bound on the alternation "skip a freeze, wait for a window": configs
/// have a handful of freezes, so this is never reached by a real one.
const MAX_STEPS: usize = 64;

/// A train schedule that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad release schedule `{0}`: write `<day> HH:MM UTC`, e.g. `wed 10:00 UTC`")]
pub struct ScheduleError(pub String);

/// A project's release model (`release:` in `andon.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePolicy {
    mode: ReleaseMode,
    schedule: Option<String>,
}

impl ReleasePolicy {
    /// `None` (no `release:` section) is continuous deployment.
    pub fn new(release: Option<&Release>) -> Self {
        ReleasePolicy {
            mode: release.map_or(ReleaseMode::Continuous, |r| r.mode),
            schedule: release.and_then(|r| r.schedule.clone()),
        }
    }

    pub fn mode(&self) -> ReleaseMode {
        self.mode
    }

    /// Whether a run that just passed should be promoted without a person.
    pub fn should_auto_promote(&self, passed_on_trunk: bool) -> bool {
        should_auto_promote(self.mode, passed_on_trunk)
    }

    /// For a train: when the next one leaves (at or after `now_ms`).
    pub fn next_departure(&self, now_ms: i64) -> Option<i64> {
        match (self.mode, &self.schedule) {
            (ReleaseMode::Train, Some(s)) => next_train(s, now_ms).ok(),
            _ => None,
        }
    }

    /// Whether a deploy to `env` may start at `now_ms`: outside its freezes
    /// and inside its window. The refusal says when it next may.
    pub fn check_deploy(env: &Environment, now_ms: i64) -> Result<(), Refusal> {
        let offset = env
            .window
            .as_ref()
            .and_then(|w| parse_offset_s(&w.timezone))
            .unwrap_or(0);
        let next = next_allowed(env, now_ms);
        let next_text = |at: i64| format_minute(at, offset);
        if let Some((until, reason)) = active_freeze(env, now_ms) {
            let later = next.filter(|n| *n > until);
            return Err(Refusal::Frozen {
                environment: env.name.clone(),
                until: next_text(until),
                reason,
                next_open: later.map(next_text),
                next_open_ms: next.or(Some(until)),
            });
        }
        if let Some(w) = &env.window
            && !in_window(w, now_ms)
        {
            return Err(Refusal::WindowClosed {
                environment: env.name.clone(),
                allowed: describe_window(w),
                next_open: next.map(next_text),
                next_open_ms: next,
            });
        }
        Ok(())
    }
}

/// Continuous deployment: every green trunk run goes out. Manual releases
/// and trains never promote on their own at the end of a run.
pub fn should_auto_promote(mode: ReleaseMode, passed_on_trunk: bool) -> bool {
    mode == ReleaseMode::Continuous && passed_on_trunk
}

/// The next departure of a train on `schedule` (`"wed 10:00 UTC"`, or
/// with a fixed offset such as `"wed 10:00 +02:00"`) at or after `now_ms`.
pub fn next_train(schedule: &str, now_ms: i64) -> Result<i64, ScheduleError> {
    let bad = || ScheduleError(schedule.to_string());
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    let (day, clock, zone) = match parts.as_slice() {
        [d, c] => (*d, *c, "UTC"),
        [d, c, z] => (*d, *c, *z),
        _ => return Err(bad()),
    };
    let day = Weekday::parse(day).ok_or_else(bad)?;
    let (h, m) = parse_clock(clock).ok_or_else(bad)?;
    let offset_ms = parse_offset_s(zone).ok_or_else(bad)? * 1000;
    let local = now_ms.saturating_add(offset_ms);
    let today = local.div_euclid(DAY_MS);
    let at = (i64::from(h) * 60 + i64::from(m)) * MINUTE_MS;
    (0..=7)
        .map(|k| (today + k).saturating_mul(DAY_MS).saturating_add(at))
        .find(|t| weekday(t.div_euclid(DAY_MS)) == day && *t >= local)
        .map(|t| t.saturating_sub(offset_ms))
        .ok_or_else(bad)
}

/// The freeze containing `now`, if any: (its end, its reason). When
/// freezes overlap, the latest end.
fn active_freeze(env: &Environment, now: i64) -> Option<(i64, Option<String>)> {
    env.freezes
        .iter()
        .filter_map(|f| {
            // Freezes were validated by the config; one that cannot be read
            // here is skipped rather than blocking every deploy forever.
            let (from, to) = (parse_rfc3339_ms(&f.from)?, parse_rfc3339_ms(&f.to)?);
            (from <= now && now < to).then(|| (to, f.reason.clone()))
        })
        .max_by_key(|(to, _)| *to)
}

fn days_of(w: &DeployWindow) -> Vec<Weekday> {
    if w.days.is_empty() {
        Weekday::ALL.to_vec()
    } else {
        w.days.clone()
    }
}

fn minutes(clock: (u8, u8)) -> i64 {
    i64::from(clock.0) * 60 + i64::from(clock.1)
}

fn in_window(w: &DeployWindow, now: i64) -> bool {
    let offset = parse_offset_s(&w.timezone).unwrap_or(0) * 1000;
    let local = now.saturating_add(offset);
    let day = local.div_euclid(DAY_MS);
    let minute = local.rem_euclid(DAY_MS) / MINUTE_MS;
    let (from, to) = (minutes(w.from), minutes(w.to));
    let days = days_of(w);
    let listed = |d: i64| days.contains(&weekday(d));
    if from < to {
        listed(day) && from <= minute && minute < to
    } else {
        // Wraps midnight: the day is the day the window opens.
        (listed(day) && minute >= from) || (listed(day - 1) && minute < to)
    }
}

/// The first instant at or after `t` inside the window.
fn next_window_open(w: &DeployWindow, t: i64) -> Option<i64> {
    if in_window(w, t) {
        return Some(t);
    }
    let offset = parse_offset_s(&w.timezone).unwrap_or(0) * 1000;
    let local = t.saturating_add(offset);
    let today = local.div_euclid(DAY_MS);
    let days = days_of(w);
    (0..=8)
        .map(|k| {
            (today + k)
                .saturating_mul(DAY_MS)
                .saturating_add(minutes(w.from) * MINUTE_MS)
        })
        .find(|open| *open >= local && days.contains(&weekday(open.div_euclid(DAY_MS))))
        .map(|open| open.saturating_sub(offset))
}

/// The first instant at or after `now` when a deploy to `env` is allowed.
fn next_allowed(env: &Environment, now: i64) -> Option<i64> {
    let mut t = now;
    for _ in 0..MAX_STEPS {
        let start = t;
        if let Some((end, _)) = active_freeze(env, t) {
            t = end;
        }
        if let Some(w) = &env.window {
            t = next_window_open(w, t)?;
        }
        if t == start {
            return Some(t);
        }
    }
    None
}

/// `mon–fri 09:00–17:00 UTC`, `every day 22:00–06:00 +02:00`.
fn describe_window(w: &DeployWindow) -> String {
    let mut days = days_of(w);
    days.sort();
    days.dedup();
    let names: Vec<&str> = days.iter().map(|d| d.as_str()).collect();
    let contiguous = days.windows(2).all(|p| {
        Weekday::ALL.iter().position(|d| *d == p[0]).map(|i| i + 1)
            == Weekday::ALL.iter().position(|d| *d == p[1])
    });
    let day_text = match names.as_slice() {
        all if all.len() == 7 => "every day".to_string(),
        [first, .., last] if contiguous && names.len() >= 3 => format!("{first}–{last}"),
        _ => names.join(", "),
    };
    let zone = if w.timezone.is_empty() {
        "UTC"
    } else {
        w.timezone.as_str()
    };
    format!(
        "{day_text} {:02}:{:02}–{:02}:{:02} {zone}",
        w.from.0, w.from.1, w.to.0, w.to.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_rfc3339_ms(text).unwrap()
    }

    #[test]
    fn trains_leave_on_schedule() {
        // 2026-11-25 is a Wednesday.
        let wed_10 = ms("2026-11-25T10:00:00Z");
        assert_eq!(
            next_train("wed 10:00 UTC", ms("2026-11-23T08:00:00Z")),
            Ok(wed_10)
        );
        assert_eq!(
            next_train("wed 10:00 UTC", wed_10),
            Ok(wed_10),
            "leaving now"
        );
        assert_eq!(
            next_train("wednesday 10:00 UTC", wed_10 + 1),
            Ok(ms("2026-12-02T10:00:00Z"))
        );
        assert_eq!(
            next_train("wed 10:00 +02:00", ms("2026-11-23T08:00:00Z")),
            Ok(ms("2026-11-25T08:00:00Z"))
        );
        assert!(next_train("someday 10:00 UTC", 0).is_err());
        assert!(next_train("wed 25:00 UTC", 0).is_err());
        assert!(next_train("", 0).is_err());
    }

    #[test]
    fn auto_promotion_is_for_continuous_deployment_only() {
        assert!(should_auto_promote(ReleaseMode::Continuous, true));
        assert!(!should_auto_promote(ReleaseMode::Continuous, false));
        assert!(!should_auto_promote(ReleaseMode::Train, true));
        assert!(!should_auto_promote(ReleaseMode::Manual, true));
        assert!(ReleasePolicy::new(None).should_auto_promote(true));
    }

    #[test]
    fn window_descriptions() {
        let w = |days: Vec<Weekday>, from, to, tz: &str| DeployWindow {
            days,
            from,
            to,
            timezone: tz.to_string(),
        };
        use Weekday::*;
        assert_eq!(
            describe_window(&w(vec![Mon, Tue, Wed, Thu, Fri], (9, 0), (17, 0), "UTC")),
            "mon–fri 09:00–17:00 UTC"
        );
        assert_eq!(
            describe_window(&w(Weekday::ALL.to_vec(), (22, 0), (6, 0), "+02:00")),
            "every day 22:00–06:00 +02:00"
        );
        assert_eq!(
            describe_window(&w(vec![Fri, Mon, Wed], (9, 0), (10, 30), "UTC")),
            "mon, wed, fri 09:00–10:30 UTC"
        );
    }

    #[test]
    fn wrapping_window_belongs_to_the_day_it_opens() {
        use Weekday::*;
        let w = DeployWindow {
            days: vec![Fri],
            from: (22, 0),
            to: (6, 0),
            timezone: "UTC".into(),
        };
        // 2026-11-27 is a Friday.
        assert!(in_window(&w, ms("2026-11-27T23:00:00Z")));
        assert!(
            in_window(&w, ms("2026-11-28T05:59:00Z")),
            "saturday morning is friday's window"
        );
        assert!(!in_window(&w, ms("2026-11-28T06:00:00Z")));
        assert!(
            !in_window(&w, ms("2026-11-27T05:00:00Z")),
            "thursday's night is not listed"
        );
        assert_eq!(
            next_window_open(&w, ms("2026-11-28T07:00:00Z")),
            Some(ms("2026-12-04T22:00:00Z"))
        );
    }
}
