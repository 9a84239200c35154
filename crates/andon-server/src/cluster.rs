//! Several servers over one PostgreSQL store: every server serves the API
//! and follows the log; exactly one, the leader, does the work that must
//! happen once (running pipelines, driving releases, polling repositories,
//! notifying, applying scheduled flag changes, the cord and board
//! reactions).
//!
//! - Election: [`run`] calls [`andon_store::Store::try_lead`] (a session
//!   advisory lock) every [`LEAD_EVERY`]. The lock dies with the leader's
//!   database session, so a leader killed with `kill -9` frees it at once;
//!   a leader whose session is lost sees `false` at its next check and
//!   stops its leader work (tasks aborted, runs cancelled, their late
//!   events dropped by [`Cluster::may_record`]).
//! - Following: [`tail`] folds other servers' events every [`TAIL_EVERY`]
//!   and publishes them to this server's live subscribers.
//! - Forwarding: requests only the leader can serve (its run queue, its
//!   release controller, its disk for logs, agents) are forwarded by
//!   [`forward`] to the address the leader advertised in the store.
//! - Takeover: [`take_over`] ends the runs the previous leader left in
//!   flight (its job processes on this machine are reaped, the run is
//!   recorded as interrupted and a fresh run of the same commit queued),
//!   picks up queued runs, and the release upkeep recovers releases
//!   (adopt, or roll back what was in flight).
//!
//! With SQLite there is one server: it always leads and nothing here runs
//! beyond starting its background tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use andon_core::{Event, RunStatus, Trigger};
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::auth::Caller;
use crate::error::error_body;
use crate::state::AppState;

/// How often a server campaigns (and a leader checks its session).
const LEAD_EVERY: Duration = Duration::from_millis(500);
/// How often a server folds other servers' events.
const TAIL_EVERY: Duration = Duration::from_millis(100);
/// Marks a forwarded request, so it is never forwarded twice.
const FORWARDED: &str = "x-andon-forwarded";
/// Forwarded requests may be long polls (agents) or log streams.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(600);

/// This server's place in the cluster.
pub(crate) struct Cluster {
    /// Several servers may share the store (PostgreSQL).
    pub(crate) shared: bool,
    leading: AtomicBool,
    /// Base URL of this server's API, advertised while it leads.
    advertise: RwLock<String>,
    /// The leader's API as last read from the store.
    leader_api: RwLock<Option<String>>,
    http: reqwest::Client,
}

