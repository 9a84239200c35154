//! Evaluation: one flag, one environment, one context → a variant, its value
//! and the reason, in OFREP's terms.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::{
    CEnv, CFlag, CRollout, CServe, CSplit, CStick, Engine, Matcher, StrOp, VarRef, lower,
};
use crate::context::{Context, View};
use crate::error::{ErrorCode, EvalError};
use crate::hash::{bucket, variant_position};
use crate::model::FlagSet;

/// Why a value was served (OFREP reason strings, plus LaunchDarkly's
/// `PREREQUISITE_FAILED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Enabled with no rules: everyone gets the default variant.
    Static,
    /// A rule matched and served a fixed variant.
    TargetingMatch,
    /// A rule matched through a percentage rollout or a weighted split.
    Split,
    /// Rules exist and none matched: the default variant.
    Default,
    /// The kill switch is off, or the flag has no configuration here.
    Disabled,
    /// A prerequisite flag did not evaluate as required: the off variant.
    PrerequisiteFailed,
    /// See the error.
    Error,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::PrerequisiteFailed => "PREREQUISITE_FAILED",
            Reason::Error => "ERROR",
        }
    }
}

/// An owned evaluation result, the shape of an OFREP response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none", flatten)]
    pub error: Option<EvalError>,
}

impl Evaluation {
    /// See [`Resolved::is_on`].
    pub fn is_on(&self) -> bool {
        is_on(self.reason, &self.value)
    }
}

/// A borrowed evaluation result: what [`Engine::evaluate`] returns without
/// allocating.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub value: &'a Value,
    pub variant: Option<&'a str>,
    pub reason: Reason,
    pub error: Option<EvalError>,
}

impl Resolved<'_> {
    /// "The flag is on for this context": it was neither switched off, nor
    /// blocked by a prerequisite, nor in error, and did not serve `false`.
    /// Prerequisites and the Unleash view (`feature_enabled`) use this.
    pub fn is_on(&self) -> bool {
        is_on(self.reason, self.value)
    }

    pub fn to_evaluation(&self) -> Evaluation {
        Evaluation {
            value: self.value.clone(),
            variant: self.variant.map(str::to_owned),
            reason: self.reason,
            error: self.error.clone(),
        }
    }
}

fn is_on(reason: Reason, value: &Value) -> bool {
    !matches!(
        reason,
        Reason::Disabled | Reason::PrerequisiteFailed | Reason::Error
    ) && *value != Value::Bool(false)
}

static NULL: Value = Value::Null;

/// Evaluates one flag straight from a [`FlagSet`], compiling only what it
/// needs. For many evaluations build an [`Engine`] once instead.
pub fn evaluate(set: &FlagSet, env: &str, flag_key: &str, ctx: &Context) -> Evaluation {
    Engine::for_flag(set, flag_key)
        .evaluate(env, flag_key, ctx)
        .to_evaluation()
}

/// The outcome before variant names are turned into values.
struct Outcome {
    variant: VarRef,
    reason: Reason,
    error: Option<EvalError>,
}

impl Outcome {
    fn of(variant: VarRef, reason: Reason) -> Self {
        Outcome {
            variant,
            reason,
            error: None,
        }
    }
}

enum Hit {
    Yes,
    No,
    NoKey,
}

