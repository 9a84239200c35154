//! Compiling a [`FlagSet`] into an [`Engine`]: names resolved to indices,
//! regexes compiled, numbers, dates, versions and CIDRs parsed once, so that
//! evaluation does no parsing and, on the common paths, no allocation.
//!
//! Nothing here fails: whatever cannot be compiled becomes a condition that
//! never holds or a reference that evaluates to `ERROR`, which is what
//! Unleash does with a bad regex or an unknown operator.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::context::{Name, TARGETING_KEY};
use crate::model::{Condition, Flag, FlagEnv, FlagSet, Kind, Operator, Serve, Stickiness};

/// A compiled, immutable [`FlagSet`], cheap to evaluate from many threads.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) flags: Vec<CFlag>,
    pub(crate) index: HashMap<Box<str>, usize, FxBuild>,
    pub(crate) segments: Vec<CSegment>,
}

#[derive(Debug, Clone)]
pub(crate) struct CFlag {
    pub(crate) key: Box<str>,
    pub(crate) kind: Kind,
    pub(crate) variants: Vec<(Box<str>, Value)>,
    pub(crate) envs: Vec<(Box<str>, CEnv)>,
}

/// A variant index, or the name that did not resolve.
pub(crate) type VarRef = Result<usize, Box<str>>;

#[derive(Debug, Clone)]
pub(crate) struct CEnv {
    pub(crate) enabled: bool,
    pub(crate) default: Option<VarRef>,
    pub(crate) off: Option<VarRef>,
    pub(crate) prereqs: Vec<CPrereq>,
    pub(crate) rules: Vec<CRule>,
}

#[derive(Debug, Clone)]
pub(crate) struct CPrereq {
    pub(crate) flag: Option<usize>,
    pub(crate) variants: Vec<Box<str>>,
    pub(crate) enabled: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CRule {
    pub(crate) conditions: Vec<CCond>,
    /// `None` for a segment that does not exist: the rule never matches.
    pub(crate) segments: Vec<Option<usize>>,
    pub(crate) rollout: Option<CRollout>,
    pub(crate) serve: CServe,
}

#[derive(Debug, Clone)]
pub(crate) struct CRollout {
    pub(crate) percentage: f64,
    pub(crate) stickiness: CStick,
    pub(crate) salt: Box<str>,
}

#[derive(Debug, Clone)]
pub(crate) enum CStick {
    TargetingKey,
    Default,
    Random,
    Attribute(Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) enum CServe {
    Variant(VarRef),
    Split(CSplit),
}

#[derive(Debug, Clone)]
pub(crate) struct CSplit {
    pub(crate) items: Vec<(VarRef, u32)>,
    pub(crate) total: u64,
    pub(crate) stickiness: CStick,
    pub(crate) salt: Box<str>,
    pub(crate) overrides: Vec<(Box<str>, Vec<Box<str>>, VarRef)>,
}

#[derive(Debug, Clone)]
pub(crate) struct CSegment {
    pub(crate) conditions: Vec<CCond>,
}

#[derive(Debug, Clone)]
pub(crate) struct CCond {
    pub(crate) attribute: Name,
    /// The attribute is `targetingKey`: read the key, skip the lookup.
    pub(crate) is_key: bool,
    pub(crate) matcher: Matcher,
    pub(crate) negate: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    #[inline]
    pub(crate) fn test(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => o == Equal,
            Cmp::Gt => o == Greater,
            Cmp::Gte => o != Less,
            Cmp::Lt => o == Less,
            Cmp::Lte => o != Greater,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone)]
pub(crate) enum ValueSet {
    Few(Vec<Box<str>>),
    Many(StrSet),
}

impl ValueSet {
    #[inline]
    pub(crate) fn contains(&self, s: &str) -> bool {
        match self {
            ValueSet::Few(v) => v.iter().any(|x| **x == *s),
            ValueSet::Many(h) => h.contains(s),
        }
    }
}

/// An open-addressing string set for long `in` lists (segments of user
/// ids): one inline hash and usually one compare, where a general map
/// spends several times that.
#[derive(Debug, Clone)]
pub(crate) struct StrSet {
    shift: u32,
    slots: Box<[Option<Hashed>]>,
}

/// A string with its hash.
type Hashed = (u64, Box<str>);

#[inline]
fn fx_str(s: &str) -> u64 {
    let mut h = Fx::default();
    h.write(s.as_bytes());
    h.finish()
}

impl StrSet {
    pub(crate) fn new(values: impl Iterator<Item = Box<str>>) -> StrSet {
        let values: HashSet<Box<str>> = values.collect();
        // Load at most one half: probes stay short and a free slot exists.
        let cap = (values.len() * 2).next_power_of_two().max(8);
        let mut set = StrSet {
            shift: 64 - cap.trailing_zeros(),
            slots: vec![None; cap].into_boxed_slice(),
        };
        for v in values {
            let h = fx_str(&v);
            let mut i = set.index(h);
            while set.slots[i].is_some() {
                i = (i + 1) & (cap - 1);
            }
            set.slots[i] = Some((h, v));
        }
        set
    }

