//! One instance: a process group started from an extracted artifact, watched
//! by a supervisor task that reports readiness, restarts it when it crashes
//! (with capped exponential backoff) and stops it gracefully when told.
//!
//! The supervisor owns the process; everyone else talks to it through two
//! watch channels: `status` (pid, ready, restarts, gone) out, the stop
//! reason in. That keeps "who may signal this process group" to one task.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_artifacts::Digest;
use andon_core::Event;
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{DeployObserver, InstanceInfo};
use crate::error::DeployError;
use crate::health;
use crate::process;
use crate::runtime::{self, Launch, Proc};

/// First wait before restarting a crashed instance; doubled per crash.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest wait between restarts.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// An instance that stayed up this long after a restart starts over with the
/// shortest backoff: the crash was an accident, not a loop.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What the supervisors share.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) observer: Arc<dyn DeployObserver>,
    pub(crate) http: reqwest::Client,
    pub(crate) stop_timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) pid: Option<i32>,
    pub(crate) ready: bool,
    pub(crate) restarts: u32,
    /// Set when the process exited before it was ever ready: a release
    /// waiting for it fails at once instead of waiting out `ready_timeout`.
    pub(crate) failed: Option<String>,
    /// Stopped for good; the supervisor has ended.
    pub(crate) gone: bool,
    /// The current container of a container instance.
    pub(crate) container: Option<crate::container::Running>,
}

/// Identity of an instance, fixed for its life.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) project: String,
    pub(crate) environment: String,
    pub(crate) version: Digest,
    pub(crate) deploy_id: u64,
    pub(crate) addr: SocketAddr,
    /// The extracted artifact (and the process's working directory).
    pub(crate) dir: PathBuf,
    /// `DATA/instances/<project>/<env>/<id>.pid`: lets a restarted controller find
    /// processes whose `InstanceStarted` never reached the log.
    pub(crate) pidfile: PathBuf,
    pub(crate) health: Option<String>,
}

pub(crate) struct Instance {
    pub(crate) ident: Identity,
    status: watch::Sender<Status>,
    stop: watch::Sender<Option<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    /// Starts the process or container (a process's directory is already
    /// extracted) and its supervisor.
    pub(crate) async fn start(
        ctx: &Ctx,
        ident: Identity,
        launch: Launch,
    ) -> Result<Arc<Self>, DeployError> {
        let proc = runtime::spawn(&launch).await?;
        let inst = Self::new(ident, Status::default());
        inst.started(ctx, &proc);
        inst.run(ctx, launch, proc, false);
        Ok(inst)
    }

    /// Takes over a live, healthy process or container a previous
    /// controller started.
    pub(crate) fn adopt(ctx: &Ctx, ident: Identity, launch: Launch, proc: Proc) -> Arc<Self> {
        let status = Status {
            pid: proc.pid(),
            ready: true,
            container: match &proc {
                Proc::Container(c) => Some(c.clone()),
                _ => None,
            },
            ..Status::default()
        };
        let inst = Self::new(ident, status);
        if let (Some(pid), Proc::Adopted(_)) = (proc.pid(), &proc) {
            write_pidfile(&inst.ident.pidfile, pid);
        }
        inst.run(ctx, launch, proc, true);
        inst
    }

    fn new(ident: Identity, status: Status) -> Arc<Self> {
        Arc::new(Instance {
            ident,
            status: watch::Sender::new(status),
            stop: watch::Sender::new(None),
            task: Mutex::new(None),
        })
    }

