//! What users see when andon.yaml is wrong: one snapshot per kind of error.
//! Each snapshot shows `FILE:LINE:COL: message`, the line, the caret and
//! the hint, so a regression in any of them shows up in review.

use insta::assert_snapshot;

/// A valid pipeline, to prepend to configs that test other sections.
const PIPELINE: &str = "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: unit\n          run: cargo test\n";

fn check(yaml: &str) -> String {
    match andon_config::parse("andon.yaml", yaml) {
        Ok(config) => panic!("expected errors, got a valid config: {config:?}"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

fn with_env(env: &str) -> String {
    format!("{PIPELINE}environments:\n{env}")
}

#[test]
fn yaml_syntax_error() {
    assert_snapshot!(check(
        "project: shop\npipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: unit\n          run: echo a: b\n"
    ));
}

#[test]
fn yaml_unclosed_bracket() {
    assert_snapshot!(check("pipeline:\n  stages: [ { name: test, jobs: [] }\n"));
}

#[test]
fn yaml_unclosed_flow_mapping_far_above() {
    assert_snapshot!(check(
        "project: shop\nflags: { a: 1,\n  b: 2\n\npipeline:\n  stages: []\n"
    ));
}

#[test]
fn yaml_tab_indentation() {
    assert_snapshot!(check("pipeline:\n\tstages: []\n"));
}

#[test]
fn yaml_duplicate_key() {
    assert_snapshot!(check(&format!("project: shop\n{PIPELINE}project: again\n")));
}

#[test]
fn duplicate_environment_names() {
    assert_snapshot!(check(&with_env(
        "  staging:\n    target: { process: { command: ./app } }\n  staging:\n    target: { process: { command: ./app } }\n"
    )));
}

#[test]
fn top_level_is_not_a_mapping() {
    assert_snapshot!(check("- name: test\n  run: cargo test\n"));
}

#[test]
fn unknown_key_with_suggestion() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - name: build\n          run: ./build.sh\n    - name: b\n      jobs:\n        - name: test\n          need: [build]\n          run: ./test.sh\n"
    ));
}

#[test]
fn unknown_key_without_suggestion() {
    assert_snapshot!(check(&format!("{PIPELINE}          depends_on: [build]\n")));
}

#[test]
fn unknown_top_level_key() {
    assert_snapshot!(check(&format!("{PIPELINE}enviroments: {{}}\n")));
}

#[test]
fn wrong_type_list_got_string() {
    assert_snapshot!(check(&format!("{PIPELINE}          secrets: API_KEY\n")));
}

#[test]
fn wrong_type_mapping_got_list() {
    assert_snapshot!(check("pipeline:\n  - name: test\n"));
}

#[test]
fn wrong_type_number_and_boolean() {
    assert_snapshot!(check(&format!(
        "{PIPELINE}          retries: twice\n          allow_failure: yes\n"
    )));
}

#[test]
fn missing_required_run() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: unit\n          timeout: 10m\n"
    ));
}

#[test]
fn run_written_as_a_list() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: unit\n          run:\n            - cargo build\n            - cargo test\n"
    ));
}

#[test]
fn missing_required_target() {
    assert_snapshot!(check(&with_env("  staging:\n    strategy: rolling\n")));
}

#[test]
fn needs_unknown_job_with_suggestion() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: build\n      jobs:\n        - { name: build, run: ./build.sh }\n    - name: test\n      jobs:\n        - { name: api-tests, needs: [biuld], run: ./t.sh }\n"
    ));
}

#[test]
fn needs_unknown_job_without_suggestion() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - { name: api-tests, needs: [deploy-everything], run: ./t.sh }\n"
    ));
}

#[test]
fn needs_cycle() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - { name: a, needs: [b], run: x }\n        - { name: b, needs: [c], run: x }\n        - { name: c, needs: [a], run: x }\n"
    ));
}

#[test]
fn needs_self() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - { name: a, needs: [a], run: x }\n"
    ));
}

#[test]
fn cycle_through_implicit_stage_order() {
    // `package` needs nothing explicit, so it waits for all of `commit`,
    // which includes `unit`, which needs `package`.
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: commit\n      jobs:\n        - { name: unit, needs: [package], run: x }\n    - name: build\n      jobs:\n        - { name: package, run: x }\n"
    ));
}

#[test]
fn duplicate_job_names() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - { name: test, run: x }\n    - name: b\n      jobs:\n        - { name: test, run: y }\n"
    ));
}

#[test]
fn duplicate_stage_names() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - { name: a, run: x }\n    - name: test\n      jobs:\n        - { name: b, run: y }\n"
    ));
}

#[test]
fn bad_durations() {
    assert_snapshot!(check(&format!(
        "{PIPELINE}          timeout: 10\n        - name: other\n          run: x\n          timeout: 10 minutes\n        - name: third\n          run: x\n          timeout: 1.5h\n"
    )));
}

#[test]
fn bad_percentages() {
    assert_snapshot!(check(&with_env(
        "  prod:\n    target: { process: { command: ./app } }\n    judge:\n      max_error_rate: 2\n    alerts:\n      max_error_rate: 150%\n"
    )));
}

