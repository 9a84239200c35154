//! What the controller knows about one environment: the groups of instances
//! it runs, the release in flight and how to reach it.
//!
//! `EnvState` sits behind an async mutex that a release holds from start to
//! end, so two changes to one environment (a release, a rollback, the end of
//! a rollback window) never interleave. Commands to a release in flight do
//! not take that lock: they go through the `Ctl` watch channel.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use andon_artifacts::Digest;
use andon_config::{Environment, ProcessTarget};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::instance::Instance;

/// Everything needed to start another instance of a version as it was deployed.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    /// For a container target, its shared fields as a process target (see
    /// `runtime::as_process`).
    pub(crate) target: ProcessTarget,
    pub(crate) secrets: BTreeMap<String, String>,
    /// Set for a container target: instances are containers of the version
    /// (an image id), not processes of an extracted artifact.
    pub(crate) container: Option<andon_config::ContainerTarget>,
}

impl LaunchSpec {
    /// The secrets the target lists, with their values.
    pub(crate) fn listed_secrets(&self) -> BTreeMap<String, String> {
        self.target
            .secrets
            .iter()
            .filter_map(|n| self.secrets.get(n).map(|v| (n.clone(), v.clone())))
            .collect()
    }
}

/// Instances of one version serving under one role.
#[derive(Clone)]
pub(crate) struct Group {
    pub(crate) version: Digest,
    pub(crate) launch: Arc<LaunchSpec>,
    pub(crate) deploy_id: u64,
    pub(crate) instances: Vec<Arc<Instance>>,
}

impl Group {
    pub(crate) fn new(version: Digest, launch: Arc<LaunchSpec>, deploy_id: u64) -> Self {
        Group {
            version,
            launch,
            deploy_id,
            instances: Vec::new(),
        }
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.endpoint()).collect()
    }
}

/// Blue after a blue/green switch: dark but running, until the rollback
/// window ends.
pub(crate) struct Warm {
    pub(crate) group: Group,
    pub(crate) timer: Option<JoinHandle<()>>,
    /// The deploy whose switch made it warm (its timer checks it is still
    /// the one to end).
    pub(crate) until_deploy: u64,
}

/// A canary whose judge failed after a contract migration: left as it was.
pub(crate) struct Frozen {
    pub(crate) deploy_id: u64,
    pub(crate) canary: Group,
    pub(crate) baseline: Option<Group>,
}

#[derive(Default)]
pub(crate) struct EnvState {
    pub(crate) config: Option<Environment>,
    /// The version serving all traffic between releases.
    pub(crate) stable: Option<Group>,
    pub(crate) warm: Option<Warm>,
    pub(crate) frozen: Option<Frozen>,
    /// Versions that completed here, newest last (for rollback).
    pub(crate) good: Vec<Digest>,
    /// How each version was last started here.
    pub(crate) launches: BTreeMap<Digest, Arc<LaunchSpec>>,
}

impl EnvState {
    /// Records a version that now serves all traffic.
    pub(crate) fn mark_good(&mut self, v: Digest) {
        self.good.retain(|g| *g != v);
        self.good.push(v);
        // Keep a bounded history: rollback goes back, rarely far.
        if self.good.len() > 20 {
            self.good.remove(0);
        }
    }

    /// The version a rollback returns to: the stable one when a release is
    /// frozen, else the newest good version other than the stable one.
    pub(crate) fn rollback_target(&self) -> Option<Digest> {
        let stable = self.stable.as_ref().map(|g| g.version);
        if self.frozen.is_some() {
            return stable;
        }
        self.good
            .iter()
            .rev()
            .find(|v| Some(**v) != stable)
            .copied()
    }
}

/// A person's say, as the release task sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ctl {
    pub(crate) paused: bool,
    pub(crate) promote: bool,
    pub(crate) abort: bool,
}

pub(crate) struct EnvSlot {
    pub(crate) project: String,
    pub(crate) environment: String,
    /// `project/environment`: the router service.
    pub(crate) service: String,
    pub(crate) state: tokio::sync::Mutex<EnvState>,
    /// The deploy in flight, if any.
    pub(crate) inflight: watch::Sender<Option<u64>>,
    pub(crate) control: Mutex<Option<watch::Sender<Ctl>>>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    /// Mirrors `state.frozen.is_some()` for checks that must not wait for the lock.
    pub(crate) frozen: AtomicBool,
    /// The stable version while a release (which holds the state lock) runs.
    pub(crate) release_stable: Mutex<Option<Digest>>,
}

impl EnvSlot {
    pub(crate) fn new(project: &str, environment: &str) -> Self {
        EnvSlot {
            project: project.to_string(),
            environment: environment.to_string(),
            service: format!("{project}/{environment}"),
            state: tokio::sync::Mutex::new(EnvState::default()),
            inflight: watch::Sender::new(None),
            control: Mutex::new(None),
            task: Mutex::new(None),
            frozen: AtomicBool::new(false),
            release_stable: Mutex::new(None),
        }
    }

    pub(crate) fn control(&self) -> Option<watch::Sender<Ctl>> {
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
