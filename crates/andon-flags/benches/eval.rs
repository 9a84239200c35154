//! Evaluation cost on a compiled [`Engine`]: a plain boolean flag, a flag
//! whose context walks through five rules and a segment, and a
//! three-variant percentage split. Run by `bench/flags_eval.sh`.

#![allow(clippy::expect_used)]

use std::hint::black_box;

use andon_flags::{Context, Engine, FlagSet};
use criterion::{Criterion, criterion_group};
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
    let ctx = context();
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

/// `FLAGS_EVAL_LOOP=N CASE`: N evaluations of one case (`bool`, `rules`,
/// `rollout`) and exit, without criterion. For `perf stat -e
/// cycles:u,instructions:u`, whose per-evaluation counts do not depend on
/// what else the machine is running (wall-clock medians do).
fn counted_loop() -> bool {
    let Some(n) = std::env::var("FLAGS_EVAL_LOOP")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return false;
    };
    let case = std::env::args().nth(1).unwrap_or_else(|| "rules".into());
    let flag = match case.as_str() {
        "bool" => "plain",
        "rollout" => "theme",
        _ => "targeted",
    };
    let engine = Engine::new(&flags());
    let ctx = context();
    let mut on = 0u64;
    for _ in 0..n {
        let r = engine.evaluate(black_box("production"), black_box(flag), black_box(&ctx));
        on += u64::from(black_box(r).reason == andon_flags::Reason::TargetingMatch);
    }
    println!("{case}: {n} evaluations ({on} targeting matches)");
    true
}

fn context() -> Context {
    Context::with_key("user-7")
        .attr("userId", "user-7")
        .attr("country", "NO")
        .attr("email", "ann@example.com")
        .attr("plan", "pro")
        .attr("age", 30)
        .attr("appVersion", "3.1.0")
}

criterion_group!(benches, bench);

fn main() {
    if counted_loop() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
