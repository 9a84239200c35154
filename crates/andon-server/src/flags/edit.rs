//! Changing flags: every change is decided on a copy of the current flags
//! under the append lock, validated as a whole, and turned into one event per
//! flag or segment that differs. Handlers and the scheduler only say what to
//! edit; this module makes it an audited, consistent change.

use std::collections::BTreeMap;

use andon_core::Event;
use andon_flags::{Applied, FlagSet, apply_due};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::flags::{NAMESPACE, Pending, SCHEDULER, encode_flag, with_schedule};
use crate::state::AppState;

/// The flags being edited: a copy, free to change.
pub(crate) struct Draft {
    /// Flags and segments (`schedule` unused: see `pending`).
    pub(crate) set: FlagSet,
    pub(crate) pending: BTreeMap<String, Vec<Pending>>,
    /// The `reason` of the events; an edit may refine it (the scheduler does).
    pub(crate) reason: String,
    /// The edit sets ramp progress itself (the guard, the ramp command).
    /// Otherwise progress is carried over and new ramps start (see
    /// [`andon_flags::reconcile_ramps`]).
    pub(crate) manages_ramps: bool,
}

/// How a change is to be made.
pub(crate) struct Change<'a> {
    pub(crate) actor: &'a str,
    pub(crate) reason: &'a str,
    /// A token scoped to one environment may change only that environment.
    pub(crate) scope: Option<&'a str>,
    /// Decide and report, append nothing.
    pub(crate) dry_run: bool,
    /// Status for a result that does not validate (400, or 409 for a delete
    /// that would leave dangling references).
    pub(crate) conflict_on_invalid: bool,
}

impl<'a> Change<'a> {
    pub(crate) fn by(actor: &'a str, reason: &'a str, scope: Option<&'a str>) -> Self {
        Change {
            actor,
            reason,
            scope,
            dry_run: false,
            conflict_on_invalid: false,
        }
    }
}

/// What a change did.
pub(crate) struct Done<T> {
    pub(crate) value: T,
    /// Diff lines, e.g. `~ flag checkout env production: enabled true -> false`.
    pub(crate) changes: Vec<String>,
    /// The flags' version after it (unchanged for a dry run or no-op).
    pub(crate) version: u64,
}

/// Applies `edit` to a copy of the flags and appends what differs.
pub(crate) fn change<T>(
    state: &AppState,
    how: Change<'_>,
    edit: impl FnOnce(&mut Draft) -> ApiResult<T>,
) -> ApiResult<Done<T>> {
    let decided = state.append_with(how.actor, |_views| match decide(state, &how, edit) {
        Ok((_, value, changes)) if how.dry_run => (Vec::new(), Ok((value, changes))),
        Ok((events, value, changes)) => (events, Ok((value, changes))),
        Err(e) => (Vec::new(), Err(e)),
    })?;
    let (value, changes) = decided?;
    Ok(Done {
        value,
        changes,
        version: state.flags.snapshot().version,
    })
}

type Decided<T> = (Vec<Event>, T, Vec<String>);

fn decide<T>(
    state: &AppState,
    how: &Change<'_>,
    edit: impl FnOnce(&mut Draft) -> ApiResult<T>,
) -> ApiResult<Decided<T>> {
    let (old, old_pending, mut draft) = {
        let fold = state.flags.fold();
        let draft = Draft {
            set: fold.set.clone(),
            pending: fold.pending.clone(),
            reason: how.reason.to_owned(),
            manages_ramps: false,
        };
        (fold.full_set(), fold.pending.clone(), draft)
    };
    let value = edit(&mut draft)?;
    draft.set.normalize();
    if !draft.manages_ramps {
        andon_flags::reconcile_ramps(&old, &mut draft.set, crate::auth::now_ms());
    }
    draft.set.schedule.clear();
    let flags = &draft.set.flags;
    draft
        .pending
        .retain(|k, ps| flags.contains_key(k) && !ps.is_empty());
    let new = with_schedule(&draft.set, &draft.pending);
    new.validate().map_err(|e| {
        let msg = e.to_string();
        if how.conflict_on_invalid {
            ApiError::Conflict(format!("this would leave the flags invalid: {msg}"))
        } else {
            ApiError::BadRequest(msg)
        }
    })?;
    if let Some(env) = how.scope
        && outside(&old, env) != outside(&new, env)
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is scoped to environment `{env}` and may change only that environment of existing flags",
            how.actor
        )));
    }
    let changes = andon_flags::diff(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    let events = events(&old, &old_pending, &draft);
    Ok((events, value, changes))
}

