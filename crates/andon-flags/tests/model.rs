//! The native model: documents, evaluation reasons, operators, edits,
//! diffs, schedules and stale-flag reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use andon_flags::{
    Context, Engine, ErrorCode, FlagSet, Reason, ScheduledChange, apply_due, diff, evaluate,
    kill_switch, set_rollout_percentage, stale_flags,
};
use serde_json::{Value, json};

fn doc() -> FlagSet {
    let mut set: FlagSet = serde_json::from_value(json!({
        "segments": {
            "beta-testers": {
                "description": "people who asked for early access",
                "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}]
            }
        },
        "flags": {
            "new-checkout": {
                "owner": "team-pay",
                "temporary": true,
                "tags": ["checkout"],
                "environments": {
                    "staging": {"enabled": true},
                    "production": {
                        "enabled": true,
                        "rules": [
                            {"segments": ["beta-testers"], "serve": "on"},
                            {"conditions": [{"attribute": "country", "operator": "in", "values": ["NO", "se"], "case_insensitive": true}], "serve": "off"},
                            {"rollout": {"percentage": 5}, "serve": "on"}
                        ]
                    }
                }
            },
            "theme": {
                "kind": "string",
                "variants": {"blue": "blue", "red": "red", "green": "green"},
                "environments": {
                    "production": {
                        "enabled": true,
                        "default_variant": "blue",
                        "prerequisites": [{"flag": "new-checkout"}],
                        "rules": [{"serve": {"split": [
                            {"variant": "blue", "weight": 34},
                            {"variant": "red", "weight": 33},
                            {"variant": "green", "weight": 33}
                        ]}}]
                    }
                }
            },
            "limit": {
                "kind": "number",
                "variants": {"low": 10, "high": 100},
                "environments": {
                    "production": {
                        "enabled": true,
                        "default_variant": "low",
                        "rules": [{"conditions": [{"attribute": "plan", "operator": "semver_gte", "value": "2.0.0"}], "serve": "high"}]
                    }
                }
            }
        }
    }))
    .expect("document parses");
    set.normalize();
    set
}

#[test]
fn document_validates_and_round_trips() {
    let set = doc();
    set.validate().expect("valid");
    assert_eq!(set.flags["new-checkout"].key, "new-checkout");
    let text = serde_json::to_string(&set).expect("serialise");
    let back: FlagSet = serde_json::from_str(&text).expect("parse back");
    assert_eq!(back, set);
}

#[test]
fn unknown_fields_are_refused() {
    let err = serde_json::from_value::<FlagSet>(json!({"flags": {"x": {"enviroments": {}}}}));
    assert!(err.is_err());
}

#[test]
fn validation_points_at_the_problem() {
    let mut set = doc();
    if let Some(env) = set
        .flags
        .get_mut("theme")
        .and_then(|f| f.environments.get_mut("production"))
    {
        env.default_variant = Some("purple".into());
    }
    let err = set.validate().expect_err("unknown variant").to_string();
    assert_eq!(
        err,
        "flags.theme.environments.production.default_variant: unknown variant 'purple'"
    );
}

