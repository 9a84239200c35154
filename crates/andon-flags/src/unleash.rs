//! Unleash compatibility: importing Unleash's client features document into
//! Andon's model, and reading an evaluation back the way an Unleash SDK
//! reports it (`isEnabled`, `getVariant`).
//!
//! # How an Unleash feature is written in Andon's model
//!
//! - The flag is of kind `json`. Each Unleash variant becomes a variant of
//!   the same name whose value is the Unleash payload object
//!   (`{"type": "string", "value": "..."}`) or `null`; two more variants are
//!   added: `disabled` (`null`, "enabled but no variant") and `off`
//!   (`false`, "not enabled"; renamed `_off` … if a variant is called `off`).
//! - `enabled` is the environment's kill switch; `off` is both its
//!   `off_variant` and its `default_variant`, so "no strategy matched"
//!   serves `false`, as Unleash reports the feature disabled.
//! - Each strategy becomes a rule, in order. Its constraints become
//!   conditions; `userWithId`, `remoteAddress` and `applicationHostname`
//!   become conditions on `userId`, `remoteAddress` (`in_cidr`) and
//!   `hostname`; `flexibleRollout` and `gradualRollout*` become the rule's
//!   rollout (`groupId` is the salt); segments keep their ids as names. The
//!   rule serves the strategy's variants, else the feature's, else
//!   `disabled`. No strategies at all becomes one rule with no conditions.
//!   Unknown (or disabled) strategies and unknown operators become a
//!   condition that never holds, which is how Unleash evaluates them.
//! - Dependencies become prerequisites.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::Engine;
use crate::context::Context;
use crate::error::ImportError;
use crate::model::{
    Condition, Flag, FlagEnv, FlagSet, Kind, Operator, Override, Prerequisite, Rollout, Rule,
    Segment, Serve, Split, Stickiness, Weighted,
};

/// The environment [`import_unleash`] writes into.
pub const UNLEASH_ENV: &str = "default";

/// The name Unleash gives "no variant".
pub const DISABLED_VARIANT: &str = "disabled";

