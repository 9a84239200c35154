//! The keys each mapping of `andon.yaml` accepts: one list shared by the
//! validator (unknown-key errors and suggestions) and checked against the
//! JSON Schema by a test, so the two cannot drift apart.

use crate::check::Spec;

pub(crate) const TOP: Spec = Spec {
    place: "andon.yaml's top level",
    keys: &[
        "project",
        "trunk",
        "pipeline",
        "environments",
        "flags",
        "release",
        "board",
        "notify",
    ],
};
pub(crate) const PIPELINE: Spec = Spec {
    place: "`pipeline`",
    keys: &["stages"],
};
pub(crate) const STAGE: Spec = Spec {
    place: "a stage",
    keys: &["name", "kind", "jobs"],
};
pub(crate) const JOB: Spec = Spec {
    place: "a job",
    keys: &[
        "name",
        "run",
        "needs",
        "env",
        "secrets",
        "timeout",
        "retries",
        "artifacts",
        "allow_failure",
        "image",
        "sandbox",
        "runs_on",
        "when",
        "matrix",
    ],
};
pub(crate) const WHEN: Spec = Spec {
    place: "`when`",
    keys: &["branches", "not_branches"],
};
pub(crate) const ENVIRONMENT: Spec = Spec {
    place: "an environment",
    keys: &[
        "after",
        "target",
        "strategy",
        "judge",
        "rollback_window",
        "approval",
        "window",
        "freezes",
        "ttl",
        "host",
        "alerts",
        "traffic",
    ],
};
pub(crate) const TARGET: Spec = Spec {
    place: "`target`",
    keys: &["process", "container"],
};
pub(crate) const PROCESS: Spec = Spec {
    place: "a process target",
    keys: &[
        "command",
        "instances",
        "health",
        "env",
        "secrets",
        "ready_timeout",
    ],
};
pub(crate) const CONTAINER: Spec = Spec {
    place: "a container target",
    keys: &["image", "instances", "health", "env", "port"],
};
pub(crate) const STRATEGY: Spec = Spec {
    place: "`strategy`",
    keys: &["recreate", "rolling", "blue-green", "canary"],
};
pub(crate) const RECREATE: Spec = Spec {
    place: "`recreate`",
    keys: &[],
};
pub(crate) const ROLLING: Spec = Spec {
    place: "`rolling`",
    keys: &["max_unavailable"],
};
pub(crate) const BLUE_GREEN: Spec = Spec {
    place: "`blue-green`",
    keys: &["smoke_for"],
};
pub(crate) const CANARY: Spec = Spec {
    place: "`canary`",
    keys: &["steps"],
};
pub(crate) const CANARY_STEP: Spec = Spec {
    place: "a canary step",
    keys: &["weight", "for", "pause"],
};
pub(crate) const JUDGE: Spec = Spec {
    place: "`judge`",
    keys: &[
        "max_error_rate",
        "max_p99",
        "compare_to_baseline",
        "alpha",
        "smoke",
        "min_requests",
        "prometheus",
        "prometheus_url",
    ],
};
pub(crate) const PROM_RULE: Spec = Spec {
    place: "a prometheus rule",
    keys: &["name", "query", "max", "for"],
};
pub(crate) const TRAFFIC: Spec = Spec {
    place: "`traffic`",
    keys: &["router", "haproxy"],
};
pub(crate) const HAPROXY: Spec = Spec {
    place: "`haproxy`",
    keys: &["socket", "backend"],
};
pub(crate) const ALERTS: Spec = Spec {
    place: "`alerts`",
    keys: &["max_error_rate", "max_p99", "for"],
};
pub(crate) const WINDOW: Spec = Spec {
    place: "`window`",
    keys: &["days", "from", "to", "timezone"],
};
pub(crate) const FREEZE: Spec = Spec {
    place: "a freeze",
    keys: &["from", "to", "reason"],
};
pub(crate) const RELEASE: Spec = Spec {
    place: "`release`",
    keys: &["mode", "schedule"],
};
pub(crate) const BOARD: Spec = Spec {
    place: "`board`",
    keys: &["columns"],
};
pub(crate) const COLUMN: Spec = Spec {
    place: "a board column",
    keys: &["name", "wip"],
};
pub(crate) const NOTIFY: Spec = Spec {
    place: "a notify entry",
    keys: &["url", "format", "events", "secret"],
};