#[test]
fn reasons() {
    let set = doc();
    let e = Engine::new(&set);
    let r = e.evaluate("staging", "new-checkout", &Context::with_key("u1"));
    assert_eq!((r.value, r.reason), (&json!(true), Reason::Static));

    let beta = Context::with_key("u1").attr("email", "ann@example.com");
    let r = e.evaluate("production", "new-checkout", &beta);
    assert_eq!((r.variant, r.reason), (Some("on"), Reason::TargetingMatch));

    let nordic = Context::with_key("u1").attr("country", "SE");
    let r = e.evaluate("production", "new-checkout", &nordic);
    assert_eq!((r.variant, r.reason), (Some("off"), Reason::TargetingMatch));

    // Someone in the 5% and someone not.
    let (mut split, mut default) = (0, 0);
    for i in 0..200 {
        let r = e.evaluate(
            "production",
            "new-checkout",
            &Context::with_key(format!("user-{i}")),
        );
        match r.reason {
            Reason::Split => {
                split += 1;
                assert_eq!(r.value, &json!(true));
            }
            Reason::Default => {
                default += 1;
                assert_eq!(r.value, &json!(false));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(split > 0 && split < 30, "{split} of 200 in a 5% rollout");
    assert_eq!(split + default, 200);

    let r = e.evaluate("development", "new-checkout", &Context::with_key("u1"));
    assert_eq!((r.value, r.reason), (&json!(false), Reason::Disabled));

    let r = e.evaluate("production", "nope", &Context::new());
    assert_eq!(r.reason, Reason::Error);
    assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::FlagNotFound));

    let r = e.evaluate("production", "new-checkout", &Context::new());
    assert_eq!(r.reason, Reason::Error);
    assert_eq!(
        r.error.map(|e| e.code),
        Some(ErrorCode::TargetingKeyMissing)
    );
}

#[test]
fn prerequisites_and_splits() {
    let set = doc();
    let e = Engine::new(&set);
    // theme needs new-checkout on: beta testers get a themed split.
    let beta = Context::with_key("u7").attr("email", "bo@example.com");
    let r = e.evaluate("production", "theme", &beta);
    assert_eq!(r.reason, Reason::Split);
    let first = r.variant.map(str::to_owned);
    for _ in 0..5 {
        assert_eq!(
            e.evaluate("production", "theme", &beta)
                .variant
                .map(str::to_owned),
            first
        );
    }
    let nordic = Context::with_key("u7").attr("country", "no");
    let r = e.evaluate("production", "theme", &nordic);
    assert_eq!(
        (r.variant, r.reason),
        (Some("blue"), Reason::PrerequisiteFailed)
    );
}

#[test]
fn free_function_matches_engine() {
    let set = doc();
    let e = Engine::new(&set);
    for i in 0..50 {
        let ctx = Context::with_key(format!("k{i}"))
            .attr("email", if i % 3 == 0 { "a@example.com" } else { "a@b.c" });
        for flag in ["new-checkout", "theme", "limit", "missing"] {
            assert_eq!(
                evaluate(&set, "production", flag, &ctx),
                e.evaluate("production", flag, &ctx).to_evaluation()
            );
        }
    }
}

#[test]
fn operators_on_native_flags() {
    let set = doc();
    let e = Engine::new(&set);
    let ctx = |v: Value| Context::with_key("u").attr("properties", json!({"plan": v}));
    assert_eq!(
        e.evaluate("production", "limit", &ctx(json!("2.1.0")))
            .value,
        &json!(100)
    );
    assert_eq!(
        e.evaluate("production", "limit", &ctx(json!("1.9.9")))
            .value,
        &json!(10)
    );
    assert_eq!(
        e.evaluate("production", "limit", &ctx(json!("v2.1.0")))
            .value,
        &json!(10)
    );
    assert_eq!(
        e.evaluate("production", "limit", &ctx(json!(null))).value,
        &json!(10)
    );
}

fn one_condition(cond: Value) -> FlagSet {
    serde_json::from_value(json!({"flags": {"f": {"environments": {"e": {
        "enabled": true,
        "rules": [{"conditions": [cond], "serve": "on"}]
    }}}}}))
    .expect("valid flag")
}

fn holds(cond: Value, attrs: Value) -> bool {
    let ctx: Context = serde_json::from_value(attrs).expect("context");
    evaluate(&one_condition(cond), "e", "f", &ctx).value == json!(true)
}

#[test]
fn condition_operators() {
    let c = |op: &str, values: Value| json!({"attribute": "a", "operator": op, "values": values});
    assert!(holds(c("in", json!(["x", "y"])), json!({"a": "y"})));
    assert!(!holds(c("in", json!(["x"])), json!({"a": "X"})));
    assert!(holds(c("not_in", json!(["x"])), json!({})));
    assert!(holds(c("equals", json!(["1"])), json!({"a": 1})));
    assert!(holds(c("num_gt", json!([10])), json!({"a": 10.5})));
    assert!(holds(c("num_lte", json!(["10"])), json!({"a": "10"})));
    assert!(!holds(c("num_eq", json!(["1e400"])), json!({"a": "1"})));
    assert!(holds(
        c("date_after", json!(["2020-01-01T00:00:00Z"])),
        json!({"a": "2021-06-01T00:00:00+02:00"})
    ));
    assert!(holds(
        c("date_before", json!(["2020-01-01"])),
        json!({"a": "2019-12-31T23:59:59Z"})
    ));
    assert!(holds(
        c("in_cidr", json!(["10.0.0.0/8", "bogus"])),
        json!({"a": "10.1.2.3"})
    ));
    assert!(!holds(
        c("in_cidr", json!(["10.0.0.0/8"])),
        json!({"a": "11.1.2.3"})
    ));
    assert!(holds(c("regex", json!(["^a+$"])), json!({"a": "aaa"})));
    assert!(holds(
        c("semver_lt", json!(["2.0.0"])),
        json!({"a": "2.0.0-rc.1"})
    ));
    assert!(holds(
        c("contains", json!(["mid"])),
        json!({"targetingKey": "k", "a": "a-mid-b"})
    ));
    // An invalid regex never matches, negated or not.
    assert!(!holds(c("regex", json!(["(unclosed"])), json!({"a": "x"})));
    let negated =
        json!({"attribute": "a", "operator": "regex", "values": ["(unclosed"], "negate": true});
    assert!(!holds(negated, json!({"a": "x"})));
    // Long lists use a hash set; case-insensitive ones are lowered first.
    let many: Vec<String> = (0..40).map(|i| format!("User-{i}")).collect();
    assert!(holds(c("in", json!(many)), json!({"a": "User-39"})));
    assert!(!holds(c("in", json!(many)), json!({"a": "user-39"})));
    assert!(!holds(c("in", json!(many)), json!({"a": "User-40"})));
    let ci = json!({"attribute": "a", "operator": "in", "values": many, "case_insensitive": true});
    assert!(holds(ci, json!({"a": "USER-7"})));
    // Top level wins over `properties`; `properties` is the fallback; many
    // attributes take the tree path with the same answers.
    assert!(holds(
        c("in", json!(["top"])),
        json!({"a": "top", "properties": {"a": "nested"}})
    ));
    assert!(holds(
        c("in", json!(["nested"])),
        json!({"a": null, "properties": {"a": "nested"}})
    ));
    let mut wide = serde_json::Map::new();
    for i in 0..30 {
        wide.insert(format!("attr{i}"), json!(i));
    }
    wide.insert("properties".into(), json!({"a": "deep"}));
    assert!(holds(c("in", json!(["deep"])), Value::Object(wide.clone())));
    wide.insert("averyveryverylongattributename".into(), json!("x"));
    let long =
        json!({"attribute": "averyveryverylongattributename", "operator": "in", "values": ["x"]});
    assert!(holds(long.clone(), Value::Object(wide)));
    assert!(holds(
        long,
        json!({"averyveryverylongattributename": "x", "averyveryverylongattributenamf": "y"})
    ));
    // The targeting key is an attribute too.
    let tk = json!({"attribute": "targetingKey", "operator": "starts_with", "value": "adm"});
    assert!(holds(tk, json!({"targetingKey": "admin-1"})));
}

#[test]
fn kill_switch_one_env_or_all() {
    let mut set = doc();
    assert_eq!(
        kill_switch(&mut set, "new-checkout", Some("production")),
        Ok(vec!["production".to_owned()])
    );
    let r = evaluate(&set, "production", "new-checkout", &Context::with_key("u"));
    assert_eq!((r.value, r.reason), (json!(false), Reason::Disabled));
    assert_eq!(
        kill_switch(&mut set, "new-checkout", None),
        Ok(vec!["staging".to_owned()])
    );
    assert!(kill_switch(&mut set, "nope", None).is_err());
    assert!(kill_switch(&mut set, "new-checkout", Some("qa")).is_err());
}

#[test]
fn diff_lines() {
    let old = doc();
    let mut new = doc();
    assert_eq!(
        set_rollout_percentage(&mut new, "new-checkout", "production", 25.0),
        Ok(Some(5.0))
    );
    new.flags.remove("limit");
    let mut added = new.flags["new-checkout"].clone();
    added.key = "dark-mode".into();
    added.owner = None;
    new.flags.insert("dark-mode".into(), added);
    if let Some(f) = new.flags.get_mut("theme") {
        f.owner = Some("team-web".into());
    }
    let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "+ flag dark-mode",
            "- flag limit",
            "~ flag new-checkout env production: rollout 5% -> 25%",
            "~ flag theme: owner none -> team-web",
        ]
    );
    assert!(diff(&old, &old).is_empty());
}

