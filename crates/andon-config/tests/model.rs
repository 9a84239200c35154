//! The checked model: the CONTRACT example, the full example, and the rules
//! that give the model its meaning (matrix, implicit deps, branch filters).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use andon_config::*;

fn parse_ok(yaml: &str) -> Config {
    match parse("andon.yaml", yaml) {
        Ok(config) => config,
        Err(diagnostics) => panic!("expected a valid config, got:\n{diagnostics}"),
    }
}

fn job<'c>(config: &'c Config, name: &str) -> &'c Job {
    config
        .pipeline
        .stages
        .iter()
        .flat_map(|s| &s.jobs)
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn names(jobs: &[String]) -> Vec<&str> {
    jobs.iter().map(String::as_str).collect()
}

fn plain_job(name: &str, stage: &str, run: &str) -> Job {
    Job {
        name: name.into(),
        stage: stage.into(),
        run: run.into(),
        needs: vec![],
        deps: vec![],
        env: BTreeMap::new(),
        secrets: vec![],
        timeout: None,
        retries: 0,
        artifacts: vec![],
        allow_failure: false,
        image: None,
        sandbox: false,
        runs_on: vec![],
        when: None,
        matrix: BTreeMap::new(),
    }
}

fn process(command: &str, instances: u32) -> Target {
    Target::Process(ProcessTarget {
        command: command.into(),
        instances,
        health: Some("/healthz".into()),
        env: BTreeMap::new(),
        secrets: vec![],
        ready_timeout: Duration::from_secs(30),
    })
}

/// The example in CONTRACT.md, copied verbatim, parses to exactly this.
#[test]
fn contract_example_parses_to_the_expected_model() {
    let config = parse_ok(include_str!("fixtures/contract.yaml"));
    let mins = |m: u64| Duration::from_secs(m * 60);
    let expected = Config {
        project: Some("shop".into()),
        trunk: "main".into(),
        pipeline: Pipeline {
            stages: vec![
                Stage {
                    name: "commit".into(),
                    kind: Some(StageKind::Unit),
                    jobs: vec![
                        Job {
                            timeout: Some(mins(10)),
                            ..plain_job("unit-tests", "commit", "cargo test")
                        },
                        plain_job("lint", "commit", "cargo clippy -- -D warnings"),
                    ],
                },
                Stage {
                    name: "package".into(),
                    kind: None,
                    jobs: vec![Job {
                        artifacts: vec!["dist/app".into()],
                        deps: vec!["unit-tests".into(), "lint".into()],
                        ..plain_job("build", "package", "./build.sh")
                    }],
                },
                Stage {
                    name: "acceptance".into(),
                    kind: Some(StageKind::Acceptance),
                    jobs: vec![Job {
                        needs: vec!["build".into()],
                        deps: vec!["build".into()],
                        retries: 1,
                        env: BTreeMap::from([("API_URL".into(), "http://127.0.0.1:8080".into())]),
                        secrets: vec!["API_KEY".into()],
                        ..plain_job("api-tests", "acceptance", "./acceptance.sh")
                    }],
                },
            ],
        },
        environments: vec![
            Environment {
                name: "staging".into(),
                after: None,
                target: process("./dist/app --port $PORT", 2),
                strategy: Strategy::BlueGreen { smoke_for: None },
                judge: None,
                rollback_window: mins(30),
                approval: Approval::Auto,
                window: None,
                freezes: vec![],
                ttl: None,
                host: None,
                alerts: None,
                traffic: Traffic::Router,
            },
            Environment {
                name: "production".into(),
                after: Some("staging".into()),
                target: process("./dist/app --port $PORT", 3),
                strategy: Strategy::Canary {
                    steps: vec![
                        CanaryStep {
                            weight: 5,
                            for_: Some(mins(2)),
                            pause: false,
                        },
                        CanaryStep {
                            weight: 25,
                            for_: Some(mins(5)),
                            pause: false,
                        },
                        CanaryStep {
                            weight: 100,
                            for_: None,
                            pause: false,
                        },
                    ],
                },
                judge: Some(JudgeRules {
                    max_error_rate: Some(0.02),
                    max_p99: Some(Duration::from_millis(300)),
                    compare_to_baseline: true,
                    alpha: 0.01,
                    smoke: Some("./smoke.sh".into()),
                    min_requests: 100,
                    prometheus: vec![],
                    prometheus_url: None,
                }),
                rollback_window: mins(30),
                approval: Approval::Auto,
                window: None,
                freezes: vec![],
                ttl: None,
                host: None,
                alerts: None,
                traffic: Traffic::Router,
            },
        ],
        flags: None,
        release: None,
        board: None,
        notify: vec![],
    };
    assert_eq!(config, expected);
}

