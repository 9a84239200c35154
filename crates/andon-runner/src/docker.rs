//! Reaching a Docker Engine API: Docker itself, or Podman's compatible
//! service (`podman system service`), found the way the `docker` CLI finds
//! it: an explicit endpoint, else `DOCKER_HOST`, else Docker's default
//! socket.
//!
//! The engine is pinged when connecting, so that "nothing answers" is one
//! clear error naming the endpoint instead of a failed request later.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;

/// Where the Docker CLI looks when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Label keys every container Andon starts for a job carries, so that
/// [`crate::reap_orphan_containers`] finds them after a crash.
pub const LABEL_RUN_ID: &str = "ANDON_RUN_ID";
pub const LABEL_INSTANCE: &str = "ANDON_INSTANCE";
pub const LABEL_JOB: &str = "ANDON_JOB";

/// Highest `nofile`/`nproc` limit given to a container (see [`own_ulimits`]).
pub(crate) const ULIMIT_CAP: u64 = 16_384;
/// How long the first ping may take before the engine counts as absent.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// bollard's per-request timeout. Waiting for a container's exit is one
/// request that lasts as long as the job: the runner enforces job timeouts
/// itself, so this only has to outlast any job.
const REQUEST_TIMEOUT_S: u64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "DOCKER_HOST `{0}` is not supported: use unix:///path/to/docker.sock or tcp://HOST:PORT"
    )]
    BadHost(String),
    #[error(
        "no Docker engine answers at {host}: {detail}. Start Docker, or Podman's service \
         (`podman system service --time=0 unix:///run/podman.sock`), and set DOCKER_HOST to its socket"
    )]
    Unreachable { host: String, detail: String },
    #[error("Docker engine at {host}: {source}")]
    Api {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// The endpoint to use: `explicit`, else `DOCKER_HOST`, else
/// [`DEFAULT_DOCKER_HOST`].
pub fn docker_host(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned())
}

/// A client for the engine at `host` (see [`docker_host`]), checked with a
/// ping.
pub async fn connect(host: &str) -> Result<Docker, ContainerError> {
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(ContainerError::BadHost(host.to_owned()));
    }
    .map_err(|e| ContainerError::Unreachable {
        host: host.to_owned(),
        detail: e.to_string(),
    })?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(ContainerError::Unreachable {
            host: host.to_owned(),
            detail: e.to_string(),
        }),
        Err(_) => Err(ContainerError::Unreachable {
            host: host.to_owned(),
            detail: format!("no answer within {}s", PING_TIMEOUT.as_secs()),
        }),
    }
}

/// A `label=KEY=VALUE` filter for listing containers.
pub(crate) fn label_filter(labels: &[(&str, String)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

/// Open-files and processes limits for containers: the runner's own, capped
/// at [`ULIMIT_CAP`]. An engine's default (Podman asks for nofile 1048576)
/// or the runner's own limits can be above what the engine itself may set
/// (Podman caps its own nproc at 32768), and then no container starts at
/// all; the cap keeps well below such ceilings and above what builds need.
pub(crate) fn own_ulimits() -> Vec<bollard::models::ResourcesUlimits> {
    use nix::sys::resource::{Resource, getrlimit};
    let mut out = Vec::new();
    for (name, res) in [
        ("nofile", Resource::RLIMIT_NOFILE),
        ("nproc", Resource::RLIMIT_NPROC),
    ] {
        if let Ok((soft, hard)) = getrlimit(res) {
            let conv = |v: u64| i64::try_from(v.min(ULIMIT_CAP)).unwrap_or(0);
            out.push(bollard::models::ResourcesUlimits {
                name: Some(name.to_owned()),
                soft: Some(conv(soft)),
                hard: Some(conv(hard)),
            });
        }
    }
    out
}

/// Whether an API error is "no such container/image" (404).
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsupported_and_silent_endpoints_are_clear_errors() {
        let e = connect("ssh://x").await.err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("not supported")));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = format!("unix://{}/none.sock", dir.path().display());
        let e = connect(&sock).await.err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("no Docker engine answers at unix://")),
            "{e:?}"
        );
        assert_eq!(docker_host(Some("unix:///x")), "unix:///x");
    }
}
