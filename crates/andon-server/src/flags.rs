//! Feature flags, served: the server's one [`FlagSet`], folded from the
//! event log, compiled into an [`Engine`] and published lock-free to the
//! evaluation paths (OFREP, the SDK snapshot).
//!
//! # One namespace per server
//! Flags are shared by every project of a server, like Unleash's `default`
//! project: their events carry `project: ""` ([`NAMESPACE`]). Environments
//! are plain names (`staging`, `production`) that flags configure.
//!
//! # Wire format of the events
//! `FlagChanged.after` is the flag as the model serialises it (see
//! [`andon_flags::Flag`]), `null` when deleted. When the flag has scheduled
//! changes pending, `after` also carries them under `schedule`:
//! `[{"at": unix_ms, "env", "percentage", "reason", "by"}]`; the fold takes
//! that key out before reading the flag. A scheduled change thus lives and
//! dies with its flag, and every edit of the schedule is an audited event.
//! `SegmentChanged.after` is the segment, `null` when deleted.
//!
//! # Layout
//! - this file: the fold ([`Fold`]), the published [`Snapshot`], the
//!   [`FlagHub`] that holds both, the token cache, the scheduler task.
//! - `edit`: deciding a change on a copy and appending its events.
//! - `api::flags` (management) and `api::ofrep` (evaluation) serve them.
//!
//! # Why here and not in `Views`
//! Evaluation must not take the views lock: [`FlagHub::apply`] is called
//! from the append path (under the append lock, after the views fold), so
//! a change is visible to the next request of the writer (read your
//! writes), and the compiled [`Snapshot`] is swapped in atomically for
//! readers that never block.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use andon_core::{Envelope, Event};
use andon_flags::{Engine, Flag, FlagSet, ScheduledChange, Segment};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub(crate) mod edit;
pub(crate) mod guard;

/// The `project` of every flag event: flags belong to the server.
pub(crate) const NAMESPACE: &str = "";

/// The actor of changes the scheduler applies.
pub(crate) const SCHEDULER: &str = "scheduler";

/// Audit entries kept in memory per flag (the log keeps them all).
const HISTORY_PER_FLAG: usize = 200;

/// A token lookup is trusted this long; revocations seen in the log clear
/// the cache at once, this bounds the delay for any other path.
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// A scheduled rollout change, as kept in `FlagChanged.after.schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// Unix ms.
    pub(crate) at: i64,
    pub(crate) env: String,
    pub(crate) percentage: f64,
    #[serde(default)]
    pub(crate) reason: String,
    /// Who scheduled it.
    #[serde(default)]
    pub(crate) by: String,
}

impl Pending {
    pub(crate) fn to_change(&self, flag: &str) -> ScheduledChange {
        ScheduledChange {
            at: self.at,
            flag: flag.to_owned(),
            env: self.env.clone(),
            set_rollout_percent: self.percentage,
        }
    }
}

/// One audited change of a flag, without the flag body.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct History {
    pub(crate) seq: u64,
    pub(crate) at_ms: i64,
    pub(crate) actor: String,
    pub(crate) reason: String,
    /// `created`, `changed` or `deleted`.
    pub(crate) action: &'static str,
    /// The diff lines (`~ flag checkout env production: rollout 5% -> 25%`).
    pub(crate) changes: Vec<String>,
}

/// The flags as of the last folded event.
#[derive(Default)]
pub(crate) struct Fold {
    /// Flags and segments; `schedule` is always empty here (see `pending`).
    pub(crate) set: FlagSet,
    /// Scheduled changes by flag, in the order they were given.
    pub(crate) pending: BTreeMap<String, Vec<Pending>>,
    pub(crate) history: HashMap<String, VecDeque<History>>,
    /// Unix ms of the last change, by flag (for staleness).
    pub(crate) last_changed: BTreeMap<String, i64>,
    /// Flag → environment → unix ms of the last SDK report with evaluations.
    pub(crate) last_evaluated: BTreeMap<String, BTreeMap<String, i64>>,
    /// Outcomes per variant of every running guarded rollout, by (flag,
    /// environment): what the guard judges (see [`guard`]).
    pub(crate) ramp_counts: HashMap<(String, String), guard::RampCounts>,
    /// Sequence number of the last flag or segment event: the version.
    pub(crate) version: u64,
    pub(crate) modified_ms: i64,
    dirty: bool,
}