#[test]
fn rollout_on_a_plain_bool_flag_adds_a_rule() {
    let mut set = doc();
    assert_eq!(
        set_rollout_percentage(&mut set, "new-checkout", "staging", 50.0),
        Ok(None)
    );
    assert_eq!(
        set.flags["new-checkout"].environments["staging"].rollout_percentage(),
        Some(50.0)
    );
    assert!(set_rollout_percentage(&mut set, "new-checkout", "staging", 101.0).is_err());
    assert!(set_rollout_percentage(&mut set, "theme", "production", f64::NAN).is_err());
}

#[test]
fn scheduled_changes_apply_in_order_once() {
    let mut set = doc();
    let at = |at, pct| ScheduledChange {
        at,
        flag: "new-checkout".into(),
        env: "production".into(),
        set_rollout_percent: pct,
    };
    set.schedule = vec![at(3_000, 100.0), at(1_000, 25.0), at(9_000, 0.0)];
    set.validate().expect("valid schedule");
    let applied = apply_due(&mut set, 5_000);
    let got: Vec<(i64, Option<f64>)> = applied
        .iter()
        .map(|a| (a.change.at, a.result.clone().expect("applies")))
        .collect();
    assert_eq!(got, vec![(1_000, Some(5.0)), (3_000, Some(25.0))]);
    assert_eq!(
        set.flags["new-checkout"].environments["production"].rollout_percentage(),
        Some(100.0)
    );
    assert_eq!(set.schedule.len(), 1);
    assert!(apply_due(&mut set, 5_000).is_empty());
}

