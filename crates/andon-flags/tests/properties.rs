//! Properties: evaluation never panics on any flag or context, bucketing is
//! stable, and raising a rollout percentage only ever adds users.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use andon_flags::{
    Condition, Context, Engine, Flag, FlagEnv, FlagSet, Kind, Operator, Override, Prerequisite,
    Reason, Rollout, Rule, Segment, Serve, Split, Stickiness, Weighted, apply_due, bucket, diff,
    evaluate, import_unleash, kill_switch, set_rollout_percentage, stale_flags,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const OPS: [Operator; 19] = [
    Operator::In,
    Operator::NotIn,
    Operator::StartsWith,
    Operator::EndsWith,
    Operator::Contains,
    Operator::Regex,
    Operator::NumEq,
    Operator::NumGt,
    Operator::NumGte,
    Operator::NumLt,
    Operator::NumLte,
    Operator::DateAfter,
    Operator::DateBefore,
    Operator::SemverEq,
    Operator::SemverGt,
    Operator::SemverGte,
    Operator::SemverLt,
    Operator::SemverLte,
    Operator::InCidr,
];

const ATTRS: [&str; 6] = [
    "userId",
    "country",
    "version",
    "currentTime",
    "remoteAddress",
    "targetingKey",
];

/// Strings that stress parsers: regex syntax, huge numbers, versions,
/// dates, addresses, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 .:/_-]{0,12}",
        Just("(".to_owned()),
        Just("a{99999999}".to_owned()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("NaN".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1.2.3-alpha.1+build".to_owned()),
        Just("v1.0.0".to_owned()),
        Just("2024-02-30T25:61:00Z".to_owned()),
        Just("2022-01-29T13:00:00.000Z".to_owned()),
        Just("10.0.0.0/8".to_owned()),
        Just("::1/200".to_owned()),
        Just("ÅÄÖ😊İ".to_owned()),
        ".{0,8}",
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    (
        prop::sample::select(ATTRS.to_vec()),
        prop::sample::select(OPS.to_vec()),
        prop::collection::vec(text(), 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, op, values, ci, negate)| Condition {
            attribute: a.to_owned(),
            operator: op,
            values,
            case_insensitive: ci,
            negate,
        })
}

fn stickiness() -> impl Strategy<Value = Stickiness> {
    prop_oneof![
        Just(Stickiness::TargetingKey),
        Just(Stickiness::Default),
        Just(Stickiness::Random),
        prop::sample::select(ATTRS.to_vec()).prop_map(|a| Stickiness::Attribute(a.to_owned())),
    ]
}

fn variant_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["on", "off", "a", "b", "missing"]).prop_map(str::to_owned)
}

fn percentage() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..=100.0f64,
        any::<f64>(),
        Just(f64::NAN),
        Just(100.0),
        Just(0.0)
    ]
}

fn serve() -> impl Strategy<Value = Serve> {
    prop_oneof![
        variant_name().prop_map(Serve::Variant),
        (
            prop::collection::vec((variant_name(), any::<u32>()), 0..4),
            stickiness(),
            proptest::option::of(text()),
            prop::collection::vec(
                (prop::sample::select(ATTRS.to_vec()), text(), variant_name()),
                0..2
            ),
        )
            .prop_map(|(items, stickiness, salt, ov)| Serve::Split(Split {
                split: items
                    .into_iter()
                    .map(|(variant, weight)| Weighted { variant, weight })
                    .collect(),
                stickiness,
                salt,
                overrides: ov
                    .into_iter()
                    .map(|(a, v, variant)| Override {
                        attribute: a.to_owned(),
                        values: vec![v],
                        variant,
                    })
                    .collect(),
            })),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::collection::vec(condition(), 0..3),
        prop::collection::vec(prop::sample::select(vec!["s1", "s2", "nope"]), 0..2),
        proptest::option::of((percentage(), stickiness(), proptest::option::of(text()))),
        serve(),
    )
        .prop_map(|(conditions, segs, rollout, serve)| Rule {
            description: None,
            conditions,
            segments: segs.into_iter().map(str::to_owned).collect(),
            rollout: rollout.map(|(percentage, stickiness, salt)| Rollout {
                percentage,
                stickiness,
                salt,
            }),
            serve,
        })
}

