//! Guarded rollouts: a ramp of rollout percentages (1% → 5% → 25% → 100%),
//! each step held for a while and judged before the next.
//!
//! The declaration ([`Ramp`]) lives in the flag's environment, so flags as
//! code, the API and the CLI all declare it the same way; its progress
//! ([`RampState`]) lives beside it and is written only by the server. This
//! module is pure: the server's guard loop measures (outcomes per variant,
//! the judge's verdict), asks [`decide`] what to do, and stores what
//! [`apply_decision`] returns as an audited change. [`reconcile_ramps`]
//! keeps a ramp's progress across edits that do not change its plan, and
//! starts a ramp whose plan is new.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::model::{Flag, FlagEnv, FlagSet, Kind, OFF, ON, Serve};
use crate::ops::set_rollout_percentage;

/// A guarded rollout of one environment.
///
/// ```yaml
/// ramp: {steps: [1, 5, 25, 100], every: 10m, min_outcomes: 200}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Rollout percentages, increasing, each in `(0, 100]`.
    pub steps: Vec<f64>,
    /// How long each step lasts at least: `500ms`, `30s`, `10m`, `2h`, `1d`.
    pub every: String,
    /// Outcomes the new variant must have had during a step before it may
    /// advance, and per variant before the judge may pass it.
    #[serde(default = "default_min_outcomes")]
    pub min_outcomes: u64,
    /// The judge's level: the chance of turning back a variant that is not
    /// worse, over the whole ramp however often it looks.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The variant being rolled out; defaults to the one the environment's
    /// "everyone else" rule serves (`on` for a plain bool flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The variant it is compared with; defaults to the default variant
    /// (what users outside the rollout get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// The project whose incidents and notifications a turned-back ramp
    /// goes to (flags belong to the server; incidents to a project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Progress, written by the server; ignored in documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RampState>,
}

fn default_min_outcomes() -> u64 {
    100
}

fn default_alpha() -> f64 {
    0.01
}

/// Where a ramp is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampState {
    pub status: RampStatus,
    /// Index into [`Ramp::steps`].
    pub step: usize,
    /// Unix ms the ramp started (a new start is a new ramp: fresh counts,
    /// a fresh judge).
    pub started_ms: i64,
    /// Unix ms the current step started.
    pub step_started_ms: i64,
    /// The rollout percentage before the ramp: where a failure turns back to.
    pub before: f64,
    /// The last decision in words (why it completed, stopped, turned back).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RampStatus {
    /// The guard judges it and advances it.
    Running,
    /// Every step passed.
    Completed,
    /// The judge found harm: the rollout went back to `before`.
    RolledBack,
    /// Stopped by a person, or the flag was switched off; the rollout
    /// stays where it was.
    Stopped,
}

impl RampStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RampStatus::Running => "running",
            RampStatus::Completed => "completed",
            RampStatus::RolledBack => "rolled_back",
            RampStatus::Stopped => "stopped",
        }
    }
}

impl Ramp {
    /// The plan without progress: two ramps with the same plan are the same
    /// rollout (an edit elsewhere in the flag does not restart it).
    pub fn same_plan(&self, other: &Ramp) -> bool {
        let strip = |r: &Ramp| Ramp {
            state: None,
            ..r.clone()
        };
        strip(self) == strip(other)
    }

    /// [`Ramp::every`] in milliseconds (`None`: not a duration).
    pub fn every_ms(&self) -> Option<u64> {
        parse_duration_ms(&self.every)
    }

    pub(crate) fn validate(&self, flag: &Flag, env: &FlagEnv, at: &str) -> Result<(), ModelError> {
        let bad = |what: &str, msg: String| ModelError::Invalid {
            at: format!("{at}.ramp.{what}"),
            message: msg,
        };
        if self.steps.is_empty() {
            return Err(bad("steps", "at least one step".into()));
        }
        let mut last = 0.0;
        for p in &self.steps {
            if !(*p > last && *p <= 100.0) {
                return Err(bad(
                    "steps",
                    format!("{p}: steps must increase, each in (0, 100]"),
                ));
            }
            last = *p;
        }
        if self.every_ms().is_none() {
            return Err(bad(
                "every",
                format!(
                    "'{}' is not a duration like 500ms, 30s, 10m, 2h",
                    self.every
                ),
            ));
        }
        if self.min_outcomes == 0 {
            return Err(bad("min_outcomes", "must be at least 1".into()));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(bad("alpha", format!("{} is not in (0, 1)", self.alpha)));
        }
        let (variant, control) = ramp_variants(flag, env).ok_or_else(|| {
            bad(
                "variant",
                "name it: the environment's last rule without conditions serves a split, or there is none and the flag is not a plain bool".into(),
            )
        })?;
        for (what, v) in [("variant", &variant), ("control", &control)] {
            if flag.variant_value(v).is_none() {
                return Err(bad(what, format!("unknown variant '{v}'")));
            }
        }
        if variant == control {
            return Err(bad(
                "control",
                format!("'{control}' is also the variant rolled out"),
            ));
        }
        Ok(())
    }
}