    /// The slot for a hash: its top bits, which FxHash mixes best.
    #[inline]
    fn index(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    #[inline]
    pub(crate) fn contains(&self, s: &str) -> bool {
        let h = fx_str(s);
        let mask = self.slots.len() - 1;
        let mut i = self.index(h);
        for _ in 0..self.slots.len() {
            match &self.slots[i] {
                None => return false,
                Some((hh, v)) if *hh == h && **v == *s => return true,
                Some(_) => i = (i + 1) & mask,
            }
        }
        false
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    In {
        values: ValueSet,
        ci: bool,
    },
    Str {
        op: StrOp,
        values: Vec<Box<str>>,
        ci: bool,
    },
    Regex(Vec<regex::Regex>),
    Num(Cmp, Vec<f64>),
    Date(Cmp, Vec<jiff::Timestamp>),
    Semver(Cmp, Vec<semver::Version>),
    Cidr(Vec<IpNet>, Vec<Box<str>>),
    /// Cannot be evaluated (an invalid regex): false, even when negated.
    Never,
}

/// Lower-cases for case-insensitive comparison, borrowing when already lower.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// A number as JavaScript's `Number()` would read a decimal string; `None`
/// for text that is not a finite number.
pub(crate) fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An instant: RFC 3339 with offset, or a date-time/date without one (UTC).
pub(crate) fn parse_date(s: &str) -> Option<jiff::Timestamp> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    None
}

/// A CIDR, or a single address as a host network.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Some(n);
    }
    t.parse::<IpAddr>().ok().map(IpNet::from)
}

impl Engine {
    /// Compiles every flag and segment.
    pub fn new(set: &FlagSet) -> Engine {
        let keys: Vec<&str> = set.flags.keys().map(String::as_str).collect();
        Engine::build(set, &keys, None)
    }

    /// Compiles only `key`, the flags it names as prerequisites and the
    /// segments they use: what a one-off evaluation needs.
    pub(crate) fn for_flag(set: &FlagSet, key: &str) -> Engine {
        let mut keys = vec![key];
        if let Some(flag) = set.flags.get(key) {
            for env in flag.environments.values() {
                for p in &env.prerequisites {
                    if !keys.contains(&p.flag.as_str()) {
                        keys.push(&p.flag);
                    }
                }
            }
        }
        let mut segs: Vec<&str> = Vec::new();
        for k in &keys {
            if let Some(flag) = set.flags.get(*k) {
                for env in flag.environments.values() {
                    for r in &env.rules {
                        segs.extend(r.segments.iter().map(String::as_str));
                    }
                }
            }
        }
        Engine::build(set, &keys, Some(&segs))
    }

    fn build(set: &FlagSet, keys: &[&str], only_segments: Option<&[&str]>) -> Engine {
        let mut seg_index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut segments = Vec::new();
        for (name, seg) in &set.segments {
            if only_segments.is_some_and(|only| !only.contains(&name.as_str())) {
                continue;
            }
            seg_index.insert(name, segments.len());
            segments.push(CSegment {
                conditions: seg.conditions.iter().map(compile_condition).collect(),
            });
        }
        let present: Vec<(&str, &Flag)> = keys
            .iter()
            .filter_map(|k| set.flags.get_key_value(*k))
            .map(|(k, f)| (k.as_str(), f))
            .collect();
        let mut index = HashMap::with_capacity_and_hasher(present.len(), FxBuild::default());
        for (i, (k, _)) in present.iter().enumerate() {
            index.insert(Box::from(*k), i);
        }
        let flags = present
            .iter()
            .map(|(k, f)| compile_flag(k, f, &index, &seg_index))
            .collect();
        Engine {
            flags,
            index,
            segments,
        }
    }