fn flag_env() -> impl Strategy<Value = FlagEnv> {
    (
        any::<bool>(),
        proptest::option::of(variant_name()),
        proptest::option::of(variant_name()),
        prop::collection::vec(
            (
                prop::sample::select(vec!["f0", "f1", "f2", "ghost"]),
                prop::collection::vec(variant_name(), 0..2),
                any::<bool>(),
            ),
            0..2,
        ),
        prop::collection::vec(rule(), 0..4),
    )
        .prop_map(
            |(enabled, default_variant, off_variant, pre, rules)| FlagEnv {
                enabled,
                default_variant,
                off_variant,
                prerequisites: pre
                    .into_iter()
                    .map(|(f, variants, enabled)| Prerequisite {
                        flag: f.to_owned(),
                        variants,
                        enabled,
                    })
                    .collect(),
                rules,
                ramp: None,
            },
        )
}

fn flag() -> impl Strategy<Value = Flag> {
    (
        prop::sample::select(vec![Kind::Bool, Kind::String, Kind::Number, Kind::Json]),
        prop::collection::btree_map(
            variant_name(),
            prop_oneof![
                Just(json!(true)),
                Just(json!("x")),
                Just(json!(1.5)),
                Just(Value::Null)
            ],
            0..3,
        ),
        any::<bool>(),
        prop::collection::btree_map(
            prop::sample::select(vec!["prod", "dev"]).prop_map(str::to_owned),
            flag_env(),
            0..3,
        ),
    )
        .prop_map(|(kind, variants, temporary, environments)| Flag {
            kind,
            variants,
            temporary,
            environments,
            ..Flag::default()
        })
}

fn flag_set() -> impl Strategy<Value = FlagSet> {
    (
        prop::collection::vec(flag(), 1..4),
        prop::collection::vec(condition(), 0..3),
    )
        .prop_map(|(flags, seg)| {
            let mut set = FlagSet::default();
            for (i, f) in flags.into_iter().enumerate() {
                set.flags.insert(format!("f{i}"), f);
            }
            set.segments.insert(
                "s1".into(),
                Segment {
                    description: None,
                    conditions: seg,
                },
            );
            set.segments.insert("s2".into(), Segment::default());
            set.normalize();
            set
        })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(json!([1, 2])),
        Just(json!({"nested": true})),
    ]
}

