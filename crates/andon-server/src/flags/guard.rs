//! Guarded rollouts, served: the outcomes SDKs report per variant are
//! summed per running ramp, and a loop judges them with the canary's judge
//! ([`andon_judge::Judge`], anytime-valid, so looking four times a second
//! costs no false alarms), then advances, completes or turns back the ramp
//! as [`GUARD`].
//!
//! The decision rule is [`andon_flags::decide`] (pure); this module only
//! measures and records. Counts are folded from `FlagExposures` events, so
//! a restarted server has them again; the judge is rebuilt from them (one
//! batch: still valid, only coarser). A turned-back ramp also records an
//! `IncidentOpened` for the ramp's `project`, which notifies that
//! project's subscribers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use andon_core::{Event, ExposureCounts};
use andon_flags::{Decision, Evidence, Flag, Observation, Ramp, RampState, RampStatus};
use andon_judge::{Judge, JudgeConfig, Outcome, VersionStats};

use crate::error::{ApiError, ApiResult};
use crate::flags::edit::{Change, change};
use crate::state::AppState;

/// The actor of the guard's changes.
pub(crate) const GUARD: &str = "guard";

/// How often the guard looks. The judge may look as often as it likes;
/// this bounds how late a harmful variant is turned back once reported.
const TICK: Duration = Duration::from_millis(250);

/// Outcomes of one running ramp's two variants.
#[derive(Debug, Clone, Default)]
pub(crate) struct RampCounts {
    started_ms: i64,
    step: usize,
    variant: String,
    control: String,
    /// Since the ramp started.
    pub(crate) variant_total: ExposureCounts,
    pub(crate) control_total: ExposureCounts,
    /// The new variant since the step started.
    pub(crate) variant_step: ExposureCounts,
}

fn add(to: &mut ExposureCounts, c: &ExposureCounts) {
    to.evaluations = to.evaluations.saturating_add(c.evaluations);
    to.outcomes = to.outcomes.saturating_add(c.outcomes);
    to.errors = to.errors.saturating_add(c.errors);
}

/// After a `FlagChanged` of `key`: keeps the counts of its running ramps
/// (fresh ones for a ramp that (re)started, fresh step counts for a step
/// that advanced) and forgets the others.
pub(crate) fn track_ramps(
    counts: &mut HashMap<(String, String), RampCounts>,
    key: &str,
    flag: Option<&Flag>,
) {
    let running: Vec<(String, &RampState, (String, String))> = flag
        .into_iter()
        .flat_map(|f| f.environments.iter().map(move |(n, e)| (f, n, e)))
        .filter_map(|(f, name, e)| {
            let st = e.ramp.as_ref()?.state.as_ref()?;
            let variants = andon_flags::ramp_variants(f, e)?;
            (st.status == RampStatus::Running).then(|| (name.clone(), st, variants))
        })
        .collect();
    counts.retain(|(f, e), _| f != key || running.iter().any(|(n, ..)| n == e));
    for (env, st, (variant, control)) in running {
        let entry = counts.entry((key.to_owned(), env)).or_default();
        if entry.started_ms != st.started_ms || entry.variant != variant {
            *entry = RampCounts {
                started_ms: st.started_ms,
                step: st.step,
                variant,
                control,
                ..RampCounts::default()
            };
        } else if entry.step != st.step {
            entry.step = st.step;
            entry.variant_step = ExposureCounts::default();
        }
    }
}

/// After a `FlagExposures` report: adds its outcomes to the running ramps.
pub(crate) fn count_outcomes(
    counts: &mut HashMap<(String, String), RampCounts>,
    environment: &str,
    report: &BTreeMap<String, BTreeMap<String, ExposureCounts>>,
) {
    for (flag, variants) in report {
        let Some(rc) = counts.get_mut(&(flag.clone(), environment.to_owned())) else {
            continue;
        };
        if let Some(c) = variants.get(&rc.variant) {
            add(&mut rc.variant_total, c);
            add(&mut rc.variant_step, c);
        }
        if let Some(c) = variants.get(&rc.control) {
            add(&mut rc.control_total, c);
        }
    }
}

