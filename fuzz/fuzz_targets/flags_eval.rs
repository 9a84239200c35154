//! Flag documents and evaluation contexts from any bytes: building an
//! [`Engine`], evaluating every flag in every environment (native and
//! Unleash views), validating, diffing, editing and importing Unleash
//! documents must never panic, and every evaluation must explain itself.
//!
//! Input: the first byte picks the mode.
//! - even: JSON text, `FLAGSET \0 CONTEXT` (either part may be garbage; a
//!   part that is not a flag set is fed to the Unleash importer instead).
//! - odd: structured — the rest drives a generator of flag sets and contexts
//!   over Andon's real vocabulary (operators, stickiness, splits...), so the
//!   fuzzer spends its time in evaluation rather than in JSON syntax errors.
#![no_main]

use std::collections::BTreeMap;

use andon_flags::{
    Context, Engine, FlagSet, Reason, apply_due, diff, evaluate, import_unleash,
    import_unleash_env, kill_switch, set_rollout_percentage, stale_flags,
};
use arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        json_mode(rest);
    } else {
        let mut u = Unstructured::new(rest);
        if let Ok((set, ctx)) = structured(&mut u) {
            let pct = u.arbitrary::<f64>().unwrap_or(50.0);
            let now = u.arbitrary::<i64>().unwrap_or(0);
            exercise(set, &ctx, pct, now);
        }
    }
});

fn json_mode(rest: &[u8]) {
    let (set_part, ctx_part) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let ctx: Context = serde_json::from_slice(ctx_part).unwrap_or_default();
    match serde_json::from_slice::<FlagSet>(set_part) {
        Ok(set) => exercise(set, &ctx, 37.5, 0),
        Err(_) => {
            let text = String::from_utf8_lossy(set_part);
            if let Ok(set) = import_unleash(&text) {
                exercise(set, &ctx, 37.5, 0);
            }
            let _ = import_unleash_env(&text, "production");
        }
    }
}

/// Everything a server does with a flag set it was given.
fn exercise(mut set: FlagSet, ctx: &Context, pct: f64, now: i64) {
    let original = set.clone();
    set.normalize();
    let _ = set.validate().map_err(|e| e.to_string());
    let engine = Engine::new(&set);
    let _ = (engine.len(), engine.is_empty());
    let mut keys: Vec<String> = set.flags.keys().take(8).cloned().collect();
    keys.push("ghost".into());
    let mut envs: Vec<String> = set
        .flags
        .values()
        .flat_map(|f| f.environments.keys().cloned())
        .take(6)
        .collect();
    envs.push("production".into());
    for key in &keys {
        for env in &envs {
            let r = engine.evaluate(env, key, ctx);
            // An error always says why; a success always names a variant.
            assert_eq!(r.reason == Reason::Error, r.error.is_some(), "{r:?}");
            assert!(r.error.is_some() || r.variant.is_some(), "{r:?}");
            let owned = r.to_evaluation();
            let _ = serde_json::to_string(&owned);
            let _ = engine.is_on(env, key, ctx);
            let _ = engine.evaluate_unleash(env, key, ctx);
            let _ = evaluate(&set, env, key, ctx);
        }
    }
    let _ = diff(&original, &set);
    let mut edited = set.clone();
    if let Some(key) = keys.first() {
        let env = envs.first().map_or("production", String::as_str);
        let _ = set_rollout_percentage(&mut edited, key, env, pct).map_err(|e| e.to_string());
        let _ = kill_switch(&mut edited, key, None).map_err(|e| e.to_string());
        let _ = kill_switch(&mut edited, key, Some(env)).map_err(|e| e.to_string());
    }
    let _ = apply_due(&mut edited, now);
    let seen: BTreeMap<String, i64> = keys.iter().map(|k| (k.clone(), now)).collect();
    let _ = stale_flags(&edited, &seen, now.wrapping_add(1), 1);
    let changes = diff(&set, &edited);
    let _ = format!("{changes:?}");
    let _ = serde_json::to_string(&edited);
}

const ATTRS: &[&str] = &[
    "targetingKey",
    "userId",
    "sessionId",
    "remoteAddress",
    "country",
    "email",
    "version",
    "plan",
    "age",
    "currentTime",
    "appName",
    "properties",
    "",
];
const OPS: &[&str] = &[
    "in",
    "not_in",
    "equals",
    "not_equals",
    "starts_with",
    "ends_with",
    "contains",
    "regex",
    "num_eq",
    "num_gt",
    "num_gte",
    "num_lt",
    "num_lte",
    "date_after",
    "date_before",
    "semver_eq",
    "semver_gt",
    "semver_gte",
    "semver_lt",
    "semver_lte",
    "in_cidr",
];
const TEXTS: &[&str] = &[
    "",
    "a",
    "NO",
    "no",
    "@example.com",
    "1.2.3",
    "1.2.3-beta.1",
    "v1.0.0",
    "2.0.0",
    "10",
    "-3.5",
    "1e308",
    "NaN",
    "inf",
    "2024-01-01T00:00:00Z",
    "2099-12-31T23:59:59.999Z",
    "10.0.0.0/8",
    "::1/128",
    "192.168.1.1",
    "300.1.1.1/33",
    "^a.*$",
    "(",
    "[z-a]",
    "\u{0}",
    "é",
    "on",
    "off",
];
const STICKY: &[&str] = &[
    "targetingKey",
    "default",
    "random",
    "userId",
    "sessionId",
    "country",
    "",
];
const FLAGS: &[&str] = &["f0", "f1", "f2"];
const VARIANTS: &[&str] = &["on", "off", "a", "b", "c", "missing"];
const ENVS: &[&str] = &["production", "staging"];