    fn run(self: &Arc<Self>, ctx: &Ctx, launch: Launch, proc: Proc, ready: bool) {
        let task = tokio::spawn(supervise(ctx.clone(), self.clone(), launch, proc, ready));
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    fn started(&self, ctx: &Ctx, proc: &Proc) {
        let pid = proc.pid();
        let container = match proc {
            Proc::Container(c) => Some(c.clone()),
            _ => None,
        };
        // A container is found by its labels; its pid is not ours to signal.
        if let (Some(pid), None) = (pid, &container) {
            write_pidfile(&self.ident.pidfile, pid);
        }
        self.status.send_modify(|s| {
            s.pid = pid;
            s.ready = false;
            s.container = container;
        });
        ctx.observer.event(Event::InstanceStarted {
            environment: self.ident.environment.clone(),
            deploy_id: self.ident.deploy_id,
            instance_id: self.ident.id.clone(),
            version: self.ident.version.to_string(),
            addr: self.ident.addr.to_string(),
            pid,
        });
    }

    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub(crate) fn endpoint(&self) -> String {
        self.ident.addr.to_string()
    }

    pub(crate) fn info(&self) -> InstanceInfo {
        let s = self.status();
        InstanceInfo {
            id: self.ident.id.clone(),
            project: self.ident.project.clone(),
            environment: self.ident.environment.clone(),
            version: self.ident.version,
            deploy_id: self.ident.deploy_id,
            addr: self.ident.addr,
            pid: s.pid,
            ready: s.ready,
            restarts: s.restarts,
            dir: self.ident.dir.clone(),
        }
    }

    /// Until the instance first answers its health check; an error says why not.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let mut rx = self.status.subscribe();
        let wait = async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if s.ready {
                        return Ok(());
                    }
                    if let Some(why) = &s.failed {
                        return Err(format!("instance {} {why}", self.ident.id));
                    }
                    if s.gone {
                        return Err(format!("instance {} was stopped", self.ident.id));
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(format!("instance {} lost its supervisor", self.ident.id));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "instance {} not ready after {}",
                    self.ident.id,
                    andon_config::format_duration(timeout)
                ))
            })
    }

    /// Stops the process group (SIGTERM, then SIGKILL after the grace
    /// period), removes its directory, reports `InstanceStopped`. The caller
    /// has already taken it out of the router and drained it.
    pub(crate) async fn stop(&self, reason: &str, grace: Duration) {
        self.stop.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_string());
                true
            } else {
                false
            }
        });
        let mut rx = self.status.subscribe();
        let bound = grace + Duration::from_secs(10);
        let _ = tokio::time::timeout(bound, rx.wait_for(|s| s.gone)).await;
    }

    /// Forgets the process without stopping it (a shutdown that leaves
    /// instances for the next controller to adopt).
    pub(crate) fn abandon(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

fn write_pidfile(path: &std::path::Path, pid: i32) {
    if let Err(e) = std::fs::write(path, pid.to_string()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write pid file");
    }
}

/// The supervisor: readiness, crash restarts, graceful stop.
async fn supervise(ctx: Ctx, inst: Arc<Instance>, launch: Launch, mut proc: Proc, mut ready: bool) {
    let mut stop_rx = inst.stop.subscribe();
    let mut backoff = BACKOFF_START;
    let mut ever_ready = ready;
    let ident = inst.ident.clone();
    loop {
        let since = Instant::now();
        let event = loop {
            tokio::select! {
                how = proc.exited() => break Err(how),
                r = stop_rx.wait_for(Option::is_some) => {
                    break Ok(r.ok().and_then(|g| g.clone()).unwrap_or_default());
                }
                () = health::until_ready(&ctx.http, ident.addr, ident.health.as_deref()), if !ready => {
                    ready = true;
                    ever_ready = true;
                    inst.status.send_modify(|s| s.ready = true);
                    ctx.observer.event(Event::InstanceReady {
                        environment: ident.environment.clone(),
                        instance_id: ident.id.clone(),
                    });
                }
            }
        };
        let how = match event {
            Ok(reason) => {
                stop_process(&mut proc, ctx.stop_timeout).await;
                finish(&ctx, &inst, &reason).await;
                return;
            }
            Err(how) => how,
        };
        // Crashed. Whatever it forked goes too: the restart starts clean.
        proc.discard().await;
        ready = false;
        if ever_ready && since.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_START;
        }
        inst.status.send_modify(|s| {
            s.pid = None;
            s.ready = false;
            s.container = None;
            if !ever_ready {
                s.failed = Some(format!("exited ({how}) before becoming ready"));
            }
        });
        ctx.observer.event(Event::InstanceStopped {
            environment: ident.environment.clone(),
            instance_id: ident.id.clone(),
            reason: format!(
                "crashed ({how}); restarting in {}",
                andon_config::format_duration(backoff)
            ),
        });
        tracing::warn!(instance = %ident.id, %how, ?backoff, "instance crashed");
        // Wait out the backoff, then restart, until a start succeeds.
        loop {
            let stopped = tokio::select! {
                () = tokio::time::sleep(backoff) => false,
                r = stop_rx.wait_for(Option::is_some) => r.is_ok(),
            };
            if stopped {
                finish_quiet(&inst).await;
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
            match runtime::spawn(&launch).await {
                Ok(p) => {
                    proc = p;
                    inst.status.send_modify(|s| s.restarts += 1);
                    inst.started(&ctx, &proc);
                    break;
                }
                Err(e) => {
                    tracing::warn!(instance = %ident.id, error = %e, "restart failed");
                }
            }
        }
    }
}

/// SIGTERM to the group, the grace period for it to finish what it is
/// doing, then SIGKILL to whatever is left.
async fn stop_process(proc: &mut Proc, grace: Duration) {
    if let Proc::Container(c) = proc {
        c.stop(grace).await;
        return;
    }
    let Some(pgid) = proc.pid() else { return };
    process::signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let _ = tokio::time::timeout_at(deadline, proc.exited()).await;
    // The leader may be a shell that died at once while its child drains.
    while process::group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process::signal_group(pgid, Signal::SIGKILL);
    let _ = tokio::time::timeout(Duration::from_secs(2), proc.exited()).await;
}

/// After the process is gone: files removed, event, status.
async fn finish(ctx: &Ctx, inst: &Instance, reason: &str) {
    ctx.observer.event(Event::InstanceStopped {
        environment: inst.ident.environment.clone(),
        instance_id: inst.ident.id.clone(),
        reason: reason.to_string(),
    });
    finish_quiet(inst).await;
}

/// Stopped while waiting to restart: the crash was already reported.
async fn finish_quiet(inst: &Instance) {
    let dir = inst.ident.dir.clone();
    let pidfile = inst.ident.pidfile.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_file(&pidfile);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
    inst.status.send_modify(|s| {
        s.pid = None;
        s.ready = false;
        s.container = None;
        s.gone = true;
    });
}
