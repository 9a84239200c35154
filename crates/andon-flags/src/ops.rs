//! Edits and reports on a [`FlagSet`]: the kill switch, rollout changes
//! (now or scheduled), and stale temporary flags. Pure functions: the caller
//! stores the result and records the audit event.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ModelError;
use crate::model::{
    Flag, FlagEnv, FlagSet, Kind, ON, Rollout, Rule, ScheduledChange, Serve, Stickiness,
};

const DAY_MS: i64 = 86_400_000;

/// Turns a flag off in one environment, or in all of them. Returns the
/// environments that were on and are now off.
pub fn kill_switch(
    set: &mut FlagSet,
    key: &str,
    env: Option<&str>,
) -> Result<Vec<String>, ModelError> {
    let flag = set
        .flags
        .get_mut(key)
        .ok_or_else(|| ModelError::UnknownFlag(key.to_owned()))?;
    let mut switched = Vec::new();
    match env {
        Some(e) => {
            let fe = flag
                .environments
                .get_mut(e)
                .ok_or_else(|| ModelError::UnknownEnv {
                    flag: key.to_owned(),
                    env: e.to_owned(),
                })?;
            if fe.enabled {
                fe.enabled = false;
                switched.push(e.to_owned());
            }
        }
        None => {
            for (name, fe) in &mut flag.environments {
                if fe.enabled {
                    fe.enabled = false;
                    switched.push(name.clone());
                }
            }
        }
    }
    Ok(switched)
}

/// Sets the environment's rollout (see [`FlagEnv::rollout_percentage`]) to
/// `pct`. When the environment has no "everyone else" rule, one serving
/// `on` is added, so this works on a plain bool flag. Returns the previous
/// percentage (`None`: there was no rollout gate).
pub fn set_rollout_percentage(
    set: &mut FlagSet,
    key: &str,
    env: &str,
    pct: f64,
) -> Result<Option<f64>, ModelError> {
    if !(0.0..=100.0).contains(&pct) {
        return Err(ModelError::BadPercentage(pct));
    }
    let flag = set
        .flags
        .get_mut(key)
        .ok_or_else(|| ModelError::UnknownFlag(key.to_owned()))?;
    let kind = flag.kind;
    let has_on = flag.variant_value(ON).is_some();
    let fe = flag
        .environments
        .get_mut(env)
        .ok_or_else(|| ModelError::UnknownEnv {
            flag: key.to_owned(),
            env: env.to_owned(),
        })?;
    if let Some(rule) = fe.catch_all_mut() {
        let previous = rule.rollout.as_ref().map(|r| r.percentage);
        match &mut rule.rollout {
            Some(r) => r.percentage = pct,
            None => {
                rule.rollout = Some(Rollout {
                    percentage: pct,
                    stickiness: Stickiness::TargetingKey,
                    salt: None,
                });
            }
        }
        return Ok(previous);
    }
    if kind != Kind::Bool || !has_on {
        return Err(ModelError::NoRolloutVariant(key.to_owned()));
    }
    fe.rules.push(Rule {
        description: None,
        conditions: Vec::new(),
        segments: Vec::new(),
        rollout: Some(Rollout {
            percentage: pct,
            stickiness: Stickiness::TargetingKey,
            salt: None,
        }),
        serve: Serve::Variant(ON.to_owned()),
    });
    Ok(None)
}

/// A scheduled change that came due.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub change: ScheduledChange,
    /// The previous percentage, or why it could not be applied.
    pub result: Result<Option<f64>, ModelError>,
}

/// Applies, in time order, every scheduled change whose time is at or
/// before `now` (unix ms), and removes them from the schedule. A change
/// that cannot apply (its flag was deleted) is removed too, and reported.
pub fn apply_due(set: &mut FlagSet, now: i64) -> Vec<Applied> {
    let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut set.schedule)
        .into_iter()
        .partition(|c| c.at <= now);
    set.schedule = rest;
    due.sort_by_key(|c| c.at);
    due.into_iter()
        .map(|change| {
            let result =
                set_rollout_percentage(set, &change.flag, &change.env, change.set_rollout_percent);
            Applied { change, result }
        })
        .collect()
}

/// A temporary flag that serves the same variant everywhere and has not
/// changed for a while: ready to remove from the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleFlag {
    pub key: String,
    /// What everyone gets, in every environment.
    pub variant: String,
    pub value: Value,
    pub unchanged_days: i64,
}

/// Temporary flags that serve one variant to everyone in every environment
/// (fully on or fully off) and whose last change (`last_changed`, unix ms
/// by flag key) is at least `days` days before `now`. A flag with no
/// recorded change is not reported: its age is unknown.
pub fn stale_flags(
    set: &FlagSet,
    last_changed: &BTreeMap<String, i64>,
    now: i64,
    days: i64,
) -> Vec<StaleFlag> {
    let mut out = Vec::new();
    for (key, flag) in &set.flags {
        if !flag.temporary || flag.environments.is_empty() {
            continue;
        }
        let Some(&changed) = last_changed.get(key) else {
            continue;
        };
        let age = now.saturating_sub(changed);
        if age < days.saturating_mul(DAY_MS) {
            continue;
        }
        let mut constant: Option<&str> = None;
        let all_same = flag
            .environments
            .values()
            .all(|env| match constant_variant(flag, env) {
                Some(v) if constant.is_none_or(|c| c == v) => {
                    constant = Some(v);
                    true
                }
                _ => false,
            });
        if let (true, Some(v)) = (all_same, constant) {
            out.push(StaleFlag {
                key: key.clone(),
                variant: v.to_owned(),
                value: flag.variant_value(v).cloned().unwrap_or(Value::Null),
                unchanged_days: age / DAY_MS,
            });
        }
    }
    out
}

/// The one variant an environment serves to every context, if there is one.
pub(crate) fn constant_variant<'a>(flag: &'a Flag, env: &'a FlagEnv) -> Option<&'a str> {
    if !env.enabled {
        return env.effective_off(flag.kind);
    }
    if !env.prerequisites.is_empty() {
        return None;
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for rule in &env.rules {
        let gate = rule.rollout.as_ref().map(|r| r.percentage);
        if gate.is_some_and(|p| p.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)) {
            continue;
        }
        match &rule.serve {
            Serve::Variant(v) => {
                seen.insert(v);
            }
            Serve::Split(s) => {
                seen.extend(
                    s.split
                        .iter()
                        .filter(|w| w.weight > 0)
                        .map(|w| w.variant.as_str()),
                );
                seen.extend(s.overrides.iter().map(|o| o.variant.as_str()));
            }
        }
        let everyone = rule.conditions.is_empty()
            && rule.segments.is_empty()
            && gate.is_none_or(|p| p >= 100.0);
        if everyone {
            return single(&seen);
        }
    }
    seen.insert(env.effective_default(flag.kind)?);
    single(&seen)
}

fn single<'a>(seen: &BTreeSet<&'a str>) -> Option<&'a str> {
    if seen.len() == 1 {
        seen.first().copied()
    } else {
        None
    }
}
