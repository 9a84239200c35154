//! Container instances through the Docker Engine API (Docker, or Podman's
//! compatible service), beside the process instances of `process`.
//!
//! A version of a container target is an image id (`sha256:…`, the digest
//! of the image's configuration), never a tag: a tag can be moved, an id
//! cannot, so "the same version" means the same bits, and every instance is
//! a fresh container from that id (phoenix). Instances use the host's
//! network: each gets its own port in `PORT`, as process instances do, and
//! the image's program must listen on it.
//!
//! Every container carries labels (`andon.project`, `andon.environment`,
//! `andon.version`, `andon.instance`, `andon.addr`), so a restarted
//! controller finds them without any file of its own.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use andon_artifacts::Digest;
use bollard::Docker;
use bollard::models::{ChangeType, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::error::DeployError;

pub(crate) const LABEL_PROJECT: &str = "andon.project";
pub(crate) const LABEL_ENVIRONMENT: &str = "andon.environment";
pub(crate) const LABEL_VERSION: &str = "andon.version";
pub(crate) const LABEL_INSTANCE: &str = "andon.instance";
pub(crate) const LABEL_ADDR: &str = "andon.addr";

/// Where the Docker CLI looks when `DOCKER_HOST` is not set.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Waiting for an instance's exit is one request as long as its life.
const REQUEST_TIMEOUT_S: u64 = 365 * 24 * 3600;
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an instance is checked when the engine's wait fails.
const POLL: Duration = Duration::from_millis(500);
/// See `andon_runner::docker::own_ulimits`: engine defaults can exceed what
/// the engine may set, and then nothing starts.
const ULIMIT_CAP: u64 = 16_384;

/// The engine endpoint: `explicit`, else `DOCKER_HOST`, else Docker's socket.
pub(crate) fn host(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

fn engine_err(host: &str, message: impl std::fmt::Display) -> DeployError {
    DeployError::Container {
        host: host.to_owned(),
        message: message.to_string(),
    }
}

/// A client for `host`, pinged once so that an absent engine is one clear error.
pub(crate) async fn connect(host: &str) -> Result<Docker, DeployError> {
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(engine_err(
            host,
            "unsupported endpoint: use unix:///path/to/docker.sock or tcp://HOST:PORT",
        ));
    }
    .map_err(|e| engine_err(host, e))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(engine_err(
            host,
            format!(
                "no Docker engine answers ({e}); start Docker or `podman system service`, and set DOCKER_HOST"
            ),
        )),
        Err(_) => Err(engine_err(
            host,
            "no Docker engine answers (ping timed out)",
        )),
    }
}

/// The id of the image `name` (a tag, or an id) on the engine: the version
/// to deploy for a container target.
pub(crate) async fn image_id(host: &str, name: &str) -> Result<Digest, DeployError> {
    let docker = connect(host).await?;
    let image = docker
        .inspect_image(name)
        .await
        .map_err(|e| engine_err(host, format!("image {name}: {e}")))?;
    image
        .id
        .as_deref()
        .and_then(|id| {
            format!("sha256:{}", id.trim_start_matches("sha256:"))
                .parse()
                .ok()
        })
        .ok_or_else(|| engine_err(host, format!("image {name} has no sha256 id")))
}

/// Whether the engine has the image `version`.
pub(crate) async fn has_image(host: &str, version: &Digest) -> Result<bool, DeployError> {
    let docker = connect(host).await?;
    Ok(docker.inspect_image(&image_ref(version)).await.is_ok())
}

fn image_ref(version: &Digest) -> String {
    format!("sha256:{}", version.hex())
}

/// Everything to create one instance's container.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) host: String,
    pub(crate) version: Digest,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) labels: HashMap<String, String>,
}

impl Launch {
    pub(crate) fn new(
        host: String,
        version: Digest,
        env: BTreeMap<String, String>,
        project: &str,
        environment: &str,
        instance_id: &str,
        addr: SocketAddr,
    ) -> Self {
        let labels = HashMap::from([
            (LABEL_PROJECT.to_owned(), project.to_owned()),
            (LABEL_ENVIRONMENT.to_owned(), environment.to_owned()),
            (LABEL_VERSION.to_owned(), version.to_string()),
            (LABEL_INSTANCE.to_owned(), instance_id.to_owned()),
            (LABEL_ADDR.to_owned(), addr.to_string()),
        ]);
        Launch {
            host,
            version,
            env,
            labels,
        }
    }
}

/// A container the controller watches.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    docker: Docker,
    pub(crate) id: String,
    /// The host pid of the container's first process, for `InstanceStarted`.
    pub(crate) pid: Option<i32>,
}