/// `500ms`, `30s`, `10m`, `2h`, `1d`, or a bare number of seconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = n * factor;
    (1.0..=3.2e10).contains(&ms).then_some(ms as u64)
}

/// The variant a ramp rolls out and the one it is compared with, after
/// defaults (see [`Ramp::variant`], [`Ramp::control`]).
pub fn ramp_variants(flag: &Flag, env: &FlagEnv) -> Option<(String, String)> {
    let ramp = env.ramp.as_ref()?;
    let variant = match &ramp.variant {
        Some(v) => v.clone(),
        None => match env.catch_all().map(|r| &r.serve) {
            Some(Serve::Variant(v)) => v.clone(),
            Some(Serve::Split(_)) => return None,
            None if flag.kind == Kind::Bool && flag.variant_value(ON).is_some() => ON.to_owned(),
            None => return None,
        },
    };
    let control = match &ramp.control {
        Some(c) => c.clone(),
        // For a bool flag "everyone else" gets `off` once the ramp's rule
        // exists, even if the environment has no rules yet.
        None => match (&env.default_variant, flag.kind) {
            (Some(d), _) => d.clone(),
            (None, Kind::Bool) => OFF.to_owned(),
            (None, _) => return None,
        },
    };
    Some((variant, control))
}

/// The share of users the "everyone else" rule serves: 100 when it has no
/// gate; without such a rule 0, except for an enabled bool flag with no
/// rules at all, which serves `on` to everyone.
fn effective_percentage(kind: Kind, env: &FlagEnv) -> f64 {
    match env.catch_all() {
        None if env.enabled
            && kind == Kind::Bool
            && env.rules.is_empty()
            && env.default_variant.is_none() =>
        {
            100.0
        }
        None => 0.0,
        Some(r) => r.rollout.as_ref().map_or(100.0, |g| g.percentage),
    }
}

/// After an edit that did not manage ramps itself: carries each ramp's
/// progress over from `old` when its plan is unchanged (a document or a
/// PUT never sets progress), starts ramps whose plan is new (or that were
/// waiting for the environment to be switched on), stops running ramps
/// whose environment was switched off, and gives running ramps back the
/// rollout percentage of their step (while a ramp runs, it owns the
/// percentage). Returns a line per ramp started or stopped.
pub fn reconcile_ramps(old: &FlagSet, new: &mut FlagSet, now_ms: i64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut set_pct: Vec<(String, String, f64)> = Vec::new();
    for (key, flag) in &mut new.flags {
        for (env_name, env) in &mut flag.environments {
            let enabled = env.enabled;
            // Where a failure turns back to: what the environment served
            // before this edit (nothing, for a flag or environment it adds).
            let current = old
                .flags
                .get(key)
                .and_then(|f| f.environments.get(env_name).map(|e| (f.kind, e)))
                .map_or(0.0, |(k, e)| effective_percentage(k, e));
            let Some(ramp) = env.ramp.as_mut() else {
                continue;
            };
            let old_ramp = old
                .flags
                .get(key)
                .and_then(|f| f.environments.get(env_name))
                .and_then(|e| e.ramp.as_ref());
            ramp.state = match old_ramp {
                Some(o) if o.same_plan(ramp) => o.state.clone(),
                _ => None,
            };
            match &mut ramp.state {
                None if enabled => {
                    let Some(first) = ramp.steps.first().copied() else {
                        continue;
                    };
                    ramp.state = Some(RampState {
                        status: RampStatus::Running,
                        step: 0,
                        started_ms: now_ms,
                        step_started_ms: now_ms,
                        before: current,
                        detail: String::new(),
                    });
                    set_pct.push((key.clone(), env_name.clone(), first));
                    lines.push(format!(
                        "guarded rollout of {key} in {env_name} started: {current}% -> {first}%, steps {:?} every {}",
                        ramp.steps, ramp.every
                    ));
                }
                Some(s) if s.status == RampStatus::Running && !enabled => {
                    s.status = RampStatus::Stopped;
                    s.detail = "the flag was switched off".into();
                    lines.push(format!(
                        "guarded rollout of {key} in {env_name} stopped: the flag was switched off"
                    ));
                }
                Some(s) if s.status == RampStatus::Running => {
                    if let Some(p) = ramp.steps.get(s.step) {
                        set_pct.push((key.clone(), env_name.clone(), *p));
                    }
                }
                _ => {}
            }
        }
    }
    for (key, env, pct) in set_pct {
        let current = new.flags.get(&key).and_then(|f| {
            f.environments
                .get(&env)
                .map(|e| effective_percentage(f.kind, e))
        });
        if current != Some(pct) {
            // Only fails for a flag validation refuses anyway.
            let _ = set_rollout_percentage(new, &key, &env, pct);
        }
    }
    lines
}

