//! One attempt of a job in a container, through the Docker Engine API.
//!
//! The same contract as a local process group (`process`): lines streamed
//! as they come, the exit code, SIGTERM then SIGKILL after the grace period
//! on timeout or cancellation. The container runs with an init process
//! (`--init`), so SIGTERM reaches the script as it would locally instead of
//! being ignored by a shell that is PID 1. The container is removed when the
//! attempt ends, also when the attempt's future is dropped.
//!
//! The checkout is bind-mounted at [`WORKDIR`] (the working directory) and
//! the attempt's reports directory at [`REPORTS_DIR`], so JUnit files and
//! artifacts land on the runner's disk exactly as for a local job.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use andon_core::JobOutcome;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::docker::is_not_found;
use crate::process::{Ended, fmt_duration};

/// Where the checkout is mounted, and the script's working directory.
pub(crate) const WORKDIR: &str = "/workspace";
/// Where the attempt's `ANDON_REPORTS` directory is mounted.
pub(crate) const REPORTS_DIR: &str = "/andon/reports";

/// Lines longer than this are cut, as for local jobs.
const MAX_LINE: usize = 16 * 1024;
/// After the container exits, how long its output may take to arrive.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run, where, and how long.
pub(crate) struct ContainerLaunch<'a> {
    pub(crate) image: &'a str,
    pub(crate) script: &'a str,
    pub(crate) checkout: &'a Path,
    pub(crate) reports: &'a Path,
    /// The job's environment; `ANDON_REPORTS` is replaced by [`REPORTS_DIR`].
    pub(crate) env: &'a [(String, String)],
    pub(crate) labels: HashMap<String, String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) kill_grace: Duration,
    pub(crate) stop: &'a CancellationToken,
}

/// Removes the container if the attempt is dropped before it cleaned up.
struct Removal {
    docker: Docker,
    id: Option<String>,
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) {
            let docker = self.docker.clone();
            rt.spawn(async move { remove(&docker, &id).await });
        }
    }
}

/// Kills (if still running) and removes. Killing first matters: a forced
/// removal of a running container waits out its stop timeout on Podman.
async fn remove(docker: &Docker, id: &str) {
    signal(docker, id, "SIGKILL").await;
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let _ = docker.remove_container(id, Some(opts)).await;
}

fn failed(on_line: &mut impl FnMut(&str), msg: &str) -> Ended {
    on_line(&format!("andon: {msg}"));
    Ended {
        outcome: JobOutcome::Failed,
        exit_code: None,
    }
}

/// Runs the attempt; `on_start` is called once (with no process group: the
/// container is not one of ours), `on_line` with every output line.
pub(crate) async fn run(
    docker: &Docker,
    launch: ContainerLaunch<'_>,
    on_start: impl FnOnce(Option<i32>),
    mut on_line: impl FnMut(&str),
) -> Ended {
    on_start(None);
    let body = create_body(&launch);
    let id = match create(docker, launch.image, &body, &mut on_line).await {
        Ok(id) => id,
        Err(msg) => return failed(&mut on_line, &msg),
    };
    let mut removal = Removal {
        docker: docker.clone(),
        id: Some(id.clone()),
    };
    let attach = AttachContainerOptionsBuilder::new()
        .stream(true)
        .logs(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut output = match docker.attach_container(&id, Some(attach)).await {
        Ok(a) => Some(a.output),
        Err(e) => {
            return failed(
                &mut on_line,
                &format!("cannot attach to the container: {e}"),
            );
        }
    };
    if let Err(e) = docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
    {
        return failed(&mut on_line, &format!("cannot start the container: {e}"));
    }
    on_line(&format!(
        "andon: container {} of image {} started",
        short(&id),
        launch.image
    ));
    let wait_opts = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(&id, Some(wait_opts));

    let deadline = launch.timeout.map(|t| Instant::now() + t);
    let far = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);
    let mut out = Lines::default();
    let mut err = Lines::default();
    let mut status: Option<Result<i64, String>> = None;
    let mut stopping: Option<JobOutcome> = None;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;

    loop {
        if status.is_some() && output.is_none() {
            break;
        }
        tokio::select! {
            item = next(&mut output) => match item {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    out.push(&message, &mut on_line);
                }
                Some(Ok(LogOutput::StdErr { message })) => err.push(&message, &mut on_line),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(_)) | None => output = None,
            },
            w = wait.next(), if status.is_none() => {
                status = Some(exit_code(w));
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(deadline.unwrap_or(far)),
                if deadline.is_some() && stopping.is_none() && status.is_none() => {
                on_line(&format!(
                    "andon: timed out after {}, stopping the container",
                    fmt_duration(launch.timeout.unwrap_or_default())
                ));
                stopping = Some(JobOutcome::TimedOut);
                signal(docker, &id, "SIGTERM").await;
                kill_at = Some(Instant::now() + launch.kill_grace);
            }
            () = launch.stop.cancelled(), if stopping.is_none() && status.is_none() => {
                on_line("andon: cancelled, stopping the container");
                stopping = Some(JobOutcome::Cancelled);
                signal(docker, &id, "SIGTERM").await;
                kill_at = Some(Instant::now() + launch.kill_grace);
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && status.is_none() => {
                signal(docker, &id, "SIGKILL").await;
                kill_at = None;
            }
            () = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                on_line("andon: container output still open after it exited; not waiting for it");
                break;
            }
        }
    }
    out.flush(&mut on_line);
    err.flush(&mut on_line);
    removal.id = None;
    remove(docker, &id).await;

    let exit_code = match &status {
        Some(Ok(code)) if stopping.is_none() => i32::try_from(*code).ok(),
        _ => None,
    };
    let outcome = match (stopping, &status) {
        (Some(o), _) => o,
        (None, Some(Ok(0))) => JobOutcome::Passed,
        (None, Some(Err(e))) => {
            on_line(&format!("andon: lost track of the container: {e}"));
            JobOutcome::Failed
        }
        _ => JobOutcome::Failed,
    };
    Ended { outcome, exit_code }
}

