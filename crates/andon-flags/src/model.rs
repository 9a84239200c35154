//! The flag model: what a `flags:` document, the API and the Unleash importer
//! all produce. Plain serde data; [`crate::Engine`] compiles it for speed.
//!
//! The model is a superset of Unleash's: every Unleash feature can be written
//! here with the same results (see [`crate::import_unleash`]), and it also
//! speaks OpenFeature's vocabulary (typed values, variants, reasons).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::ModelError;

/// Every flag and segment of one project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSet {
    /// Flags by key.
    #[serde(default)]
    pub flags: BTreeMap<String, Flag>,
    /// Named reusable condition sets, referenced from rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Segment>,
    /// Changes to apply at a future time (see [`crate::apply_due`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduledChange>,
}

/// The type of a flag's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `true`/`false`; variants default to `on: true`, `off: false`.
    #[default]
    Bool,
    /// Text values.
    String,
    /// Numeric values.
    Number,
    /// Any JSON value.
    Json,
}

impl Kind {
    /// Whether `value` is of this kind.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Bool => value.is_boolean(),
            Kind::String => value.is_string(),
            Kind::Number => value.is_number(),
            Kind::Json => true,
        }
    }

    /// The lowercase name used in documents and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Json => "json",
        }
    }
}

/// One feature flag and its configuration per environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    /// The flag's key. In a [`FlagSet`] the map key wins; this field may be
    /// left out of documents and is filled in by [`FlagSet::normalize`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default)]
    pub kind: Kind,
    /// Variant name → value. Empty for a bool flag means `on: true, off: false`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A release toggle meant to be removed; only these are reported stale.
    #[serde(default)]
    pub temporary: bool,
    /// Environment name → configuration. A flag with no entry for an
    /// environment is off there.
    #[serde(default)]
    pub environments: BTreeMap<String, FlagEnv>,
}

/// A flag's configuration in one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagEnv {
    /// The kill switch: `false` serves `off_variant` to everyone.
    #[serde(default)]
    pub enabled: bool,
    /// Served when enabled and no rule matches. For a bool flag it defaults
    /// to `on` when there are no rules and `off` when there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_variant: Option<String>,
    /// Served when disabled or a prerequisite fails. Defaults to `off` for a
    /// bool flag, else to the default variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_variant: Option<String>,
    /// Flags that must evaluate a certain way first (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Tried in order; the first that matches serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// A guarded rollout of this environment's "everyone else" rule (see
    /// [`crate::Ramp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<crate::ramp::Ramp>,
}

/// "Flag X must be on (and serve one of these variants)", or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    pub flag: String,
    /// When non-empty, the parent must serve one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// `false` inverts the test: the parent must be off.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A targeting rule: conditions, segments and an optional rollout gate, then
/// what to serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Segment names; all must hold. A missing segment never matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    /// Only this share of the matching contexts is served by this rule; the
    /// rest go on to the next rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    pub serve: Serve,
}

/// What a matching rule serves: one variant, or a weighted split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Serve {
    Variant(String),
    Split(Split),
}

/// A percentage gate: contexts whose bucket (1..=100) is at most
/// `percentage` pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub percentage: f64,
    #[serde(default, skip_serializing_if = "Stickiness::is_targeting_key")]
    pub stickiness: Stickiness,
    /// Hash salt (Unleash's `groupId`); defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Weighted variants, bucketed by stickiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub split: Vec<Weighted>,
    #[serde(default, skip_serializing_if = "Stickiness::is_targeting_key")]
    pub stickiness: Stickiness,
    /// Hash salt; defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Checked before hashing: a context whose attribute is in `values`
    /// gets `variant` (Unleash's variant overrides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    pub variant: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub attribute: String,
    pub values: Vec<String>,
    pub variant: String,
}

/// Which context value a rollout or split hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stickiness {
    /// The targeting key; missing ⇒ `TARGETING_KEY_MISSING`.
    #[default]
    TargetingKey,
    /// Unleash's `default`: targeting key, `userId`, `sessionId` (and for a
    /// split `remoteAddress`), else a random bucket.
    Default,
    /// A random bucket on every evaluation.
    Random,
    /// A named attribute. Missing ⇒ a rollout does not pass, a split picks at
    /// random (as Unleash does).
    Attribute(String),
}

