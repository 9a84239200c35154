//! Containers a killed server left behind.
//!
//! [`crate::reap_orphans`] ends orphaned processes through `/proc`; a
//! container job's processes may live in another PID namespace, on another
//! machine's engine, or be restarted by the engine, and the container itself
//! (its writable layer, its name) outlives them. Every container a job runs
//! in carries the labels `ANDON_RUN_ID` (and `ANDON_INSTANCE`), so the next
//! server start asks the engine for them and removes them, running or not.

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};

use crate::docker::{self, ContainerError, LABEL_INSTANCE, LABEL_RUN_ID};

/// Removes (force: killed if running) every container labelled
/// `ANDON_RUN_ID=<id>` for one of `run_ids`, and `ANDON_INSTANCE=<instance>`
/// when given, on the engine at `host` (see [`docker::docker_host`]).
/// Returns how many were removed.
pub async fn reap_orphan_containers(
    host: &str,
    instance: Option<&str>,
    run_ids: &[u64],
) -> Result<usize, ContainerError> {
    if run_ids.is_empty() {
        return Ok(0);
    }
    let docker = docker::connect(host).await?;
    let api = |source| ContainerError::Api {
        host: host.to_owned(),
        source,
    };
    let mut removed = 0;
    for id in run_ids {
        let mut labels = vec![(LABEL_RUN_ID, id.to_string())];
        if let Some(i) = instance {
            labels.push((LABEL_INSTANCE, i.to_owned()));
        }
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&docker::label_filter(&labels))
            .build();
        let found = docker.list_containers(Some(opts)).await.map_err(api)?;
        for c in found {
            let Some(cid) = c.id else { continue };
            // A forced removal of a running container waits out its stop
            // timeout on Podman: kill it first.
            let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
            let _ = docker.kill_container(&cid, Some(kill)).await;
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(&cid, Some(opts)).await {
                Ok(()) => removed += 1,
                // Removed meanwhile (its own run's cleanup won the race).
                Err(e) if docker::is_not_found(&e) => {}
                Err(e) => return Err(api(e)),
            }
        }
    }
    Ok(removed)
}