impl Fold {
    /// The set with its schedule filled in from `pending`: what validation,
    /// diffs and `apply_due` expect.
    pub(crate) fn full_set(&self) -> FlagSet {
        with_schedule(&self.set, &self.pending)
    }

    fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::FlagChanged {
                flag,
                after,
                reason,
                ..
            } => {
                let before = self.set.flags.remove(flag);
                self.pending.remove(flag);
                let after = match after {
                    Value::Null => None,
                    v => match decode_flag(flag, v) {
                        Ok((f, pending)) => {
                            if !pending.is_empty() {
                                self.pending.insert(flag.clone(), pending);
                            }
                            Some(f)
                        }
                        Err(e) => {
                            // Unreadable (written by a newer version?): keep
                            // serving what we had rather than dropping it.
                            tracing::warn!(flag, error = %e, seq = env.seq, "flag event not understood");
                            before.clone()
                        }
                    },
                };
                let action = match (&before, &after) {
                    (None, _) => "created",
                    (Some(_), None) => "deleted",
                    _ => "changed",
                };
                let changes = flag_diff(flag, before.as_ref(), after.as_ref());
                if let Some(f) = after {
                    self.set.flags.insert(flag.clone(), f);
                }
                let h = self.history.entry(flag.clone()).or_default();
                if h.len() == HISTORY_PER_FLAG {
                    h.pop_front();
                }
                h.push_back(History {
                    seq: env.seq,
                    at_ms: env.at_ms,
                    actor: env.actor.clone(),
                    reason: reason.clone(),
                    action,
                    changes,
                });
                self.last_changed.insert(flag.clone(), env.at_ms);
                guard::track_ramps(&mut self.ramp_counts, flag, self.set.flags.get(flag));
                self.touch(env);
            }
            Event::SegmentChanged { segment, after, .. } => {
                match after {
                    Value::Null => {
                        self.set.segments.remove(segment);
                    }
                    v => match serde_json::from_value::<Segment>(v.clone()) {
                        Ok(s) => {
                            self.set.segments.insert(segment.clone(), s);
                        }
                        Err(e) => {
                            tracing::warn!(segment, error = %e, seq = env.seq, "segment event not understood");
                        }
                    },
                }
                self.touch(env);
            }
            Event::FlagExposures {
                environment,
                counts,
            } => {
                guard::count_outcomes(&mut self.ramp_counts, environment, counts);
                for (flag, variants) in counts {
                    if variants.values().any(|c| c.evaluations > 0) {
                        self.last_evaluated
                            .entry(flag.clone())
                            .or_default()
                            .insert(environment.clone(), env.at_ms);
                    }
                }
            }
            _ => {}
        }
    }

    fn touch(&mut self, env: &Envelope) {
        self.version = env.seq;
        self.modified_ms = env.at_ms;
        self.dirty = true;
    }
}

/// `after` → the flag and its pending schedule.
fn decode_flag(key: &str, after: &Value) -> Result<(Flag, Vec<Pending>), serde_json::Error> {
    let mut body = after.clone();
    let pending = match body.as_object_mut().and_then(|o| o.remove("schedule")) {
        Some(s) => serde_json::from_value(s)?,
        None => Vec::new(),
    };
    let mut flag: Flag = serde_json::from_value(body)?;
    key.clone_into(&mut flag.key);
    Ok((flag, pending))
}

