//! The server's side of releases: the deploy controller's events go into
//! the log, and each environment's configuration comes from the project's
//! `andon.yaml` at the commit being released.

use std::collections::BTreeMap;
use std::sync::Arc;

use andon_core::Event;
use andon_deploy::{Controller, ControllerConfig, DeployObserver, EnvSpec};

use crate::error::ApiError;
use crate::repo;
use crate::state::AppState;

/// How the server reaches the router (the data plane runs in its own
/// process, so traffic survives a control-plane restart).
#[derive(Debug, Clone)]
pub struct RouterLink {
    /// Base URL of the router's admin API.
    pub admin: String,
    /// Base URL of the router's proxy (smoke tests go through it).
    pub url: String,
    pub token: Option<String>,
}

/// Appends the controller's events and remembers its pages.
pub(crate) struct LogObserver {
    pub(crate) state: std::sync::Weak<AppState>,
}

impl DeployObserver for LogObserver {
    fn event(&self, event: Event) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        if let Err(e) = state.append("deploy", vec![event]) {
            tracing::error!(error = %e, "could not record a deploy event");
        }
    }

    fn notify(&self, title: &str, detail: &str) {
        tracing::warn!(%title, %detail, "release notification");
    }

    fn next_incident_id(&self) -> u64 {
        self.state
            .upgrade()
            .map(|s| s.read_views().next_incident_id)
            .unwrap_or(1)
    }
}

pub(crate) fn controller(
    state: &Arc<AppState>,
    link: &RouterLink,
) -> Result<Controller, andon_deploy::DeployError> {
    let mut cfg = ControllerConfig::new(state.data_dir.clone(), &link.admin, &link.url);
    cfg.router_token = link.token.clone();
    Controller::new(
        cfg,
        state.artifacts.clone(),
        Arc::new(LogObserver {
            state: Arc::downgrade(state),
        }),
    )
}

/// The checked config of a project at a commit.
pub(crate) async fn config_at(
    state: &AppState,
    project: &str,
    commit: &str,
) -> Result<andon_config::Config, ApiError> {
    let mirror = state.mirror_path(project);
    let text = repo::show_file(&mirror, commit, "andon.yaml")
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "commit {} of `{project}` has no andon.yaml",
                &commit[..commit.len().min(12)]
            ))
        })?;
    andon_config::parse("andon.yaml", &text).map_err(|d| {
        ApiError::Conflict(format!(
            "andon.yaml at {} is invalid:\n{d}",
            &commit[..commit.len().min(12)]
        ))
    })
}

/// The project's config at its trunk head.
pub(crate) async fn trunk_config(
    state: &AppState,
    project: &str,
) -> Result<(String, andon_config::Config), ApiError> {
    let trunk = state
        .read_views()
        .projects
        .get(project)
        .map(|p| p.trunk.clone())
        .ok_or_else(|| crate::api::no_project(project))?;
    let mirror = state.mirror_path(project);
    let commit = repo::resolve(&mirror, &trunk).await.map_err(|_| {
        ApiError::Conflict(format!("trunk `{trunk}` of `{project}` has no commit yet"))
    })?;
    let cfg = config_at(state, project, &commit).await?;
    Ok((commit, cfg))
}

/// Secret values an environment's target names.
pub(crate) fn target_secrets(
    state: &AppState,
    project: &str,
    env: &andon_config::Environment,
) -> Result<BTreeMap<String, String>, ApiError> {
    let names: Vec<String> = match &env.target {
        andon_config::Target::Process(p) => p.secrets.clone(),
        _ => Vec::new(),
    };
    let all = state.store.secrets(&format!("project:{project}"))?;
    Ok(all.into_iter().filter(|(k, _)| names.contains(k)).collect())
}

/// After a restart: adopt what still runs, roll back what was in flight.
pub(crate) async fn recover(state: &Arc<AppState>, controller: &Controller) {
    let projects: Vec<String> = state
        .read_views()
        .projects
        .all()
        .map(|p| p.name.clone())
        .collect();
    let mut specs = Vec::new();
    for project in projects {
        match trunk_config(state, &project).await {
            Ok((_, cfg)) => {
                for env in cfg.environments {
                    let secrets = target_secrets(state, &project, &env).unwrap_or_default();
                    specs.push(EnvSpec {
                        project: project.clone(),
                        environment: env,
                        secrets,
                    });
                }
            }
            Err(e) => tracing::debug!(%project, error = %e, "no environments to recover"),
        }
    }
    specs.extend(crate::environments::specs(state).await);
    let deploys = state.read_views().deploys.clone();
    match controller.recover(&deploys, &specs).await {
        Ok(report) => {
            if !report.rolled_back.is_empty() || !report.killed.is_empty() {
                tracing::warn!(?report, "recovered releases after a restart");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not recover environments"),
    }
}