fn create_body(launch: &ContainerLaunch<'_>) -> ContainerCreateBody {
    let env = launch
        .env
        .iter()
        .map(|(k, v)| {
            if k == "ANDON_REPORTS" {
                format!("{k}={REPORTS_DIR}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    ContainerCreateBody {
        image: Some(launch.image.to_owned()),
        cmd: Some(vec!["sh".into(), "-c".into(), launch.script.to_owned()]),
        // The image's entrypoint would wrap `sh -c`: GitLab's executor also
        // expects images whose entrypoint runs the given command.
        entrypoint: Some(Vec::new()),
        env: Some(env),
        working_dir: Some(WORKDIR.to_owned()),
        labels: Some(launch.labels.clone()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            binds: Some(vec![
                format!("{}:{WORKDIR}", launch.checkout.display()),
                format!("{}:{REPORTS_DIR}", launch.reports.display()),
            ]),
            // Local jobs share the machine's network; so do container jobs
            // (and rootful Podman here has no bridge network anyway).
            network_mode: Some("host".to_owned()),
            init: Some(true),
            ulimits: Some(crate::docker::own_ulimits()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// Creates the container; an image the engine does not have is pulled once
/// (from whatever registry its name points to), then creation is retried.
async fn create(
    docker: &Docker,
    image: &str,
    body: &ContainerCreateBody,
    on_line: &mut impl FnMut(&str),
) -> Result<String, String> {
    let opts = || CreateContainerOptionsBuilder::new().build();
    match docker.create_container(Some(opts()), body.clone()).await {
        Ok(r) => return Ok(r.id),
        Err(e) if !is_not_found(&e) => return Err(format!("cannot create the container: {e}")),
        Err(_) => {}
    }
    on_line(&format!(
        "andon: image {image} not found locally; pulling it"
    ));
    let pull = CreateImageOptionsBuilder::new().from_image(image).build();
    let mut progress = docker.create_image(Some(pull), None, None);
    while let Some(step) = progress.next().await {
        if let Err(e) = step {
            return Err(format!(
                "image {image} is not on the engine and cannot be pulled: {e}"
            ));
        }
    }
    docker
        .create_container(Some(opts()), body.clone())
        .await
        .map(|r| r.id)
        .map_err(|e| format!("cannot create the container: {e}"))
}

async fn signal(docker: &Docker, id: &str, signal: &str) {
    let opts = KillContainerOptionsBuilder::new().signal(signal).build();
    // A container that already exited is the happy case.
    let _ = docker.kill_container(id, Some(opts)).await;
}

/// The exit code from the wait stream: bollard reports a non-zero exit as an
/// error carrying the code.
fn exit_code(
    item: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> Result<i64, String> {
    match item {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the engine ended the wait without an exit code".into()),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

type Output = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

async fn next(output: &mut Option<Output>) -> Option<Result<LogOutput, bollard::errors::Error>> {
    match output {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Splits one stream's chunks into lines (a chunk may hold several lines or
/// part of one).
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn push(&mut self, chunk: &[u8], on_line: &mut impl FnMut(&str)) {
        for &b in chunk {
            if b == b'\n' {
                self.emit(on_line);
            } else {
                self.buf.push(b);
                if self.buf.len() >= MAX_LINE {
                    self.emit(on_line);
                }
            }
        }
    }

    fn flush(&mut self, on_line: &mut impl FnMut(&str)) {
        if !self.buf.is_empty() {
            self.emit(on_line);
        }
    }

    fn emit(&mut self, on_line: &mut impl FnMut(&str)) {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        on_line(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines() {
        let mut lines = Vec::new();
        let mut on = |l: &str| lines.push(l.to_owned());
        let mut s = Lines::default();
        s.push(b"a\nb", &mut on);
        s.push(b"c\r\n\nd", &mut on);
        s.flush(&mut on);
        assert_eq!(lines, ["a", "bc", "", "d"]);
    }
}