fn pick<'a>(u: &mut Unstructured<'_>, from: &[&'a str]) -> ArbResult<&'a str> {
    Ok(*u.choose(from)?)
}

/// Mostly the vocabulary, sometimes raw fuzz text.
fn text(u: &mut Unstructured<'_>) -> ArbResult<String> {
    if u.ratio(1, 5)? {
        Ok(u.arbitrary::<&str>()?.chars().take(40).collect())
    } else {
        Ok(pick(u, TEXTS)?.to_owned())
    }
}

fn scalar(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => json!(text(u)?),
        1 => json!(u.arbitrary::<i64>()?),
        2 => json!(u.arbitrary::<f64>()?),
        3 => json!(u.arbitrary::<bool>()?),
        _ => Value::Null,
    })
}

fn condition(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    let mut values = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        values.push(scalar(u)?);
    }
    let mut c = json!({
        "attribute": pick(u, ATTRS)?,
        "operator": pick(u, OPS)?,
        "values": values,
        "case_insensitive": u.arbitrary::<bool>()?,
        "negate": u.arbitrary::<bool>()?,
    });
    if u.ratio(1, 4)? {
        c["value"] = scalar(u)?;
    }
    Ok(c)
}

fn stickiness(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    Ok(json!(pick(u, STICKY)?))
}

fn serve(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    if u.arbitrary::<bool>()? {
        return Ok(json!(pick(u, VARIANTS)?));
    }
    let mut split = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        split.push(json!({"variant": pick(u, VARIANTS)?, "weight": u.int_in_range(0..=u32::MAX)?}));
    }
    let mut s = json!({"split": split, "stickiness": stickiness(u)?});
    if u.arbitrary::<bool>()? {
        s["salt"] = json!(text(u)?);
    }
    if u.ratio(1, 3)? {
        s["overrides"] = json!([{
            "attribute": pick(u, ATTRS)?,
            "values": [text(u)?],
            "variant": pick(u, VARIANTS)?,
        }]);
    }
    Ok(s)
}

fn rule(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    let mut conditions = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        conditions.push(condition(u)?);
    }
    let mut r = json!({"conditions": conditions, "serve": serve(u)?});
    if u.arbitrary::<bool>()? {
        r["segments"] = json!([pick(u, &["seg", "ghost-segment"])?]);
    }
    if u.arbitrary::<bool>()? {
        let pct = match u.int_in_range(0..=3)? {
            0 => json!(u.int_in_range(0..=100)?),
            1 => json!(u.arbitrary::<f64>()?),
            _ => json!(f64::from(u.int_in_range(0..=1000)?) / 10.0),
        };
        r["rollout"] = json!({"percentage": pct, "stickiness": stickiness(u)?, "salt": text(u)?});
    }
    Ok(r)
}

fn flag_env(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    let mut rules = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        rules.push(rule(u)?);
    }
    let mut e = json!({"enabled": u.ratio(4, 5)?, "rules": rules});
    if u.arbitrary::<bool>()? {
        e["default_variant"] = json!(pick(u, VARIANTS)?);
    }
    if u.ratio(1, 4)? {
        e["off_variant"] = json!(pick(u, VARIANTS)?);
    }
    if u.ratio(1, 3)? {
        e["prerequisites"] = json!([{
            "flag": pick(u, FLAGS)?,
            "enabled": u.arbitrary::<bool>()?,
            "variants": if u.arbitrary::<bool>()? { json!([pick(u, VARIANTS)?]) } else { json!([]) },
        }]);
    }
    Ok(e)
}

fn structured(u: &mut Unstructured<'_>) -> ArbResult<(FlagSet, Context)> {
    let mut flags = serde_json::Map::new();
    for key in FLAGS.iter().take(u.int_in_range(0..=3)?) {
        let kind = pick(u, &["bool", "string", "number", "json"])?;
        let mut variants = serde_json::Map::new();
        if kind != "bool" || u.ratio(1, 4)? {
            for name in ["a", "b", "c"].iter().take(u.int_in_range(0..=3)?) {
                variants.insert((*name).into(), scalar(u)?);
            }
        }
        let mut environments = serde_json::Map::new();
        for env in ENVS {
            if u.ratio(3, 4)? {
                environments.insert((*env).into(), flag_env(u)?);
            }
        }
        flags.insert(
            (*key).into(),
            json!({
                "kind": kind,
                "variants": variants,
                "temporary": u.arbitrary::<bool>()?,
                "environments": environments,
            }),
        );
    }
    let mut seg_conditions = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        seg_conditions.push(condition(u)?);
    }
    let mut doc = json!({"flags": flags, "segments": {"seg": {"conditions": seg_conditions}}});
    if u.ratio(1, 4)? {
        doc["schedule"] = json!([{
            "at": u.arbitrary::<i64>()?,
            "flag": pick(u, FLAGS)?,
            "env": pick(u, ENVS)?,
            "set_rollout_percent": u.arbitrary::<f64>()?,
        }]);
    }
    // A generator that builds an invalid document (e.g. a condition value
    // that is an object) is fine: it simply fails to parse.
    let set: FlagSet =
        serde_json::from_value(doc).map_err(|_| arbitrary::Error::IncorrectFormat)?;
    let mut ctx = serde_json::Map::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let name = pick(u, ATTRS)?;
        let value = if name == "properties" {
            json!({ pick(u, ATTRS)?: scalar(u)? })
        } else if name == "targetingKey" {
            json!(text(u)?)
        } else {
            scalar(u)?
        };
        ctx.insert(name.into(), value);
    }
    let ctx: Context = serde_json::from_value(Value::Object(ctx))
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok((set, ctx))
}
