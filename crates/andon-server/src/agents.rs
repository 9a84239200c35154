//! The dispatch queue for remote agents: attempts waiting for an agent with
//! their labels, leases held by agents, heartbeats and expiry.
//!
//! All of it is in memory, behind one mutex: a lease only means something
//! while this process (the leader) runs; after a restart the runs are
//! interrupted anyway, and agents learn it from their next heartbeat.
//!
//! Every transition of an attempt happens under that mutex, and a lease is
//! removed exactly once (by its finish, its expiry or a cancellation), so an
//! attempt ends exactly once and a stale lease can never report. The events
//! a transition records (`JobLeased`, `JobStarted`, `LeaseExpired`) are
//! appended under the mutex too, so the log orders them as they happened.
//!
//! Nothing polls: an agent's lease request waits on a [`Notify`] that a new
//! attempt wakes; a heartbeat is held open and answered at once when its
//! lease is taken back; the runner's side of an attempt sleeps until the
//! lease's expiry or a report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_core::{Event, JobOutcome};
use andon_runner::{RemoteAttempt, RemoteJobs, RemoteOutcome, RunObserver, StoredArtifact};
use futures::future::BoxFuture;
use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How long a lease lives without a heartbeat, unless
/// `ANDON_AGENT_LEASE_TTL_MS` says otherwise (tests use a few seconds).
const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// Agents not heard from for this many TTLs (and at least longer than an
/// idle lease request waits) are "gone": their next request records
/// `AgentConnected` again.
const GONE_AFTER_TTLS: u32 = 4;
const GONE_AFTER_MIN: Duration = Duration::from_secs(45);

pub(crate) struct Agents {
    inner: Mutex<Inner>,
    /// Woken when an attempt is queued: every waiting lease request looks.
    queued: Notify,
    ttl: Duration,
}

#[derive(Default)]
struct Inner {
    next_ticket: u64,
    /// Oldest first: the first attempt an agent's labels fit is its next.
    queue: Vec<Queued>,
    leases: HashMap<String, Lease>,
    /// Agent name → (labels, last request).
    seen: HashMap<String, (Vec<String>, Instant)>,
}

/// What the runner's side of an attempt and the API share about it.
struct Attempt {
    ticket: u64,
    run_id: u64,
    job: String,
    attempt: u32,
    project: String,
    commit: String,
    observer: Arc<dyn RunObserver>,
    /// Woken on every change of the attempt (leased, taken back).
    changed: Arc<Notify>,
}

struct Queued {
    at: Attempt,
    labels: Vec<String>,
    /// The lease answer without the lease's own fields.
    offer: Value,
    done: oneshot::Sender<RemoteOutcome>,
}

struct Lease {
    at: Attempt,
    agent: String,
    expires: Instant,
    started: bool,
    done: oneshot::Sender<RemoteOutcome>,
}

/// Why the API refuses a lease-bound call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LeaseError {
    #[error(
        "lease `{0}` is not held: it expired, was taken back or finished; stop the job and discard its results"
    )]
    Gone(String),
}

/// A lease as an agent receives it.
pub(crate) struct Granted {
    pub(crate) body: Value,
}

/// What a lease-bound download may read.
pub(crate) struct LeaseSource {
    pub(crate) project: String,
    pub(crate) commit: String,
}