#[test]
fn stale_flags_are_temporary_and_uniform() {
    const DAY: i64 = 86_400_000;
    let mut set = doc();
    let now = 100 * DAY;
    let changed: BTreeMap<String, i64> = [
        ("new-checkout".to_owned(), 60 * DAY),
        ("theme".to_owned(), 0),
    ]
    .into();
    // production still has targeting: not stale.
    assert!(stale_flags(&set, &changed, now, 30).is_empty());
    if let Some(env) = set
        .flags
        .get_mut("new-checkout")
        .and_then(|f| f.environments.get_mut("production"))
    {
        env.rules.clear();
    }
    let stale = stale_flags(&set, &changed, now, 30);
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (stale[0].key.as_str(), stale[0].variant.as_str()),
        ("new-checkout", "on")
    );
    assert_eq!(stale[0].unchanged_days, 40);
    assert!(stale_flags(&set, &changed, now, 41).is_empty());
    // Fully off everywhere counts too.
    kill_switch(&mut set, "new-checkout", None).expect("exists");
    assert_eq!(stale_flags(&set, &changed, now, 30)[0].variant, "off");
}

#[test]
fn unleash_view_of_native_flags() {
    let set = doc();
    let e = Engine::new(&set);
    let beta = Context::with_key("u7").attr("email", "bo@example.com");
    let v = e.evaluate_unleash("production", "new-checkout", &beta);
    assert!(v.feature_enabled && !v.enabled && v.name == "disabled");
    let v = e.evaluate_unleash("production", "theme", &beta);
    assert!(v.feature_enabled && v.enabled);
    assert_eq!(v.payload.map(|p| p.kind), Some("string".to_owned()));
}

#[test]
fn unleash_import_reads_as_native() {
    let set = andon_flags::import_unleash(
        r#"{"version": 2, "features": [{"name": "f", "type": "release", "enabled": true,
            "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "f"},
                            "constraints": [{"contextName": "userId", "operator": "IN", "values": ["1"]}]}],
            "variants": null}]}"#,
    )
    .expect("imports");
    set.validate().expect("an import is a valid document");
    let flag = &set.flags["f"];
    assert!(flag.temporary);
    let r = evaluate(&set, "default", "f", &Context::new().attr("userId", "1"));
    assert_eq!(
        (r.variant.as_deref(), r.reason),
        (Some("disabled"), Reason::TargetingMatch)
    );
    let r = evaluate(&set, "default", "f", &Context::new().attr("userId", "2"));
    assert_eq!((r.value, r.reason), (json!(false), Reason::Default));
}

#[test]
fn engine_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Engine>();
    shareable::<FlagSet>();
}
