//! Flow commands: `andon metrics`, `andon board`, `andon card add|move`,
//! `andon hook install`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::cli::Remote;
use crate::client::{Client, segment};

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    project: String,
    /// The environment (default: the production environment).
    #[arg(long)]
    env: Option<String>,
    /// Start of the period: RFC 3339 or YYYY-MM-DD (default: 30 days ago).
    #[arg(long)]
    since: Option<String>,
    /// End of the period (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Print the server's JSON object as is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub(crate) struct BoardArgs {
    /// The project (default: ANDON_PROJECT).
    #[arg(env = "ANDON_PROJECT")]
    project: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CardCmd {
    /// Create a card (in the board's first column).
    Add {
        title: String,
        #[arg(long, env = "ANDON_PROJECT")]
        project: String,
        #[arg(long)]
        column: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move a card; `--override REASON` (admin) passes a full column.
    Move {
        id: u64,
        column: String,
        #[arg(long, env = "ANDON_PROJECT")]
        project: String,
        #[arg(long = "override")]
        override_reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum HookCmd {
    /// Write .git/hooks/pre-push: it asks the server's gate before a push.
    /// A push while trunk is red warns (or, with --refuse, is refused)
    /// unless the pushed commit's message says "fixes the build" or starts
    /// with "fix:" — the push that repairs trunk must always get through.
    Install {
        /// Refuse the push instead of warning.
        #[arg(long)]
        refuse: bool,
        #[arg(long, env = "ANDON_PROJECT")]
        project: String,
        /// The repository (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) async fn metrics(a: MetricsArgs) -> Result<ExitCode> {
    let mut query = Vec::new();
    for (k, v) in [("env", &a.env), ("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            query.push(format!("{k}={}", segment(v)));
        }
    }
    let path = format!(
        "/api/v1/projects/{}/metrics?{}",
        segment(&a.project),
        query.join("&")
    );
    let m: Value = Client::new(&a.remote)?.get(&path).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(ExitCode::SUCCESS);
    }
    let num = |key: &str, unit: &str| match m[key].as_f64() {
        Some(v) if unit == "%" => format!("{:.1}%", v * 100.0),
        Some(v) => format!("{v:.2}{unit}"),
        None => "no data yet".to_string(),
    };
    let band = |key: &str| m["bands"][key].as_str().unwrap_or("").to_string();
    println!(
        "{} · {}",
        a.project,
        m["environment"].as_str().unwrap_or("")
    );
    let rows = [
        (
            "deployment frequency",
            num("deployment_frequency_per_day", "/day"),
            band("deployment_frequency"),
        ),
        (
            "lead time (median)",
            num("lead_time_median_s", "s"),
            band("lead_time"),
        ),
        (
            "change failure rate",
            num("change_failure_rate", "%"),
            band("change_failure_rate"),
        ),
        (
            "time to restore (median)",
            num("time_to_restore_median_s", "s"),
            band("time_to_restore"),
        ),
        (
            "time to green (median)",
            num("time_to_green_median_s", "s"),
            String::new(),
        ),
    ];
    for (name, value, band) in rows {
        println!("  {name:26} {value:>16}  {band}");
    }
    match &m["gear"] {
        Value::Null => println!("  gear: no deployments yet"),
        g => println!("  gear: {g}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn board(a: BoardArgs) -> Result<ExitCode> {
    let b: Value = Client::new(&a.remote)?
        .get(&format!("/api/v1/projects/{}/board", segment(&a.project)))
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(ExitCode::SUCCESS);
    }
    for col in b["columns"].as_array().into_iter().flatten() {
        let wip = col["wip"]
            .as_u64()
            .map(|w| format!("/{w}"))
            .unwrap_or_default();
        println!(
            "{} ({}{wip})",
            col["name"].as_str().unwrap_or(""),
            col["count"]
        );
        for card in col["cards"].as_array().into_iter().flatten() {
            println!(
                "  #{:<5} {}",
                card["id"],
                card["title"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn card(cmd: CardCmd) -> Result<ExitCode> {
    match cmd {
        CardCmd::Add {
            title,
            project,
            column,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .post(
                    &format!("/api/v1/projects/{}/cards", segment(&project)),
                    &json!({"title": title, "column": column}),
                )
                .await?;
            println!(
                "card #{} in {}",
                v["id"],
                v["column"].as_str().unwrap_or("")
            );
        }
        CardCmd::Move {
            id,
            column,
            project,
            override_reason,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .post(
                    &format!("/api/v1/projects/{}/cards/{id}/move", segment(&project)),
                    &json!({"to": column, "override_reason": override_reason}),
                )
                .await?;
            println!("card #{id} now in {}", v["column"].as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn hook(cmd: HookCmd) -> Result<ExitCode> {
    let HookCmd::Install {
        refuse,
        project,
        repo,
        remote,
    } = cmd;
    let hooks = repo.join(".git").join("hooks");
    std::fs::create_dir_all(&hooks)
        .with_context(|| format!("{} is not a git repository", repo.display()))?;
    let path = hooks.join("pre-push");
    std::fs::write(&path, pre_push(&remote.server, &project, refuse))
        .with_context(|| format!("could not write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    println!(
        "wrote {} ({} pushes to a red trunk unless the commit says \"fixes the build\" or \"fix:\"); the token comes from ANDON_TOKEN at push time",
        path.display(),
        if refuse { "refuses" } else { "warns about" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The hook script. The server is baked in (ANDON_SERVER overrides it);
/// the token is never written to disk: it is read from ANDON_TOKEN.
fn pre_push(server: &str, project: &str, refuse: bool) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    format!(
        r#"#!/bin/sh
# Written by `andon hook install`: asks Andon whether trunk is green.
SERVER="${{ANDON_SERVER:-{server}}}"
PROJECT={project}
REFUSE={refuse}
status=$(curl -s -o /dev/null -w '%{{http_code}}' -H "Authorization: Bearer $ANDON_TOKEN" \
  "$SERVER/api/v1/projects/$PROJECT/gate") || exit 0
[ "$status" = "423" ] || exit 0
while read -r local_ref local_sha remote_ref remote_sha; do
  msg=$(git log -1 --format=%B "$local_sha" 2>/dev/null)
  case "$msg" in
    *"fixes the build"*|fix:*|*"
fix:"*) exit 0 ;;
  esac
done
echo "andon: the line is stopped: trunk of $PROJECT is red." >&2
echo "andon: push a fix (say \"fixes the build\" or start the message with \"fix:\")." >&2
[ "$REFUSE" = "1" ] && exit 1
exit 0
"#,
        server = server,
        project = quote(project),
        refuse = u8::from(refuse),
    )
}