impl Agents {
    pub(crate) fn from_env() -> Self {
        let ttl = std::env::var("ANDON_AGENT_LEASE_TTL_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms >= 500)
            .map_or(DEFAULT_TTL, Duration::from_millis);
        Self {
            inner: Mutex::new(Inner::default()),
            queued: Notify::new(),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a heartbeat is held before it is answered: well under the
    /// TTL, so the next one arrives in time.
    pub(crate) fn hold(&self) -> Duration {
        self.ttl / 5
    }

    fn gone_after(&self) -> Duration {
        (self.ttl * GONE_AFTER_TTLS).max(GONE_AFTER_MIN)
    }

    /// Records that `agent` asked for work; true when it is new (or back).
    pub(crate) fn touch(&self, agent: &str, labels: &[String]) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let gone = self.gone_after();
        let fresh = inner
            .seen
            .get(agent)
            .is_none_or(|(l, at)| l != labels || now.duration_since(*at) > gone);
        inner.seen.insert(agent.to_owned(), (labels.to_vec(), now));
        fresh
    }

    /// A future that completes when an attempt is queued after this call.
    /// Create it before [`Agents::take`] so none is missed in between.
    pub(crate) fn queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.queued.notified()
    }

    /// Leases the oldest queued attempt whose labels `labels` all has.
    pub(crate) fn take(&self, agent: &str, labels: &[String]) -> Option<Granted> {
        let mut inner = self.lock();
        let pos = inner
            .queue
            .iter()
            .position(|q| q.labels.iter().all(|l| labels.contains(l)))?;
        let q = inner.queue.remove(pos);
        let lease = new_lease_id();
        q.at.observer.event(Event::JobLeased {
            run_id: q.at.run_id,
            job: q.at.job.clone(),
            attempt: q.at.attempt,
            agent: agent.to_owned(),
            lease: lease.clone(),
        });
        let mut body = q.offer;
        body["lease"] = json!(lease);
        body["ttl_ms"] = json!(ms(self.ttl));
        body["heartbeat_ms"] = json!(ms(self.hold()));
        q.at.changed.notify_waiters();
        inner.leases.insert(
            lease,
            Lease {
                at: q.at,
                agent: agent.to_owned(),
                expires: Instant::now() + self.ttl,
                started: false,
                done: q.done,
            },
        );
        Some(Granted { body })
    }

    /// Renews a lease; the returned notifier fires when it is taken back.
    pub(crate) fn heartbeat(&self, lease: &str) -> Result<Arc<Notify>, LeaseError> {
        let mut inner = self.lock();
        let l = inner
            .leases
            .get_mut(lease)
            .ok_or_else(|| LeaseError::Gone(lease.to_owned()))?;
        l.expires = Instant::now() + self.ttl;
        Ok(l.at.changed.clone())
    }

    /// Whether the lease is still held (for a held heartbeat's answer).
    pub(crate) fn holds(&self, lease: &str) -> bool {
        self.lock().leases.contains_key(lease)
    }

    /// The agent's process started: records `JobStarted` once.
    pub(crate) fn started(&self, lease: &str) -> Result<(), LeaseError> {
        let mut inner = self.lock();
        let l = inner
            .leases
            .get_mut(lease)
            .ok_or_else(|| LeaseError::Gone(lease.to_owned()))?;
        l.expires = Instant::now() + self.ttl;
        if !l.started {
            l.started = true;
            l.at.observer.event(Event::JobStarted {
                run_id: l.at.run_id,
                job: l.at.job.clone(),
                attempt: l.at.attempt,
                // The process group lives on the agent's machine: the
                // server's orphan reaper must never signal it here.
                pgid: None,
                executor: format!("agent:{}", l.agent),
            });
        }
        Ok(())
    }

    /// Log lines of the lease's attempt, in order.
    pub(crate) fn log(&self, lease: &str, lines: &[String]) -> Result<(), LeaseError> {
        let (observer, job, attempt) = {
            let inner = self.lock();
            let l = inner
                .leases
                .get(lease)
                .ok_or_else(|| LeaseError::Gone(lease.to_owned()))?;
            (l.at.observer.clone(), l.at.job.clone(), l.at.attempt)
        };
        for line in lines {
            observer.log(&job, attempt, line);
        }
        Ok(())
    }

    /// The agent's report: ends the lease and hands the outcome to the
    /// runner, which records it. Only the first report of a held lease gets
    /// here; anything later is [`LeaseError::Gone`].
    pub(crate) fn finish(&self, lease: &str, mut outcome: RemoteOutcome) -> Result<(), LeaseError> {
        let l = self
            .lock()
            .leases
            .remove(lease)
            .ok_or_else(|| LeaseError::Gone(lease.to_owned()))?;
        outcome.agent = Some(l.agent.clone());
        outcome.started = l.started;
        outcome.lost = false;
        l.at.changed.notify_waiters();
        // The run may have been dropped meanwhile: nobody to tell.
        let _ = l.done.send(outcome);
        Ok(())
    }

    /// What a lease may download.
    pub(crate) fn source(&self, lease: &str) -> Result<LeaseSource, LeaseError> {
        let inner = self.lock();
        let l = inner
            .leases
            .get(lease)
            .ok_or_else(|| LeaseError::Gone(lease.to_owned()))?;
        Ok(LeaseSource {
            project: l.at.project.clone(),
            commit: l.at.commit.clone(),
        })
    }

    /// Agents seen lately and the attempts waiting, for `GET /agents`.
    pub(crate) fn describe(&self) -> Value {
        let inner = self.lock();
        let now = Instant::now();
        let mut agents: Vec<Value> = inner
            .seen
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) <= self.gone_after())
            .map(|(name, (labels, at))| {
                let jobs: Vec<Value> = inner
                    .leases
                    .values()
                    .filter(|l| &l.agent == name)
                    .map(|l| json!({"run_id": l.at.run_id, "job": l.at.job, "attempt": l.at.attempt}))
                    .collect();
                json!({
                    "name": name,
                    "labels": labels,
                    "last_seen_ms_ago": ms(now.duration_since(*at)),
                    "jobs": jobs,
                })
            })
            .collect();
        agents.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let queued: Vec<Value> = inner
            .queue
            .iter()
            .map(|q| json!({"run_id": q.at.run_id, "job": q.at.job, "attempt": q.at.attempt, "runs_on": q.labels}))
            .collect();
        json!({"agents": agents, "queued": queued, "lease_ttl_ms": ms(self.ttl)})
    }

    /// Where the attempt with `ticket` stands: `None` once it left both the
    /// queue and the leases (finished).
    fn expiry(&self, ticket: u64) -> Option<Option<Instant>> {
        let inner = self.lock();
        if inner.queue.iter().any(|q| q.at.ticket == ticket) {
            return Some(None);
        }
        inner
            .leases
            .values()
            .find(|l| l.at.ticket == ticket)
            .map(|l| Some(l.expires))
    }

    /// Takes an expired lease back; the `RemoteOutcome` says it was lost.
    fn expire(&self, ticket: u64) -> Option<RemoteOutcome> {
        let mut inner = self.lock();
        let now = Instant::now();
        let id = inner
            .leases
            .iter()
            .find(|(_, l)| l.at.ticket == ticket && l.expires <= now)
            .map(|(id, _)| id.clone())?;
        let l = inner.leases.remove(&id)?;
        let reason = format!(
            "agent {} lost: no heartbeat for {} ms",
            l.agent,
            ms(self.ttl)
        );
        l.at.observer.event(Event::LeaseExpired {
            run_id: l.at.run_id,
            job: l.at.job.clone(),
            attempt: l.at.attempt,
            agent: l.agent.clone(),
            lease: id,
            reason: reason.clone(),
        });
        l.at.observer
            .log(&l.at.job, l.at.attempt, &format!("andon: {reason}"));
        l.at.changed.notify_waiters();
        let mut out = RemoteOutcome::ended(Some(l.agent), l.started, JobOutcome::Failed, &reason);
        out.lost = true;
        Some(out)
    }

    /// Takes the attempt back, queued or leased (the agent learns it from
    /// its heartbeat). `None` when it already ended.
    fn withdraw(&self, ticket: u64, reason: &str) -> Option<RemoteOutcome> {
        let mut inner = self.lock();
        if let Some(pos) = inner.queue.iter().position(|q| q.at.ticket == ticket) {
            inner.queue.remove(pos);
            return Some(RemoteOutcome::ended(
                None,
                false,
                JobOutcome::Cancelled,
                reason,
            ));
        }
        let id = inner
            .leases
            .iter()
            .find(|(_, l)| l.at.ticket == ticket)
            .map(|(id, _)| id.clone())?;
        let l = inner.leases.remove(&id)?;
        l.at.changed.notify_waiters();
        Some(RemoteOutcome::ended(
            Some(l.agent),
            l.started,
            JobOutcome::Cancelled,
            reason,
        ))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn new_lease_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("lease_{}", hex::encode(bytes))
}