/// Creates and starts a fresh container of the launch's image.
pub(crate) async fn start(launch: &Launch) -> Result<Running, DeployError> {
    let docker = connect(&launch.host).await?;
    let err = |e: bollard::errors::Error| engine_err(&launch.host, e);
    let body = ContainerCreateBody {
        image: Some(image_ref(&launch.version)),
        env: Some(launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(launch.labels.clone()),
        host_config: Some(HostConfig {
            network_mode: Some("host".to_owned()),
            // SIGTERM reaches the service even when the image's command is
            // a shell (PID 1 ignores signals it has no handler for).
            init: Some(true),
            ulimits: Some(ulimits()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(err)?;
    let running = Running {
        docker: docker.clone(),
        id: created.id,
        pid: None,
    };
    if let Err(e) = docker
        .start_container(&running.id, None::<StartContainerOptions>)
        .await
    {
        running.remove().await;
        return Err(err(e));
    }
    let pid = running.inspect_pid().await;
    Ok(Running { pid, ..running })
}

/// A running container of `instance_id`, for adoption after a restart.
pub(crate) async fn find(host: &str, instance_id: &str) -> Option<Running> {
    let docker = connect(host).await.ok()?;
    let found = list(&docker, &[(LABEL_INSTANCE, instance_id)], false).await;
    let (id, _) = found.into_iter().next()?;
    let r = Running {
        docker,
        id,
        pid: None,
    };
    let pid = r.inspect_pid().await;
    Some(Running { pid, ..r })
}

/// Containers (running or not) of one environment: (container id, instance id).
pub(crate) async fn of_environment(
    host: &str,
    project: &str,
    environment: &str,
) -> Vec<(Running, String)> {
    let Ok(docker) = connect(host).await else {
        return Vec::new();
    };
    list(
        &docker,
        &[(LABEL_PROJECT, project), (LABEL_ENVIRONMENT, environment)],
        true,
    )
    .await
    .into_iter()
    .map(|(id, labels)| {
        let instance = labels.get(LABEL_INSTANCE).cloned().unwrap_or_default();
        (
            Running {
                docker: docker.clone(),
                id,
                pid: None,
            },
            instance,
        )
    })
    .collect()
}

async fn list(
    docker: &Docker,
    labels: &[(&str, &str)],
    all: bool,
) -> Vec<(String, HashMap<String, String>)> {
    let filters = HashMap::from([(
        "label".to_owned(),
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )]);
    let opts = ListContainersOptionsBuilder::new()
        .all(all)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(opts))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
        .collect()
}

impl Running {
    async fn inspect_pid(&self) -> Option<i32> {
        let info = self
            .docker
            .inspect_container(&self.id, None::<InspectContainerOptions>)
            .await
            .ok()?;
        let pid = info.state?.pid?;
        i32::try_from(pid).ok().filter(|p| *p > 0)
    }

    async fn running(&self) -> Option<bool> {
        let info = self
            .docker
            .inspect_container(&self.id, None::<InspectContainerOptions>)
            .await;
        match info {
            Ok(i) => Some(i.state.and_then(|s| s.running).unwrap_or(false)),
            Err(e) if is_not_found(&e) => Some(false),
            Err(_) => None,
        }
    }

    /// Until the container stops; a description of how.
    pub(crate) async fn exited(&self) -> String {
        let opts = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut wait = self.docker.wait_container(&self.id, Some(opts));
        match wait.next().await {
            Some(Ok(r)) => return format!("container exit code {}", r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                return format!("container exit code {code}");
            }
            _ => {}
        }
        // The wait broke (engine restarted, connection lost): poll instead,
        // counting "cannot tell" as alive.
        while self.running().await != Some(false) {
            tokio::time::sleep(POLL).await;
        }
        "container stopped".to_owned()
    }

    /// Graceful stop: the engine sends SIGTERM, waits up to `grace`, then
    /// SIGKILL; then the container is removed.
    pub(crate) async fn stop(&self, grace: Duration) {
        let secs = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::new().t(secs).build();
        let bound = grace + Duration::from_secs(10);
        if tokio::time::timeout(bound, self.docker.stop_container(&self.id, Some(opts)))
            .await
            .is_err()
        {
            tracing::warn!(container = %self.id, "stop did not finish; killing");
        }
        self.remove().await;
    }

    /// Kills (if still running) and removes the container.
    pub(crate) async fn remove(&self) {
        let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        let _ = self.docker.kill_container(&self.id, Some(kill)).await;
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let _ = self.docker.remove_container(&self.id, Some(opts)).await;
    }

    /// What changed in the container's filesystem since it started from its
    /// image, as one line; `None` when nothing did. Also reports a container
    /// that no longer runs the image of its version.
    pub(crate) async fn drift(&self, version: &Digest) -> Option<String> {
        let info = self
            .docker
            .inspect_container(&self.id, None::<InspectContainerOptions>)
            .await
            .ok()?;
        let image = info.image.unwrap_or_default();
        if image.trim_start_matches("sha256:") != version.hex() {
            return Some(format!("runs image {image}, not {version}"));
        }
        let changes = self.docker.container_changes(&self.id).await.ok()??;
        let list: Vec<String> = changes
            .iter()
            .filter(|c| !engine_managed(&c.path))
            .take(10)
            .map(|c| {
                let kind = match c.kind {
                    ChangeType::_0 => "modified",
                    ChangeType::_1 => "added",
                    ChangeType::_2 => "deleted",
                };
                format!("{kind}: {}", c.path)
            })
            .collect();
        (!list.is_empty()).then(|| list.join("; "))
    }
}

/// Paths the engine itself writes in every container (name resolution,
/// mount points, its init), and their parent directories: not drift.
fn engine_managed(path: &str) -> bool {
    const FILES: [&str; 7] = [
        "/etc",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/etc/mtab",
        "/run",
        "/dev",
    ];
    FILES.contains(&path)
        || ["/run/", "/dev/", "/proc/", "/sys/"]
            .iter()
            .any(|p| path.starts_with(p))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn ulimits() -> Vec<bollard::models::ResourcesUlimits> {
    use nix::sys::resource::{Resource, getrlimit};
    [
        ("nofile", Resource::RLIMIT_NOFILE),
        ("nproc", Resource::RLIMIT_NPROC),
    ]
    .into_iter()
    .filter_map(|(name, res)| {
        let (soft, hard) = getrlimit(res).ok()?;
        let conv = |v: u64| i64::try_from(v.min(ULIMIT_CAP)).unwrap_or(0);
        Some(bollard::models::ResourcesUlimits {
            name: Some(name.to_owned()),
            soft: Some(conv(soft)),
            hard: Some(conv(hard)),
        })
    })
    .collect()
}
