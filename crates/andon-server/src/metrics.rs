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
        *runs.entry((run.project.clone(), run.status.as_str())).or_default() += 1;
        for j in &run.jobs {
            *jobs.entry(status_label(&j.status)).or_default() += 1;
            flaky += u64::from(j.flaky);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# HELP andon_runs Pipeline runs by project and status.");
    let _ = writeln!(out, "# TYPE andon_runs gauge");
    for ((project, status), n) in &runs {
        let _ = writeln!(out, "andon_runs{{project=\"{}\",status=\"{status}\"}} {n}", escape(project));
    }
    let _ = writeln!(out, "# HELP andon_jobs Jobs by last outcome.");
    let _ = writeln!(out, "# TYPE andon_jobs gauge");
    for (status, n) in &jobs {
        let _ = writeln!(out, "andon_jobs{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP andon_flaky_jobs Jobs that failed then passed on the same commit.");
    let _ = writeln!(out, "# TYPE andon_flaky_jobs gauge");
    let _ = writeln!(out, "andon_flaky_jobs {flaky}");
    let _ = writeln!(out, "# HELP andon_event_seq Sequence number of the newest event.");
    let _ = writeln!(out, "# TYPE andon_event_seq gauge");
    let _ = writeln!(out, "andon_event_seq {}", views.last_seq);
    let _ = writeln!(out, "# HELP andon_projects Watched projects.");
    let _ = writeln!(out, "# TYPE andon_projects gauge");
    let _ = writeln!(out, "andon_projects {}", views.projects.all().count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
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
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