/// The `after` of a `FlagChanged` event (see the module docs).
pub(crate) fn encode_flag(flag: &Flag, pending: &[Pending]) -> Value {
    let mut v = serde_json::to_value(flag).unwrap_or(Value::Null);
    if let (Some(o), false) = (v.as_object_mut(), pending.is_empty()) {
        o.insert(
            "schedule".into(),
            serde_json::to_value(pending).unwrap_or(Value::Null),
        );
    }
    v
}

/// Diff lines for one flag.
pub(crate) fn flag_diff(key: &str, before: Option<&Flag>, after: Option<&Flag>) -> Vec<String> {
    let one = |f: Option<&Flag>| FlagSet {
        flags: f.map(|f| (key.to_owned(), f.clone())).into_iter().collect(),
        ..FlagSet::default()
    };
    andon_flags::diff(&one(before), &one(after))
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub(crate) fn with_schedule(set: &FlagSet, pending: &BTreeMap<String, Vec<Pending>>) -> FlagSet {
    let mut full = set.clone();
    full.schedule = pending
        .iter()
        .flat_map(|(k, ps)| ps.iter().map(move |p| p.to_change(k)))
        .collect();
    full
}

/// What evaluation reads: immutable, swapped whole on every change.
pub(crate) struct Snapshot {
    pub(crate) version: u64,
    /// `"v{version}"`, quoted, as an HTTP entity tag.
    pub(crate) etag: String,
    pub(crate) modified_ms: i64,
    /// Flags and segments (no schedule).
    pub(crate) set: FlagSet,
    pub(crate) engine: Engine,
}

impl Snapshot {
    fn new(version: u64, modified_ms: i64, set: FlagSet) -> Snapshot {
        Snapshot {
            version,
            etag: format!("\"v{version}\""),
            modified_ms,
            engine: Engine::new(&set),
            set,
        }
    }
}

/// A bearer token as the flag paths saw it.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub(crate) name: Arc<str>,
    pub(crate) environment: Option<Arc<str>>,
}

/// Valid tokens by the SHA-256 of their secret: evaluation must not query
/// the store per request. Only successful lookups are cached (failures go
/// through the store and its rate limit every time).
#[derive(Default)]
pub(crate) struct TokenCache {
    map: RwLock<HashMap<[u8; 32], (Instant, Reader)>>,
}

impl TokenCache {
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<Reader> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(at, _)| at.elapsed() < TOKEN_TTL)
            .map(|(_, r)| r.clone())
    }

    pub(crate) fn put(&self, hash: [u8; 32], reader: Reader) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Bounded: tokens are few; a flood of distinct valid ones just
        // starts over.
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(hash, (Instant::now(), reader));
    }

    fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The flags of a server: the fold, the published snapshot, change
/// notifications and the token cache of the evaluation paths.
pub(crate) struct FlagHub {
    fold: Mutex<Fold>,
    current: ArcSwap<Snapshot>,
    changes: watch::Sender<u64>,
    pub(crate) tokens: TokenCache,
    /// Cancelled when the server shuts down, so that change streams end
    /// and the graceful drain does not wait for SDKs forever.
    pub(crate) closing: CancellationToken,
    /// The guard's latest verdict per running ramp (flag, environment), for
    /// `GET /flags/{key}`: held steps are not events.
    pub(crate) guard_notes: Mutex<HashMap<(String, String), String>>,
}

impl Default for FlagHub {
    fn default() -> Self {
        FlagHub {
            fold: Mutex::new(Fold::default()),
            current: ArcSwap::from_pointee(Snapshot::new(0, 0, FlagSet::default())),
            changes: watch::channel(0).0,
            tokens: TokenCache::default(),
            closing: CancellationToken::new(),
            guard_notes: Mutex::new(HashMap::new()),
        }
    }
}