impl Stickiness {
    fn is_targeting_key(&self) -> bool {
        *self == Stickiness::TargetingKey
    }

    /// Parses the document form (`targetingKey`, `default`, `random`, or an
    /// attribute name).
    pub fn parse(s: &str) -> Stickiness {
        match s {
            "targetingKey" | "" => Stickiness::TargetingKey,
            "default" => Stickiness::Default,
            "random" => Stickiness::Random,
            other => Stickiness::Attribute(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Stickiness::TargetingKey => "targetingKey",
            Stickiness::Default => "default",
            Stickiness::Random => "random",
            Stickiness::Attribute(a) => a,
        }
    }
}

impl Serialize for Stickiness {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Stickiness {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Stickiness::parse(&s))
    }
}

/// A named reusable set of conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// All must hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One test on a context attribute.
///
/// Documents may give `value: x` instead of `values: [x]`, and numbers or
/// booleans instead of strings; both are normalised to `values` of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition")]
pub struct Condition {
    /// Attribute name; `targetingKey` is the targeting key. Looked up at the
    /// top level of the context, then under `properties` (Unleash's shape).
    pub attribute: String,
    pub operator: Operator,
    /// Operands; the condition holds when any of them does (for `not_in`:
    /// when none does).
    #[serde(default)]
    pub values: Vec<String>,
    /// For `in`, `not_in` and the string operators and `regex`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
    /// Inverts the result (a condition that cannot be evaluated because its
    /// regex is invalid stays false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Condition {
    /// A condition that never holds: how the importer keeps an unknown
    /// Unleash operator or strategy "false", as Unleash evaluates them.
    pub fn never(attribute: &str) -> Condition {
        Condition {
            attribute: attribute.to_owned(),
            operator: Operator::In,
            values: Vec::new(),
            case_insensitive: false,
            negate: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    attribute: String,
    operator: Operator,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    case_insensitive: bool,
    #[serde(default)]
    negate: bool,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;

    fn try_from(raw: RawCondition) -> Result<Self, Self::Error> {
        let mut values = Vec::with_capacity(raw.values.len() + 1);
        for v in raw.value.into_iter().chain(raw.values) {
            match v {
                Value::String(s) => values.push(s),
                Value::Number(n) => values.push(n.to_string()),
                Value::Bool(b) => values.push(b.to_string()),
                other => {
                    return Err(format!(
                        "condition on '{}': values must be strings, numbers or booleans, not {other}",
                        raw.attribute
                    ));
                }
            }
        }
        Ok(Condition {
            attribute: raw.attribute,
            operator: raw.operator,
            values,
            case_insensitive: raw.case_insensitive,
            negate: raw.negate,
        })
    }
}

/// Condition operators. Names are snake_case in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    #[serde(alias = "equals")]
    In,
    #[serde(alias = "not_equals")]
    NotIn,
    StartsWith,
    EndsWith,
    Contains,
    Regex,
    NumEq,
    NumGt,
    NumGte,
    NumLt,
    NumLte,
    /// RFC 3339 instants; `currentTime` defaults to now.
    DateAfter,
    DateBefore,
    SemverEq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
    /// Values are CIDRs or single addresses.
    InCidr,
}

impl Operator {
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Contains => "contains",
            Operator::Regex => "regex",
            Operator::NumEq => "num_eq",
            Operator::NumGt => "num_gt",
            Operator::NumGte => "num_gte",
            Operator::NumLt => "num_lt",
            Operator::NumLte => "num_lte",
            Operator::DateAfter => "date_after",
            Operator::DateBefore => "date_before",
            Operator::SemverEq => "semver_eq",
            Operator::SemverGt => "semver_gt",
            Operator::SemverGte => "semver_gte",
            Operator::SemverLt => "semver_lt",
            Operator::SemverLte => "semver_lte",
            Operator::InCidr => "in_cidr",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At `at` (unix ms), set the rollout of `flag` in `env` to a percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledChange {
    pub at: i64,
    pub flag: String,
    pub env: String,
    pub set_rollout_percent: f64,
}

pub(crate) const ON: &str = "on";
pub(crate) const OFF: &str = "off";
static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

impl Flag {
    /// The value of a variant, with the implicit `on`/`off` of a bool flag.
    pub fn variant_value(&self, name: &str) -> Option<&Value> {
        if let Some(v) = self.variants.get(name) {
            return Some(v);
        }
        if self.kind == Kind::Bool && self.variants.is_empty() {
            return match name {
                ON => Some(&TRUE),
                OFF => Some(&FALSE),
                _ => None,
            };
        }
        None
    }