/// What the judge says about the variant against the control so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Harm at the ramp's level: turn back.
    Harm,
    /// No harm and enough outcomes on both sides.
    NoHarm,
    /// Not enough outcomes yet.
    NotEnough,
}

/// One look at a running ramp.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub evidence: Evidence,
    /// The judge's sentence (rates, counts, p-value).
    pub sentence: String,
    /// Outcomes the new variant had since the step started.
    pub step_outcomes: u64,
}

/// What to do with a running ramp.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing yet; why.
    Hold(String),
    /// Go to step `to` (the last step, when it is 100%, completes).
    Advance { to: usize },
    /// The last step passed.
    Complete,
    /// Harm: back to where the rollout was.
    RollBack,
}

/// The guard's rule: harm turns back at once, at any step; otherwise a
/// step advances when it has lasted [`Ramp::every`], the new variant had
/// at least [`Ramp::min_outcomes`] outcomes during it, and the judge
/// passes it. Reaching a 100% step completes (no users are left on the
/// control variant to compare with); a ramp that ends below 100% completes
/// after its last step passes.
pub fn decide(ramp: &Ramp, state: &RampState, now_ms: i64, obs: &Observation) -> Decision {
    if state.status != RampStatus::Running {
        return Decision::Hold(format!("ramp is {}", state.status.as_str()));
    }
    if obs.evidence == Evidence::Harm {
        return Decision::RollBack;
    }
    let every = ramp.every_ms().unwrap_or(u64::MAX);
    let elapsed = now_ms.saturating_sub(state.step_started_ms).max(0) as u64;
    if elapsed < every {
        return Decision::Hold(format!(
            "step {}/{} at {}%: {} ms left; {}",
            state.step + 1,
            ramp.steps.len(),
            ramp.steps.get(state.step).copied().unwrap_or(0.0),
            every - elapsed,
            obs.sentence
        ));
    }
    if obs.step_outcomes < ramp.min_outcomes {
        return Decision::Hold(format!(
            "waiting for {} outcomes on the new variant in this step (have {}); {}",
            ramp.min_outcomes, obs.step_outcomes, obs.sentence
        ));
    }
    if obs.evidence == Evidence::NotEnough {
        return Decision::Hold(obs.sentence.clone());
    }
    if state.step + 1 < ramp.steps.len() {
        Decision::Advance { to: state.step + 1 }
    } else {
        Decision::Complete
    }
}

