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
        match self.attributes.get(name) {
            Some(v) if is_scalar(v) => Some(v),
            _ => match self.attributes.get("properties") {
                Some(Value::Object(props)) => props.get(name).filter(|v| is_scalar(v)),
                _ => None,
            },
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

/// An attribute name prepared for quick comparison with context keys:
/// length and first eight bytes compared as integers before any string
/// compare.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub(crate) text: Box<str>,
    len: usize,
    prefix: u64,
}

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        Name {
            text: Box::from(s),
            len: s.len(),
            prefix: prefix(s),
        }
    }
}

#[inline]
fn prefix(s: &str) -> u64 {
    let b = s.as_bytes();
    if let Some(head) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*head);
    }
    // Byte by byte: a variable-length copy would call memcpy.
    let mut w = 0u64;
    for (i, &c) in b.iter().enumerate() {
        w |= u64::from(c) << (8 * i);
    }
    w
}

const VIEW_SLOTS: usize = 16;

type Slot<'c> = (usize, u64, &'c str, &'c Value);

static NULL: Value = Value::Null;

/// A context prepared once per evaluation for the many attribute lookups
/// of a rule walk: its scalar top-level attributes in a flat array with
/// their lengths and prefixes (when there are few), and its `properties`.
/// Walking the tree once beats a tree search per condition.
pub(crate) struct View<'c> {
    ctx: &'c Context,
    n: usize,
    slots: [Slot<'c>; VIEW_SLOTS],
    props: Option<&'c serde_json::Map<String, Value>>,
}

impl<'c> View<'c> {
    pub(crate) fn new(ctx: &'c Context) -> View<'c> {
        let mut view = View {
            ctx,
            n: 0,
            slots: [(0, 0, "", &NULL); VIEW_SLOTS],
            props: None,
        };
        if ctx.attributes.len() <= VIEW_SLOTS {
            for (k, v) in &ctx.attributes {
                match v {
                    Value::Object(p) if k == "properties" => view.props = Some(p),
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                        if let Some(slot) = view.slots.get_mut(view.n) {
                            *slot = (k.len(), prefix(k), k, v);
                            view.n += 1;
                        }
                    }
                    _ => {}
                }
            }
        } else {
            if let Some(Value::Object(p)) = ctx.attributes.get("properties") {
                view.props = Some(p);
            }
            view.n = usize::MAX;
        }
        view
    }

    pub(crate) fn ctx(&self) -> &'c Context {
        self.ctx
    }

    /// Same answer as [`Context::get`] for a name that is not the
    /// targeting key.
    #[inline]
    pub(crate) fn lookup(&self, name: &Name) -> Option<&'c Value> {
        if self.n == usize::MAX {
            if let Some(v) = self
                .ctx
                .attributes
                .get(&*name.text)
                .filter(|v| is_scalar(v))
            {
                return Some(v);
            }
        } else {
            for &(len, pre, key, v) in &self.slots[..self.n] {
                if len == name.len && pre == name.prefix && (len <= 8 || key == &*name.text) {
                    return Some(v);
                }
            }
        }
        self.props
            .and_then(|p| p.get(&*name.text))
            .filter(|v| is_scalar(v))
    }
}