/// examples/andon.yaml documents every key; it must stay valid.
#[test]
fn the_commented_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/andon.yaml");
    let config = match load(&path) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.pipeline.stages.len(), 4);
    assert_eq!(
        config
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["staging", "production", "preview"]
    );
    let production = &config.environments[1];
    assert_eq!(production.approval, Approval::Manual);
    assert_eq!(
        production.window.as_ref().map(|w| (w.from, w.to)),
        Some(((9, 0), (17, 0)))
    );
    assert_eq!(
        production.judge.as_ref().map(|j| j.prometheus.len()),
        Some(1)
    );
    assert!(matches!(
        config.environments[2].target,
        Target::Container(ContainerTarget { port: 8080, .. })
    ));
    assert_eq!(
        config.environments[2].ttl,
        Some(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(
        config.release,
        Some(Release {
            mode: ReleaseMode::Train,
            schedule: Some("wed 10:00 UTC".into())
        })
    );
    assert_eq!(
        config.board.as_ref().map(|b| b.columns[1].wip),
        Some(Some(3))
    );
    assert_eq!(config.notify[0].format, NotifyFormat::Slack);
    assert_eq!(
        config.notify[1].secret.as_deref(),
        Some("WEBHOOK_SIGNING_KEY")
    );
    // The merge key brought the anchored env into `build`.
    let build = job(&config, "build");
    assert_eq!(
        build.env.get("RUST_BACKTRACE").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        build.env.get("PROFILE").map(String::as_str),
        Some("release")
    );
    assert_eq!(
        config
            .flags
            .as_ref()
            .and_then(|f| f.pointer("/new-checkout/enabled")),
        Some(&serde_json::json!(true))
    );
}

#[test]
fn matrix_expands_to_one_job_per_combination() {
    let config = parse_ok(
        "pipeline:\n  stages:\n    - name: test\n      jobs:\n        - name: t\n          run: cargo test\n          env: { os: ignored, KEEP: yes }\n          matrix: { rust: [stable, beta], os: [linux, mac] }\n    - name: after\n      jobs:\n        - name: report\n          needs: [t]\n          run: ./report.sh\n        - name: one\n          needs: [\"t (os=mac, rust=beta)\"]\n          run: echo\n",
    );
    let stage = &config.pipeline.stages[0];
    let expanded: Vec<&str> = stage.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        expanded,
        [
            "t (os=linux, rust=stable)",
            "t (os=linux, rust=beta)",
            "t (os=mac, rust=stable)",
            "t (os=mac, rust=beta)"
        ]
    );
    let first = &stage.jobs[0];
    assert_eq!(
        first.matrix,
        BTreeMap::from([
            ("os".into(), "linux".into()),
            ("rust".into(), "stable".into())
        ])
    );
    assert_eq!(
        first.env.get("os").map(String::as_str),
        Some("linux"),
        "matrix values win over env"
    );
    assert_eq!(first.env.get("KEEP").map(String::as_str), Some("yes"));
    assert_eq!(names(&job(&config, "report").needs), expanded);
    assert_eq!(names(&job(&config, "report").deps), expanded);
    assert_eq!(names(&job(&config, "one").deps), ["t (os=mac, rust=beta)"]);
}

