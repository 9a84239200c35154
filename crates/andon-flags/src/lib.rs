//! Feature-flag evaluation: rules, segments, stable bucketing; Unleash import.
//!
//! A pure engine: no IO, no network. The server stores a [`FlagSet`], builds
//! an [`Engine`] from it, and answers OFREP and Unleash requests with it; the
//! CLI applies `flags:` documents after showing their [`diff`].
//!
//! # Semantics
//!
//! Evaluating flag `F` in environment `E` for a [`Context`]:
//!
//! 1. `F` unknown: `ERROR` / `FLAG_NOT_FOUND`, value `null`.
//! 2. `F` has no configuration for `E`, or `enabled: false` (the kill
//!    switch): the off variant (`off` for bool flags), `DISABLED`.
//! 3. Each prerequisite must hold: the parent is evaluated for the same
//!    context and environment; `enabled: true` (the default) needs it on
//!    (see [`Resolved::is_on`]) and, if `variants` is given, serving one of
//!    them; `enabled: false` needs it off. A parent that has prerequisites of
//!    its own never satisfies (Unleash's rule: no chains, no cycles). Failing:
//!    the off variant, `PREREQUISITE_FAILED`.
//! 4. No rules: the default variant, `STATIC`.
//! 5. Rules in order; the first whose conditions and segments all hold and
//!    whose rollout (if any) includes the context serves its variant
//!    (`TARGETING_MATCH`) or its split (`SPLIT`; also when a rollout below
//!    100% admitted it). Contexts a rollout leaves out go on to the next rule.
//! 6. None: the default variant (`off` for a bool flag with rules), `DEFAULT`.
//!
//! Bucketing is Unleash's, so Andon, Unleash servers and Unleash SDKs agree
//! on every user: a rollout admits `murmur3_32("{salt}:{id}", 0) % 100 + 1 <=
//! percentage` (so raising the percentage only adds users), a split picks the
//! first variant whose running weight reaches
//! `murmur3_32("{salt}:{id}", 86028157) % total + 1`. The salt defaults to
//! the flag key. `id` comes from the [`Stickiness`]: the targeting key by
//! default (missing ⇒ `TARGETING_KEY_MISSING`), Unleash's `default` chain
//! (`userId`, `sessionId`, for splits `remoteAddress`, then random), `random`,
//! or any attribute.
//!
//! Conditions look attributes up at the top level, then under `properties`;
//! `null`, arrays and objects count as missing. A missing attribute fails
//! every operator except `not_in` (before `negate`). Operators and their
//! edge cases follow Unleash's client specification: numbers compare as
//! floats, semantic versions by precedence (strict parse, no `v` prefix),
//! dates as instants (`currentTime` defaults to now, the one clock read),
//! CIDR lists ignore invalid entries, and an invalid regex never matches.
//!
//! # Layout
//! - [`model`]: the serde model ([`FlagSet`], [`Flag`], [`FlagEnv`],
//!   [`Rule`], [`Condition`], …) and its validation.
//! - `context`: [`Context`], attribute lookup.
//! - `compile`: [`Engine`], the compiled form (regexes, versions, CIDRs and
//!   dates parsed once; flag lookup by a fast hash).
//! - `eval`: evaluation, [`Resolved`] (borrowed) and [`Evaluation`] (owned),
//!   [`Reason`].
//! - `hash`: MurmurHash3 bucketing.
//! - `unleash`: [`import_unleash`] and the Unleash view
//!   ([`Engine::evaluate_unleash`]).
//! - `ops`: [`kill_switch`], [`set_rollout_percentage`], [`apply_due`],
//!   [`stale_flags`].
//! - `ramp`: guarded rollouts: [`Ramp`] (the plan), [`RampState`] (its
//!   progress), [`decide`] (the guard's rule), [`apply_decision`],
//!   [`reconcile_ramps`], [`set_ramp`]. Pure: the server measures and judges.
//! - `diff`: [`diff`] and [`Change`].
//! - `error`: [`ModelError`], [`ImportError`], [`EvalError`].

mod compile;
mod context;
mod diff;
mod error;
mod eval;
mod hash;
pub mod model;
mod ops;
mod ramp;
mod unleash;

pub use compile::Engine;
pub use context::Context;
pub use diff::{Change, ChangeOp, Subject, diff};
pub use error::{ErrorCode, EvalError, ImportError, ModelError};
pub use eval::{Evaluation, Reason, Resolved, evaluate};
pub use hash::{bucket, murmur3_32};
pub use model::{
    Condition, Flag, FlagEnv, FlagSet, Kind, Operator, Override, Prerequisite, Rollout, Rule,
    ScheduledChange, Segment, Serve, Split, Stickiness, Weighted,
};
pub use ops::{Applied, StaleFlag, apply_due, kill_switch, set_rollout_percentage, stale_flags};
pub use ramp::{
    Decision, Evidence, Observation, Ramp, RampState, RampStatus, apply_decision, decide,
    parse_duration_ms, ramp_variants, reconcile_ramps, set_ramp,
};
pub use unleash::{
    DISABLED_VARIANT, UNLEASH_ENV, UnleashPayload, UnleashVariant, import_unleash,
    import_unleash_env,
};
