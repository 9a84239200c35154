//! Recovery after a controller restart (or crash), from the `Deploys`
//! projection of the event log.
//!
//! The router kept serving the last table while the controller was down,
//! and the instances kept running (they are not killed with the
//! controller). Per environment, in this order so that no request fails:
//! 1. adopt live instances of the stable version (pid alive, running in its
//!    instance directory, health check answering), start fresh ones if too
//!    few survived;
//! 2. send one route update: all traffic to the stable version;
//! 3. report a release that was in flight as rolled back (resuming it would
//!    mean trusting a judge's state that was lost with the process; going
//!    back to known good is the safe default — it can be deployed again);
//! 4. drain and stop everything else: canaries, baselines, warm blues,
//!    processes whose start never reached the log (found by their pid files).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use andon_artifacts::Digest;
use andon_core::{DeployOutcome, DeployPhase, Deploys, Event, InstanceView};

use crate::api::{EnvSpec, RecoveryReport};
use crate::controller::Inner;
use crate::env::{EnvSlot, Group, LaunchSpec};
use crate::error::DeployError;
use crate::groups::role;
use crate::health;
use crate::instance::{Identity, Instance};
use crate::process::{self, Launch};
use crate::routes::{self, Reach};
use crate::runtime::Proc;

/// A process to stop: instance id, pid (process group), whether the log knows it.
struct Doomed {
    id: String,
    pid: Option<i32>,
    logged: bool,
}

pub(crate) async fn recover(
    inner: &Arc<Inner>,
    deploys: &Deploys,
    envs: &[EnvSpec],
) -> Result<RecoveryReport, DeployError> {
    let mut report = RecoveryReport::default();
    let mut covered = BTreeSet::new();
    for spec in envs {
        covered.insert((spec.project.clone(), spec.environment.name.clone()));
        recover_env(inner, deploys, spec, &mut report).await?;
    }
    // Environments no longer configured: nothing of theirs may keep running.
    for (key, view) in &deploys.envs {
        if covered.contains(key) {
            continue;
        }
        let doomed = view
            .instances
            .values()
            .map(|i| Doomed {
                id: i.id.clone(),
                pid: i.pid,
                logged: true,
            })
            .collect();
        kill(inner, &key.0, &key.1, doomed, &mut report).await;
    }
    Ok(report)
}