    /// Variant names, with the implicit `on`/`off` of a bool flag.
    pub fn variant_names(&self) -> Vec<&str> {
        if self.kind == Kind::Bool && self.variants.is_empty() {
            return vec![OFF, ON];
        }
        self.variants.keys().map(String::as_str).collect()
    }
}

impl FlagEnv {
    /// The variant served when no rule matches, after defaults.
    pub fn effective_default(&self, kind: Kind) -> Option<&str> {
        match (&self.default_variant, kind) {
            (Some(v), _) => Some(v),
            (None, Kind::Bool) if self.rules.is_empty() => Some(ON),
            (None, Kind::Bool) => Some(OFF),
            (None, _) => None,
        }
    }

    /// The variant served when off, after defaults.
    pub fn effective_off(&self, kind: Kind) -> Option<&str> {
        match (&self.off_variant, kind) {
            (Some(v), _) => Some(v),
            (None, Kind::Bool) => Some(OFF),
            (None, _) => self.effective_default(kind),
        }
    }

    /// The environment's rollout: the percentage of the last rule that has
    /// no conditions and no segments (the "everyone else" rule), if it has
    /// a rollout gate. This is what `set_rollout_percentage`, scheduled
    /// changes and the diff talk about.
    pub fn rollout_percentage(&self) -> Option<f64> {
        self.catch_all()
            .and_then(|r| r.rollout.as_ref())
            .map(|r| r.percentage)
    }

    pub(crate) fn catch_all(&self) -> Option<&Rule> {
        self.rules
            .iter()
            .rev()
            .find(|r| r.conditions.is_empty() && r.segments.is_empty())
    }

    pub(crate) fn catch_all_mut(&mut self) -> Option<&mut Rule> {
        self.rules
            .iter_mut()
            .rev()
            .find(|r| r.conditions.is_empty() && r.segments.is_empty())
    }
}

impl FlagSet {
    /// Fills each flag's `key` from its map key.
    pub fn normalize(&mut self) {
        for (key, flag) in &mut self.flags {
            if flag.key != *key {
                flag.key.clone_from(key);
            }
        }
    }

    /// Checks references and types: every variant named exists and has the
    /// flag's kind, percentages are in 0..=100, segments and prerequisite
    /// flags exist, regexes, versions and CIDRs parse. Evaluation never
    /// fails on an invalid set (it answers `ERROR` or "no match"); this is
    /// for refusing a bad `flags:` document before it is applied.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (key, flag) in &self.flags {
            if !flag.key.is_empty() && flag.key != *key {
                return Err(invalid(
                    format!("flags.{key}.key"),
                    format!("'{}' differs from the map key", flag.key),
                ));
            }
            for (name, value) in &flag.variants {
                if !flag.kind.accepts(value) {
                    return Err(invalid(
                        format!("flags.{key}.variants.{name}"),
                        format!("{value} is not a {}", flag.kind.as_str()),
                    ));
                }
            }
            for (env_name, env) in &flag.environments {
                let at = format!("flags.{key}.environments.{env_name}");
                self.validate_env(flag, env, &at)?;
            }
        }
        for (name, seg) in &self.segments {
            for (i, c) in seg.conditions.iter().enumerate() {
                validate_condition(c, &format!("segments.{name}.conditions[{i}]"))?;
            }
        }
        for (i, s) in self.schedule.iter().enumerate() {
            let at = format!("schedule[{i}]");
            let env = self
                .flags
                .get(&s.flag)
                .ok_or_else(|| invalid(at.clone(), format!("unknown flag '{}'", s.flag)))?;
            if !env.environments.contains_key(&s.env) {
                return Err(invalid(
                    at,
                    format!("flag '{}' has no env '{}'", s.flag, s.env),
                ));
            }
            check_pct(s.set_rollout_percent, &at)?;
        }
        Ok(())
    }