/// What an Unleash SDK's `getVariant` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashVariant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<UnleashPayload>,
    pub enabled: bool,
    /// `isEnabled` for the same context.
    #[serde(alias = "featureEnabled")]
    pub feature_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashPayload {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Engine {
    /// The evaluation as an Unleash SDK reports it. `feature_enabled` is
    /// [`crate::Resolved::is_on`]; the variant is the served one unless it is
    /// `disabled`, the flag is a bool flag, or the flag is off. Payloads are
    /// the imported Unleash payload objects, or made from the value's kind.
    pub fn evaluate_unleash(&self, env: &str, flag_key: &str, ctx: &Context) -> UnleashVariant {
        let r = self.evaluate(env, flag_key, ctx);
        let feature_enabled = r.is_on();
        let kind = self.flag_kind(flag_key).unwrap_or(Kind::Bool);
        match r.variant {
            Some(name) if feature_enabled && kind != Kind::Bool && name != DISABLED_VARIANT => {
                UnleashVariant {
                    name: name.to_owned(),
                    payload: payload_of(kind, r.value),
                    enabled: true,
                    feature_enabled,
                }
            }
            _ => UnleashVariant {
                name: DISABLED_VARIANT.to_owned(),
                payload: None,
                enabled: false,
                feature_enabled,
            },
        }
    }
}

fn payload_of(kind: Kind, v: &Value) -> Option<UnleashPayload> {
    if let Value::Object(o) = v
        && let (2, Some(Value::String(t)), Some(val)) = (o.len(), o.get("type"), o.get("value"))
    {
        let value = match val {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Some(UnleashPayload {
            kind: t.clone(),
            value,
        });
    }
    let (t, value) = match (kind, v) {
        (_, Value::Null) => return None,
        (Kind::String, Value::String(s)) => ("string", s.clone()),
        (Kind::Number, Value::Number(n)) => ("number", n.to_string()),
        (_, other) => ("json", other.to_string()),
    };
    Some(UnleashPayload {
        kind: t.to_owned(),
        value,
    })
}

/// Imports an Unleash client features document (`{"features": [...],
/// "segments": [...]}`, as served by `/api/client/features`) into
/// environment [`UNLEASH_ENV`].
pub fn import_unleash(json: &str) -> Result<FlagSet, ImportError> {
    import_unleash_env(json, UNLEASH_ENV)
}

/// Like [`import_unleash`], into the named environment.
pub fn import_unleash_env(json: &str, env: &str) -> Result<FlagSet, ImportError> {
    let state: UState = serde_json::from_str(json)?;
    let mut set = FlagSet::default();
    for s in &state.segments {
        set.segments.insert(
            s.id.to_string(),
            Segment {
                description: s.name.clone(),
                conditions: s.constraints.iter().map(condition).collect(),
            },
        );
    }
    for f in &state.features {
        set.flags.insert(f.name.clone(), feature(f, env)?);
    }
    Ok(set)
}

fn feature(f: &UFeature, env: &str) -> Result<Flag, ImportError> {
    let mut variants: BTreeMap<String, Value> = BTreeMap::new();
    let all = f
        .variants
        .iter()
        .chain(f.strategies.iter().flat_map(|s| s.variants.iter()));
    for v in all {
        if v.name == DISABLED_VARIANT {
            return Err(ImportError::ReservedVariant {
                feature: f.name.clone(),
                variant: v.name.clone(),
            });
        }
        let value = v.payload.clone().unwrap_or(Value::Null);
        if variants.get(&v.name).is_some_and(|prev| *prev != value) {
            return Err(ImportError::ConflictingVariant {
                feature: f.name.clone(),
                variant: v.name.clone(),
            });
        }
        variants.insert(v.name.clone(), value);
    }
    let mut off = String::from("off");
    while variants.contains_key(&off) {
        off.insert(0, '_');
    }
    variants.insert(off.clone(), Value::Bool(false));
    variants.insert(DISABLED_VARIANT.to_owned(), Value::Null);

    let feature_serve = || split_of(&f.variants, None, &f.name);
    let rules = if f.strategies.is_empty() {
        vec![Rule {
            description: None,
            conditions: Vec::new(),
            segments: Vec::new(),
            rollout: None,
            serve: feature_serve(),
        }]
    } else {
        f.strategies
            .iter()
            .map(|s| strategy(s, f, &feature_serve))
            .collect()
    };
    let prerequisites = f
        .dependencies
        .iter()
        .map(|d| Prerequisite {
            flag: d.feature.clone(),
            variants: d.variants.clone().unwrap_or_default(),
            enabled: d.enabled.unwrap_or(true),
        })
        .collect();
    let mut environments = BTreeMap::new();
    environments.insert(
        env.to_owned(),
        FlagEnv {
            enabled: f.enabled,
            default_variant: Some(off.clone()),
            off_variant: Some(off),
            prerequisites,
            rules,
            ramp: None,
        },
    );
    Ok(Flag {
        key: f.name.clone(),
        kind: Kind::Json,
        variants,
        description: f.description.clone(),
        owner: None,
        tags: Vec::new(),
        temporary: matches!(f.kind.as_deref(), Some("release" | "experiment")),
        environments,
    })
}

/// Serve the weighted variants, or Unleash's "no variant".
fn split_of(variants: &[UVariant], stickiness: Option<&str>, salt: &str) -> Serve {
    if variants.is_empty() {
        return Serve::Variant(DISABLED_VARIANT.to_owned());
    }
    let stick = variants[0]
        .stickiness
        .as_deref()
        .or(stickiness)
        .unwrap_or("default");
    Serve::Split(Split {
        split: variants
            .iter()
            .map(|v| Weighted {
                variant: v.name.clone(),
                weight: u32::try_from(v.weight.max(0)).unwrap_or(u32::MAX),
            })
            .collect(),
        stickiness: unleash_stickiness(stick),
        salt: Some(salt.to_owned()),
        overrides: variants
            .iter()
            .flat_map(|v| {
                v.overrides.iter().map(|o| Override {
                    attribute: o.context_name.clone(),
                    values: o.values.clone(),
                    variant: v.name.clone(),
                })
            })
            .collect(),
    })
}

fn unleash_stickiness(s: &str) -> Stickiness {
    match s {
        "" | "default" => Stickiness::Default,
        "random" => Stickiness::Random,
        other => Stickiness::Attribute(other.to_owned()),
    }
}

fn strategy(s: &UStrategy, f: &UFeature, feature_serve: &dyn Fn() -> Serve) -> Rule {
    let param = |k: &str| -> Option<String> {
        s.parameters.get(k).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let list = |k: &str| -> Vec<String> {
        param(k)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let pct = |k: &str| {
        param(k)
            .and_then(|p| crate::compile::parse_num(&p))
            .unwrap_or(0.0)
    };
    let group = param("groupId").filter(|g| !g.is_empty());
    let mut conditions: Vec<Condition> = s.constraints.iter().map(condition).collect();
    let mut description = None;
    let mut rollout = None;
    let attr_in = |attribute: &str, operator, values, ci| Condition {
        attribute: attribute.to_owned(),
        operator,
        values,
        case_insensitive: ci,
        negate: false,
    };
    match s.name.as_str() {
        _ if s.disabled => {
            description = Some(format!(
                "disabled Unleash strategy '{}': never matches",
                s.name
            ));
            conditions.push(Condition::never(""));
        }
        "default" => {}
        "userWithId" => conditions.push(attr_in("userId", Operator::In, list("userIds"), false)),
        "remoteAddress" => conditions.push(attr_in(
            "remoteAddress",
            Operator::InCidr,
            list("IPs"),
            false,
        )),
        "applicationHostname" => {
            conditions.push(attr_in("hostname", Operator::In, list("hostNames"), true))
        }
        "flexibleRollout" => {
            rollout = Some(Rollout {
                percentage: pct("rollout"),
                stickiness: unleash_stickiness(param("stickiness").as_deref().unwrap_or("default")),
                salt: Some(group.clone().unwrap_or_else(|| f.name.clone())),
            });
        }
        "gradualRolloutUserId" | "gradualRolloutSessionId" => {
            let attr = if s.name == "gradualRolloutUserId" {
                "userId"
            } else {
                "sessionId"
            };
            rollout = Some(Rollout {
                percentage: pct("percentage"),
                stickiness: Stickiness::Attribute(attr.to_owned()),
                salt: Some(group.clone().unwrap_or_default()),
            });
        }
        "gradualRolloutRandom" => {
            rollout = Some(Rollout {
                percentage: pct("percentage"),
                stickiness: Stickiness::Random,
                salt: None,
            });
        }
        other => {
            description = Some(format!("unknown Unleash strategy '{other}': never matches"));
            conditions.push(Condition::never(""));
        }
    }
    let serve = if s.variants.is_empty() {
        feature_serve()
    } else {
        let salt = group.unwrap_or_else(|| f.name.clone());
        split_of(&s.variants, param("stickiness").as_deref(), &salt)
    };
    Rule {
        description,
        conditions,
        segments: s.segments.iter().map(ToString::to_string).collect(),
        rollout,
        serve,
    }
}

fn condition(c: &UConstraint) -> Condition {
    use Operator::*;
    let op = match c.operator.as_str() {
        "IN" => In,
        "NOT_IN" => NotIn,
        "STR_STARTS_WITH" => StartsWith,
        "STR_ENDS_WITH" => EndsWith,
        "STR_CONTAINS" => Contains,
        "REGEX" => Regex,
        "NUM_EQ" => NumEq,
        "NUM_GT" => NumGt,
        "NUM_GTE" => NumGte,
        "NUM_LT" => NumLt,
        "NUM_LTE" => NumLte,
        "DATE_AFTER" => DateAfter,
        "DATE_BEFORE" => DateBefore,
        "SEMVER_EQ" => SemverEq,
        "SEMVER_GT" => SemverGt,
        "SEMVER_GTE" => SemverGte,
        "SEMVER_LT" => SemverLt,
        "SEMVER_LTE" => SemverLte,
        "IN_CIDR" => InCidr,
        _ => return Condition::never(&c.context_name),
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let list: Vec<String> = c.values.iter().filter_map(text).collect();
    let single: Option<String> = c.value.as_ref().and_then(text);
    let multi = matches!(op, In | NotIn | StartsWith | EndsWith | Contains | InCidr);
    let values = match (multi, single) {
        (true, s) if list.is_empty() => s.into_iter().collect(),
        (true, _) => list,
        (false, Some(s)) => vec![s],
        (false, None) => list,
    };
    Condition {
        attribute: c.context_name.clone(),
        operator: op,
        values,
        // Unleash applies `caseInsensitive` to the string operators only.
        case_insensitive: c.case_insensitive
            && matches!(op, StartsWith | EndsWith | Contains | Regex),
        negate: c.inverted,
    }
}

#[derive(Deserialize)]
struct UState {
    #[serde(default)]
    features: Vec<UFeature>,
    #[serde(default)]
    segments: Vec<USegment>,
}

#[derive(Deserialize)]
struct UFeature {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: bool,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    strategies: Vec<UStrategy>,
    #[serde(default, deserialize_with = "null_default")]
    variants: Vec<UVariant>,
    #[serde(default, deserialize_with = "null_default")]
    dependencies: Vec<UDependency>,
}

#[derive(Deserialize)]
struct UStrategy {
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    parameters: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "null_default")]
    constraints: Vec<UConstraint>,
    #[serde(default, deserialize_with = "null_default")]
    segments: Vec<i64>,
    #[serde(default, deserialize_with = "null_default")]
    variants: Vec<UVariant>,
    #[serde(default, deserialize_with = "null_default")]
    disabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UConstraint {
    context_name: String,
    operator: String,
    #[serde(default, deserialize_with = "null_default")]
    values: Vec<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    case_insensitive: bool,
    #[serde(default, deserialize_with = "null_default")]
    inverted: bool,
}

#[derive(Deserialize)]
struct UVariant {
    name: String,
    #[serde(default)]
    weight: i64,
    #[serde(default)]
    stickiness: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    overrides: Vec<UOverride>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UOverride {
    context_name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
struct USegment {
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    constraints: Vec<UConstraint>,
}

#[derive(Deserialize)]
struct UDependency {
    feature: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    variants: Option<Vec<String>>,
}

/// Unleash sends `null` for empty lists in places; read it as empty.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
