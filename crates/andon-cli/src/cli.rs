//! The command-line grammar. Every flag's doc comment is its `--help` text;
//! client flags also read `ANDON_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "andon",
    version,
    about = "Continuous delivery in one binary: pipelines, releases, flags, flow."
)]
pub(crate) struct Cli {
    /// Turn colours off (also when NO_COLOR is set or output is not a terminal).
    #[arg(long, global = true, env = "NO_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) no_color: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How client commands reach a server.
#[derive(Debug, Clone, Args)]
pub(crate) struct Remote {
    /// The server's address.
    #[arg(
        long,
        env = "ANDON_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub(crate) server: String,
    /// An API token (see `andon token create`).
    #[arg(long, env = "ANDON_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
}

/// Which router the server releases through.
#[derive(Debug, Clone, Args)]
pub(crate) struct RouterArgs {
    /// Admin API of an existing router (`andon router`). Without it the
    /// server starts its own router process, which outlives server restarts.
    #[arg(long, env = "ANDON_ROUTER_ADMIN_URL")]
    pub(crate) router_admin: Option<String>,
    /// Where that router proxies (for smoke tests).
    #[arg(long, env = "ANDON_ROUTER_URL")]
    pub(crate) router_url: Option<String>,
    /// Token of that router's admin API.
    #[arg(long, env = "ANDON_ROUTER_TOKEN", hide_env_values = true)]
    pub(crate) router_token: Option<String>,
    /// Where the server's own router listens for traffic.
    #[arg(long, env = "ANDON_ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) router_listen: SocketAddr,
    /// Where the server's own router serves its admin API.
    #[arg(long, env = "ANDON_ROUTER_ADMIN", default_value = "127.0.0.1:8081")]
    pub(crate) router_admin_listen: SocketAddr,
    /// Do not start a router: releases are refused until one is given.
    #[arg(long)]
    pub(crate) no_router: bool,
}

/// Which project a release command is about.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProjectArg {
    /// The project (default: `project:` in ./andon.yaml, else the directory name).
    #[arg(long, short = 'p', env = "ANDON_PROJECT")]
    pub(crate) project: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate andon.yaml; errors as FILE:LINE:COL with the line and a hint.
    Check {
        /// The file to check.
        #[arg(long, short, default_value = "andon.yaml")]
        file: PathBuf,
    },
    /// Print the JSON Schema of andon.yaml (for editor autocompletion).
    Schema,
    /// Run the pipeline of HEAD locally, in a clean checkout, with no server.
    Run {
        /// Machine-readable summary on stdout instead of live progress.
        #[arg(long)]
        json: bool,
        /// Jobs to run at once (default: number of cores).
        #[arg(long, short = 'j', env = "ANDON_PARALLELISM")]
        parallelism: Option<usize>,
        /// The repository (default: the one containing the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Keep running other jobs after a failure.
        #[arg(long)]
        no_fail_fast: bool,
    },
    /// Start the control plane.
    Server {
        /// Data directory: database, artifacts, logs, repository mirrors.
        #[arg(long, env = "ANDON_DATA", default_value = ".andon")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "ANDON_LISTEN", default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Store URL: `sqlite:PATH` or `postgres://...` (default: SQLite in the data directory).
        #[arg(long, env = "ANDON_STORE")]
        store: Option<String>,
        /// The URL other servers sharing the store reach this one's API at,
        /// when it leads (default: http:// and the --listen address).
        #[arg(long, env = "ANDON_ADVERTISE")]
        advertise: Option<String>,
        /// Jobs to run at once per run (default: number of cores).
        #[arg(long, env = "ANDON_PARALLELISM")]
        parallelism: Option<usize>,
        #[command(flatten)]
        router: RouterArgs,
    },
    /// Start the data plane: the reverse proxy that splits traffic between versions.
    Router {
        /// Data directory: the last route table is kept here and served at start.
        #[arg(long, env = "ANDON_ROUTER_DATA", default_value = ".andon-router")]
        data: PathBuf,
        /// Address the proxy listens on.
        #[arg(long, env = "ANDON_ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the admin API (routes, stats, metrics).
        #[arg(long, env = "ANDON_ROUTER_ADMIN", default_value = "127.0.0.1:8081")]
        admin: SocketAddr,
        /// Token the control plane must present to change routes.
        #[arg(long, env = "ANDON_ROUTER_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Manage watched projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Run a project's pipeline now.
    Trigger {
        project: String,
        /// Branch, tag or commit (default: the trunk).
        #[arg(long = "ref")]
        reference: Option<String>,
        /// Follow the run live until it ends; exit 0 only if it passed.
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a project's runs, newest first.
    Runs {
        project: String,
        #[arg(long)]
        json: bool,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one run; `--follow` watches it live.
    Show {
        run: u64,
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a job's log; `--follow` streams it live.
    Logs {
        run: u64,
        job: String,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a run.
    Cancel {
        run: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// List or download artifacts.
    #[command(subcommand)]
    Artifacts(ArtifactCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage a project's secrets (values never come back out).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Print events (the audit log); `--follow` streams them.
    Events {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Release a version to an environment: an artifact digest or a run id.
    Deploy {
        environment: String,
        /// `sha256:...`, or the id of a passed run whose artifact to release.
        artifact: String,
        /// Which artifact of the run, when it stored several.
        #[arg(long)]
        path: Option<String>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// This release ran a `contract` database migration: no rollback past it.
        #[arg(long)]
        contract_migration: bool,
        /// Follow the release until it ends; exit 0 only if it succeeded.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Skip the remaining canary steps: all traffic to the new version.
    Promote {
        environment: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Hold the release at its current step (the judge keeps watching).
    Pause {
        environment: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Continue a paused release.
    Resume {
        environment: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop the release; traffic goes back to the stable version.
    Abort {
        environment: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Return to the last known good version, in one route update.
    Rollback {
        environment: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Environments with the versions they run and their traffic split.
    Envs {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// Environments made on demand (review apps): up, down, list.
    #[command(subcommand)]
    Env(crate::cmd::EnvCmd),
    /// Releases, newest first, with the judge's verdicts.
    Deploys {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        remote: Remote,
    },
    /// The whole flow on this machine: pipeline, canary, a bad release caught
    /// and rolled back, a flag ramp; then a summary.
    Demo {
        /// Leave the server, router and instances running to explore.
        #[arg(long)]
        keep: bool,
        /// Where to put the demo repository and data (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port of the demo's server (the router uses the next two).
        #[arg(long, default_value_t = 7170)]
        port: u16,
    },
    /// The demo's sample HTTP service (PORT, VERSION, ERROR_RATE, LATENCY_MS from the environment).
    #[command(hide = true)]
    SampleService {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Feature flags: list, inspect, kill, roll out, apply as code, import.
    #[command(subcommand)]
    Flags(crate::cmd::FlagsCmd),
    /// The DORA keys, bands and gear of a project.
    Metrics(crate::cmd::MetricsArgs),
    /// The project's board: columns, cards, WIP limits.
    Board(crate::cmd::BoardArgs),
    /// Cards on the board: add, move.
    #[command(subcommand)]
    Card(crate::cmd::CardCmd),
    /// Git hooks: `andon hook install [--refuse]` asks the gate before a push.
    #[command(subcommand)]
    Hook(crate::cmd::HookCmd),
    /// Copy every event, token and secret from one store to another
    /// (e.g. SQLite to the PostgreSQL several servers share), then verify.
    MigrateStore(crate::cmd::MigrateArgs),
    /// Run jobs with `runs_on:` for a server, on this machine (a remote agent).
    Agent {
        /// Labels this agent offers; it runs jobs whose `runs_on` are all among them.
        #[arg(long, value_delimiter = ',', env = "ANDON_AGENT_LABELS")]
        labels: Vec<String>,
        /// Unique name among the server's agents (default: the host name).
        #[arg(long, env = "ANDON_AGENT_NAME")]
        name: Option<String>,
        /// Work directory for checkouts and scratch space.
        #[arg(long, env = "ANDON_AGENT_WORK", default_value = ".andon-agent")]
        work: PathBuf,
        /// Jobs to run at once.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCmd {
    /// Watch a repository: its branches run on every new commit.
    Add {
        name: String,
        /// Path or URL of the git repository.
        #[arg(long)]
        repo: String,
        /// Poll interval (`0s` for webhooks only).
        #[arg(long, default_value = "60s")]
        poll: String,
        /// The trunk branch (default: main, master or trunk, whichever exists).
        #[arg(long)]
        trunk: Option<String>,
        /// Shared secret for forge webhooks (generated if absent, printed once).
        #[arg(long, env = "ANDON_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List projects.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop watching a project (its history stays).
    Remove {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ArtifactCmd {
    /// Artifacts a run produced.
    List {
        run: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Download an artifact by digest (a tar stream) and unpack it.
    Get {
        digest: String,
        /// Directory to unpack into (default: the current directory).
        #[arg(long, short, default_value = ".")]
        output: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token; its secret is printed once.
    Create {
        name: String,
        /// viewer, developer, deployer or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Restrict the token to one environment.
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCmd {
    /// Set a secret; the value is read from standard input if not given.
    Set {
        project: String,
        name: String,
        /// The value (prefer standard input: command lines end up in shell history).
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a project's secret names.
    List {
        project: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}
