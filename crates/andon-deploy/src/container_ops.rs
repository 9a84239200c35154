//! The controller's steps that only container targets have: checking that
//! the engine holds the image of a version, building a container launch,
//! finding a container to adopt after a restart, and removing containers of
//! an environment that no instance owns any more.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use andon_artifacts::Digest;

use crate::api::RecoveryReport;
use crate::container;
use crate::controller::Inner;
use crate::env::{EnvSlot, Group};
use crate::error::DeployError;
use crate::runtime::{self, Launch};

impl Inner {
    pub(crate) fn docker_host(&self) -> String {
        container::host(self.cfg.docker_host.as_deref())
    }

    /// The image id of `image` (a name or an id) on the engine.
    pub(crate) async fn image_id(&self, image: &str) -> Result<Digest, DeployError> {
        container::image_id(&self.docker_host(), image).await
    }

    /// A container version must already be on the engine: deploying
    /// pulls nothing, so what runs is exactly the id that was tested.
    pub(crate) async fn check_image(&self, version: &Digest) -> Result<(), DeployError> {
        let host = self.docker_host();
        if container::has_image(&host, version).await? {
            Ok(())
        } else {
            Err(DeployError::Container {
                host,
                message: format!("no image with id sha256:{}", version.hex()),
            })
        }
    }

    /// How to start (and restart) a container instance of the group's version.
    pub(crate) fn container_launch(
        &self,
        slot: &EnvSlot,
        group: &Group,
        instance_id: &str,
        addr: SocketAddr,
    ) -> Launch {
        let mut env = group.launch.listed_secrets();
        env.extend(runtime::container_env(
            &group.launch.target.env,
            addr.port(),
            &group.version.to_string(),
            instance_id,
            &slot.environment,
        ));
        Launch::Container(container::Launch::new(
            self.docker_host(),
            group.version,
            env,
            &slot.project,
            &slot.environment,
            instance_id,
            addr,
        ))
    }

    /// The running container of an instance, for adoption.
    pub(crate) async fn find_container(&self, instance_id: &str) -> Option<container::Running> {
        container::find(&self.docker_host(), instance_id).await
    }

    /// Removes the environment's containers that belong to no live
    /// instance (canaries of an interrupted release, instances whose start
    /// never reached the log, crashed leftovers).
    pub(crate) async fn remove_stray_containers(
        &self,
        slot: &EnvSlot,
        report: &mut RecoveryReport,
    ) {
        let live: BTreeSet<String> = self
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|i| i.ident.environment == slot.environment && i.ident.project == slot.project)
            .map(|i| i.ident.id.clone())
            .collect();
        let found =
            container::of_environment(&self.docker_host(), &slot.project, &slot.environment).await;
        let grace = self.cfg.stop_timeout;
        for (c, instance) in found {
            if live.contains(&instance) {
                continue;
            }
            c.stop(grace).await;
            if !report.killed.contains(&instance) {
                report.killed.push(instance);
            }
        }
    }
}
