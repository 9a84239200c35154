//! The evaluation context: a targeting key and attributes, in OFREP's shape
//! (`{"targetingKey": "u1", "country": "no"}`), also accepting Unleash's
//! nested `properties` object.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who is asking. Attributes are looked up at the top level first, then
/// under `properties`, so both OFREP and Unleash contexts work unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(
        rename = "targetingKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub targeting_key: Option<String>,
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

pub(crate) const TARGETING_KEY: &str = "targetingKey";

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// A context with this targeting key.
    pub fn with_key(key: impl Into<String>) -> Self {
        Context {
            targeting_key: Some(key.into()),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute (builder style).
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// The scalar value of an attribute: a top-level scalar, else the one in
    /// `properties`. `null`, arrays and objects count as missing.
    pub fn get(&self, name: &str) -> Option<&Value> {
        if name == TARGETING_KEY {
            return None;
        }
        if let Some(v) = self.attributes.get(name).filter(|v| is_scalar(v)) {
            return Some(v);
        }
        match self.attributes.get("properties") {
            Some(Value::Object(props)) => props.get(name).filter(|v| is_scalar(v)),
            _ => None,
        }
    }

    /// An attribute as text (numbers and booleans formatted), with the
    /// targeting key under `targetingKey`.
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        if name == TARGETING_KEY {
            return self.targeting_key.as_deref().map(Cow::Borrowed);
        }
        self.get(name).and_then(as_text)
    }

    /// The first non-empty value of the targeting key or the named
    /// attributes (Unleash's default stickiness chain).
    pub(crate) fn first_text(&self, names: &[&str]) -> Option<Cow<'_, str>> {
        if let Some(k) = self.targeting_key.as_deref().filter(|k| !k.is_empty()) {
            return Some(Cow::Borrowed(k));
        }
        names
            .iter()
            .filter_map(|n| self.text(n))
            .find(|t| !t.is_empty())
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

pub(crate) fn as_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        _ => None,
    }
}
