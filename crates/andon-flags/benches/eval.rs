//! Evaluation cost on a compiled [`Engine`]: a plain boolean flag, a flag
//! whose context walks through five rules and a segment, and a
//! three-variant percentage split. Run by `bench/flags_eval.sh`.

#![allow(clippy::expect_used)]

use std::hint::black_box;

use andon_flags::{Context, Engine, FlagSet};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn flags() -> FlagSet {
    let beta: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    serde_json::from_value(json!({
        "segments": {
            "beta": {"conditions": [{"attribute": "userId", "operator": "in", "values": beta}]}
        },
        "flags": {
            "plain": {"environments": {"production": {"enabled": true}}},
            "targeted": {"environments": {"production": {"enabled": true, "rules": [
                {"conditions": [{"attribute": "country", "operator": "in", "values": ["US", "CA"]}], "serve": "off"},
                {"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@corp.example"]}], "serve": "on"},
                {"conditions": [
                    {"attribute": "plan", "operator": "in", "values": ["enterprise"]},
                    {"attribute": "age", "operator": "num_gte", "value": 18}
                ], "serve": "on"},
                {"conditions": [{"attribute": "appVersion", "operator": "starts_with", "values": ["0."]}], "serve": "off"},
                {"segments": ["beta"], "serve": "on"}
            ]}}},
            "theme": {
                "kind": "string",
                "variants": {"blue": "blue", "red": "red", "green": "green"},
                "environments": {"production": {"enabled": true, "default_variant": "blue", "rules": [
                    {"rollout": {"percentage": 50}, "serve": {"split": [
                        {"variant": "blue", "weight": 34},
                        {"variant": "red", "weight": 33},
                        {"variant": "green", "weight": 33}
                    ]}}
                ]}}
            }
        }
    }))
    .expect("bench flags parse")
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(&flags());
    let ctx = Context::with_key("user-7")
        .attr("userId", "user-7")
        .attr("country", "NO")
        .attr("email", "ann@example.com")
        .attr("plan", "pro")
        .attr("age", 30)
        .attr("appVersion", "3.1.0");
    assert_eq!(
        engine.evaluate("production", "targeted", &ctx).value,
        &json!(true)
    );

    c.bench_function("eval_bool", |b| {
        b.iter(|| {
            black_box(engine.evaluate(black_box("production"), black_box("plain"), black_box(&ctx)))
        })
    });
    c.bench_function("eval_rules", |b| {
        b.iter(|| {
            black_box(engine.evaluate(
                black_box("production"),
                black_box("targeted"),
                black_box(&ctx),
            ))
        })
    });
    c.bench_function("eval_rollout", |b| {
        b.iter(|| {
            black_box(engine.evaluate(black_box("production"), black_box("theme"), black_box(&ctx)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
