//! What an instance runs as: a process group (`process` targets) or a
//! container (`container` targets). The supervisor in `instance` handles
//! both through this one shape: start, wait for the exit, clean up after a
//! crash, stop gracefully.

use std::collections::BTreeMap;
use std::time::Duration;

use andon_config::{ContainerTarget, ProcessTarget, Target};
use nix::sys::signal::Signal;

use crate::container;
use crate::error::DeployError;
use crate::process;

/// How an instance is started (and restarted after a crash).
#[derive(Debug, Clone)]
pub(crate) enum Launch {
    Process(process::Launch),
    Container(container::Launch),
}

impl From<process::Launch> for Launch {
    fn from(l: process::Launch) -> Self {
        Launch::Process(l)
    }
}

/// What runs.
pub(crate) enum Proc {
    Child(tokio::process::Child),
    /// A process a previous controller started (not our child: no `wait`).
    Adopted(i32),
    Container(container::Running),
}

/// How often an adopted process (not our child, so no `wait`) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

impl Proc {
    pub(crate) fn pid(&self) -> Option<i32> {
        match self {
            Proc::Child(c) => c.id().and_then(|p| i32::try_from(p).ok()),
            Proc::Adopted(p) => Some(*p),
            Proc::Container(c) => c.pid,
        }
    }

    /// Until it exits; a description of how.
    pub(crate) async fn exited(&mut self) -> String {
        match self {
            Proc::Child(c) => match c.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("lost: {e}"),
            },
            Proc::Adopted(pid) => {
                while process::alive(*pid) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                "exited".to_string()
            }
            Proc::Container(c) => c.exited().await,
        }
    }

    /// After a crash: whatever it left behind goes too (the process group,
    /// or the dead container), so the restart starts clean.
    pub(crate) async fn discard(&self) {
        match self {
            Proc::Container(c) => c.remove().await,
            _ => {
                if let Some(pgid) = self.pid() {
                    process::signal_group(pgid, Signal::SIGKILL);
                }
            }
        }
    }
}

/// Starts a fresh process group or container.
pub(crate) async fn spawn(launch: &Launch) -> Result<Proc, DeployError> {
    match launch {
        Launch::Process(l) => process::spawn(l).map(Proc::Child),
        Launch::Container(l) => container::start(l).await.map(Proc::Container),
    }
}

/// The target as the strategies see it: a process target's fields, which a
/// container target shares (instances, health, env); `command` is empty and
/// the readiness timeout the default. None for an unknown kind of target.
pub(crate) fn as_process(target: &Target) -> Option<ProcessTarget> {
    match target {
        Target::Process(p) => Some(p.clone()),
        Target::Container(c) => Some(ProcessTarget {
            command: String::new(),
            instances: c.instances,
            health: c.health.clone(),
            env: c.env.clone(),
            secrets: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The container part of a target, if it is one.
pub(crate) fn container_of(target: &Target) -> Option<ContainerTarget> {
    match target {
        Target::Container(c) => Some(c.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The environment of a container instance: the target's variables, then
/// what the controller sets. Unlike a process instance, no `PATH` or `HOME`
/// from the controller's machine: the image has its own.
pub(crate) fn container_env(
    declared: &BTreeMap<String, String>,
    port: u16,
    version: &str,
    instance_id: &str,
    environment: &str,
) -> BTreeMap<String, String> {
    let mut env = declared.clone();
    env.insert("PORT".to_string(), port.to_string());
    env.insert("ANDON_VERSION".to_string(), version.to_string());
    env.insert("ANDON_INSTANCE".to_string(), instance_id.to_string());
    env.insert("ANDON_ENVIRONMENT".to_string(), environment.to_string());
    env
}
