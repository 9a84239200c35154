//! `/metrics` in Prometheus text format, computed from the projections at
//! scrape time: nothing to keep in sync, nothing lost on restart.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub(crate) async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let views = state.read_views();
    let mut runs: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut jobs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut flaky = 0u64;
    for run in views.runs.all() {
        *runs
            .entry((run.project.clone(), run.status.as_str()))
            .or_default() += 1;
        for j in &run.jobs {
            *jobs.entry(status_label(&j.status)).or_default() += 1;
            flaky += u64::from(j.flaky);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP andon_runs Pipeline runs by project and status."
    );
    let _ = writeln!(out, "# TYPE andon_runs gauge");
    for ((project, status), n) in &runs {
        let _ = writeln!(
            out,
            "andon_runs{{project=\"{}\",status=\"{status}\"}} {n}",
            escape(project)
        );
    }
    let _ = writeln!(out, "# HELP andon_jobs Jobs by last outcome.");
    let _ = writeln!(out, "# TYPE andon_jobs gauge");
    for (status, n) in &jobs {
        let _ = writeln!(out, "andon_jobs{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP andon_flaky_jobs Jobs that failed then passed on the same commit."
    );
    let _ = writeln!(out, "# TYPE andon_flaky_jobs gauge");
    let _ = writeln!(out, "andon_flaky_jobs {flaky}");
    let _ = writeln!(
        out,
        "# HELP andon_event_seq Sequence number of the newest event."
    );
    let _ = writeln!(out, "# TYPE andon_event_seq gauge");
    let _ = writeln!(out, "andon_event_seq {}", views.last_seq);
    let _ = writeln!(out, "# HELP andon_projects Watched projects.");
    let _ = writeln!(out, "# TYPE andon_projects gauge");
    let _ = writeln!(out, "andon_projects {}", views.projects.all().count());
    flow_gauges(&views, &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The line and the DORA keys per project, for the production environment
/// over the last 30 days; a key without data is left out, not zero.
fn flow_gauges(views: &crate::state::Views, out: &mut String) {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    let now = crate::auth::now_ms();
    let since = now.saturating_sub(30 * DAY_MS);
    let _ = writeln!(
        out,
        "# HELP andon_line_stopped 1 while the project's trunk is red."
    );
    let _ = writeln!(out, "# TYPE andon_line_stopped gauge");
    let projects: Vec<String> = views.projects.all().map(|p| p.name.clone()).collect();
    for p in &projects {
        let stopped = u8::from(views.flow.cord.is_stopped(p));
        let _ = writeln!(
            out,
            "andon_line_stopped{{project=\"{}\"}} {stopped}",
            escape(p)
        );
    }
    let keys: [(&str, &str); 4] = [
        (
            "andon_dora_deployment_frequency_per_day",
            "Successful deployments per day, last 30 days.",
        ),
        (
            "andon_dora_lead_time_median_seconds",
            "Median commit-to-production time, last 30 days.",
        ),
        (
            "andon_dora_change_failure_rate",
            "Failed deployments / finished deployments, last 30 days.",
        ),
        (
            "andon_dora_time_to_restore_median_seconds",
            "Median time to restore service, last 30 days.",
        ),
    ];
    let all: Vec<(String, String, [Option<f64>; 4])> = projects
        .iter()
        .map(|p| {
            let env = views
                .flow
                .production_env(p)
                .unwrap_or("production")
                .to_string();
            let m = views.flow.dora.metrics(p, &env, since, now);
            let values = [
                m.deployment_frequency_per_day,
                m.lead_time_median_s,
                m.change_failure_rate,
                m.time_to_restore_median_s,
            ];
            (p.clone(), env, values)
        })
        .collect();
    for (i, (name, help)) in keys.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (p, env, values) in &all {
            if let Some(v) = values[i] {
                let _ = writeln!(
                    out,
                    "{name}{{project=\"{}\",environment=\"{}\"}} {v}",
                    escape(p),
                    escape(env)
                );
            }
        }
    }
}

/// Fixed label values, so a job status can never inject text into the output.
fn status_label(s: &str) -> &'static str {
    match s {
        "pending" => "pending",
        "running" => "running",
        "passed" => "passed",
        "failed" => "failed",
        "timed_out" => "timed_out",
        "cancelled" => "cancelled",
        "skipped" => "skipped",
        _ => "other",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