    /// The number of compiled flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

fn compile_flag(
    key: &str,
    flag: &Flag,
    index: &HashMap<Box<str>, usize, FxBuild>,
    segs: &BTreeMap<&str, usize>,
) -> CFlag {
    let variants: Vec<(Box<str>, Value)> = flag
        .variant_names()
        .into_iter()
        .filter_map(|n| flag.variant_value(n).map(|v| (Box::from(n), v.clone())))
        .collect();
    let var = |name: &str| -> VarRef {
        variants
            .iter()
            .position(|(n, _)| **n == *name)
            .ok_or_else(|| Box::from(name))
    };
    let envs = flag
        .environments
        .iter()
        .map(|(name, env)| {
            (
                Box::from(name.as_str()),
                compile_env(key, flag.kind, env, &var, index, segs),
            )
        })
        .collect();
    CFlag {
        key: Box::from(key),
        kind: flag.kind,
        variants,
        envs,
    }
}

fn compile_env(
    key: &str,
    kind: Kind,
    env: &FlagEnv,
    var: &dyn Fn(&str) -> VarRef,
    index: &HashMap<Box<str>, usize, FxBuild>,
    segs: &BTreeMap<&str, usize>,
) -> CEnv {
    let prereqs = env
        .prerequisites
        .iter()
        .map(|p| CPrereq {
            flag: index.get(p.flag.as_str()).copied(),
            variants: p.variants.iter().map(|v| Box::from(v.as_str())).collect(),
            enabled: p.enabled,
        })
        .collect();
    let rules = env
        .rules
        .iter()
        .map(|r| CRule {
            conditions: r.conditions.iter().map(compile_condition).collect(),
            segments: r
                .segments
                .iter()
                .map(|s| segs.get(s.as_str()).copied())
                .collect(),
            rollout: r.rollout.as_ref().map(|ro| CRollout {
                percentage: ro.percentage,
                stickiness: compile_stick(&ro.stickiness),
                salt: Box::from(ro.salt.as_deref().unwrap_or(key)),
            }),
            serve: match &r.serve {
                Serve::Variant(v) => CServe::Variant(var(v)),
                Serve::Split(s) => CServe::Split(CSplit {
                    items: s
                        .split
                        .iter()
                        .map(|w| (var(&w.variant), w.weight))
                        .collect(),
                    total: s.split.iter().map(|w| u64::from(w.weight)).sum(),
                    stickiness: compile_stick(&s.stickiness),
                    salt: Box::from(s.salt.as_deref().unwrap_or(key)),
                    overrides: s
                        .overrides
                        .iter()
                        .map(|o| {
                            (
                                Box::from(o.attribute.as_str()),
                                o.values.iter().map(|v| Box::from(v.as_str())).collect(),
                                var(&o.variant),
                            )
                        })
                        .collect(),
                }),
            },
        })
        .collect();
    CEnv {
        enabled: env.enabled,
        default: env.effective_default(kind).map(var),
        off: env.effective_off(kind).map(var),
        prereqs,
        rules,
    }
}

fn compile_stick(s: &Stickiness) -> CStick {
    match s {
        Stickiness::TargetingKey => CStick::TargetingKey,
        Stickiness::Default => CStick::Default,
        Stickiness::Random => CStick::Random,
        Stickiness::Attribute(a) if a == TARGETING_KEY => CStick::TargetingKey,
        Stickiness::Attribute(a) => CStick::Attribute(Box::from(a.as_str())),
    }
}

pub(crate) fn compile_condition(c: &Condition) -> CCond {
    use Operator::*;
    let ci = c.case_insensitive;
    let boxed = |s: &String| -> Box<str> {
        if ci {
            Box::from(s.to_lowercase())
        } else {
            Box::from(s.as_str())
        }
    };
    let mut negate = c.negate;
    let matcher = match c.operator {
        In | NotIn => {
            if c.operator == NotIn {
                negate = !negate;
            }
            let values = if c.values.len() > 8 {
                ValueSet::Many(StrSet::new(c.values.iter().map(boxed)))
            } else {
                ValueSet::Few(c.values.iter().map(boxed).collect())
            };
            Matcher::In { values, ci }
        }
        StartsWith | EndsWith | Contains => Matcher::Str {
            op: match c.operator {
                StartsWith => StrOp::StartsWith,
                EndsWith => StrOp::EndsWith,
                _ => StrOp::Contains,
            },
            values: c.values.iter().map(boxed).collect(),
            ci,
        },
        Regex => {
            let compiled: Result<Vec<_>, _> = c
                .values
                .iter()
                .map(|v| {
                    regex::RegexBuilder::new(v)
                        .case_insensitive(ci)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20)
                        .build()
                })
                .collect();
            match compiled {
                Ok(r) if !r.is_empty() => Matcher::Regex(r),
                _ => Matcher::Never,
            }
        }
        NumEq | NumGt | NumGte | NumLt | NumLte => Matcher::Num(
            cmp_of(c.operator),
            c.values.iter().filter_map(|v| parse_num(v)).collect(),
        ),
        DateAfter | DateBefore => Matcher::Date(
            cmp_of(c.operator),
            c.values.iter().filter_map(|v| parse_date(v)).collect(),
        ),
        SemverEq | SemverGt | SemverGte | SemverLt | SemverLte => Matcher::Semver(
            cmp_of(c.operator),
            c.values
                .iter()
                .filter_map(|v| semver::Version::parse(v.trim()).ok())
                .collect(),
        ),
        InCidr => Matcher::Cidr(
            c.values.iter().filter_map(|v| parse_net(v)).collect(),
            c.values.iter().map(|v| Box::from(v.trim())).collect(),
        ),
    };
    CCond {
        is_key: c.attribute == TARGETING_KEY,
        attribute: Name::new(&c.attribute),
        matcher,
        negate,
    }
}

fn cmp_of(op: Operator) -> Cmp {
    use Operator::*;
    match op {
        NumGt | SemverGt | DateAfter => Cmp::Gt,
        NumGte | SemverGte => Cmp::Gte,
        NumLt | SemverLt | DateBefore => Cmp::Lt,
        NumLte | SemverLte => Cmp::Lte,
        _ => Cmp::Eq,
    }
}

/// FxHash (rustc's hasher): flag keys are short and trusted, so a fast
/// non-keyed hash beats SipHash on the hot lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

pub(crate) type FxBuild = BuildHasherDefault<Fx>;

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_K);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}