impl Cluster {
    /// A server alone on its store leads from the start.
    pub(crate) fn new(shared: bool) -> Cluster {
        Cluster {
            shared,
            leading: AtomicBool::new(!shared),
            advertise: RwLock::new(String::new()),
            leader_api: RwLock::new(None),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(FORWARD_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Whether leader work (a run's events, a release's events) may still be
    /// recorded: not once this server has lost the leadership, or a run the
    /// new leader already ended would get events from two servers.
    pub(crate) fn may_record(&self) -> bool {
        self.is_leader()
    }

    pub(crate) fn set_advertise(&self, url: String) {
        *self.advertise.write().unwrap_or_else(|p| p.into_inner()) = url;
    }

    pub(crate) fn advertised_is_empty(&self) -> bool {
        self.advertise
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn advertised(&self) -> String {
        self.advertise
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn leader_api(&self) -> Option<String> {
        if !self.shared || self.is_leader() {
            return Some(self.advertised());
        }
        self.leader_api
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The background tasks only the leader runs.
struct LeaderWork {
    tasks: Vec<JoinHandle<()>>,
}

impl LeaderWork {
    fn start(state: &Arc<AppState>, queue: &Arc<Mutex<mpsc::UnboundedReceiver<u64>>>) -> Self {
        LeaderWork {
            tasks: vec![
                tokio::spawn(crate::pipeline::worker(state.clone(), queue.clone())),
                tokio::spawn(crate::watcher::run(state.clone())),
                tokio::spawn(crate::release_upkeep(state.clone())),
                tokio::spawn(crate::notify::run(state.clone())),
                tokio::spawn(crate::flags::scheduler(state.clone())),
                tokio::spawn(crate::flags::guard::run(state.clone())),
            ],
        }
    }

    fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Campaigns for the leadership and runs the leader's tasks while this
/// server holds it; with a shared store, also follows the log. Runs until
/// aborted; aborting stops the leader's tasks too.
pub(crate) async fn run(state: Arc<AppState>, queue: Arc<Mutex<mpsc::UnboundedReceiver<u64>>>) {
    if !state.cluster.shared {
        let work = LeaderWork::start(&state, &queue);
        let _stop = StopOnDrop(Some(work));
        std::future::pending::<()>().await;
        return;
    }
    let tailer = tokio::spawn(tail(state.clone()));
    let _tailer = AbortOnDrop(tailer);
    let mut work = StopOnDrop(None);
    // A controller shut down after a lost leadership cannot drive releases
    // again: such a server stays a follower until restarted.
    let mut may_lead = true;
    let mut tick = tokio::time::interval(LEAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = state.store.clone();
        let held = if may_lead {
            tokio::task::spawn_blocking(move || store.try_lead())
                .await
                .unwrap_or(Ok(false))
        } else {
            Ok(false)
        };
        match (held, work.0.is_some()) {
            (Ok(true), false) => {
                let started = std::time::Instant::now();
                let prev = take_over(&state).await;
                work.0 = Some(LeaderWork::start(&state, &queue));
                tracing::warn!(
                    previous = prev.as_deref().unwrap_or("none"),
                    recovery_ms = started.elapsed().as_millis() as u64,
                    "this server is now the leader"
                );
            }
            (Ok(true), true) => {}
            (held, true) => {
                if let Err(e) = &held {
                    tracing::error!(error = %e, "cannot check the leadership");
                }
                state.cluster.leading.store(false, Ordering::SeqCst);
                if let Some(w) = work.0.take() {
                    w.stop();
                }
                may_lead = !stop_leader_work(&state).await;
                tracing::error!("this server lost the leadership; its leader work stopped");
            }
            (_, false) => refresh_leader(&state).await,
        }
    }
}

/// Ends what a deposed leader still does. True if a release controller was
/// shut down (it cannot be restarted in this process).
async fn stop_leader_work(state: &Arc<AppState>) -> bool {
    let tokens: Vec<_> = state
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    for t in tokens {
        t.cancel();
    }
    match state.controller.get() {
        Some(ctl) => {
            ctl.shutdown(false).await;
            true
        }
        None => false,
    }
}

async fn refresh_leader(state: &Arc<AppState>) {
    let store = state.store.clone();
    if let Ok(Ok(rec)) = tokio::task::spawn_blocking(move || store.leader()).await {
        *state
            .cluster
            .leader_api
            .write()
            .unwrap_or_else(|p| p.into_inner()) = rec.map(|r| r.api);
    }
}

/// Becomes the leader: advertises this server, folds the log to its end,
/// ends the runs the previous leader left in flight, and queues the runs
/// still waiting. Returns the previous leader's API, if any was recorded.
async fn take_over(state: &Arc<AppState>) -> Option<String> {
    let st = state.clone();
    let prev = tokio::task::spawn_blocking(move || {
        let prev = st.store.leader().ok().flatten();
        let api = st.cluster.advertised();
        if let Err(e) = st.store.advertise_leader(&api, &st.instance_id()) {
            tracing::error!(error = %e, "could not advertise this server as the leader");
        }
        *st.cluster
            .leader_api
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(api);
        // Folded before leading: from here on, every event folded is
        // reacted to by this server and no other.
        if let Err(e) = st.catch_up() {
            tracing::error!(error = %e, "could not read the log while taking over");
        }
        st.cluster.leading.store(true, Ordering::SeqCst);
        let instance = prev
            .as_ref()
            .map_or_else(|| st.instance_id(), |p| p.instance.clone());
        recover_runs(&st, &instance);
        prev
    })
    .await
    .ok()
    .flatten();
    prev.map(|p| p.api)
}

/// Runs the previous leader started are cut off: their job processes (if
/// on this machine) are ended, the run is recorded as interrupted and a
/// fresh run of the same commit is queued. Runs still queued are simply
/// handed to this server's worker.
fn recover_runs(state: &AppState, previous_instance: &str) {
    let (started, queued): (Vec<_>, Vec<_>) = state
        .read_views()
        .runs
        .unfinished()
        .map(|r| (r.id, r.status))
        .partition(|(_, s)| *s != RunStatus::Queued);
    let started: Vec<u64> = started.into_iter().map(|(id, _)| id).collect();
    if !started.is_empty() {
        match andon_runner::reap_orphans_of(previous_instance, &started) {
            Ok(n) if n > 0 => tracing::warn!(processes = n, "ended the previous leader's jobs"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not look for orphaned job processes"),
        }
        crate::pipeline::reap_containers_later(previous_instance.to_string(), started.clone());
    }
    for run_id in started {
        let retried = state.append_with("andon", |views| {
            let Some(run) = views.runs.get(run_id).filter(|r| !r.status.is_finished()) else {
                return (Vec::new(), None);
            };
            let retry = views.runs.next_id();
            let events = vec![
                Event::RunFinished {
                    run_id,
                    status: RunStatus::Interrupted,
                    reason: Some(format!(
                        "the leading server stopped while this run was in flight; \
                         run {retry} runs the same commit again"
                    )),
                },
                Event::RunQueued {
                    project: run.project.clone(),
                    run_id: retry,
                    commit: run.commit.clone(),
                    branch: run.branch.clone(),
                    trigger: Trigger::Manual,
                },
            ];
            (events, Some(retry))
        });
        match retried {
            Ok(Some(retry)) => tracing::warn!(run_id, retry, "re-queued an interrupted run"),
            Ok(None) => {}
            Err(e) => tracing::error!(run_id, error = %e, "could not end an interrupted run"),
        }
    }
    for (run_id, _) in queued {
        let _ = state.queue.send(run_id);
    }
}

/// Folds other servers' events into this server's views, now and then.
async fn tail(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(TAIL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        match tokio::task::spawn_blocking(move || st.catch_up()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not follow the event log"),
            Err(e) => tracing::error!(error = %e, "the log follower panicked"),
        }
    }
}

/// Leader-only requests: they need the leader's run queue, release
/// controller, job logs and artifacts on its disk, or its agents.
fn leader_only(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(
        (method, parts.as_slice()),
        (_, ["agents", ..])
            | (&Method::POST, ["projects", _, "runs"])
            | (&Method::POST, ["projects", _, "environments", _, _])
            | (
                &Method::PUT | &Method::DELETE,
                ["projects", _, "environments", _]
            )
            | (&Method::POST, ["runs", _, "cancel"])
            | (&Method::GET, ["runs", _, "jobs", _, "log"])
            | (&Method::GET, ["artifacts", _])
    )
}

fn unavailable(message: &str) -> Response {
    let mut resp = error_body(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    resp
}

/// Middleware: on a follower, forwards leader-only requests to the leader
/// with their headers (the `Authorization` header included: the leader
/// authenticates the caller itself) and streams its answer back.
pub(crate) async fn forward(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let cluster = &state.cluster;
    if !cluster.shared
        || cluster.is_leader()
        || req.headers().contains_key(FORWARDED)
        || !leader_only(req.method(), req.uri().path())
    {
        return next.run(req).await;
    }
    let Some(leader) = cluster.leader_api().filter(|l| *l != cluster.advertised()) else {
        return unavailable("no server leads right now; retry in a few seconds");
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::api::MAX_BODY).await else {
        return error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        );
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", leader.trim_end_matches('/'));
    let mut out = cluster.http.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH && name != header::CONNECTION {
            out = out.header(name, value);
        }
    }
    let sent = out.header(FORWARDED, "1").body(body).send().await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%leader, error = %e, "the leader did not answer a forwarded request");
            return unavailable(&format!(
                "the leader at {leader} does not answer; if it died, another server takes over within seconds: retry"
            ));
        }
    };
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
        {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    builder
        .body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|_| unavailable("the leader's answer could not be relayed"))
}

/// `GET /api/v1/cluster`: whether this server leads, and who does.
pub(crate) async fn status(_c: Caller, State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let c = &state.cluster;
    Json(serde_json::json!({
        "shared_store": c.shared,
        "leader": c.is_leader(),
        "api": c.advertised(),
        "leader_api": c.leader_api(),
        "instance": state.instance_id(),
        "last_seq": state.read_views().last_seq,
    }))
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct StopOnDrop(Option<LeaderWork>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_only_routes() {
        let yes = [
            (Method::POST, "/api/v1/projects/p/runs"),
            (Method::POST, "/api/v1/projects/p/environments/prod/deploys"),
            (Method::POST, "/api/v1/projects/p/environments/prod/promote"),
            (Method::POST, "/api/v1/runs/3/cancel"),
            (Method::GET, "/api/v1/runs/3/jobs/build/log"),
            (Method::GET, "/api/v1/artifacts/abc"),
            (Method::POST, "/api/v1/agents/lease"),
            (Method::GET, "/api/v1/agents"),
            (Method::PUT, "/api/v1/projects/p/environments/pr-7"),
            (Method::DELETE, "/api/v1/projects/p/environments/pr-7"),
        ];
        for (m, p) in yes {
            assert!(leader_only(&m, p), "{m} {p}");
        }
        let no = [
            (Method::GET, "/api/v1/projects/p/runs"),
            (Method::POST, "/api/v1/projects"),
            (Method::GET, "/api/v1/runs/3"),
            (Method::GET, "/api/v1/projects/p/environments"),
            (Method::POST, "/api/v1/webhooks/github"),
            (Method::GET, "/healthz"),
            (Method::GET, "/api/v1/agentsx"),
        ];
        for (m, p) in no {
            assert!(!leader_only(&m, p), "{m} {p}");
        }
    }
}