    fn validate_env(&self, flag: &Flag, env: &FlagEnv, at: &str) -> Result<(), ModelError> {
        let known = |v: &str| flag.variant_value(v).is_some();
        let check = |v: &str, path: String| -> Result<(), ModelError> {
            if known(v) {
                Ok(())
            } else {
                Err(invalid(path, format!("unknown variant '{v}'")))
            }
        };
        match env.effective_default(flag.kind) {
            Some(v) => check(v, format!("{at}.default_variant"))?,
            None => {
                return Err(invalid(
                    format!("{at}.default_variant"),
                    "required for a non-bool flag",
                ));
            }
        }
        if let Some(v) = env.effective_off(flag.kind) {
            check(v, format!("{at}.off_variant"))?;
        }
        for (i, p) in env.prerequisites.iter().enumerate() {
            let path = format!("{at}.prerequisites[{i}]");
            let Some(parent) = self.flags.get(&p.flag) else {
                return Err(invalid(path, format!("unknown flag '{}'", p.flag)));
            };
            for v in &p.variants {
                if parent.variant_value(v).is_none() {
                    return Err(invalid(
                        path,
                        format!("flag '{}' has no variant '{v}'", p.flag),
                    ));
                }
            }
        }
        if let Some(ramp) = &env.ramp {
            ramp.validate(flag, env, at)?;
        }
        for (i, rule) in env.rules.iter().enumerate() {
            let path = format!("{at}.rules[{i}]");
            for (j, c) in rule.conditions.iter().enumerate() {
                validate_condition(c, &format!("{path}.conditions[{j}]"))?;
            }
            for s in &rule.segments {
                if !self.segments.contains_key(s) {
                    return Err(invalid(
                        format!("{path}.segments"),
                        format!("unknown segment '{s}'"),
                    ));
                }
            }
            if let Some(r) = &rule.rollout {
                check_pct(r.percentage, &format!("{path}.rollout.percentage"))?;
            }
            match &rule.serve {
                Serve::Variant(v) => check(v, format!("{path}.serve"))?,
                Serve::Split(split) => {
                    if split.split.iter().map(|w| u64::from(w.weight)).sum::<u64>() == 0 {
                        return Err(invalid(format!("{path}.serve"), "weights add up to 0"));
                    }
                    for w in &split.split {
                        check(&w.variant, format!("{path}.serve.split"))?;
                    }
                    for o in &split.overrides {
                        check(&o.variant, format!("{path}.serve.overrides"))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_pct(p: f64, at: &str) -> Result<(), ModelError> {
    if (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(
            at.to_owned(),
            format!("percentage {p} is not in 0..=100"),
        ))
    }
}

fn validate_condition(c: &Condition, at: &str) -> Result<(), ModelError> {
    use Operator::*;
    for v in &c.values {
        let ok = match c.operator {
            Regex => regex::Regex::new(v).is_ok(),
            NumEq | NumGt | NumGte | NumLt | NumLte => crate::compile::parse_num(v).is_some(),
            DateAfter | DateBefore => crate::compile::parse_date(v).is_some(),
            SemverEq | SemverGt | SemverGte | SemverLt | SemverLte => {
                semver::Version::parse(v).is_ok()
            }
            InCidr => crate::compile::parse_net(v).is_some(),
            In | NotIn | StartsWith | EndsWith | Contains => true,
        };
        if !ok {
            return Err(invalid(
                format!("{at}.values"),
                format!("'{v}' is not valid for {}", c.operator),
            ));
        }
    }
    Ok(())
}

fn invalid(at: String, message: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        at,
        message: message.into(),
    }
}
