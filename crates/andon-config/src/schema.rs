//! The JSON Schema (draft 2020-12) of `andon.yaml`, for editor completion
//! and hover docs (e.g. the YAML language server's `# yaml-language-server:
//! $schema=...`). A test checks its properties against [`crate::keys`].

use serde_json::{Value, json};

/// The JSON Schema of `andon.yaml`, with a description on every key.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "andon.yaml",
        "description": "Andon: the pipeline, environments and release rules of one repository.",
        "type": "object",
        "additionalProperties": false,
        "required": ["pipeline"],
        "properties": {
            "project": { "type": "string", "description": "Project name; defaults to the repository directory name." },
            "trunk": { "type": "string", "default": "main", "description": "The branch whose red pipeline stops the line." },
            "pipeline": { "$ref": "#/$defs/pipeline" },
            "environments": {
                "type": "object",
                "description": "Deployment environments by name, in promotion order (see `after`).",
                "propertyNames": { "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$" },
                "additionalProperties": { "$ref": "#/$defs/environment" }
            },
            "flags": { "description": "Feature flags; validated by the flags subsystem." },
            "release": { "$ref": "#/$defs/release" },
            "board": { "$ref": "#/$defs/board" },
            "notify": {
                "type": "array",
                "description": "Webhooks called on pipeline and release events.",
                "items": { "$ref": "#/$defs/notify" }
            }
        },
        "$defs": defs()
    })
}