/// The flags with one environment taken out: what a scoped token may not
/// change.
fn outside(set: &FlagSet, env: &str) -> FlagSet {
    let mut s = set.clone();
    for f in s.flags.values_mut() {
        f.environments.remove(env);
    }
    s.schedule.retain(|c| c.env != env);
    s
}

/// One event per segment or flag that differs. Segments that are added or
/// changed come first and removed ones last, so that every prefix of the
/// batch references only what exists (the fold does not need it, readers of
/// the log may).
fn events(old: &FlagSet, old_pending: &BTreeMap<String, Vec<Pending>>, new: &Draft) -> Vec<Event> {
    let reason = new.reason.clone();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (name, seg) in &new.set.segments {
        if old.segments.get(name) != Some(seg) {
            first.push(Event::SegmentChanged {
                project: NAMESPACE.into(),
                segment: name.clone(),
                after: serde_json::to_value(seg).unwrap_or(Value::Null),
                reason: reason.clone(),
            });
        }
    }
    for name in old.segments.keys() {
        if !new.set.segments.contains_key(name) {
            last.push(Event::SegmentChanged {
                project: NAMESPACE.into(),
                segment: name.clone(),
                after: Value::Null,
                reason: reason.clone(),
            });
        }
    }
    let none = Vec::new();
    for (key, flag) in &new.set.flags {
        let pending = new.pending.get(key).unwrap_or(&none);
        let same =
            old.flags.get(key) == Some(flag) && old_pending.get(key).unwrap_or(&none) == pending;
        if !same {
            first.push(Event::FlagChanged {
                project: NAMESPACE.into(),
                flag: key.clone(),
                after: encode_flag(flag, pending),
                reason: reason.clone(),
            });
        }
    }
    for key in old.flags.keys() {
        if !new.set.flags.contains_key(key) {
            first.push(Event::FlagChanged {
                project: NAMESPACE.into(),
                flag: key.clone(),
                after: Value::Null,
                reason: reason.clone(),
            });
        }
    }
    first.extend(last);
    first
}

/// Applies every scheduled change due at `now`, one flag at a time, as the
/// `scheduler` (the events' reasons say who scheduled what and why).
/// Returns how many flags changed.
pub(crate) fn apply_due_now(state: &AppState, now: i64) -> ApiResult<usize> {
    let due: Vec<String> = {
        let fold = state.flags.fold();
        fold.pending
            .iter()
            .filter(|(_, ps)| ps.iter().any(|p| p.at <= now))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let mut n = 0;
    for key in due {
        let how = Change::by(SCHEDULER, "scheduled change", None);
        match change(state, how, |d| apply_flag(d, &key, now)) {
            Ok(_) => n += 1,
            Err(ApiError::BadRequest(why)) => {
                // The result would not validate: drop the due entries, with
                // the reason in the log, rather than retry every second.
                let how = Change::by(SCHEDULER, "scheduled change dropped", None);
                change(state, how, |d| {
                    if let Some(ps) = d.pending.get_mut(&key) {
                        ps.retain(|p| p.at > now);
                    }
                    d.reason = format!("scheduled change of {key} dropped: {why}");
                    Ok(())
                })?;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn apply_flag(d: &mut Draft, key: &str, now: i64) -> ApiResult<()> {
    let all = d.pending.remove(key).unwrap_or_default();
    let (due, rest): (Vec<Pending>, Vec<Pending>) = all.into_iter().partition(|p| p.at <= now);
    if !rest.is_empty() {
        d.pending.insert(key.to_owned(), rest);
    }
    d.set.schedule = due.iter().map(|p| p.to_change(key)).collect();
    // `apply_due` applies in time order; match each result to its entry.
    let mut ordered = due.clone();
    ordered.sort_by_key(|p| p.at);
    let applied = apply_due(&mut d.set, now);
    let lines: Vec<String> = applied
        .iter()
        .zip(&ordered)
        .map(|(a, p)| describe(key, a, p))
        .collect();
    d.reason = lines.join("; ");
    Ok(())
}

fn describe(key: &str, a: &Applied, p: &Pending) -> String {
    let by = if p.reason.is_empty() {
        format!("scheduled by {}", p.by)
    } else {
        format!("scheduled by {}: {}", p.by, p.reason)
    };
    match &a.result {
        Ok(prev) => format!(
            "rollout of {key} in {} {} -> {}% ({by})",
            a.change.env,
            prev.map_or("none".to_owned(), |v| format!("{v}%")),
            a.change.set_rollout_percent
        ),
        Err(e) => format!(
            "scheduled rollout of {key} in {} not applied: {e} ({by})",
            a.change.env
        ),
    }
}