#[test]
fn unknown_stage_kind() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      kind: acceptence\n      jobs:\n        - { name: a, run: x }\n    - name: smoke\n      kind: smoke\n      jobs:\n        - { name: b, run: x }\n"
    ));
}

#[test]
fn unknown_strategy() {
    assert_snapshot!(check(&with_env(
        "  staging:\n    target: { process: { command: ./app } }\n    strategy: bluegreen\n  prod:\n    target: { process: { command: ./app } }\n    strategy:\n      canery:\n        steps: [{ weight: 10 }]\n  dev:\n    target: { process: { command: ./app } }\n    strategy: yolo\n"
    )));
}

#[test]
fn canary_weights_not_increasing_or_above_100() {
    assert_snapshot!(check(&with_env(
        "  prod:\n    target: { process: { command: ./app } }\n    strategy:\n      canary:\n        steps:\n          - { weight: 25, for: 5m }\n          - { weight: 5, for: 2m }\n          - { weight: 150 }\n"
    )));
}

#[test]
fn after_unknown_environment() {
    assert_snapshot!(check(&with_env(
        "  staging:\n    target: { process: { command: ./app } }\n  production:\n    after: stagign\n    target: { process: { command: ./app } }\n"
    )));
}

#[test]
fn after_cycle() {
    assert_snapshot!(check(&with_env(
        "  a:\n    after: c\n    target: { process: { command: ./app } }\n  b:\n    after: a\n    target: { process: { command: ./app } }\n  c:\n    after: b\n    target: { process: { command: ./app } }\n"
    )));
}

#[test]
fn empty_pipeline_no_key() {
    assert_snapshot!(check("project: shop\n"));
}

#[test]
fn empty_file() {
    assert_snapshot!(check(""));
}

#[test]
fn empty_pipeline_no_stages() {
    assert_snapshot!(check("pipeline:\n  stages: []\n"));
}

#[test]
fn empty_stage() {
    assert_snapshot!(check(
        "pipeline:\n  stages:\n    - name: test\n      jobs: []\n"
    ));
}

#[test]
fn matrix_problems() {
    assert_snapshot!(check(&format!(
        "{PIPELINE}          matrix:\n            os: linux\n            rust: []\n        - name: big\n          run: x\n          matrix: {{ a: [1,2,3,4,5,6,7], b: [1,2,3,4,5,6,7], c: [1,2,3,4,5,6,7] }}\n"
    )));
}

#[test]
fn window_freeze_and_release_problems() {
    assert_snapshot!(check(&format!(
        "{}release:\n  mode: train\nboard:\n  columns: [todo, todo]\nnotify:\n  - url: hooks.example.com\n    format: xml\n",
        with_env(
            "  prod:\n    target: { process: { command: ./app } }\n    window: { days: [mon, fry], from: \"9am\", to: \"17:00\", timezone: Europe/Paris }\n    freezes:\n      - { from: 2025-12-24, to: 2025-12-20T00:00:00Z }\n      - { from: 2025-12-24T00:00:00Z, to: 2025-12-20T00:00:00Z }\n"
        )
    )));
}

#[test]
fn container_and_target_problems() {
    assert_snapshot!(check(&with_env(
        "  a:\n    target:\n      container: { image: shop }\n  b:\n    target:\n      process: { command: ./app }\n      container: { image: shop, port: 80 }\n  c:\n    target:\n      container: { image: shop, port: 70000 }\n    approval: maybe\n"
    )));
}

#[test]
fn judge_problems() {
    assert_snapshot!(check(&with_env(
        "  prod:\n    target: { process: { command: ./app } }\n    judge:\n      alpha: 0.9\n      compare_to_baseline: sure\n      prometheus:\n        - { name: q, query: up }\n"
    )));
}

/// All errors come back, in file order, not just the first.
#[test]
fn all_errors_in_file_order() {
    let yaml = "projet: shop\npipeline:\n  stages:\n    - name: commit\n      kind: unti\n      jobs:\n        - name: unit-tests\n          run: cargo test\n          timeout: 10 minutes\n        - name: lint\n          need: [build]\n          run: cargo clippy\n    - name: package\n      jobs:\n        - name: build\n          needs: [unit-test]\nenvironments:\n  production:\n    after: stagin\n    target: { process: { command: ./app, instances: 0 } }\n    strategy: canery\n    judge: { max_error_rate: 200% }\n";
    let rendered = check(yaml);
    let lines: Vec<usize> = andon_config::parse("andon.yaml", yaml)
        .unwrap_err()
        .0
        .iter()
        .map(|d| d.line)
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert!(lines.len() >= 9, "{rendered}");
    assert_snapshot!(rendered);
}

#[test]
fn diagnostic_fields_are_exact() {
    let d = &andon_config::parse("ci/andon.yaml", "pipeline:\n  stages:\n    - name: t\n      jobs:\n        - name: u\n          need: [x]\n          run: y\n")
        .unwrap_err()
        .0[0];
    assert_eq!(
        (
            d.file.as_str(),
            d.line,
            d.column,
            d.span_len,
            d.source_line.as_str()
        ),
        ("ci/andon.yaml", 6, 11, 4, "          need: [x]")
    );
    assert_eq!(d.message, "unknown key `need`; did you mean `needs`?");
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("`needs`")));
}
