//! What applying a `flags:` document would change, shown before it is
//! applied (flags as code): one line per change, like
//! `~ flag checkout env production: rollout 5% -> 25%`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{Flag, FlagEnv, FlagSet, Rule, ScheduledChange};
use crate::ramp::Ramp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Add,
    Remove,
    Modify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Flag,
    Segment,
    Schedule,
}

/// One difference between two flag sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub op: ChangeOp,
    pub subject: Subject,
    /// Flag key or segment name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sym = match self.op {
            ChangeOp::Add => '+',
            ChangeOp::Remove => '-',
            ChangeOp::Modify => '~',
        };
        let subject = match self.subject {
            Subject::Flag => "flag",
            Subject::Segment => "segment",
            Subject::Schedule => "schedule",
        };
        write!(f, "{sym} {subject} {}", self.name)?;
        if let Some(env) = &self.env {
            write!(f, " env {env}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

struct Out(Vec<Change>);

impl Out {
    fn push(
        &mut self,
        op: ChangeOp,
        subject: Subject,
        name: &str,
        env: Option<&str>,
        detail: Option<String>,
    ) {
        self.0.push(Change {
            op,
            subject,
            name: name.to_owned(),
            env: env.map(str::to_owned),
            detail,
        });
    }

    fn field(&mut self, name: &str, env: Option<&str>, what: &str, a: String, b: String) {
        if a != b {
            self.push(
                ChangeOp::Modify,
                Subject::Flag,
                name,
                env,
                Some(format!("{what} {a} -> {b}")),
            );
        }
    }
}

/// The changes that turn `old` into `new`, flags and segments in key order.
pub fn diff(old: &FlagSet, new: &FlagSet) -> Vec<Change> {
    let mut out = Out(Vec::new());
    keyed(&old.segments, &new.segments, |k, a, b| match (a, b) {
        (None, Some(_)) => out.push(ChangeOp::Add, Subject::Segment, k, None, None),
        (Some(_), None) => out.push(ChangeOp::Remove, Subject::Segment, k, None, None),
        (Some(a), Some(b)) if a != b => {
            let what = if a.conditions != b.conditions {
                "conditions changed"
            } else {
                "description changed"
            };
            out.push(
                ChangeOp::Modify,
                Subject::Segment,
                k,
                None,
                Some(what.to_owned()),
            );
        }
        _ => {}
    });
    keyed(&old.flags, &new.flags, |k, a, b| match (a, b) {
        (None, Some(_)) => out.push(ChangeOp::Add, Subject::Flag, k, None, None),
        (Some(_), None) => out.push(ChangeOp::Remove, Subject::Flag, k, None, None),
        (Some(a), Some(b)) => flag(&mut out, k, a, b),
        (None, None) => {}
    });
    for s in &old.schedule {
        if !new.schedule.contains(s) {
            schedule(&mut out, ChangeOp::Remove, s);
        }
    }
    for s in &new.schedule {
        if !old.schedule.contains(s) {
            schedule(&mut out, ChangeOp::Add, s);
        }
    }
    out.0
}

fn schedule(out: &mut Out, op: ChangeOp, s: &ScheduledChange) {
    out.push(
        op,
        Subject::Schedule,
        &s.flag,
        Some(&s.env),
        Some(format!("rollout {}% at {}", s.set_rollout_percent, s.at)),
    );
}

fn keyed<T>(
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
    mut f: impl FnMut(&str, Option<&T>, Option<&T>),
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        f(k, a.get(k), b.get(k));
    }
}

fn flag(out: &mut Out, k: &str, a: &Flag, b: &Flag) {
    out.field(
        k,
        None,
        "kind",
        a.kind.as_str().into(),
        b.kind.as_str().into(),
    );
    if a.description != b.description {
        out.push(
            ChangeOp::Modify,
            Subject::Flag,
            k,
            None,
            Some("description changed".into()),
        );
    }
    out.field(
        k,
        None,
        "owner",
        opt(a.owner.as_deref()),
        opt(b.owner.as_deref()),
    );
    out.field(
        k,
        None,
        "tags",
        format!("[{}]", a.tags.join(", ")),
        format!("[{}]", b.tags.join(", ")),
    );
    out.field(
        k,
        None,
        "temporary",
        a.temporary.to_string(),
        b.temporary.to_string(),
    );
    keyed(&a.variants, &b.variants, |v, x, y| {
        let detail = match (x, y) {
            (None, Some(y)) => format!("variant {v} added ({y})"),
            (Some(_), None) => format!("variant {v} removed"),
            (Some(x), Some(y)) if x != y => format!("variant {v} {x} -> {y}"),
            _ => return,
        };
        out.push(ChangeOp::Modify, Subject::Flag, k, None, Some(detail));
    });
    keyed(&a.environments, &b.environments, |e, x, y| match (x, y) {
        (None, Some(_)) => out.push(ChangeOp::Add, Subject::Flag, k, Some(e), None),
        (Some(_), None) => out.push(ChangeOp::Remove, Subject::Flag, k, Some(e), None),
        (Some(x), Some(y)) => env(out, k, e, a, b, x, y),
        (None, None) => {}
    });
}

fn env(out: &mut Out, k: &str, e: &str, fa: &Flag, fb: &Flag, a: &FlagEnv, b: &FlagEnv) {
    let e = Some(e);
    out.field(
        k,
        e,
        "enabled",
        a.enabled.to_string(),
        b.enabled.to_string(),
    );
    out.field(
        k,
        e,
        "default_variant",
        opt(a.effective_default(fa.kind)),
        opt(b.effective_default(fb.kind)),
    );
    out.field(
        k,
        e,
        "off_variant",
        opt(a.effective_off(fa.kind)),
        opt(b.effective_off(fb.kind)),
    );
    if a.prerequisites != b.prerequisites {
        out.push(
            ChangeOp::Modify,
            Subject::Flag,
            k,
            e,
            Some("prerequisites changed".into()),
        );
    }
    let (ra, rb) = (a.rollout_percentage(), b.rollout_percentage());
    if ra != rb {
        out.push(
            ChangeOp::Modify,
            Subject::Flag,
            k,
            e,
            Some(format!("rollout {} -> {}", pct(ra), pct(rb))),
        );
    }
    ramp(out, k, e, a.ramp.as_ref(), b.ramp.as_ref());
    // Rules other than the rollout percentage itself.
    if masked(a) != masked(b) {
        let detail = if a.rules.len() == b.rules.len() {
            format!("rules changed ({} rules)", b.rules.len())
        } else {
            format!("rules {} -> {}", a.rules.len(), b.rules.len())
        };
        out.push(ChangeOp::Modify, Subject::Flag, k, e, Some(detail));
    }
}

fn ramp(out: &mut Out, k: &str, e: Option<&str>, a: Option<&Ramp>, b: Option<&Ramp>) {
    let plan = |r: &Ramp| format!("steps {:?} every {}", r.steps, r.every);
    let status = |r: Option<&Ramp>| {
        r.and_then(|r| r.state.as_ref())
            .map_or("none".to_owned(), |s| {
                format!("{} (step {})", s.status.as_str(), s.step + 1)
            })
    };
    let detail = match (a, b) {
        (None, Some(b)) => format!("ramp added: {}", plan(b)),
        (Some(_), None) => "ramp removed".to_owned(),
        (Some(a), Some(b)) if !a.same_plan(b) => format!("ramp {} -> {}", plan(a), plan(b)),
        _ => String::new(),
    };
    if !detail.is_empty() {
        out.push(ChangeOp::Modify, Subject::Flag, k, e, Some(detail));
    }
    out.field(k, e, "ramp", status(a), status(b));
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or("none").to_owned()
}

fn pct(p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{p}%"),
        None => "none".to_owned(),
    }
}

fn masked(env: &FlagEnv) -> Vec<Rule> {
    let mut e = env.clone();
    if let Some(r) = e.catch_all_mut().and_then(|r| r.rollout.as_mut()) {
        r.percentage = 0.0;
    }
    e.rules
}