fn context() -> impl Strategy<Value = Context> {
    (
        proptest::option::of(text()),
        prop::collection::btree_map(
            prop::sample::select(ATTRS.to_vec()).prop_map(str::to_owned),
            scalar(),
            0..4,
        ),
        prop::collection::btree_map(
            prop::sample::select(ATTRS.to_vec()).prop_map(str::to_owned),
            scalar(),
            0..3,
        ),
    )
        .prop_map(|(targeting_key, mut attributes, props)| {
            attributes.insert(
                "properties".into(),
                Value::Object(props.into_iter().collect()),
            );
            Context {
                targeting_key,
                attributes,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn evaluation_never_panics(set in flag_set(), ctx in context(), now in any::<i64>(), pct in any::<f64>()) {
        let engine = Engine::new(&set);
        for key in ["f0", "f1", "f2", "ghost"] {
            for env in ["prod", "dev", "qa"] {
                let r = engine.evaluate(env, key, &ctx);
                // An error always says why; a success always names a variant.
                prop_assert_eq!(r.reason == Reason::Error, r.error.is_some());
                prop_assert!(r.error.is_some() || r.variant.is_some());
                let _ = engine.evaluate_unleash(env, key, &ctx);
                let _ = evaluate(&set, env, key, &ctx);
            }
        }
        let _ = set.validate();
        let _ = diff(&set, &FlagSet::default());
        let _ = stale_flags(&set, &BTreeMap::from([("f0".to_owned(), now)]), now.wrapping_add(1), 1);
        let mut edited = set.clone();
        let _ = set_rollout_percentage(&mut edited, "f0", "prod", pct);
        let _ = kill_switch(&mut edited, "f1", None);
        let _ = apply_due(&mut edited, now);
        let _ = diff(&set, &edited);
    }

    #[test]
    fn import_never_panics(text in ".{0,200}") {
        let _ = import_unleash(&text);
    }

    #[test]
    fn import_of_odd_documents_never_panics(
        name in ".{0,10}",
        op in prop::sample::select(vec!["IN", "NUM_GT", "SEMVER_EQ", "REGEX", "DATE_AFTER", "IN_CIDR", "???"]),
        value in text(),
        strategy in prop::sample::select(vec!["default", "flexibleRollout", "gradualRolloutUserId", "remoteAddress", "userWithId", "custom"]),
        rollout in text(),
        weight in any::<i64>(),
        ctx in context(),
    ) {
        let doc = json!({"features": [{"name": name, "enabled": true, "strategies": [{
            "name": strategy,
            "parameters": {"rollout": rollout, "percentage": rollout, "IPs": value, "userIds": value},
            "constraints": [{"contextName": "userId", "operator": op, "value": value, "values": [value]}],
            "variants": [{"name": "v", "weight": weight, "stickiness": "userId"}]
        }]}]});
        if let Ok(set) = import_unleash(&doc.to_string()) {
            let engine = Engine::new(&set);
            let _ = engine.evaluate_unleash("default", &name, &ctx);
        }
    }

    #[test]
    fn raising_a_percentage_only_adds_users(salt in ".{0,12}", ids in prop::collection::vec(".{0,16}", 1..40), a in 0.0..=100.0f64, b in 0.0..=100.0f64) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let engine_at = |pct: f64| {
            let set: FlagSet = serde_json::from_value(json!({"flags": {"f": {"environments": {"e": {
                "enabled": true,
                "rules": [{"rollout": {"percentage": pct, "salt": salt}, "serve": "on"}]
            }}}}})).expect("valid");
            Engine::new(&set)
        };
        let (lo, hi) = (engine_at(low), engine_at(high));
        for id in &ids {
            let ctx = Context::with_key(id.clone());
            let b1 = bucket(&salt, id);
            prop_assert!((1..=100).contains(&b1));
            prop_assert_eq!(b1, bucket(&salt, id));
            if lo.is_on("e", "f", &ctx) {
                prop_assert!(hi.is_on("e", "f", &ctx), "{} in at {}% but out at {}%", id, low, high);
            }
            prop_assert_eq!(lo.is_on("e", "f", &ctx), f64::from(b1) <= low && low > 0.0);
        }
    }

    #[test]
    fn splits_are_sticky(key in ".{0,16}", w in prop::collection::vec(1u32..1000, 1..5)) {
        let split: Vec<Value> = w.iter().enumerate().map(|(i, w)| json!({"variant": format!("v{i}"), "weight": w})).collect();
        let variants: serde_json::Map<String, Value> = (0..w.len()).map(|i| (format!("v{i}"), json!(i))).collect();
        let set: FlagSet = serde_json::from_value(json!({"flags": {"f": {"kind": "number", "variants": variants, "environments": {"e": {
            "enabled": true, "default_variant": "v0", "rules": [{"serve": {"split": split}}]
        }}}}})).expect("valid");
        set.validate().expect("valid");
        let e1 = Engine::new(&set);
        let e2 = Engine::new(&set);
        let ctx = Context::with_key(key);
        let first = e1.evaluate("e", "f", &ctx).variant.map(str::to_owned);
        prop_assert!(first.is_some());
        prop_assert_eq!(first.as_deref(), e2.evaluate("e", "f", &ctx).variant);
    }
}
