//! The checked model: what the rest of Andon reads. Every value here has
//! passed validation; defaults are already applied.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// A validated `andon.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// `project:`; `None` means "use the repository directory name"
    /// (see [`Config::project_name`]).
    pub project: Option<String>,
    /// The branch whose red pipeline stops the line. Default `main`.
    pub trunk: String,
    pub pipeline: Pipeline,
    /// In file order, which is also the order the dashboard shows them.
    pub environments: Vec<Environment>,
    /// The `flags:` section as JSON, untouched: `andon-flags` owns its
    /// validation so that this crate does not depend on the flag model.
    pub flags: Option<serde_json::Value>,
    pub release: Option<Release>,
    pub board: Option<Board>,
    pub notify: Vec<Notify>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// In file order; never empty in a parsed config.
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    /// `None` when not written: a stage such as `package` is not a test
    /// stage, and reports should not pretend it is one.
    pub kind: Option<StageKind>,
    /// After matrix expansion, in file order.
    pub jobs: Vec<Job>,
}

/// Which kind of test a stage runs, in Continuous Delivery's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    Unit,
    Acceptance,
    Integration,
    Performance,
    NonFunctional,
}

impl StageKind {
    pub const ALL: [StageKind; 5] = [
        StageKind::Unit,
        StageKind::Acceptance,
        StageKind::Integration,
        StageKind::Performance,
        StageKind::NonFunctional,
    ];

    /// The spelling used in `andon.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Unit => "unit",
            StageKind::Acceptance => "acceptance",
            StageKind::Integration => "integration",
            StageKind::Performance => "performance",
            StageKind::NonFunctional => "non-functional",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Unique in the pipeline. A matrix job's expansions are named
    /// `name (key=value, ...)` with keys sorted.
    pub name: String,
    /// The name of the stage the job belongs to.
    pub stage: String,
    /// A shell script for `sh -c`.
    pub run: String,
    /// `needs:` as written, with matrix jobs expanded to all their
    /// expansions. Empty both when absent and when `needs: []`.
    pub needs: Vec<String>,
    /// The jobs that must pass before this one starts: exactly `needs` when
    /// written (so `needs: []` starts at once), otherwise every job of the
    /// previous stage (GitLab semantics: stages run in order).
    pub deps: Vec<String>,
    /// Includes the matrix values, which override same-named entries.
    pub env: BTreeMap<String, String>,
    /// Secret names; values live in the server.
    pub secrets: Vec<String>,
    #[serde(serialize_with = "crate::units::ser_opt_duration")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failure. Default 0.
    pub retries: u32,
    /// Paths kept after the job, content-addressed.
    pub artifacts: Vec<String>,
    /// A failure does not fail the pipeline.
    pub allow_failure: bool,
    /// Run the script in a container of this image (GitLab's `image:`)
    /// through the Docker Engine API, instead of on the runner's machine.
    pub image: Option<String>,
    /// Run the script in a bubblewrap sandbox: read-only root, private
    /// `/tmp`, no network. Ignored when `image` is set.
    pub sandbox: bool,
    /// `runs_on:` labels (GitHub Actions' naming): the job runs on a remote
    /// agent that has all of them. Empty: it runs in the server itself.
    pub runs_on: Vec<String>,
    pub when: Option<When>,
    /// This expansion's matrix values; empty for a job without `matrix`.
    pub matrix: BTreeMap<String, String>,
}

/// Branch filter of a job. Globs: `*` matches within one path segment,
/// `**` across `/`, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    /// The job runs only on branches matching one of these (all when empty).
    pub branches: Vec<String>,
    /// The job never runs on branches matching one of these.
    pub not_branches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    pub name: String,
    /// The environment a release must reach first (promotion order).
    pub after: Option<String>,
    pub target: Target,
    pub strategy: Strategy,
    pub judge: Option<JudgeRules>,
    /// How long after a release a rollback is still offered. Default 30m.
    #[serde(serialize_with = "crate::units::ser_duration")]
    pub rollback_window: Duration,
    pub approval: Approval,
    pub window: Option<DeployWindow>,
    pub freezes: Vec<Freeze>,
    /// For short-lived (preview) environments: torn down after this long.
    #[serde(serialize_with = "crate::units::ser_opt_duration")]
    pub ttl: Option<Duration>,
    /// The host name the router serves this environment on.
    pub host: Option<String>,
    pub alerts: Option<AlertRules>,
    /// What steers the environment's traffic. Default: Andon's router.
    pub traffic: Traffic,
}

/// What steers an environment's traffic between versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// Andon's own router, through its admin API (the default).
    #[default]
    Router,
    /// A backend of the team's HAProxy, through its runtime API (no reload).
    Haproxy(HaproxyTraffic),
}

