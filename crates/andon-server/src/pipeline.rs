//! Queues runs and drives them through the runner.
//!
//! A run is queued by appending `RunQueued` (so it survives a crash as a
//! fact), then handed to the worker by id. The worker checks out the exact
//! commit from the mirror, reads that commit's `andon.yaml`, and runs it; the
//! runner reports every state change as an event which lands in the store
//! through [`StoreObserver`].

use std::sync::Arc;

use andon_core::{Event, RunStatus, Trigger};
use andon_runner::{JobSpec, LocalExecutor, RunObserver, RunSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::repo;
use crate::state::AppState;

/// Appends `CommitSeen` and `RunQueued`; the leader's worker picks the run
/// up when it folds `RunQueued` (see `AppState::react`), whichever server
/// queued it. Returns the
/// run id, or `None` when an automatic trigger (poll, webhook) names a commit
/// the branch already ran: the poller and a webhook racing for the same push
/// start one run, not two.
pub(crate) async fn queue_run(
    state: &Arc<AppState>,
    actor: &str,
    project: &str,
    branch: &str,
    commit: &str,
    trigger: Trigger,
) -> Result<Option<u64>, ApiError> {
    let mirror = state.mirror_path(project);
    let (message, author, committed_at_ms) =
        repo::commit_info(&mirror, commit).await.unwrap_or_default();
    let automatic = !matches!(trigger, Trigger::Manual | Trigger::Local);
    // Every new trunk commit of a push, oldest first, for lead time; the
    // run's own commit comes last.
    let old_head = {
        let views = state.read_views();
        views
            .projects
            .get(project)
            .filter(|p| p.trunk == branch)
            .and_then(|p| p.heads.get(branch).cloned())
    };
    let earlier = match &old_head {
        Some(old) if old != commit => crate::flow::new_commits(&mirror, old, commit).await,
        _ => Vec::new(),
    };
    let run_id = state.append_with(actor, |views| {
        let seen = views
            .projects
            .get(project)
            .and_then(|p| p.heads.get(branch))
            .is_some_and(|c| c == commit);
        if automatic && seen {
            return (Vec::new(), None);
        }
        let run_id = views.runs.next_id();
        let mut events: Vec<Event> = earlier
            .into_iter()
            .map(|(c, message, author, committed_at_ms)| Event::CommitSeen {
                project: project.to_string(),
                branch: branch.to_string(),
                commit: c,
                message,
                author,
                committed_at_ms,
            })
            .collect();
        events.extend([
            Event::CommitSeen {
                project: project.to_string(),
                branch: branch.to_string(),
                commit: commit.to_string(),
                message,
                author,
                committed_at_ms,
            },
            Event::RunQueued {
                project: project.to_string(),
                run_id,
                commit: commit.to_string(),
                branch: branch.to_string(),
                trigger,
            },
        ]);
        (events, Some(run_id))
    })?;
    Ok(run_id)
}

/// Takes queued run ids and runs each in its own task. Runs only on the
/// leader; the receiver is shared so that the next leadership term (in
/// this process) reuses it. An id can arrive twice (queued, then found
/// queued again at a takeover): a run is started once.
pub(crate) async fn worker(
    state: Arc<AppState>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>>,
) {
    let mut queue = queue.lock().await;
    let mut started = std::collections::HashSet::new();
    while let Some(run_id) = queue.recv().await {
        let queued = state
            .read_views()
            .runs
            .get(run_id)
            .is_some_and(|r| r.status == RunStatus::Queued);
        if !queued || !started.insert(run_id) {
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            // Queued on another server: this server's mirror may not have
            // the commit yet.
            ensure_commit(&state, run_id).await;
            let token = CancellationToken::new();
            state
                .cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(run_id, token.clone());
            if let Err(reason) = execute(&state, run_id, token).await {
                finish(&state, run_id, RunStatus::Failed, Some(reason));
            }
            state
                .cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run_id);
        });
    }
}

/// Fetches the run's repository into this server's mirror if the run's
/// commit is not there; a failure shows later as a failed checkout.
async fn ensure_commit(state: &AppState, run_id: u64) {
    let found = {
        let views = state.read_views();
        views.runs.get(run_id).and_then(|r| {
            let repo = views.projects.get(&r.project)?.repo.clone();
            Some((r.project.clone(), r.commit.clone(), repo))
        })
    };
    let Some((project, commit, repo_url)) = found else {
        return;
    };
    let mirror = state.mirror_path(&project);
    if repo::resolve(&mirror, &commit).await.is_err()
        && let Err(e) = repo::sync(&repo_url, &mirror).await
    {
        tracing::warn!(%project, error = %e, "could not fetch the repository for a run");
    }
}

fn finish(state: &AppState, run_id: u64, status: RunStatus, reason: Option<String>) {
    if let Err(e) = state.append(
        "system",
        vec![Event::RunFinished {
            run_id,
            status,
            reason,
        }],
    ) {
        tracing::error!(run_id, error = %e, "could not record the end of a run");
    }
}

