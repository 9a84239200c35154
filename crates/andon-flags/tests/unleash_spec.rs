//! Unleash's client specification, run through Andon's own model: each
//! file's `state` is imported with `import_unleash`, and every `tests` and
//! `variantTests` case is evaluated by Andon's engine. The delta-API files
//! (19, 20) test an SDK's update protocol, not evaluation, and are skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use andon_flags::{Context, Engine, UNLEASH_ENV, import_unleash};
use serde_json::Value;

/// Cases whose result involves randomness (random stickiness, no id) are
/// run this many times and must agree every time.
const REPEATS: usize = 10;

fn conformance_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ANDON_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        for cand in [
            dir.join("shared/conformance"),
            dir.join("../shared/conformance"),
        ] {
            if cand.is_dir() {
                return cand;
            }
        }
    }
    PathBuf::from("/work/shared/conformance")
}

fn spec_dir() -> PathBuf {
    let dir = conformance_dir().join("unleash-client-specification");
    assert!(
        dir.join("index.json").is_file(),
        "Unleash client specification not found at {} (set ANDON_CONFORMANCE_DIR to the folder holding \
         unleash-client-specification/)",
        dir.display()
    );
    dir
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn context(case: &Value) -> Context {
    serde_json::from_value(case["context"].clone()).expect("context")
}

#[test]
fn unleash_client_specification() {
    let dir = spec_dir();
    let index = read_json(&dir.join("index.json"));
    let files = index.as_array().expect("index.json is a list");
    let (mut passed, mut total) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut files_run = 0;
    for file in files {
        let name = file.as_str().expect("file name");
        if name.starts_with("19-") || name.starts_with("20-") {
            continue;
        }
        files_run += 1;
        let doc = read_json(&dir.join(name));
        let state = serde_json::to_string(&doc["state"]).expect("state");
        let set = import_unleash(&state).unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
        let engine = Engine::new(&set);

        for case in doc["tests"].as_array().into_iter().flatten() {
            total += 1;
            let ctx = context(case);
            let toggle = case["toggleName"].as_str().expect("toggleName");
            let want = case["expectedResult"].as_bool().expect("expectedResult");
            let got: Vec<bool> = (0..REPEATS)
                .map(|_| {
                    engine
                        .evaluate_unleash(UNLEASH_ENV, toggle, &ctx)
                        .feature_enabled
                })
                .collect();
            if got.iter().all(|g| *g == want) {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name}: {} ({toggle}): want {want}, got {got:?}",
                    case["description"]
                ));
            }
        }

        for case in doc["variantTests"].as_array().into_iter().flatten() {
            total += 1;
            let ctx = context(case);
            let toggle = case["toggleName"].as_str().expect("toggleName");
            let want = &case["expectedResult"];
            let mut ok = true;
            let mut last = Value::Null;
            for _ in 0..REPEATS {
                let got = engine.evaluate_unleash(UNLEASH_ENV, toggle, &ctx);
                let got_json = serde_json::to_value(&got).expect("serialise");
                let same = got_json["name"] == want["name"]
                    && got_json["enabled"] == want["enabled"]
                    && got_json.get("payload") == want.get("payload")
                    && want
                        .get("feature_enabled")
                        .or_else(|| want.get("featureEnabled"))
                        .is_none_or(|f| *f == got_json["feature_enabled"]);
                ok &= same;
                last = got_json;
            }
            if ok {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name}: {} ({toggle}): want {want}, got {last}",
                    case["description"]
                ));
            }
        }
    }
    for f in &failures {
        let _ = writeln!(std::io::stderr(), "FAIL {f}");
    }
    // The harness captures `eprintln!`; writing to the stderr handle itself
    // is not captured, so the summary shows with or without --nocapture.
    let line = format!("unleash-spec: {passed}/{total} passed\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(
        files_run >= 20,
        "expected at least 20 specification files, ran {files_run}"
    );
    assert!(total > 0, "no specification cases found");
    assert_eq!(
        passed,
        total,
        "{} Unleash specification cases failed",
        failures.len()
    );
}