/// Carries out `decision` on the ramp of `key` in `env`: the rollout
/// percentage and the progress. Returns the audit line (`why` is the
/// judge's sentence). [`Decision::Hold`] changes nothing.
pub fn apply_decision(
    set: &mut FlagSet,
    key: &str,
    env: &str,
    decision: &Decision,
    why: &str,
    now_ms: i64,
) -> Result<String, ModelError> {
    let unknown_env = || ModelError::UnknownEnv {
        flag: key.to_owned(),
        env: env.to_owned(),
    };
    let fe = set
        .flags
        .get(key)
        .ok_or_else(|| ModelError::UnknownFlag(key.to_owned()))?
        .environments
        .get(env)
        .ok_or_else(unknown_env)?;
    let ramp = fe.ramp.clone().ok_or_else(unknown_env)?;
    let Some(mut st) = ramp.state.clone() else {
        return Err(unknown_env());
    };
    let n = ramp.steps.len();
    let from = ramp.steps.get(st.step).copied().unwrap_or(0.0);
    let (pct, line) = match decision {
        Decision::Hold(why) => return Ok(why.clone()),
        Decision::Advance { to } => {
            let to_pct = ramp.steps.get(*to).copied().unwrap_or(100.0);
            st.step = *to;
            st.step_started_ms = now_ms;
            let mut line = format!(
                "guarded rollout of {key} in {env}: step {}/{n} passed, {from}% -> {to_pct}% ({why})",
                to
            );
            if *to + 1 == n && to_pct >= 100.0 {
                st.status = RampStatus::Completed;
                st.detail = format!("completed at {to_pct}%: {why}");
                line.push_str("; ramp completed");
            }
            (Some(to_pct), line)
        }
        Decision::Complete => {
            st.status = RampStatus::Completed;
            st.detail = format!("completed at {from}%: {why}");
            (
                None,
                format!("guarded rollout of {key} in {env} completed at {from}% ({why})"),
            )
        }
        Decision::RollBack => {
            st.status = RampStatus::RolledBack;
            st.detail = format!("turned back at {from}%: {why}");
            (
                Some(st.before),
                format!(
                    "guarded rollout of {key} in {env} turned back: {from}% -> {}% ({why})",
                    st.before
                ),
            )
        }
    };
    if let Some(p) = pct {
        set_rollout_percentage(set, key, env, p)?;
    }
    if let Some(r) = set
        .flags
        .get_mut(key)
        .and_then(|f| f.environments.get_mut(env))
        .and_then(|e| e.ramp.as_mut())
    {
        r.state = Some(st);
    }
    Ok(line)
}

/// Starts (or restarts) the ramp of `key` in `env` now, replacing its plan
/// when `plan` is given; or stops it. For the API's explicit commands.
pub fn set_ramp(
    set: &mut FlagSet,
    key: &str,
    env: &str,
    plan: Option<Ramp>,
    start: bool,
    now_ms: i64,
    why: &str,
) -> Result<String, ModelError> {
    let unknown_env = || ModelError::UnknownEnv {
        flag: key.to_owned(),
        env: env.to_owned(),
    };
    let flag = set
        .flags
        .get_mut(key)
        .ok_or_else(|| ModelError::UnknownFlag(key.to_owned()))?;
    let kind = flag.kind;
    let fe = flag.environments.get_mut(env).ok_or_else(unknown_env)?;
    if let Some(p) = plan {
        fe.ramp = Some(Ramp { state: None, ..p });
    }
    let current = effective_percentage(kind, fe);
    let enabled = fe.enabled;
    let ramp = fe.ramp.as_mut().ok_or_else(|| ModelError::Invalid {
        at: format!("flags.{key}.environments.{env}.ramp"),
        message: "no ramp declared: give steps and every".into(),
    })?;
    if !start {
        return match &mut ramp.state {
            Some(s) if s.status == RampStatus::Running => {
                s.status = RampStatus::Stopped;
                s.detail = format!("stopped: {why}");
                Ok(format!(
                    "guarded rollout of {key} in {env} stopped at {current}%"
                ))
            }
            _ => Err(ModelError::Invalid {
                at: format!("flags.{key}.environments.{env}.ramp"),
                message: "no ramp is running".into(),
            }),
        };
    }
    if !enabled {
        return Err(ModelError::Invalid {
            at: format!("flags.{key}.environments.{env}.enabled"),
            message: "the flag is off here: switch it on before ramping".into(),
        });
    }
    let first = ramp.steps.first().copied().unwrap_or(100.0);
    // A restart from a stopped ramp keeps the original "before".
    let before = match &ramp.state {
        Some(s) if s.status == RampStatus::Stopped || s.status == RampStatus::Running => s.before,
        _ => current,
    };
    ramp.state = Some(RampState {
        status: RampStatus::Running,
        step: 0,
        started_ms: now_ms,
        step_started_ms: now_ms,
        before,
        detail: String::new(),
    });
    let line = format!(
        "guarded rollout of {key} in {env} started: {current}% -> {first}%, steps {:?} every {}",
        ramp.steps, ramp.every
    );
    set_rollout_percentage(set, key, env, first)?;
    Ok(line)
}

#[cfg(test)]
mod tests;