impl Engine {
    /// Evaluates `flag_key` in `env` for `ctx`.
    pub fn evaluate<'a>(&'a self, env: &str, flag_key: &str, ctx: &Context) -> Resolved<'a> {
        match self.index.get(flag_key) {
            Some(&i) => self.resolve(i, env, ctx, true),
            None => Resolved {
                value: &NULL,
                variant: None,
                reason: Reason::Error,
                error: Some(EvalError::new(
                    ErrorCode::FlagNotFound,
                    format!("flag '{flag_key}' not found"),
                )),
            },
        }
    }

    /// Whether the flag is on for `ctx` (see [`Resolved::is_on`]).
    pub fn is_on(&self, env: &str, flag_key: &str, ctx: &Context) -> bool {
        self.evaluate(env, flag_key, ctx).is_on()
    }

    pub(crate) fn flag_kind(&self, flag_key: &str) -> Option<crate::model::Kind> {
        self.index.get(flag_key).map(|&i| self.flags[i].kind)
    }

    fn resolve<'a>(&'a self, i: usize, env: &str, ctx: &Context, follow: bool) -> Resolved<'a> {
        let flag = &self.flags[i];
        let out = match flag.envs.iter().find(|(n, _)| **n == *env) {
            None => Outcome::of(off_index(flag), Reason::Disabled),
            Some((_, e)) => self.decide(flag, e, env, ctx, follow),
        };
        match out
            .variant
            .and_then(|v| flag.variants.get(v).ok_or_else(|| Box::from("(index)")))
        {
            Ok((name, value)) => Resolved {
                value,
                variant: Some(name),
                reason: out.reason,
                error: out.error,
            },
            Err(missing) => Resolved {
                value: &NULL,
                variant: None,
                reason: Reason::Error,
                error: Some(out.error.unwrap_or_else(|| {
                    EvalError::new(
                        ErrorCode::General,
                        format!(
                            "flag '{}' serves variant '{missing}', which it does not define",
                            flag.key
                        ),
                    )
                })),
            },
        }
    }

    fn decide(&self, flag: &CFlag, e: &CEnv, env: &str, ctx: &Context, follow: bool) -> Outcome {
        let off = || {
            e.off
                .clone()
                .unwrap_or_else(|| Err(Box::from("(off variant)")))
        };
        if !e.enabled {
            return Outcome::of(off(), Reason::Disabled);
        }
        // A parent is evaluated with `follow` off; one that has
        // prerequisites never satisfies, so it is never asked for them.
        let satisfied = e.prereqs.is_empty() || (follow && self.prereqs_hold(e, env, ctx));
        if !satisfied {
            return Outcome::of(off(), Reason::PrerequisiteFailed);
        }
        let default = || {
            e.default
                .clone()
                .unwrap_or_else(|| Err(Box::from("(default variant)")))
        };
        if e.rules.is_empty() {
            return Outcome::of(default(), Reason::Static);
        }
        // Built on the first condition, so rollout-only rules skip it.
        let mut prepared: Option<View<'_>> = None;
        'rules: for rule in &e.rules {
            let view = if rule.conditions.is_empty() && rule.segments.is_empty() {
                None
            } else {
                Some(&*prepared.get_or_insert_with(|| View::new(ctx)))
            };
            for c in &rule.conditions {
                let Some(view) = view else { break };
                if !c.holds(view) {
                    continue 'rules;
                }
            }
            for s in &rule.segments {
                let Some(seg) = s.and_then(|s| self.segments.get(s)) else {
                    continue 'rules;
                };
                let Some(view) = view else { break };
                if !seg.conditions.iter().all(|c| c.holds(view)) {
                    continue 'rules;
                }
            }
            let mut reason = Reason::TargetingMatch;
            if let Some(r) = &rule.rollout {
                match rollout_hit(r, ctx) {
                    Hit::Yes => {}
                    Hit::No => continue 'rules,
                    Hit::NoKey => return key_missing(default(), &flag.key),
                }
                if r.percentage < 100.0 {
                    reason = Reason::Split;
                }
            }
            return match &rule.serve {
                CServe::Variant(v) => Outcome::of(v.clone(), reason),
                CServe::Split(s) => match pick(s, ctx) {
                    Ok(v) => Outcome::of(v, Reason::Split),
                    Err(Hit::NoKey) => key_missing(default(), &flag.key),
                    Err(_) => Outcome {
                        variant: Err(Box::from("(split)")),
                        reason: Reason::Error,
                        error: Some(EvalError::new(
                            ErrorCode::General,
                            format!("flag '{}': a split whose weights add up to 0", flag.key),
                        )),
                    },
                },
            };
        }
        Outcome::of(default(), Reason::Default)
    }

    /// Unleash's rule, kept so that imports behave the same: a parent that
    /// has prerequisites of its own never satisfies (no chains, no cycles).
    fn prereqs_hold(&self, e: &CEnv, env: &str, ctx: &Context) -> bool {
        e.prereqs.iter().all(|p| {
            let Some(pi) = p.flag else {
                return false;
            };
            let parent = &self.flags[pi];
            let has_own = parent
                .envs
                .iter()
                .find(|(n, _)| **n == *env)
                .is_some_and(|(_, pe)| !pe.prereqs.is_empty());
            if has_own {
                return false;
            }
            let r = self.resolve(pi, env, ctx, false);
            let on = r.is_on();
            if !p.enabled {
                return !on;
            }
            on && (p.variants.is_empty()
                || r.variant
                    .is_some_and(|v| p.variants.iter().any(|x| **x == *v)))
        })
    }
}

fn off_index(flag: &CFlag) -> VarRef {
    // A flag without configuration in this environment serves its `off`
    // variant when it has one, else its first.
    match flag
        .variants
        .iter()
        .position(|(n, _)| &**n == crate::model::OFF)
    {
        Some(i) => Ok(i),
        None if flag.variants.is_empty() => Err(Box::from("(none defined)")),
        None => Ok(0),
    }
}

fn key_missing(default: VarRef, key: &str) -> Outcome {
    Outcome {
        variant: default,
        reason: Reason::Error,
        error: Some(EvalError::new(
            ErrorCode::TargetingKeyMissing,
            format!("flag '{key}' buckets by targeting key, and the context has none"),
        )),
    }
}

fn random_upto(n: u64) -> u64 {
    rand::random_range(1..=n.max(1))
}