/// Judges every running ramp four times a second until the server closes.
pub(crate) async fn run(state: Arc<AppState>) {
    let closing = state.flags.closing.clone();
    let mut judges = Judges::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = closing.cancelled() => return,
            _ = tick.tick() => {}
        }
        guard_once(&state, &mut judges, crate::auth::now_ms());
    }
}

/// One judge per running ramp, with the start it belongs to.
#[derive(Default)]
pub(crate) struct Judges(HashMap<(String, String), (i64, Judge)>);

/// A running ramp as the fold had it.
struct Look {
    flag: String,
    env: String,
    ramp: Ramp,
    state: RampState,
    counts: RampCounts,
}

/// Looks at every running ramp once; returns the decisions carried out.
pub(crate) fn guard_once(state: &AppState, judges: &mut Judges, now_ms: i64) -> usize {
    let looks: Vec<Look> = {
        let fold = state.flags.fold();
        fold.set
            .flags
            .iter()
            .flat_map(|(k, f)| f.environments.iter().map(move |(e, fe)| (k, e, fe)))
            .filter_map(|(k, e, fe)| {
                let ramp = fe.ramp.as_ref()?;
                let st = ramp.state.as_ref()?;
                (st.status == RampStatus::Running).then(|| Look {
                    flag: k.clone(),
                    env: e.clone(),
                    ramp: ramp.clone(),
                    state: st.clone(),
                    counts: fold
                        .ramp_counts
                        .get(&(k.clone(), e.clone()))
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect()
    };
    judges.0.retain(|(f, e), (started, _)| {
        looks
            .iter()
            .any(|l| l.flag == *f && l.env == *e && l.state.started_ms == *started)
    });
    let mut notes = HashMap::new();
    let mut acted = 0;
    for look in looks {
        let key = (look.flag.clone(), look.env.clone());
        let judge = match judges.0.get_mut(&key) {
            Some((_, j)) => j,
            None => {
                let cfg = JudgeConfig {
                    alpha: look.ramp.alpha,
                    max_error_rate: None,
                    max_p99: None,
                    compare_to_baseline: true,
                    min_requests: look.ramp.min_outcomes,
                };
                let Ok(j) = Judge::new(cfg) else {
                    // Validation refuses such an alpha; nothing to judge with.
                    continue;
                };
                &mut judges
                    .0
                    .entry(key.clone())
                    .or_insert((look.state.started_ms, j))
                    .1
            }
        };
        let obs = observe(judge, &look.counts);
        let decision = andon_flags::decide(&look.ramp, &look.state, now_ms, &obs);
        if let Decision::Hold(why) = decision {
            notes.insert(key, why);
            continue;
        }
        match act(state, &look, &decision, &obs.sentence, now_ms) {
            Ok(true) => acted += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(flag = look.flag, env = look.env, error = %e, "guarded rollout step failed");
            }
        }
    }
    *state
        .flags
        .guard_notes
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = notes;
    acted
}

/// The judge's verdict on the counts so far, in the ramp's words.
fn observe(judge: &mut Judge, c: &RampCounts) -> Observation {
    let stats = |e: &ExposureCounts| VersionStats {
        requests: e.outcomes,
        errors: e.errors,
        ..VersionStats::default()
    };
    let v = judge.observe(&stats(&c.variant_total), &stats(&c.control_total));
    let evidence = match v.outcome {
        Outcome::Fail => Evidence::Harm,
        Outcome::Pass => Evidence::NoHarm,
        Outcome::Pending => Evidence::NotEnough,
    };
    let sentence = v
        .sentence
        .replace("canary", &format!("variant {}", c.variant))
        .replace("baseline", &format!("control {}", c.control))
        .replace(" requests", " outcomes");
    Observation {
        evidence,
        sentence,
        step_outcomes: c.variant_step.outcomes,
    }
}

/// Records a decision (unless the ramp moved on meanwhile, e.g. a person
/// stopped it); a turn-back also opens an incident.
fn act(
    state: &AppState,
    look: &Look,
    decision: &Decision,
    sentence: &str,
    now_ms: i64,
) -> ApiResult<bool> {
    let how = Change::by(GUARD, "guarded rollout", None);
    let done = change(state, how, |d| {
        let current = d
            .set
            .flags
            .get(&look.flag)
            .and_then(|f| f.environments.get(&look.env))
            .and_then(|e| e.ramp.as_ref())
            .and_then(|r| r.state.as_ref());
        if current != Some(&look.state) {
            return Ok(None);
        }
        d.manages_ramps = true;
        let line = andon_flags::apply_decision(
            &mut d.set, &look.flag, &look.env, decision, sentence, now_ms,
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        d.reason.clone_from(&line);
        Ok(Some(line))
    })?;
    let Some(line) = done.value else {
        return Ok(false);
    };
    tracing::info!(flag = look.flag, env = look.env, "{line}");
    if *decision == Decision::RollBack {
        let project = look.ramp.project.clone().unwrap_or_default();
        let env = look.env.clone();
        state.append_with(GUARD, |views| {
            let ev = Event::IncidentOpened {
                project,
                incident_id: views.next_incident_id,
                environment: env,
                deploy_id: None,
                title: line,
            };
            (vec![ev], ())
        })?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running(started: i64, step: usize) -> Flag {
        serde_json::from_value(json!({"environments": {"production": {"enabled": true,
            "rules": [{"rollout": {"percentage": 5}, "serve": "on"}],
            "ramp": {"steps": [1, 5, 100], "every": "1s", "state": {
                "status": "running", "step": step, "started_ms": started,
                "step_started_ms": started, "before": 0.0}}}}}))
        .unwrap()
    }

    fn report(
        on: (u64, u64),
        off: (u64, u64),
    ) -> BTreeMap<String, BTreeMap<String, ExposureCounts>> {
        let c = |(outcomes, errors)| ExposureCounts {
            evaluations: outcomes,
            outcomes,
            errors,
        };
        let mut v = BTreeMap::new();
        v.insert("on".to_owned(), c(on));
        v.insert("off".to_owned(), c(off));
        let mut r = BTreeMap::new();
        r.insert("checkout".to_owned(), v);
        r
    }

    #[test]
    fn counts_follow_the_ramp_and_its_steps() {
        let mut m = HashMap::new();
        track_ramps(&mut m, "checkout", Some(&running(10, 0)));
        count_outcomes(&mut m, "production", &report((10, 1), (100, 2)));
        count_outcomes(&mut m, "staging", &report((10, 1), (100, 2)));
        let rc = &m[&("checkout".to_owned(), "production".to_owned())];
        assert_eq!(
            (rc.variant_total.outcomes, rc.variant_total.errors),
            (10, 1)
        );
        assert_eq!(rc.control_total.outcomes, 100);
        // The next step: step counts start over, totals go on.
        track_ramps(&mut m, "checkout", Some(&running(10, 1)));
        count_outcomes(&mut m, "production", &report((5, 0), (50, 0)));
        let rc = &m[&("checkout".to_owned(), "production".to_owned())];
        assert_eq!(rc.variant_total.outcomes, 15);
        assert_eq!(rc.variant_step.outcomes, 5);
        // A restart is a new ramp.
        track_ramps(&mut m, "checkout", Some(&running(99, 0)));
        assert_eq!(
            m[&("checkout".to_owned(), "production".to_owned())]
                .variant_total
                .outcomes,
            0
        );
        // Deleted, or no longer running: forgotten.
        track_ramps(&mut m, "checkout", None);
        assert!(m.is_empty());
    }

    #[test]
    fn the_judge_sees_harm_in_the_variant() {
        let mut m = HashMap::new();
        track_ramps(&mut m, "checkout", Some(&running(10, 0)));
        let key = ("checkout".to_owned(), "production".to_owned());
        let mut judge = Judge::new(JudgeConfig {
            min_requests: 50,
            ..JudgeConfig::default()
        })
        .unwrap();
        let mut last = None;
        for _ in 0..20 {
            count_outcomes(&mut m, "production", &report((20, 4), (200, 2)));
            last = Some(observe(&mut judge, &m[&key]));
        }
        let obs = last.unwrap();
        assert_eq!(obs.evidence, Evidence::Harm, "{}", obs.sentence);
        assert!(obs.sentence.starts_with("variant on "), "{}", obs.sentence);
    }
}