impl FlagHub {
    /// Folds appended events and, if flags changed, publishes a new
    /// snapshot and wakes the change streams. Called in log order.
    pub(crate) fn apply(&self, envs: &[Envelope]) {
        let relevant = |e: &Envelope| {
            matches!(
                e.event,
                Event::FlagChanged { .. }
                    | Event::SegmentChanged { .. }
                    | Event::FlagExposures { .. }
                    | Event::TokenRevoked { .. }
            )
        };
        if !envs.iter().any(relevant) {
            return;
        }
        let mut fold = self.fold();
        for env in envs.iter().filter(|e| relevant(e)) {
            if let Event::TokenRevoked { .. } = env.event {
                self.tokens.clear();
            } else {
                fold.apply(env);
            }
        }
        if fold.dirty {
            fold.dirty = false;
            let snap = Snapshot::new(fold.version, fold.modified_ms, fold.set.clone());
            drop(fold);
            let version = snap.version;
            self.current.store(Arc::new(snap));
            self.changes.send_replace(version);
        }
    }

    /// The fold, for reads and for deciding changes (under the append lock).
    pub(crate) fn fold(&self) -> MutexGuard<'_, Fold> {
        self.fold.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The published snapshot; cheap, never blocks.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The published snapshot, to keep (across awaits, or long).
    pub(crate) fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Wakes on every published version.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Applies due scheduled changes, once a second, as the `scheduler`.
pub(crate) async fn scheduler(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = edit::apply_due_now(&state, crate::auth::now_ms()) {
            tracing::error!(error = %e, "applying scheduled flag changes failed");
        }
    }
}

/// Resolves with `shutdown`, after ending the flag change streams.
pub(crate) async fn closing(state: Arc<AppState>, shutdown: impl std::future::Future<Output = ()>) {
    shutdown.await;
    state.flags.closing.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at_ms: seq as i64 * 1000,
            actor: "alice".into(),
            event,
        }
    }

    fn changed(flag: &str, after: Value) -> Event {
        Event::FlagChanged {
            project: NAMESPACE.into(),
            flag: flag.into(),
            after,
            reason: "why".into(),
        }
    }

    #[test]
    fn fold_publishes_flags_schedule_and_history() {
        let hub = FlagHub::default();
        let rx = hub.subscribe();
        let after = json!({"environments": {"production": {"enabled": true}},
            "schedule": [{"at": 5, "env": "production", "percentage": 50.0, "reason": "ramp", "by": "bob"}]});
        hub.apply(&[env(3, changed("checkout", after))]);
        let snap = hub.snapshot();
        assert_eq!(snap.version, 3);
        assert_eq!(snap.etag, "\"v3\"");
        assert_eq!(snap.set.flags["checkout"].key, "checkout");
        assert_eq!(*rx.borrow(), 3);
        let fold = hub.fold();
        assert_eq!(fold.pending["checkout"][0].by, "bob");
        assert_eq!(fold.full_set().schedule.len(), 1);
        assert_eq!(fold.history["checkout"][0].action, "created");
        drop(fold);
        hub.apply(&[env(4, changed("checkout", Value::Null))]);
        assert!(hub.snapshot().set.flags.is_empty());
        let fold = hub.fold();
        assert!(fold.pending.is_empty());
        assert_eq!(fold.history["checkout"][1].action, "deleted");
    }

    #[test]
    fn unrelated_events_do_not_republish() {
        let hub = FlagHub::default();
        hub.apply(&[env(
            1,
            Event::SecretSet {
                project: "p".into(),
                name: "n".into(),
            },
        )]);
        assert_eq!(hub.snapshot().version, 0);
    }

    #[test]
    fn encode_decode_round_trip() {
        let flag: Flag = serde_json::from_value(json!({"kind": "bool"})).unwrap();
        let p = vec![Pending {
            at: 1,
            env: "e".into(),
            percentage: 5.0,
            reason: "r".into(),
            by: "b".into(),
        }];
        let v = encode_flag(&flag, &p);
        let (f, back) = decode_flag("k", &v).unwrap();
        assert_eq!(back, p);
        assert_eq!(f.key, "k");
        assert!(encode_flag(&flag, &[]).get("schedule").is_none());
    }
}