fn rollout_hit(r: &CRollout, ctx: &Context) -> Hit {
    // `!(p > 0)` also rejects NaN: Unleash's `percentage > 0 && ...`.
    if r.percentage.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Hit::No;
    }
    let b = match &r.stickiness {
        CStick::Random => random_upto(100) as u32,
        CStick::TargetingKey => match ctx.targeting_key.as_deref() {
            Some(k) => bucket(&r.salt, k),
            None => return Hit::NoKey,
        },
        CStick::Default => match ctx.first_text(&["userId", "sessionId"]) {
            Some(id) => bucket(&r.salt, &id),
            None => random_upto(100) as u32,
        },
        CStick::Attribute(a) => match ctx.text(a).filter(|t| !t.is_empty()) {
            Some(id) => bucket(&r.salt, &id),
            None => return Hit::No,
        },
    };
    if f64::from(b) <= r.percentage {
        Hit::Yes
    } else {
        Hit::No
    }
}

fn pick(s: &CSplit, ctx: &Context) -> Result<VarRef, Hit> {
    if s.total == 0 {
        return Err(Hit::No);
    }
    for (attr, values, v) in &s.overrides {
        if let Some(t) = ctx.text(attr)
            && values.iter().any(|x| **x == *t)
        {
            return Ok(v.clone());
        }
    }
    let id: Option<Cow<'_, str>> = match &s.stickiness {
        CStick::Random => None,
        CStick::TargetingKey => match ctx.targeting_key.as_deref() {
            Some(k) => Some(Cow::Borrowed(k)),
            None => return Err(Hit::NoKey),
        },
        CStick::Default => ctx.first_text(&["userId", "sessionId", "remoteAddress"]),
        CStick::Attribute(a) => ctx.text(a).filter(|t| !t.is_empty()),
    };
    let pos = match id {
        Some(id) => variant_position(&s.salt, &id, s.total),
        None => random_upto(s.total),
    };
    let mut counter = 0u64;
    for (v, w) in &s.items {
        if *w == 0 {
            continue;
        }
        counter += u64::from(*w);
        if counter >= pos {
            return Ok(v.clone());
        }
    }
    Err(Hit::No)
}

impl crate::compile::CCond {
    /// Whether the condition holds for `ctx`.
    pub(crate) fn holds(&self, view: &View<'_>) -> bool {
        let ctx = view.ctx();
        let attr = &*self.attribute.text;
        let raw = match &self.matcher {
            Matcher::Never => return false,
            Matcher::Date(cmp, values) => {
                let at = match self.text(view) {
                    Some(t) => crate::compile::parse_date(&t),
                    // Unleash's `currentTime` means "now" when not given.
                    None if attr == "currentTime" => Some(jiff::Timestamp::now()),
                    None => None,
                };
                at.is_some_and(|at| values.iter().any(|v| cmp.test(at.cmp(v))))
            }
            Matcher::Num(cmp, values) => {
                let n = if self.is_key {
                    ctx.targeting_key
                        .as_deref()
                        .and_then(crate::compile::parse_num)
                } else {
                    match view.lookup(&self.attribute) {
                        Some(Value::Number(n)) => n.as_f64(),
                        Some(Value::String(s)) => crate::compile::parse_num(s),
                        _ => None,
                    }
                };
                n.is_some_and(|n| {
                    values
                        .iter()
                        .any(|x| n.partial_cmp(x).is_some_and(|o| cmp.test(o)))
                })
            }
            m => match self.text(view) {
                None => false,
                Some(v) => m.test(&v),
            },
        };
        raw ^ self.negate
    }

    #[inline]
    fn text<'c>(&self, view: &View<'c>) -> Option<Cow<'c, str>> {
        if self.is_key {
            view.ctx().targeting_key.as_deref().map(Cow::Borrowed)
        } else {
            view.lookup(&self.attribute)
                .and_then(crate::context::as_text)
        }
    }
}

impl Matcher {
    fn test(&self, v: &str) -> bool {
        match self {
            Matcher::In { values, ci } => {
                if *ci {
                    values.contains(&lower(v))
                } else {
                    values.contains(v)
                }
            }
            Matcher::Str { op, values, ci } => {
                let v = if *ci { lower(v) } else { Cow::Borrowed(v) };
                values.iter().any(|x| match op {
                    StrOp::StartsWith => v.starts_with(&**x),
                    StrOp::EndsWith => v.ends_with(&**x),
                    StrOp::Contains => v.contains(&**x),
                })
            }
            Matcher::Regex(rs) => rs.iter().any(|r| r.is_match(v)),
            Matcher::Semver(cmp, values) => match semver::Version::parse(v.trim()) {
                Ok(ver) => values.iter().any(|x| cmp.test(ver.cmp_precedence(x))),
                Err(_) => false,
            },
            Matcher::Cidr(nets, raw) => {
                let t = v.trim();
                raw.iter().any(|r| **r == *t)
                    || t.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }
            Matcher::Num(..) | Matcher::Date(..) | Matcher::Never => false,
        }
    }
}
