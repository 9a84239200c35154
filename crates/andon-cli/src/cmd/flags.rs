//! `andon flags ...`: feature flags on a server. Changes always carry a
//! reason (the audit log keeps who, when, what and why); `apply` shows the
//! diff before it changes anything.
//!
//! Flags documents (`andon.yaml`'s `flags:` section, or a standalone YAML or
//! JSON file) have the shape of `andon-flags`' `FlagSet`: `flags:`,
//! `segments:`, `schedule:`. As a shorthand the section may hold the flags
//! directly (any key other than those three means it does).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::cli::Remote;
use crate::client::{Client, segment};
use crate::ui::{self, hinted};

#[derive(Debug, Subcommand)]
pub(crate) enum FlagsCmd {
    /// List flags with their state in each environment.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a flag: its definition, guarded rollouts, scheduled changes and
    /// audit history.
    #[command(alias = "show")]
    Get {
        key: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Import flags from another system into one environment.
    Import {
        /// The system the file comes from.
        #[arg(long, value_enum)]
        from: ImportFrom,
        /// Unleash: the JSON of `/api/client/features` (or an export).
        file: PathBuf,
        /// The environment the imported configuration lands in.
        #[arg(long, default_value = "production")]
        environment: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make the server's flags what a document says: shows the diff, then
    /// applies it after confirmation (or with --yes). Flags and segments the
    /// document does not name are removed.
    Apply {
        /// A flags file (YAML or JSON), or an andon.yaml (its `flags:` section).
        #[arg(long, short, default_value = "andon.yaml")]
        file: PathBuf,
        /// Apply without asking (needed when there is no terminal).
        #[arg(long, short)]
        yes: bool,
        /// Why (kept in the audit log; default: the command and file).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// The kill switch: turn a flag off in one environment, or everywhere.
    Kill {
        key: String,
        /// Only this environment (default: all).
        #[arg(long)]
        environment: Option<String>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set the share of users a flag is on for in an environment.
    Rollout {
        key: String,
        #[arg(long)]
        environment: String,
        /// 0 to 100.
        #[arg(long)]
        percentage: f64,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start (or restart) a guarded rollout: the rollout goes through the
    /// steps, each held for `--every` and judged (error rate of users on the
    /// new variant against the others, anytime-valid); harm turns it back.
    /// Without --steps the ramp declared in the flag starts over. --stop
    /// stops a running one where it is.
    Ramp {
        key: String,
        #[arg(long)]
        environment: String,
        /// Rollout percentages, e.g. 1,5,25,100.
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        steps: Vec<f64>,
        /// How long each step lasts at least: 30s, 10m, 1h.
        #[arg(long, default_value = "10m")]
        every: String,
        /// Outcomes the new variant needs in a step before it advances.
        #[arg(long)]
        min_outcomes: Option<u64>,
        /// The judge's level (chance of turning back a variant that is not worse).
        #[arg(long)]
        alpha: Option<f64>,
        /// The project that gets the incident (and notifications) if it is turned back.
        #[arg(long)]
        project: Option<String>,
        /// Stop the running ramp instead.
        #[arg(long)]
        stop: bool,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Temporary flags that serve one variant everywhere and have not
    /// changed for N days: ready to remove from the code.
    Stale {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ImportFrom {
    Unleash,
}

pub(crate) async fn run(cmd: FlagsCmd) -> Result<ExitCode> {
    match cmd {
        FlagsCmd::List { json, remote } => list(&remote, json).await,
        FlagsCmd::Get { key, json, remote } => get(&remote, &key, json).await,
        FlagsCmd::Import {
            from: ImportFrom::Unleash,
            file,
            environment,
            reason,
            dry_run,
            json,
            remote,
        } => import(&remote, &file, &environment, reason, dry_run, json).await,
        FlagsCmd::Apply {
            file,
            yes,
            reason,
            json,
            remote,
        } => apply(&remote, &file, yes, reason, json).await,
        FlagsCmd::Kill {
            key,
            environment,
            reason,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .post(
                    &format!("/api/v1/flags/{}/kill", segment(&key)),
                    &json!({"environment": environment, "reason": reason}),
                )
                .await?;
            let off: Vec<&str> = strings(&v["switched_off"]);
            if off.is_empty() {
                println!("{key} was already off there");
            } else {
                println!("{key} is now off in {}", off.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        FlagsCmd::Rollout {
            key,
            environment,
            percentage,
            reason,
            remote,
        } => {
            let v: Value = Client::new(&remote)?
                .post(
                    &format!("/api/v1/flags/{}/rollout", segment(&key)),
                    &json!({"environment": environment, "percentage": percentage, "reason": reason}),
                )
                .await?;
            let before = v["previous"]
                .as_f64()
                .map_or("no rollout".to_string(), |p| format!("{p}%"));
            println!("{key} in {environment}: {before} -> {percentage}%");
            Ok(ExitCode::SUCCESS)
        }
        FlagsCmd::Ramp {
            key,
            environment,
            steps,
            every,
            min_outcomes,
            alpha,
            project,
            stop,
            reason,
            remote,
        } => {
            let mut body = json!({"environment": environment, "stop": stop, "reason": reason});
            if !steps.is_empty() {
                let mut plan = json!({"steps": steps, "every": every});
                if let Some(m) = min_outcomes {
                    plan["min_outcomes"] = json!(m);
                }
                if let Some(a) = alpha {
                    plan["alpha"] = json!(a);
                }
                if let Some(p) = project {
                    plan["project"] = json!(p);
                }
                body["ramp"] = plan;
            }
            let v: Value = Client::new(&remote)?
                .post(&format!("/api/v1/flags/{}/ramp", segment(&key)), &body)
                .await?;
            println!("{}", v["message"].as_str().unwrap_or("done"));
            Ok(ExitCode::SUCCESS)
        }
        FlagsCmd::Stale { days, json, remote } => stale(&remote, days, json).await,
    }
}

/// `ramp running, step 2/4 (5%) of [1, 5, 25, 100] every 10m`.
fn ramp_line(r: &Value) -> String {
    let steps: Vec<String> = r["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{p}%"))
        .collect();
    let plan = format!(
        "{} every {}",
        steps.join(" -> "),
        r["every"].as_str().unwrap_or("?")
    );
    let st = &r["state"];
    let Some(status) = st["status"].as_str() else {
        return format!("ramp {plan} (not started: the flag is off here)");
    };
    let step = st["step"].as_u64().unwrap_or(0) as usize;
    let at = steps.get(step).cloned().unwrap_or_default();
    let status = match status {
        "running" => ui::yellow("running"),
        "completed" => ui::green("completed"),
        "rolled_back" => ui::red("turned back"),
        other => other.to_string(),
    };
    let mut line = format!(
        "ramp {status}, step {}/{} ({at}) of {plan}, started {}",
        step + 1,
        steps.len(),
        ago(st["started_ms"].as_i64())
    );
    if let Some(d) = st["detail"].as_str() {
        line.push_str(&format!("\n      {d}"));
    }
    line
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// `3m ago`: history needs "how long ago", not a calendar.
fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(ms);
    let s = (now - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn colored_change(line: &str) -> String {
    match line.chars().next() {
        Some('+') => ui::green(line),
        Some('-') => ui::red(line),
        Some('~') => ui::yellow(line),
        _ => line.to_string(),
    }
}

async fn list(remote: &Remote, json: bool) -> Result<ExitCode> {
    let v: Value = Client::new(remote)?.get("/api/v1/flags").await?;
    if json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let flags = v["flags"].as_array().cloned().unwrap_or_default();
    if flags.is_empty() {
        println!("no flags yet (add some with `andon flags apply`)");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:24}  {:7}  environments", "key", "kind");
    for f in &flags {
        let envs: Vec<String> = f["environments"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, e)| {
                let state = if e["enabled"] == true { "on" } else { "off" };
                let state = if e["enabled"] == true {
                    ui::green(state)
                } else {
                    ui::red(state)
                };
                match e["rollout"].as_f64() {
                    Some(p) if e["enabled"] == true => format!("{name}:{state}({p}%)"),
                    _ => format!("{name}:{state}"),
                }
            })
            .collect();
        let key = f["key"].as_str().unwrap_or("");
        let kind = f["kind"].as_str().unwrap_or("");
        let mut line = format!("{key:24}  {kind:7}  {}", envs.join("  "));
        if f["scheduled"].as_u64().unwrap_or(0) > 0 {
            line.push_str(&ui::dim(&format!("  ({} scheduled)", f["scheduled"])));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(remote: &Remote, key: &str, json: bool) -> Result<ExitCode> {
    let v: Value = Client::new(remote)?
        .get(&format!("/api/v1/flags/{}", segment(key)))
        .await?;
    if json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let f = &v["flag"];
    println!(
        "{} ({})",
        ui::bold(key),
        f["kind"].as_str().unwrap_or("bool")
    );
    if let Some(d) = f["description"].as_str() {
        println!("  {d}");
    }
    for (name, e) in f["environments"].as_object().into_iter().flatten() {
        let state = if e["enabled"] == true {
            ui::green("on")
        } else {
            ui::red("off")
        };
        let rules = e["rules"].as_array().map_or(0, Vec::len);
        println!("  {name}: {state}, {rules} rule(s)");
        if e["ramp"].is_object() {
            println!("    {}", ramp_line(&e["ramp"]));
            if let (Some(note), "running") = (
                v["guard"][name.as_str()].as_str(),
                e["ramp"]["state"]["status"].as_str().unwrap_or(""),
            ) {
                println!("      {} {note}", ui::dim("judge:"));
            }
        }
    }
    for p in v["schedule"].as_array().into_iter().flatten() {
        println!(
            "  scheduled: {} -> {}% at {} (by {}: {})",
            p["env"].as_str().unwrap_or(""),
            p["percentage"],
            p["at"],
            p["by"].as_str().unwrap_or(""),
            p["reason"].as_str().unwrap_or("")
        );
    }
    println!("history:");
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "  #{} {} {} {}: {}",
            h["seq"],
            ui::dim(&ago(h["at_ms"].as_i64())),
            h["actor"].as_str().unwrap_or(""),
            h["action"].as_str().unwrap_or(""),
            h["reason"].as_str().unwrap_or("")
        );
        for c in strings(&h["changes"]) {
            println!("      {}", colored_change(c));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn stale(remote: &Remote, days: u32, json: bool) -> Result<ExitCode> {
    let v: Value = Client::new(remote)?
        .get(&format!("/api/v1/flags/stale?days={days}"))
        .await?;
    if json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let flags = v["flags"].as_array().cloned().unwrap_or_default();
    if flags.is_empty() {
        println!("no stale flags (temporary, one variant everywhere, unchanged for {days} days)");
    }
    for f in &flags {
        let seen: Vec<String> = f["last_evaluated_ms"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(env, ms)| format!("{env} {}", ago(ms.as_i64())))
            .collect();
        let seen = if seen.is_empty() {
            "never evaluated".to_string()
        } else {
            format!("last evaluated: {}", seen.join(", "))
        };
        println!(
            "{:24}  serves {} ({}) everywhere, unchanged {}d; {seen}",
            f["key"].as_str().unwrap_or(""),
            f["variant"].as_str().unwrap_or(""),
            f["value"],
            f["unchanged_days"],
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    remote: &Remote,
    file: &Path,
    environment: &str,
    reason: Option<String>,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let reason =
        reason.unwrap_or_else(|| format!("andon flags import --from unleash {}", file.display()));
    let v: Value = Client::new(remote)?
        .post(
            "/api/v1/flags/import/unleash",
            &json!({"document": text, "environment": environment, "reason": reason, "dry_run": dry_run}),
        )
        .await?;
    if json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    for c in strings(&v["changes"]) {
        println!("{}", colored_change(c));
    }
    let n = v["imported"].as_array().map_or(0, Vec::len);
    if dry_run {
        println!("dry run: {n} flag(s) would be imported into {environment}");
    } else {
        println!("imported {n} flag(s) into {environment}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a flags document: JSON by extension or content, else YAML; an
/// andon.yaml (it has `pipeline:`) contributes its `flags:` section.
pub(crate) fn read_document(file: &Path) -> Result<Value> {
    let is_andon_yaml = file.file_name().is_some_and(|n| n == "andon.yaml");
    if is_andon_yaml {
        let cfg = andon_config::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let section = cfg.flags.ok_or_else(|| {
            hinted(
                format!("{} has no `flags:` section", file.display()),
                "add one, or pass a flags file with --file",
            )
        })?;
        return Ok(as_flag_set(section));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let json_like =
        file.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let doc = if json_like {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?
    } else {
        yaml(&text).with_context(|| format!("{} is not valid YAML", file.display()))?
    };
    let doc = match doc.get("pipeline") {
        Some(_) => doc.get("flags").cloned().unwrap_or(Value::Null),
        None => doc,
    };
    Ok(as_flag_set(doc))
}

/// The section as a flag set (see the module docs for the shorthand).
fn as_flag_set(section: Value) -> Value {
    match section {
        Value::Null => json!({"flags": {}}),
        Value::Object(o)
            if o.keys()
                .all(|k| matches!(k.as_str(), "flags" | "segments" | "schedule")) =>
        {
            Value::Object(o)
        }
        flags => json!({ "flags": flags }),
    }
}

fn yaml(text: &str) -> Result<Value> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text)?;
    Ok(docs.first().map(yaml_json).unwrap_or(Value::Null))
}

fn yaml_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(r.clone()), Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                m.insert(key, yaml_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

async fn apply(
    remote: &Remote,
    file: &Path,
    yes: bool,
    reason: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let document = read_document(file)?;
    let c = Client::new(remote)?;
    let reason = reason.unwrap_or_else(|| format!("andon flags apply {}", file.display()));
    let dry: Value = c
        .post(
            "/api/v1/flags/apply",
            &json!({"document": document, "dry_run": true}),
        )
        .await?;
    let changes = strings(&dry["changes"]);
    if changes.is_empty() {
        if json {
            print_json(&dry);
        } else {
            println!("flags are up to date with {}", file.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        println!("{} change(s) from {}:", changes.len(), file.display());
        for line in &changes {
            println!("  {}", colored_change(line));
        }
    }
    let go = yes || (std::io::stdin().is_terminal() && !json && confirm(changes.len())?);
    if !go {
        if json {
            print_json(&dry);
        }
        eprintln!(
            "{} not applied: confirm on a terminal, or pass --yes",
            ui::yellow("note:")
        );
        return Ok(ExitCode::FAILURE);
    }
    let done: Value = c
        .send(
            c.request(Method::POST, "/api/v1/flags/apply")
                .json(&json!({"document": document, "dry_run": false, "reason": reason})),
        )
        .await?
        .json()
        .await
        .context("the server's answer was not the expected JSON")?;
    if json {
        print_json(&done);
    } else {
        println!(
            "applied {} change(s); flags version {}",
            strings(&done["changes"]).len(),
            done["version"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn confirm(n: usize) -> Result<bool> {
    print!("apply {n} change(s)? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_sections_become_flag_sets() {
        assert_eq!(
            as_flag_set(json!({"checkout": {}})),
            json!({"flags": {"checkout": {}}})
        );
        let full = json!({"flags": {"a": {}}, "segments": {}});
        assert_eq!(as_flag_set(full.clone()), full);
        assert_eq!(as_flag_set(Value::Null), json!({"flags": {}}));
    }

    #[test]
    fn yaml_scalars_are_typed() {
        let v = yaml("a: 1\nb: 2.5\nc: true\nd: '1'\ne: ~\nf: [x]\n").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": 2.5, "c": true, "d": "1", "e": null, "f": ["x"]})
        );
    }
}
