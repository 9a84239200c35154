//! Where one attempt of a job runs: a local process group (the run's
//! executor, or the bubblewrap sandbox for `sandbox: true`), or a container
//! for `image: NAME`.
//!
//! Both sides keep one contract (`process::Ended`, lines through `on_line`,
//! timeout and cancellation end the job), so `job` — retries, artifacts,
//! JUnit, events — does not care which one ran the script.

use std::collections::HashMap;

use bollard::Docker;
use tokio::sync::OnceCell;

use crate::container::{self, ContainerLaunch};
use crate::docker;
use crate::executor::BwrapExecutor;
use crate::job::RunCtx;
use crate::process::{self, Ended, Launch};
use crate::spec::JobSpec;

/// `JobStarted.executor` for container jobs.
pub(crate) const CONTAINER_EXECUTOR: &str = "docker";

/// The run's connection to the Docker engine, made on the first container
/// job and shared by the others (the error too: one unreachable engine is
/// reported once per job, not retried per attempt).
#[derive(Default)]
pub(crate) struct Engine(OnceCell<Result<Docker, String>>);

impl Engine {
    async fn get(&self, host: Option<&str>) -> Result<&Docker, String> {
        self.0
            .get_or_init(|| async {
                docker::connect(&docker::docker_host(host))
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The name recorded in `JobStarted.executor` for this job.
pub(crate) fn executor_name<'a>(ctx: &'a RunCtx<'_>, job: &JobSpec) -> &'a str {
    if job.image.is_some() {
        CONTAINER_EXECUTOR
    } else if job.sandbox {
        "bwrap"
    } else {
        ctx.executor.name()
    }
}

/// Runs one attempt where the job says. `launch` is the local form; a
/// container job takes its script, directories, environment and limits.
pub(crate) async fn run(
    ctx: &RunCtx<'_>,
    job: &JobSpec,
    attempt: u32,
    launch: Launch<'_>,
    on_start: impl FnOnce(Option<i32>),
    mut on_line: impl FnMut(&str),
) -> Ended {
    let Some(image) = job.image.as_deref() else {
        if job.sandbox {
            let sandbox = BwrapExecutor::new();
            let launch = Launch {
                executor: &sandbox,
                ..launch
            };
            return process::run(launch, on_start, on_line).await;
        }
        return process::run(launch, on_start, on_line).await;
    };
    let docker = match ctx.docker.get(ctx.spec.docker_host.as_deref()).await {
        Ok(d) => d,
        Err(e) => {
            on_start(None);
            on_line(&format!("andon: {e}"));
            return Ended {
                outcome: andon_core::JobOutcome::Failed,
                exit_code: None,
            };
        }
    };
    let mut labels = HashMap::from([
        (docker::LABEL_RUN_ID.to_owned(), ctx.spec.run_id.to_string()),
        (docker::LABEL_JOB.to_owned(), job.name.clone()),
        ("ANDON_ATTEMPT".to_owned(), attempt.to_string()),
    ]);
    if let Some(i) = &ctx.spec.instance {
        labels.insert(docker::LABEL_INSTANCE.to_owned(), i.clone());
    }
    let reports = launch.writable.first().cloned().unwrap_or_default();
    container::run(
        docker,
        ContainerLaunch {
            image,
            script: launch.script,
            checkout: launch.cwd,
            reports: &reports,
            env: launch.env,
            labels,
            timeout: launch.timeout,
            kill_grace: launch.kill_grace,
            stop: launch.stop,
        },
        on_start,
        &mut on_line,
    )
    .await
}