fn defs() -> Value {
    json!({
        "duration": {
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$",
            "description": "A duration: `500ms`, `30s`, `10m`, `2h`, `1d`, or combined (`1h30m`).",
            "examples": ["30s", "10m", "1h30m"]
        },
        "percent": {
            "description": "A percentage `2%` or a fraction `0.02`; at most 100%.",
            "anyOf": [
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" },
                { "type": "number", "minimum": 0, "maximum": 1 }
            ]
        },
        "env": {
            "type": "object",
            "description": "Environment variables.",
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        },
        "secrets": {
            "type": "array",
            "description": "Secret names, passed as environment variables; values live in the server, never in this file.",
            "items": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }
        },
        "stringList": { "type": "array", "items": { "type": "string" } },
        "pipeline": {
            "type": "object",
            "description": "Stages run in order; jobs in a stage run in parallel.",
            "additionalProperties": false,
            "required": ["stages"],
            "properties": {
                "stages": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/stage" }, "description": "The stages, in the order they run." }
            }
        },
        "stage": {
            "type": "object",
            "description": "A stage: its jobs run in parallel once the previous stage passed.",
            "additionalProperties": false,
            "required": ["name", "jobs"],
            "properties": {
                "name": { "type": "string", "description": "Unique stage name." },
                "kind": {
                    "enum": ["unit", "acceptance", "integration", "performance", "non-functional"],
                    "description": "Which kind of test the stage runs; leave out for stages that do not test (e.g. packaging)."
                },
                "jobs": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/job" }, "description": "Jobs of the stage, run in parallel." }
            }
        },
        "job": {
            "type": "object",
            "description": "A job: a shell script and when it may run.",
            "additionalProperties": false,
            "required": ["name", "run"],
            "properties": {
                "name": { "type": "string", "description": "Unique job name across the pipeline." },
                "run": { "type": "string", "description": "Shell script run with `sh -c`; multi-line allowed." },
                "needs": {
                    "type": "array", "items": { "type": "string" },
                    "description": "Jobs that must pass before this one starts, whatever their stage. Without `needs`, a job waits for every job of the previous stage; `needs: []` starts at once. Naming a matrix job means all its expansions."
                },
                "env": { "$ref": "#/$defs/env" },
                "secrets": { "$ref": "#/$defs/secrets" },
                "timeout": { "$ref": "#/$defs/duration", "description": "The job fails when it runs longer than this." },
                "retries": { "type": "integer", "minimum": 0, "maximum": 10, "default": 0, "description": "Extra attempts after a failure." },
                "artifacts": { "$ref": "#/$defs/stringList", "description": "Paths kept after the job, content-addressed (sha256)." },
                "allow_failure": { "type": "boolean", "default": false, "description": "A failure of this job does not fail the pipeline." },
                "image": { "type": "string", "minLength": 1, "description": "Run the script in a container of this image (Docker Engine API: Docker or Podman's service, found through DOCKER_HOST). The checkout is mounted at /workspace." },
                "sandbox": { "type": "boolean", "default": false, "description": "Run the script in a bubblewrap sandbox: read-only root, private /tmp, no network. Ignored when `image` is set." },
                "runs_on": {
                    "anyOf": [
                        { "type": "string", "pattern": "^[A-Za-z0-9._-]+$" },
                        { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": "^[A-Za-z0-9._-]+$" } }
                    ],
                    "description": "Run the job on a remote agent (`andon agent --labels ...`) that has all of these labels, GitHub Actions' `runs-on`. Without it the job runs in the server. Not with `image` or `sandbox`."
                },
                "when": { "$ref": "#/$defs/when" },
                "matrix": {
                    "type": "object",
                    "description": "Run one job per combination, named `name (key=value, ...)`; each value is also an environment variable.",
                    "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
                    "additionalProperties": { "type": "array", "minItems": 1, "items": { "type": ["string", "number", "boolean"] } }
                }
            }
        },
        "when": {
            "type": "object",
            "description": "Branch filter. Globs: `*` within a path segment, `**` across `/`, `?` one character.",
            "additionalProperties": false,
            "properties": {
                "branches": { "$ref": "#/$defs/stringList", "description": "Run only on branches matching one of these." },
                "not_branches": { "$ref": "#/$defs/stringList", "description": "Never run on branches matching one of these." }
            }
        },
        "environment": {
            "type": "object",
            "description": "Where releases go, and how.",
            "additionalProperties": false,
            "required": ["target"],
            "properties": {
                "after": { "type": "string", "description": "The environment a release must reach first (promotion order)." },
                "target": { "$ref": "#/$defs/target" },
                "strategy": { "$ref": "#/$defs/strategy" },
                "judge": { "$ref": "#/$defs/judge" },
                "rollback_window": { "$ref": "#/$defs/duration", "default": "30m", "description": "How long after a release a rollback is still offered." },
                "approval": { "enum": ["auto", "manual"], "default": "auto", "description": "`manual`: a person must approve each release." },
                "window": { "$ref": "#/$defs/window" },
                "freezes": { "type": "array", "items": { "$ref": "#/$defs/freeze" }, "description": "Periods when no release may start." },
                "ttl": { "$ref": "#/$defs/duration", "description": "For short-lived (preview) environments: torn down after this long." },
                "host": { "type": "string", "description": "Host name the router serves this environment on." },
                "alerts": { "$ref": "#/$defs/alerts" },
                "traffic": { "$ref": "#/$defs/traffic" }
            }
        },
        "target": {
            "type": "object",
            "description": "What runs: a process or a container (exactly one).",
            "additionalProperties": false,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "process": { "$ref": "#/$defs/process" },
                "container": { "$ref": "#/$defs/container" }
            }
        },
        "process": {
            "type": "object",
            "description": "A local process per instance, started with `sh -c`.",
            "additionalProperties": false,
            "required": ["command"],
            "properties": {
                "command": { "type": "string", "description": "Run with `sh -c`; `$PORT` is the port to bind." },
                "instances": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1, "description": "How many instances to run." },
                "health": { "type": "string", "pattern": "^/", "description": "HTTP path probed for readiness, e.g. `/healthz`." },
                "env": { "$ref": "#/$defs/env" },
                "secrets": { "$ref": "#/$defs/secrets" },
                "ready_timeout": { "$ref": "#/$defs/duration", "default": "30s", "description": "How long an instance may take to become healthy." }
            }
        },
        "container": {
            "type": "object",
            "description": "A container per instance.",
            "additionalProperties": false,
            "required": ["image", "port"],
            "properties": {
                "image": { "type": "string", "description": "Container image reference." },
                "instances": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1, "description": "How many containers to run." },
                "health": { "type": "string", "pattern": "^/", "description": "HTTP path probed for readiness." },
                "env": { "$ref": "#/$defs/env" },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535, "description": "The port the container listens on." }
            }
        },
        "strategy": {
            "description": "How a release replaces the running version. Default `recreate`.",
            "default": "recreate",
            "anyOf": [
                { "enum": ["recreate", "rolling", "blue-green", "canary"] },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "maxProperties": 1,
                    "properties": {
                        "recreate": { "type": ["object", "null"], "additionalProperties": false, "properties": {}, "description": "Stop the old version, then start the new one." },
                        "rolling": {
                            "type": ["object", "null"], "additionalProperties": false,
                            "description": "Replace instances a few at a time.",
                            "properties": { "max_unavailable": { "type": "integer", "minimum": 1, "default": 1, "description": "Instances replaced at once." } }
                        },
                        "blue-green": {
                            "type": ["object", "null"], "additionalProperties": false,
                            "description": "Start the new version beside the old, then switch all traffic.",
                            "properties": { "smoke_for": { "$ref": "#/$defs/duration", "description": "How long the new version is smoke-tested before the switch." } }
                        },
                        "canary": {
                            "type": ["object", "null"], "additionalProperties": false,
                            "description": "Shift traffic step by step, judged at each step. Default steps: 10%, 50%, 100%, 1m each.",
                            "properties": {
                                "steps": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/canaryStep" }, "description": "Increasing weights; a final 100% step is added if missing." }
                            }
                        }
                    }
                }
            ]
        },
        "canaryStep": {
            "type": "object",
            "description": "One canary step.",
            "additionalProperties": false,
            "required": ["weight"],
            "properties": {
                "weight": { "anyOf": [{ "type": "integer", "minimum": 1, "maximum": 100 }, { "type": "string", "pattern": "^[0-9]+%$" }], "description": "Percent of traffic on the new version (1-100), strictly increasing." },
                "for": { "$ref": "#/$defs/duration", "description": "How long to hold and judge this weight." },
                "pause": { "type": "boolean", "default": false, "description": "Wait for `andon promote` before the next step." }
            }
        },
        "judge": {
            "type": "object",
            "description": "Decision points of a release, written before it starts.",
            "additionalProperties": false,
            "properties": {
                "max_error_rate": { "$ref": "#/$defs/percent", "description": "Roll back above this error rate." },
                "max_p99": { "$ref": "#/$defs/duration", "description": "Roll back above this 99th-percentile latency." },
                "compare_to_baseline": { "type": "boolean", "default": true, "description": "Sequential test of the canary against the stable version." },
                "alpha": { "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.01, "description": "Bound on the probability of a false rollback." },
                "smoke": { "type": "string", "description": "Script run against the new version before users see it." },
                "min_requests": { "type": "integer", "minimum": 1, "default": 100, "description": "Requests needed before any verdict." },
                "prometheus": { "type": "array", "items": { "$ref": "#/$defs/promRule" }, "description": "Extra checks as PromQL queries." },
                "prometheus_url": { "type": "string", "pattern": "^https?://", "description": "Base URL of the Prometheus the `prometheus` rules are asked (required with rules)." }
            }
        },
        "promRule": {
            "type": "object",
            "description": "A Prometheus check.",
            "additionalProperties": false,
            "required": ["name", "query", "max"],
            "properties": {
                "name": { "type": "string", "description": "Unique rule name, shown in verdicts." },
                "query": { "type": "string", "description": "PromQL returning one number." },
                "max": { "type": "number", "description": "The release fails when the query returns more than this." },
                "for": { "$ref": "#/$defs/duration", "default": "0s", "description": "How long the query must stay above `max` before the release fails." }
            }
        },
        "traffic": {
            "description": "What steers the environment's traffic: `router` (Andon's router, the default) or a team's HAProxy through its runtime API.",
            "anyOf": [
                { "const": "router" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "maxProperties": 1,
                    "properties": {
                        "router": { "type": ["object", "null"], "description": "Andon's own router." },
                        "haproxy": {
                            "type": "object",
                            "description": "An HAProxy backend whose `server-template` slots Andon fills, with no reload.",
                            "additionalProperties": false,
                            "required": ["socket", "backend"],
                            "properties": {
                                "socket": { "type": "string", "description": "The stats socket (`stats socket PATH level admin`), absolute path." },
                                "backend": { "type": "string", "description": "The backend whose server slots Andon fills." }
                            }
                        }
                    }
                }
            ]
        },
        "alerts": {
            "type": "object",
            "description": "Thresholds watched after a release.",
            "additionalProperties": false,
            "properties": {
                "max_error_rate": { "$ref": "#/$defs/percent", "description": "Alert above this error rate." },
                "max_p99": { "$ref": "#/$defs/duration", "description": "Alert above this p99 latency." },
                "for": { "$ref": "#/$defs/duration", "default": "1m", "description": "How long a threshold must be crossed before alerting." }
            }
        },
        "window": {
            "type": "object",
            "description": "When releases may start. `from` later than `to` wraps midnight.",
            "additionalProperties": false,
            "required": ["from", "to"],
            "properties": {
                "days": { "type": "array", "items": { "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] }, "description": "Days releases may start; default every day." },
                "from": { "type": "string", "pattern": "^[0-9]{1,2}:[0-9]{2}$", "description": "Start, `HH:MM`." },
                "to": { "type": "string", "pattern": "^[0-9]{1,2}:[0-9]{2}$", "description": "End, `HH:MM`." },
                "timezone": { "type": "string", "default": "UTC", "pattern": "^(UTC|[+-][0-9]{2}:[0-9]{2})$", "description": "`UTC` or a fixed offset such as `+02:00`." }
            }
        },
        "freeze": {
            "type": "object",
            "description": "A period when no release may start.",
            "additionalProperties": false,
            "required": ["from", "to"],
            "properties": {
                "from": { "type": "string", "format": "date-time", "description": "Start, RFC 3339." },
                "to": { "type": "string", "format": "date-time", "description": "End, RFC 3339." },
                "reason": { "type": "string", "description": "Shown when a release is refused." }
            }
        },
        "release": {
            "type": "object",
            "description": "When green commits are released.",
            "additionalProperties": false,
            "properties": {
                "mode": { "enum": ["continuous", "manual", "train"], "default": "continuous", "description": "`continuous`: every green trunk commit; `manual`: by hand; `train`: on a schedule." },
                "schedule": { "type": "string", "pattern": "^[A-Za-z]+ [0-9]{1,2}:[0-9]{2} UTC$", "description": "For `train`: `<day> HH:MM UTC`, e.g. `wed 10:00 UTC`." }
            }
        },
        "board": {
            "type": "object",
            "description": "The work board.",
            "additionalProperties": false,
            "required": ["columns"],
            "properties": {
                "columns": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/column" }, "description": "Columns, left to right." }
            }
        },
        "column": {
            "description": "A board column: a name, or a name with a WIP limit.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name"],
                    "properties": {
                        "name": { "type": "string", "description": "Column name." },
                        "wip": { "type": "integer", "minimum": 1, "description": "Work-in-progress limit." }
                    }
                }
            ]
        },
        "notify": {
            "type": "object",
            "description": "A webhook.",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": { "type": "string", "pattern": "^https?://", "description": "Webhook URL." },
                "format": { "enum": ["json", "slack"], "default": "json", "description": "Payload format." },
                "events": { "$ref": "#/$defs/stringList", "description": "Events to send; all when empty." },
                "secret": { "type": "string", "description": "Name of the server-side secret used to sign payloads (never the value)." }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::json_schema;
    use crate::check::Spec;
    use crate::keys;

    fn props(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
        let mut keys: Vec<String> = schema
            .pointer(pointer)
            .and_then(|p| p.as_object())
            .unwrap_or_else(|| panic!("{pointer} missing"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn sorted(spec: &Spec) -> Vec<String> {
        let mut keys: Vec<String> = spec.keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    }

    /// The schema must list exactly the keys the validator accepts.
    #[test]
    fn schema_matches_validator_keys() {
        let s = json_schema();
        let cases: [(&str, &Spec); 22] = [
            ("/properties", &keys::TOP),
            ("/$defs/pipeline/properties", &keys::PIPELINE),
            ("/$defs/stage/properties", &keys::STAGE),
            ("/$defs/job/properties", &keys::JOB),
            ("/$defs/when/properties", &keys::WHEN),
            ("/$defs/environment/properties", &keys::ENVIRONMENT),
            ("/$defs/target/properties", &keys::TARGET),
            ("/$defs/process/properties", &keys::PROCESS),
            ("/$defs/container/properties", &keys::CONTAINER),
            ("/$defs/strategy/anyOf/1/properties", &keys::STRATEGY),
            (
                "/$defs/strategy/anyOf/1/properties/rolling/properties",
                &keys::ROLLING,
            ),
            (
                "/$defs/strategy/anyOf/1/properties/blue-green/properties",
                &keys::BLUE_GREEN,
            ),
            (
                "/$defs/strategy/anyOf/1/properties/canary/properties",
                &keys::CANARY,
            ),
            ("/$defs/canaryStep/properties", &keys::CANARY_STEP),
            ("/$defs/judge/properties", &keys::JUDGE),
            ("/$defs/promRule/properties", &keys::PROM_RULE),
            ("/$defs/alerts/properties", &keys::ALERTS),
            ("/$defs/traffic/anyOf/1/properties", &keys::TRAFFIC),
            (
                "/$defs/traffic/anyOf/1/properties/haproxy/properties",
                &keys::HAPROXY,
            ),
            ("/$defs/window/properties", &keys::WINDOW),
            ("/$defs/freeze/properties", &keys::FREEZE),
            ("/$defs/release/properties", &keys::RELEASE),
        ];
        for (pointer, spec) in cases {
            assert_eq!(props(&s, pointer), sorted(spec), "{pointer}");
        }
        assert_eq!(props(&s, "/$defs/board/properties"), sorted(&keys::BOARD));
        assert_eq!(
            props(&s, "/$defs/column/anyOf/1/properties"),
            sorted(&keys::COLUMN)
        );
        assert_eq!(props(&s, "/$defs/notify/properties"), sorted(&keys::NOTIFY));
        assert!(props(&s, "/$defs/strategy/anyOf/1/properties/recreate/properties").is_empty());
        assert!(keys::RECREATE.keys.is_empty());
    }

    /// Every `$ref` points at a definition, and every key has a description.
    #[test]
    fn refs_resolve_and_keys_are_described() {
        let s = json_schema();
        let mut todo = vec![("".to_string(), &s)];
        while let Some((path, node)) = todo.pop() {
            if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
                assert!(
                    s.pointer(r.trim_start_matches('#')).is_some(),
                    "{path}: dangling {r}"
                );
            }
            if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
                for (key, prop) in props {
                    let described = prop.get("description").is_some()
                        || prop
                            .get("$ref")
                            .and_then(|r| r.as_str())
                            .and_then(|r| s.pointer(r.trim_start_matches('#')))
                            .is_some_and(|d| d.get("description").is_some());
                    assert!(described, "{path}/{key} has no description");
                }
            }
            match node {
                serde_json::Value::Object(map) => {
                    todo.extend(map.iter().map(|(k, v)| (format!("{path}/{k}"), v)))
                }
                serde_json::Value::Array(items) => todo.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{path}/{i}"), v)),
                ),
                _ => {}
            }
        }
    }
}