/// `traffic: { haproxy: { socket, backend } }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaproxyTraffic {
    /// The stats socket, declared with `level admin` (absolute path).
    pub socket: std::path::PathBuf,
    /// The backend whose server slots (`server-template`) Andon fills.
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Process(ProcessTarget),
    Container(ContainerTarget),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTarget {
    /// Run with `sh -c`; `$PORT` is set to the port the instance must bind.
    pub command: String,
    /// Default 1.
    pub instances: u32,
    /// HTTP path probed for readiness, e.g. `/healthz`.
    pub health: Option<String>,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    /// How long an instance may take to become healthy. Default 30s.
    #[serde(serialize_with = "crate::units::ser_duration")]
    pub ready_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerTarget {
    pub image: String,
    /// Default 1.
    pub instances: u32,
    pub health: Option<String>,
    pub env: BTreeMap<String, String>,
    /// The port the container listens on.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Stop the old version, start the new one. The default.
    Recreate,
    /// Replace instances a few at a time.
    Rolling { max_unavailable: u32 },
    /// Start the new version beside the old, switch all traffic at once.
    BlueGreen {
        /// How long the new version serves smoke traffic before the switch.
        #[serde(serialize_with = "crate::units::ser_opt_duration")]
        smoke_for: Option<Duration>,
    },
    /// Shift traffic step by step, judged at each step. The last step is
    /// always weight 100 (added when not written, as Argo Rollouts does).
    Canary { steps: Vec<CanaryStep> },
}

impl Strategy {
    /// What plain `strategy: canary` means.
    pub fn default_canary_steps() -> Vec<CanaryStep> {
        [10, 50, 100]
            .into_iter()
            .map(|weight| CanaryStep {
                weight,
                for_: Some(Duration::from_secs(60)),
                pause: false,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryStep {
    /// Percent of traffic on the new version, 1..=100, strictly increasing.
    pub weight: u8,
    /// How long to hold (and judge) this weight.
    #[serde(rename = "for")]
    #[serde(serialize_with = "crate::units::ser_opt_duration")]
    pub for_: Option<Duration>,
    /// Wait for a manual `andon promote` before the next step.
    pub pause: bool,
}

/// The decision points of a release, written before it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeRules {
    /// A fraction (`2%` is `0.02`).
    pub max_error_rate: Option<f64>,
    #[serde(serialize_with = "crate::units::ser_opt_duration")]
    pub max_p99: Option<Duration>,
    /// Run a sequential test of canary against stable. Default true.
    pub compare_to_baseline: bool,
    /// Bound on false rollbacks; in (0, 0.5]. Default 0.01.
    pub alpha: f64,
    /// Script run against the new version before users see it.
    pub smoke: Option<String>,
    /// Requests needed before any verdict. Default 100.
    pub min_requests: u64,
    pub prometheus: Vec<PromRule>,
    /// Base URL of the Prometheus the `prometheus` rules are asked
    /// (required when there are rules), e.g. `http://127.0.0.1:9090`.
    pub prometheus_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromRule {
    pub name: String,
    /// PromQL returning one number.
    pub query: String,
    /// The release fails when the query returns more than this.
    pub max: f64,
    /// How long the query must stay above `max` before the release fails.
    /// Default 0: the first answer above `max` fails it.
    #[serde(rename = "for")]
    #[serde(serialize_with = "crate::units::ser_duration")]
    pub for_: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRules {
    pub max_error_rate: Option<f64>,
    #[serde(serialize_with = "crate::units::ser_opt_duration")]
    pub max_p99: Option<Duration>,
    /// How long a threshold must be crossed before alerting. Default 1m.
    #[serde(rename = "for")]
    #[serde(serialize_with = "crate::units::ser_duration")]
    pub for_: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Auto,
    Manual,
}

/// When deploys may happen. `from` > `to` means the window wraps midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployWindow {
    /// Default: every day.
    pub days: Vec<Weekday>,
    /// (hour, minute)
    pub from: (u8, u8),
    pub to: (u8, u8),
    /// `UTC` or a fixed offset such as `+02:00`. Default `UTC`.
    pub timezone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Accepts `mon` or `monday`, any case.
    pub fn parse(text: &str) -> Option<Weekday> {
        let lower = text.trim().to_ascii_lowercase();
        Weekday::ALL.into_iter().find(|day| {
            let short = day.as_str();
            lower == short || lower == day.full_name()
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    fn full_name(self) -> &'static str {
        match self {
            Weekday::Mon => "monday",
            Weekday::Tue => "tuesday",
            Weekday::Wed => "wednesday",
            Weekday::Thu => "thursday",
            Weekday::Fri => "friday",
            Weekday::Sat => "saturday",
            Weekday::Sun => "sunday",
        }
    }
}

/// A period when no deploy may start (RFC 3339 instants, validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freeze {
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub mode: ReleaseMode,
    /// For `train`: `"<day> HH:MM UTC"`, e.g. `"wed 10:00 UTC"`.
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseMode {
    /// Every green trunk commit goes out. The default.
    Continuous,
    /// Releases start only by hand.
    Manual,
    /// Green commits wait for the scheduled departure.
    Train,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// Work-in-progress limit.
    pub wip: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub url: String,
    pub format: NotifyFormat,
    /// Event names to send; empty means all.
    pub events: Vec<String>,
    /// Name of the secret used to sign the payload (never the value).
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    Json,
    Slack,
}
