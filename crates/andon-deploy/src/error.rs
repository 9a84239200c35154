//! What can stop the controller from doing what it was asked, with the
//! environment, path or command involved.

use std::path::PathBuf;

/// Why a deploy, rollback, command or recovery could not be carried out.
///
/// Failures *during* a release (a judge fail, instances not ready, a failing
/// smoke test) are not errors of [`crate::Controller::deploy`]: the release
/// was accepted, and its end is reported as events (`DeployFinished`).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("environment {project}/{environment} already has deploy {deploy_id} in flight")]
    Busy {
        project: String,
        environment: String,
        deploy_id: u64,
    },
    #[error(
        "environment {project}/{environment} is frozen after a failed contract migration: promote or roll back first"
    )]
    Frozen {
        project: String,
        environment: String,
    },
    #[error("environment {project}/{environment} has no deploy in flight")]
    NoDeployInFlight {
        project: String,
        environment: String,
    },
    #[error("environment {project}/{environment} has no version to roll back to")]
    NothingToRollBack {
        project: String,
        environment: String,
    },
    #[error("environment {project}/{environment} is unknown to the controller")]
    UnknownEnvironment {
        project: String,
        environment: String,
    },
    #[error("environment {environment}: only `process` targets are supported by this controller")]
    UnsupportedTarget { environment: String },
    #[error("environment {environment}: secret `{name}` is listed in the target but has no value")]
    MissingSecret { environment: String, name: String },
    #[error("instances did not become ready: {0}")]
    NotReady(String),
    #[error("artifact cannot be used")]
    Artifact(#[from] andon_artifacts::Error),
    #[error("the judge rules are invalid")]
    Judge(#[from] andon_judge::JudgeError),
    #[error("router admin API {url}: {message}")]
    Router { url: String, message: String },
    #[error("HAProxy runtime API {socket}: {message}")]
    Haproxy { socket: PathBuf, message: String },
    #[error("container engine {host}: {message}")]
    Container { host: String, message: String },
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{command}` in {dir}")]
    Spawn {
        command: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error("the controller is shutting down")]
    ShuttingDown,
}

impl DeployError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DeployError::Io { path, source }
    }
}

/// `error: cause: cause`, for event reasons and sentences a person reads.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