/// Sets [`andon_runner::RunSpec::remote`] for the runs of one project.
pub(crate) struct Dispatcher {
    state: Arc<AppState>,
    project: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

pub(crate) fn dispatcher(state: &Arc<AppState>, project: &str) -> Arc<dyn RemoteJobs> {
    Arc::new(Dispatcher {
        state: state.clone(),
        project: project.to_owned(),
    })
}

impl RemoteJobs for Dispatcher {
    fn run_attempt(
        &self,
        attempt: RemoteAttempt,
        observer: Arc<dyn RunObserver>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, RemoteOutcome> {
        let state = self.state.clone();
        let project = self.project.clone();
        Box::pin(async move { run_attempt(&state, project, attempt, observer, stop).await })
    }
}

/// Guard: an attempt whose run future is dropped leaves nothing queued or
/// leased behind.
struct Withdraw<'a> {
    agents: &'a Agents,
    ticket: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let _ = self.agents.withdraw(self.ticket, "the run was dropped");
    }
}

async fn run_attempt(
    state: &Arc<AppState>,
    project: String,
    attempt: RemoteAttempt,
    observer: Arc<dyn RunObserver>,
    stop: CancellationToken,
) -> RemoteOutcome {
    let agents = &state.agents;
    let job = &attempt.job;
    let labels = job.runs_on.clone();
    observer.event(Event::JobQueued {
        run_id: attempt.run_id,
        job: job.name.clone(),
        attempt: attempt.attempt,
        runs_on: labels.clone(),
    });
    let inputs: Vec<Value> = attempt.inputs.iter().map(artifact_json).collect();
    let offer = json!({
        "run_id": attempt.run_id,
        "project": project,
        "commit": attempt.commit,
        "job": job.name,
        "attempt": attempt.attempt,
        "spec": {
            "name": job.name,
            "stage": job.stage,
            "kind": job.kind,
            "run": job.run,
            "env": job.env,
            "secret_names": job.secrets,
            "secrets": attempt.secrets,
            "timeout_ms": job.timeout.map(ms),
            "artifacts": job.artifacts,
        },
        "inputs": inputs,
    });
    let changed = Arc::new(Notify::new());
    let (tx, mut rx) = oneshot::channel();
    let ticket = {
        let mut inner = agents.lock();
        inner.next_ticket += 1;
        let ticket = inner.next_ticket;
        inner.queue.push(Queued {
            at: Attempt {
                ticket,
                run_id: attempt.run_id,
                job: job.name.clone(),
                attempt: attempt.attempt,
                project,
                commit: attempt.commit.clone().unwrap_or_default(),
                observer,
                changed: changed.clone(),
            },
            labels,
            offer,
            done: tx,
        });
        ticket
    };
    let _guard = Withdraw { agents, ticket };
    agents.queued.notify_waiters();

    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let expires = match agents.expiry(ticket) {
            // Ended: the report is in the channel.
            None => break,
            Some(e) => e,
        };
        let sleep = async {
            match expires {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            out = &mut rx => {
                return out.unwrap_or_else(|_| RemoteOutcome::ended(None, false, JobOutcome::Cancelled, "the dispatcher went away"));
            }
            () = stop.cancelled() => {
                let reason = "the run was stopped (cancelled, or fail fast)";
                if let Some(out) = agents.withdraw(ticket, reason) {
                    return out;
                }
            }
            () = sleep => {
                if let Some(out) = agents.expire(ticket) {
                    return out;
                }
            }
            () = &mut notified => {}
        }
    }
    rx.await.unwrap_or_else(|_| {
        RemoteOutcome::ended(
            None,
            false,
            JobOutcome::Cancelled,
            "the dispatcher went away",
        )
    })
}

pub(crate) fn artifact_json(a: &StoredArtifact) -> Value {
    json!({"path": a.path, "digest": a.digest.to_string(), "size": a.size})
}
