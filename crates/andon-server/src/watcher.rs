//! Polls each project's repository and queues a run for every branch head
//! it has not seen. Webhooks make this fast; polling makes it certain.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andon_core::Trigger;

use crate::state::AppState;
use crate::{pipeline, repo};

/// How often the watcher wakes to see which projects are due.
const TICK: Duration = Duration::from_secs(1);

pub(crate) async fn run(state: Arc<AppState>) {
    let mut last_poll: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let due: Vec<(String, String, u64)> = {
            let views = state.read_views();
            views
                .projects
                .all()
                .filter_map(|p| p.poll_s.map(|s| (p.name.clone(), p.repo.clone(), s)))
                .filter(|(name, _, s)| {
                    last_poll
                        .get(name)
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(*s))
                })
                .collect()
        };
        for (project, repo_url, _) in due {
            last_poll.insert(project.clone(), Instant::now());
            if let Err(e) = poll_once(&state, &project, &repo_url).await {
                tracing::warn!(%project, error = %e, "polling the repository failed");
            }
        }
    }
}

async fn poll_once(state: &Arc<AppState>, project: &str, repo_url: &str) -> Result<(), String> {
    let mirror = state.mirror_path(project);
    repo::sync(repo_url, &mirror)
        .await
        .map_err(|e| e.to_string())?;
    let heads = repo::heads(&mirror).await.map_err(|e| e.to_string())?;
    let seen = state
        .read_views()
        .projects
        .get(project)
        .map(|p| p.heads.clone())
        .unwrap_or_default();
    for (branch, commit) in heads {
        if seen.get(&branch) != Some(&commit) {
            pipeline::queue_run(state, "poll", project, &branch, &commit, Trigger::Poll)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