async fn recover_env(
    inner: &Arc<Inner>,
    deploys: &Deploys,
    spec: &EnvSpec,
    report: &mut RecoveryReport,
) -> Result<(), DeployError> {
    let env = &spec.environment;
    let Some(target) = &crate::runtime::as_process(&env.target) else {
        return Ok(());
    };
    let slot = inner.slot_or_create(&spec.project, &env.name);
    let mut st = slot.state.lock().await;
    st.config = Some(env.clone());
    inner.bind_traffic(&slot.service, &env.traffic);
    let reach = Reach::of(env);
    let launch = Arc::new(LaunchSpec {
        target: target.clone(),
        secrets: spec.secrets.clone(),
        container: crate::runtime::container_of(&env.target),
    });
    let view = deploys.env(&spec.project, &env.name);
    let stable: Option<Digest> = view
        .and_then(|v| v.stable.as_deref())
        .and_then(|s| s.parse().ok());
    st.good = view
        .map(|v| {
            v.good_versions
                .iter()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let stable_deploy = stable
        .and_then(|s| {
            let s = s.to_string();
            deploys.deploys.values().rev().find(|d| {
                d.environment == env.name
                    && d.project == spec.project
                    && d.version == s
                    && d.phase == DeployPhase::Finished(DeployOutcome::Succeeded)
            })
        })
        .map_or(0, |d| d.id);
    let n = usize::try_from(target.instances.max(1)).unwrap_or(1);
    let base = inner.env_dir(&spec.project, &env.name);

    // 1. Adopt what is alive and healthy; everything else is doomed.
    let mut adopted: Vec<(&InstanceView, SocketAddr, Proc)> = Vec::new();
    let mut doomed = Vec::new();
    for inst in view
        .map(|v| v.instances.values().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let dir = base.join(&inst.id);
        let addr: Option<SocketAddr> = inst.addr.parse().ok();
        let is_stable = stable.is_some_and(|s| s.to_string() == inst.version);
        let alive = if launch.container.is_some() {
            // Found by its labels; one that is not adopted is removed below.
            inner.find_container(&inst.id).await.map(Proc::Container)
        } else {
            inst.pid
                .filter(|p| process::is_instance_process(*p, &dir))
                .map(Proc::Adopted)
        };
        let keep = match (is_stable, alive, addr) {
            (true, Some(proc), Some(addr)) if adopted.len() < n => {
                health::probe(&inner.ctx.http, addr, target.health.as_deref())
                    .await
                    .then_some((addr, proc))
            }
            _ => None,
        };
        match keep {
            Some((addr, proc)) => adopted.push((inst, addr, proc)),
            None => doomed.push(Doomed {
                id: inst.id.clone(),
                pid: inst.pid,
                logged: true,
            }),
        }
    }
    let known: BTreeSet<&str> = view
        .map(|v| v.instances.keys().map(String::as_str).collect())
        .unwrap_or_default();
    doomed.extend(unlogged_pids(&base, &known));

    let mut group = stable.map(|v| Group::new(v, launch.clone(), stable_deploy));
    if let Some(g) = group.as_mut() {
        for (inst, addr, proc) in adopted {
            let addr = &addr;
            let dir = base.join(&inst.id);
            let ident = Identity {
                id: inst.id.clone(),
                project: spec.project.clone(),
                environment: env.name.clone(),
                version: g.version,
                deploy_id: inst.deploy_id,
                addr: *addr,
                pidfile: base.join(format!("{}.pid", inst.id)),
                health: target.health.clone(),
                dir: dir.clone(),
            };
            let run: crate::runtime::Launch = if launch.container.is_some() {
                inner.container_launch(&slot, g, &inst.id, *addr)
            } else {
                Launch {
                    command: target.command.clone(),
                    env: process::instance_env(
                        &target.env,
                        &launch.listed_secrets(),
                        addr.port(),
                        &g.version.to_string(),
                        &inst.id,
                        &env.name,
                        &dir,
                    ),
                    log: base.join(format!("{}.log", inst.id)),
                    dir,
                }
                .into()
            };
            let i = Instance::adopt(&inner.ctx, ident, run, proc);
            inner.register(&i);
            report.adopted.push(inst.id.clone());
            g.instances.push(i);
        }
        let missing = n.saturating_sub(g.instances.len());
        if missing > 0 {
            let from = g.instances.len();
            match inner.grow(&slot, g, missing).await {
                Ok(()) => report
                    .started
                    .extend(g.instances[from..].iter().map(|i| i.ident.id.clone())),
                Err(why) => {
                    tracing::error!(environment = %slot.service, %why, "cannot start stable instances during recovery");
                    let failed = g.instances.split_off(from);
                    inner
                        .stop_all(failed, "could not start during recovery")
                        .await;
                }
            }
        }
    }

    // 2. One route update: everything on the stable version.
    let before = inner.traffic(&slot.service).current(&slot.service).await?;
    match &group {
        Some(g) if !g.instances.is_empty() => {
            inner
                .publish(
                    &slot,
                    &reach,
                    stable_deploy,
                    &[role(routes::STABLE, g, 100)],
                )
                .await?;
        }
        _ => {
            if before.is_some() {
                inner
                    .traffic(&slot.service)
                    .set(&slot.service, None, &reach)
                    .await?;
            }
        }
    }

    // 3. The release that was in flight.
    if let Some(id) = view.and_then(|v| v.current_deploy) {
        let reason = "interrupted by a controller restart; traffic returned to the stable version"
            .to_string();
        inner.emit(Event::DeployFinished {
            project: spec.project.clone(),
            environment: env.name.clone(),
            deploy_id: id,
            outcome: DeployOutcome::RolledBack,
            reason: Some(reason.clone()),
        });
        inner.ctx.observer.notify(
            &format!("{}/{}: release {id} rolled back", spec.project, env.name),
            &reason,
        );
        report.rolled_back.push(id);
    }

    // 4. Drain what left the table, then stop it.
    let keys: Vec<(&str, Digest)> = before
        .iter()
        .flat_map(|s| s.versions.iter())
        .filter_map(|v| {
            let name = [
                routes::STABLE,
                routes::CANARY,
                routes::BASELINE,
                routes::GREEN,
                routes::PREVIOUS,
                routes::NEXT,
            ]
            .into_iter()
            .find(|r| *r == v.name)?;
            let version: Digest = v.version.parse().ok()?;
            let kept = name == routes::STABLE && Some(version) == stable;
            (!kept).then_some((name, version))
        })
        .collect();
    inner.drain(&slot.service, &keys).await;
    kill(inner, &spec.project, &env.name, doomed, report).await;
    if launch.container.is_some() {
        inner.remove_stray_containers(&slot, report).await;
    }
    if let (Some(g), Some(v)) = (group, stable) {
        st.launches.insert(v, launch);
        if !g.instances.is_empty() {
            st.stable = Some(g);
        }
    }
    drop(st);
    remove_leftover_dirs(inner, &slot).await;
    Ok(())
}

/// Pid files of instances the log does not know (the controller died
/// between starting them and recording it).
fn unlogged_pids(base: &std::path::Path, known: &BTreeSet<&str>) -> Vec<Doomed> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".pid")?.to_string();
            if known.contains(id.as_str()) {
                return None;
            }
            let pid = std::fs::read_to_string(e.path()).ok()?.trim().parse().ok();
            Some(Doomed {
                id,
                pid,
                logged: false,
            })
        })
        .collect()
}

/// Stops doomed processes (only if they still run in their instance
/// directory: a pid from the log may have been reused), removes their files.
async fn kill(
    inner: &Arc<Inner>,
    project: &str,
    environment: &str,
    doomed: Vec<Doomed>,
    report: &mut RecoveryReport,
) {
    let base = inner.env_dir(project, environment);
    let grace = inner.cfg.stop_timeout;
    let mut set = tokio::task::JoinSet::new();
    for d in doomed {
        let dir = base.join(&d.id);
        let pidfile = base.join(format!("{}.pid", d.id));
        set.spawn(async move {
            let live = d.pid.filter(|p| process::is_instance_process(*p, &dir));
            if let Some(pid) = live {
                process::terminate_group(pid, grace).await;
            }
            let _ = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(&pidfile);
                let _ = std::fs::remove_dir_all(&dir);
            })
            .await;
            (d, live.is_some())
        });
    }
    while let Some(done) = set.join_next().await {
        let Ok((d, was_running)) = done else { continue };
        if d.logged {
            inner.emit(Event::InstanceStopped {
                environment: environment.to_string(),
                instance_id: d.id.clone(),
                reason: "not adopted after a controller restart".to_string(),
            });
        }
        if was_running {
            report.killed.push(d.id);
        }
    }
}

/// Instance directories nobody runs in any more.
async fn remove_leftover_dirs(inner: &Arc<Inner>, slot: &EnvSlot) {
    let base = inner.env_dir(&slot.project, &slot.environment);
    let live: BTreeSet<String> = inner
        .instances
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|i| i.ident.environment == slot.environment && i.ident.project == slot.project)
        .map(|i| i.ident.id.clone())
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&base) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && !live.contains(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    })
    .await;
}
