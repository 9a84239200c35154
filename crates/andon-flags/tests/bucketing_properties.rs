//! Stable bucketing, beyond `properties.rs`: a user's answer depends only on
//! the flag's salt and the sticky attribute — not on other attributes, other
//! flags in the set, or the order flags were added — and over many users a
//! rollout admits its percentage and a split serves its weights.
//!
//! The share checks are deterministic (the hash is), with tolerances far
//! beyond the binomial spread of the sample (more than 6 standard deviations),
//! so they hold for any weights proptest picks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use andon_flags::{Context, Engine, FlagSet};
use proptest::prelude::*;
use serde_json::{Value, json};

const USERS: usize = 4000;

fn rollout_set(pct: f64, salt: &str, extra_flags: usize) -> FlagSet {
    let mut flags = serde_json::Map::new();
    // Other flags around it must not move anyone.
    for i in 0..extra_flags {
        flags.insert(
            format!("other-{i}"),
            json!({"environments": {"e": {"enabled": true, "rules": [{"rollout": {"percentage": 50}, "serve": "on"}]}}}),
        );
    }
    flags.insert(
        "f".into(),
        json!({"environments": {"e": {"enabled": true, "rules": [{"rollout": {"percentage": pct, "salt": salt}, "serve": "on"}]}}}),
    );
    serde_json::from_value(json!({ "flags": flags })).expect("valid")
}

fn split_set(weights: &[u32], stickiness: &str) -> FlagSet {
    let split: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"variant": format!("v{i}"), "weight": w}))
        .collect();
    let variants: serde_json::Map<String, Value> = (0..weights.len())
        .map(|i| (format!("v{i}"), json!(i)))
        .collect();
    serde_json::from_value(
        json!({"flags": {"f": {"kind": "number", "variants": variants, "environments": {"e": {
            "enabled": true, "default_variant": "v0",
            "rules": [{"serve": {"split": split, "stickiness": stickiness}}]
        }}}}}),
    )
    .expect("valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn only_the_sticky_attribute_decides(
        id in "[a-z0-9-]{1,24}",
        pct in 0.0..=100.0f64,
        salt in "[a-z]{0,8}",
        extra in 0usize..5,
        noise in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..6),
    ) {
        let alone = Engine::new(&rollout_set(pct, &salt, 0));
        let crowded = Engine::new(&rollout_set(pct, &salt, extra));
        let plain = Context::with_key(id.clone());
        let mut noisy = Context::with_key(id.clone());
        for (k, v) in &noise {
            if k != "targetingKey" {
                noisy = noisy.attr(k.clone(), v.clone());
            }
        }
        let want = alone.is_on("e", "f", &plain);
        prop_assert_eq!(crowded.is_on("e", "f", &plain), want);
        prop_assert_eq!(alone.is_on("e", "f", &noisy), want);
        // Same answer on every evaluation and from a rebuilt engine.
        prop_assert_eq!(Engine::new(&rollout_set(pct, &salt, 0)).is_on("e", "f", &plain), want);
    }

    #[test]
    fn a_rollout_admits_its_percentage(pct in 0u32..=100, salt in "[a-z]{0,8}") {
        let engine = Engine::new(&rollout_set(f64::from(pct), &salt, 0));
        let on = (0..USERS)
            .filter(|i| engine.is_on("e", "f", &Context::with_key(format!("user-{i}"))))
            .count();
        let share = on as f64 / USERS as f64 * 100.0;
        prop_assert!((share - f64::from(pct)).abs() <= 5.0, "{}% admitted at {}%", share, pct);
        if pct == 0 {
            prop_assert_eq!(on, 0);
        }
        if pct == 100 {
            prop_assert_eq!(on, USERS);
        }
    }

    #[test]
    fn a_split_serves_its_weights(
        weights in prop::collection::vec(1u32..100, 1..5),
        stickiness in prop::sample::select(vec!["targetingKey", "userId"]),
    ) {
        let engine = Engine::new(&split_set(&weights, stickiness));
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0usize; weights.len()];
        for i in 0..USERS {
            let id = format!("user-{i}");
            let ctx = if stickiness == "userId" {
                Context::new().attr("userId", id)
            } else {
                Context::with_key(id)
            };
            let r = engine.evaluate("e", "f", &ctx);
            let v = r.variant.expect("a split always serves");
            counts[v[1..].parse::<usize>().unwrap()] += 1;
        }
        for (i, w) in weights.iter().enumerate() {
            let want = f64::from(*w) / f64::from(total) * 100.0;
            let got = counts[i] as f64 / USERS as f64 * 100.0;
            prop_assert!((got - want).abs() <= 5.0, "v{} served {}%, weight {}%", i, got, want);
        }
    }
}