#[test]
fn jobs_without_needs_wait_for_the_previous_stage() {
    let config = parse_ok(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - { name: a1, run: x }\n        - { name: a2, run: x }\n    - name: b\n      jobs:\n        - { name: b1, run: x }\n        - { name: b2, run: x, needs: [] }\n    - name: c\n      jobs:\n        - { name: c1, run: x }\n        - { name: c2, run: x, needs: [a1] }\n",
    );
    assert!(job(&config, "a1").deps.is_empty());
    assert_eq!(names(&job(&config, "b1").deps), ["a1", "a2"]);
    assert!(
        job(&config, "b2").deps.is_empty(),
        "`needs: []` starts at once"
    );
    assert_eq!(names(&job(&config, "c1").deps), ["b1", "b2"]);
    assert_eq!(names(&job(&config, "c2").deps), ["a1"]);
    assert!(job(&config, "c1").needs.is_empty());
}

#[test]
fn needs_may_point_to_a_later_stage_when_acyclic() {
    let config = parse_ok(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - { name: early, run: x, needs: [late] }\n    - name: b\n      jobs:\n        - { name: late, run: x, needs: [] }\n",
    );
    assert_eq!(names(&job(&config, "early").deps), ["late"]);
}

#[test]
fn branch_filters_drop_jobs_and_keep_stage_order() {
    let config = parse_ok(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n        - { name: test, run: x }\n    - name: b\n      jobs:\n        - { name: deploy-docs, run: x, when: { branches: [main] } }\n    - name: c\n      jobs:\n        - { name: e2e, run: x }\n        - { name: uses-docs, run: x, needs: [deploy-docs, test] }\n        - { name: not-wip, run: x, needs: [], when: { not_branches: [\"wip/**\"] } }\n",
    );
    let main = config.pipeline_for_branch("main");
    assert_eq!(main, config.pipeline);

    let feature = config.pipeline_for_branch("feature/x");
    let stage_names: Vec<&str> = feature.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        stage_names,
        ["a", "c"],
        "a stage left without jobs disappears"
    );
    let c = &feature.stages[1];
    assert_eq!(
        names(&c.jobs[0].deps),
        ["test"],
        "e2e still waits for stage a"
    );
    assert_eq!(names(&c.jobs[1].needs), ["test"]);
    assert_eq!(names(&c.jobs[1].deps), ["test"]);
    assert_eq!(c.jobs.len(), 3);

    let wip = config.pipeline_for_branch("wip/a/b");
    assert!(
        wip.stages
            .iter()
            .flat_map(|s| &s.jobs)
            .all(|j| j.name != "not-wip")
    );
}

#[test]
fn defaults_are_applied() {
    let config = parse_ok(
        "pipeline: { stages: [ { name: s, jobs: [ { name: j, run: x } ] } ] }\nenvironments:\n  prod:\n    target: { process: { command: ./app } }\n    judge: {}\n    alerts: { max_p99: 1s }\n    window: { from: \"22:00\", to: \"06:00\" }\n",
    );
    assert_eq!(config.trunk, "main");
    assert_eq!(config.project, None);
    let prod = &config.environments[0];
    assert_eq!(prod.strategy, Strategy::Recreate);
    assert_eq!(prod.rollback_window, Duration::from_secs(1800));
    assert_eq!(prod.approval, Approval::Auto);
    let Target::Process(p) = &prod.target else {
        panic!()
    };
    assert_eq!(
        (p.instances, p.ready_timeout, p.health.as_deref()),
        (1, Duration::from_secs(30), None)
    );
    let judge = prod.judge.as_ref().unwrap();
    assert_eq!(
        (judge.compare_to_baseline, judge.alpha, judge.min_requests),
        (true, 0.01, 100)
    );
    assert_eq!(
        prod.alerts.as_ref().map(|a| a.for_),
        Some(Duration::from_secs(60))
    );
    let window = prod.window.as_ref().unwrap();
    assert_eq!((window.days.len(), window.timezone.as_str()), (7, "UTC"));
}

#[test]
fn strategy_forms() {
    let env = |strategy: &str| {
        let yaml = format!(
            "pipeline: {{ stages: [ {{ name: s, jobs: [ {{ name: j, run: x }} ] }} ] }}\nenvironments:\n  e:\n    target: {{ process: {{ command: ./app }} }}\n    strategy: {strategy}\n"
        );
        parse_ok(&yaml).environments[0].strategy.clone()
    };
    assert_eq!(
        env("canary"),
        Strategy::Canary {
            steps: Strategy::default_canary_steps()
        }
    );
    assert_eq!(
        Strategy::default_canary_steps()
            .iter()
            .map(|s| (s.weight, s.for_))
            .collect::<Vec<_>>(),
        [10, 50, 100].map(|w| (w, Some(Duration::from_secs(60))))
    );
    assert_eq!(env("rolling"), Strategy::Rolling { max_unavailable: 1 });
    assert_eq!(
        env("{ rolling: { max_unavailable: 2 } }"),
        Strategy::Rolling { max_unavailable: 2 }
    );
    assert_eq!(
        env("{ blue-green: { smoke_for: 30s } }"),
        Strategy::BlueGreen {
            smoke_for: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(env("{ recreate: {} }"), Strategy::Recreate);
    // A last step below 100 gets the implicit full promotion, as in Argo.
    assert_eq!(
        env("{ canary: { steps: [ { weight: \"10%\", pause: true }, { weight: 40 } ] } }"),
        Strategy::Canary {
            steps: vec![
                CanaryStep {
                    weight: 10,
                    for_: None,
                    pause: true
                },
                CanaryStep {
                    weight: 40,
                    for_: None,
                    pause: false
                },
                CanaryStep {
                    weight: 100,
                    for_: None,
                    pause: false
                },
            ]
        }
    );
}

#[test]
fn flags_are_passed_through_as_json() {
    let config = parse_ok(
        "pipeline: { stages: [ { name: s, jobs: [ { name: j, run: x } ] } ] }\nflags:\n  a: { on: true, pct: 10, f: 0.5, s: \"10\", n: ~, list: [x, 2] }\n",
    );
    assert_eq!(
        config.flags,
        Some(
            serde_json::json!({ "a": { "on": true, "pct": 10, "f": 0.5, "s": "10", "n": null, "list": ["x", 2] } })
        )
    );
}

#[test]
fn project_name_falls_back_to_the_directory() {
    let mut config =
        parse_ok("pipeline: { stages: [ { name: s, jobs: [ { name: j, run: x } ] } ] }\n");
    assert_eq!(config.project_name(Path::new("/src/shop")), "shop");
    config.project = Some("named".into());
    assert_eq!(config.project_name(Path::new("/src/shop")), "named");
}

#[test]
fn load_reports_unreadable_files_with_their_path() {
    let missing = Path::new("/definitely/not/here/andon.yaml");
    match load(missing) {
        Err(LoadError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

#[test]
fn durations_serialize_as_written() {
    let config = parse_ok(include_str!("fixtures/contract.yaml"));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json.pointer("/pipeline/stages/0/jobs/0/timeout"),
        Some(&serde_json::json!("10m"))
    );
    assert_eq!(
        json.pointer("/environments/1/judge/max_p99"),
        Some(&serde_json::json!("300ms"))
    );
    assert_eq!(
        json.pointer("/environments/1/strategy/canary/steps/0/for"),
        Some(&serde_json::json!("2m"))
    );
}

#[test]
fn runs_on_selects_agents_by_labels() {
    let config = parse_ok(
        "pipeline:\n  stages:\n    - name: build\n      jobs:\n        - name: gpu\n          run: ./train.sh\n          runs_on: [linux, gpu, linux]\n        - name: arm\n          run: make\n          runs_on: arm64\n        - name: here\n          run: make\n",
    );
    assert_eq!(job(&config, "gpu").runs_on, ["gpu", "linux"]);
    assert_eq!(job(&config, "arm").runs_on, ["arm64"]);
    assert!(job(&config, "here").runs_on.is_empty());
}

#[test]
fn runs_on_problems_are_reported() {
    for (yaml, expected) in [
        ("runs_on: []", "`runs_on` has no labels"),
        (
            "runs_on: [\"linux box\"]",
            "`linux box` is not a valid agent label",
        ),
        (
            "runs_on: [linux]\n          sandbox: true",
            "`runs_on` cannot be combined with `image` or `sandbox`",
        ),
    ] {
        let text = format!(
            "pipeline:\n  stages:\n    - name: build\n      jobs:\n        - name: a\n          run: make\n          {yaml}\n"
        );
        let err = parse("andon.yaml", &text).expect_err(yaml).to_string();
        assert!(err.contains(expected), "{yaml}: {err}");
    }
}