/// Runs one queued run to its end. An `Err` is a reason the run could not
/// even start (no checkout, invalid config); the caller records it.
async fn execute(
    state: &Arc<AppState>,
    run_id: u64,
    cancel: CancellationToken,
) -> Result<(), String> {
    let (project, commit, branch, medians) = {
        let views = state.read_views();
        let run = views.runs.get(run_id).ok_or("run vanished")?;
        if run.status.is_finished() {
            return Ok(());
        }
        (
            run.project.clone(),
            run.commit.clone(),
            run.branch.clone(),
            views.runs.job_medians(&run.project),
        )
    };
    let work = state.data_dir.join("work").join(run_id.to_string());
    let checkout_dir = work.join("checkout");
    let mirror = state.mirror_path(&project);
    let checkout = {
        let (mirror, commit, checkout_dir) = (mirror.clone(), commit.clone(), checkout_dir.clone());
        tokio::task::spawn_blocking(move || {
            andon_runner::git::checkout(&mirror, &commit, &checkout_dir)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("could not check out the commit: {e}"))?
    };
    let config_path = checkout_dir.join("andon.yaml");
    let config = andon_config::load(&config_path).map_err(|e| e.to_string())?;
    let pipeline = config.pipeline_for_branch(&branch);
    let secrets = state
        .store
        .secrets(&format!("project:{project}"))
        .map_err(|e| format!("could not read secrets: {e}"))?;
    let spec = RunSpec {
        run_id,
        commit: Some(commit),
        checkout: checkout_dir,
        jobs: job_specs(&pipeline),
        parallelism: state.parallelism,
        secrets,
        medians_ms: medians,
        work_dir: work.join("scratch"),
        fail_fast: true,
        instance: Some(state.instance_id()),
        remote: Some(crate::agents::dispatcher(state, &project)),
        ..RunSpec::default()
    };
    let observer: Arc<dyn RunObserver> = Arc::new(StoreObserver {
        state: state.clone(),
        run_id,
    });
    let executor = LocalExecutor;
    andon_runner::run_pipeline(spec, &executor, &state.artifacts, observer, cancel).await;
    drop(checkout);
    let _ = tokio::fs::remove_dir_all(&work).await;
    Ok(())
}

/// The runner's view of the checked config.
pub(crate) fn job_specs(pipeline: &andon_config::Pipeline) -> Vec<JobSpec> {
    andon_runner::jobs_from_config(pipeline)
}

struct StoreObserver {
    state: Arc<AppState>,
    run_id: u64,
}

impl RunObserver for StoreObserver {
    fn event(&self, event: Event) {
        if !self.state.cluster.may_record() {
            // Deposed: the new leader has ended (or will end) this run.
            tracing::warn!(
                run_id = self.run_id,
                "dropped a run event: no longer the leader"
            );
            return;
        }
        if let Err(e) = self.state.append("runner", vec![event]) {
            tracing::error!(run_id = self.run_id, error = %e, "could not record a run event");
        }
    }

    fn log(&self, job: &str, attempt: u32, line: &str) {
        self.state.logs.write(self.run_id, job, attempt, line);
    }
}

/// At start: every run the log still shows as queued or running was cut off
/// by the previous process's death. End its leftover processes and record it
/// as interrupted, so nothing stays "running" forever.
pub(crate) fn reconcile(state: &AppState) -> usize {
    let unfinished: Vec<u64> = state.read_views().runs.unfinished().map(|r| r.id).collect();
    if unfinished.is_empty() {
        return 0;
    }
    match andon_runner::reap_orphans_of(&state.instance_id(), &unfinished) {
        Ok(n) if n > 0 => tracing::warn!(processes = n, "ended orphaned job processes"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not look for orphaned job processes"),
    }
    reap_containers_later(state.instance_id(), unfinished.clone());
    for run_id in &unfinished {
        finish(
            state,
            *run_id,
            RunStatus::Interrupted,
            Some("the server stopped while this run was in flight".into()),
        );
        let _ = std::fs::remove_dir_all(state.data_dir.join("work").join(run_id.to_string()));
    }
    unfinished.len()
}

/// Removes the containers of runs a dead process left, in the background:
/// most servers have no container engine, and none must wait for one.
pub(crate) fn reap_containers_later(instance: String, run_ids: Vec<u64>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let host = andon_runner::docker::docker_host(None);
        let reap = andon_runner::reap_orphan_containers(&host, Some(&instance), &run_ids);
        match tokio::time::timeout(std::time::Duration::from_secs(20), reap).await {
            Ok(Ok(n)) if n > 0 => tracing::warn!(containers = n, "removed orphaned job containers"),
            Ok(Ok(_)) => {}
            // No engine here is the usual case, not an error.
            Ok(Err(e)) => tracing::debug!(error = %e, "no orphaned containers removed"),
            Err(_) => tracing::debug!("the container engine did not answer in time"),
        }
    });
}
