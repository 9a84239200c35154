//! A router in-process, a controller, the sample service as artifacts, a
//! load client, and an observer that records everything.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use andon_artifacts::{ArtifactStore, Digest};
use andon_core::{DeployOutcome, Event};
use andon_deploy::{Controller, ControllerConfig, DeployObserver, DeployRequest};
use tokio::sync::oneshot;

/// The sample service binary, built once per test run (`SAMPLE_SERVICE_BIN`
/// overrides). Built into the same target directory as this test, so the
/// dependencies are already compiled.
pub(crate) fn sample_service() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SAMPLE_SERVICE_BIN") {
            return PathBuf::from(p);
        }
        // target/debug/deps/<test> → target/debug → target
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "sample-service", "--quiet", "--target-dir"])
            .arg(&target_dir);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p sample-service failed");
        let bin = profile_dir.join("sample-service");
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
    .clone()
}

/// Tests here start processes and load the machine: one at a time keeps
/// each of them well inside its time bound.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) events: Mutex<Vec<(Instant, Event)>>,
    pub(crate) notes: Mutex<Vec<(String, String)>>,
    incident: AtomicU64,
}

impl DeployObserver for Recorder {
    fn event(&self, e: Event) {
        self.events.lock().unwrap().push((Instant::now(), e));
    }

    fn notify(&self, title: &str, detail: &str) {
        self.notes
            .lock()
            .unwrap()
            .push((title.into(), detail.into()));
    }

    fn next_incident_id(&self) -> u64 {
        self.incident.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Recorder {
    pub(crate) fn all(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub(crate) fn finished(&self, deploy_id: u64) -> Option<(DeployOutcome, Option<String>)> {
        self.all().into_iter().find_map(|e| match e {
            Event::DeployFinished {
                deploy_id: id,
                outcome,
                reason,
                ..
            } if id == deploy_id => Some((outcome, reason)),
            _ => None,
        })
    }

    /// Every pid any instance ever had.
    pub(crate) fn pids(&self) -> Vec<i32> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::InstanceStarted { pid, .. } => pid,
                _ => None,
            })
            .collect()
    }

    /// Pids of instances started by one deploy.
    pub(crate) fn pids_of(&self, deploy_id: u64) -> Vec<i32> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::InstanceStarted {
                    pid, deploy_id: d, ..
                } if d == deploy_id => pid,
                _ => None,
            })
            .collect()
    }

    pub(crate) fn count(&self, kind: &str) -> usize {
        self.all().iter().filter(|e| e.kind() == kind).count()
    }
}

/// Whether a process runs (zombies do not count).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Waits (bounded) until none of `pids` runs; returns those still running.
pub(crate) async fn wait_dead(pids: &[i32], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let live: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if live.is_empty() || Instant::now() >= deadline {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) struct Router {
    pub(crate) url: String,
    pub(crate) admin: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Router {
    pub(crate) async fn start(data: &Path) -> Router {
        Router::start_with(data, None).await
    }

    /// A router whose admin API wants `token`.
    pub(crate) async fn start_with(data: &Path, token: Option<&str>) -> Router {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", proxy.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let mut cfg = andon_router::RouterConfig::new(data);
        cfg.admin_token = token.map(str::to_string);
        let task = tokio::spawn(async move {
            andon_router::run(cfg, proxy, admin, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Router {
            url,
            admin: admin_url,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

pub(crate) struct Harness {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) router: Router,
    pub(crate) store: ArtifactStore,
    pub(crate) rec: Arc<Recorder>,
    pub(crate) ctl: Controller,
    next_id: AtomicU64,
}

impl Harness {
    pub(crate) async fn new() -> Harness {
        Harness::new_with(None).await
    }

    /// A harness whose router's admin API wants `token`.
    pub(crate) async fn new_with(token: Option<&str>) -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let router = Router::start_with(&tmp.path().join("router"), token).await;
        let store = ArtifactStore::open(&tmp.path().join("data/artifacts")).unwrap();
        let rec = Arc::new(Recorder::default());
        let mut cfg = config(tmp.path(), &router.admin, &router.url);
        cfg.router_token = token.map(str::to_string);
        let ctl = Controller::new(cfg, store.clone(), rec.clone()).unwrap();
        Harness {
            tmp,
            router,
            store,
            rec,
            ctl,
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// A release of the sample service answering errors at `error_rate`.
    pub(crate) fn version(&self, tag: &str, error_rate: f64) -> Digest {
        artifact(&self.store, self.tmp.path(), tag, error_rate)
    }

    /// A release with more settings in its `release.env` (`LATENCY_MS=20`...).
    pub(crate) fn version_with(&self, tag: &str, settings: &str) -> Digest {
        let dir = self.tmp.path().join("src").join(tag).join("app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("release.env"),
            format!("export VERSION={tag} {settings}\n"),
        )
        .unwrap();
        self.store.put_path(&dir).unwrap()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn deploy(&self, env: &andon_config::Environment, version: Digest) -> u64 {
        self.deploy_with(env, version, false).await
    }

    pub(crate) async fn deploy_with(
        &self,
        env: &andon_config::Environment,
        version: Digest,
        contract: bool,
    ) -> u64 {
        let id = self.next_id();
        // What the caller (the server) does first: the request is in the log.
        self.rec.event(Event::DeployRequested {
            project: "shop".into(),
            environment: env.name.clone(),
            deploy_id: id,
            version: version.to_string(),
            strategy: "test".into(),
            run_id: None,
            commit: None,
            reason: None,
        });
        self.ctl
            .deploy(DeployRequest {
                project: "shop".into(),
                deploy_id: id,
                environment: env.clone(),
                version,
                secrets: BTreeMap::new(),
                stable: None,
                contract_migration: contract,
            })
            .await
            .unwrap();
        id
    }

    /// Deploys and waits (bounded) for the end; the outcome.
    pub(crate) async fn deploy_and_wait(
        &self,
        env: &andon_config::Environment,
        version: Digest,
    ) -> DeployOutcome {
        let id = self.deploy(env, version).await;
        self.wait(env, id).await
    }

    pub(crate) async fn wait(&self, env: &andon_config::Environment, id: u64) -> DeployOutcome {
        tokio::time::timeout(
            Duration::from_secs(45),
            self.ctl.wait_idle("shop", &env.name),
        )
        .await
        .expect("release did not finish in time");
        self.rec.finished(id).expect("no DeployFinished").0
    }

    /// Stops everything and checks no instance process is left.
    pub(crate) async fn finish(self) {
        self.ctl.shutdown(true).await;
        let left = wait_dead(&self.rec.pids(), Duration::from_secs(15)).await;
        assert!(left.is_empty(), "instance processes left behind: {left:?}");
        self.router.stop().await;
    }
}

pub(crate) fn controller(
    root: &Path,
    admin: &str,
    url: &str,
    store: &ArtifactStore,
    rec: Arc<Recorder>,
) -> Controller {
    Controller::new(config(root, admin, url), store.clone(), rec).unwrap()
}

fn config(root: &Path, admin: &str, url: &str) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(root.join("data"), admin, url);
    cfg.scrape_every = Duration::from_millis(100);
    cfg.stop_timeout = Duration::from_secs(5);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg
}

/// An artifact `app/` holding `release.env` (`VERSION`, `ERROR_RATE`): the
/// sample service binary itself is referenced by path (`$SAMPLE_BIN`) to
/// keep every test from copying megabytes per instance.
pub(crate) fn artifact(store: &ArtifactStore, root: &Path, tag: &str, error_rate: f64) -> Digest {
    let dir = root.join("src").join(tag).join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("release.env"),
        format!("export VERSION={tag} ERROR_RATE={error_rate}\n"),
    )
    .unwrap();
    store.put_path(&dir).unwrap()
}

/// `andon.yaml` text for one environment named `name`, parsed.
pub(crate) fn environment(
    name: &str,
    instances: u32,
    strategy: &str,
    judge: &str,
) -> andon_config::Environment {
    environment_with(name, instances, strategy, judge, "")
}

/// Like [`environment`], with more environment keys (`traffic: ...`),
/// indented by four spaces.
pub(crate) fn environment_with(
    name: &str,
    instances: u32,
    strategy: &str,
    judge: &str,
    extra: &str,
) -> andon_config::Environment {
    let bin = sample_service();
    let yaml = format!(
        r#"
pipeline:
  stages:
    - name: s
      jobs:
        - name: j
          run: "true"
environments:
  {name}:
    target:
      process:
        command: cd app && . ./release.env && exec "$SAMPLE_BIN"
        instances: {instances}
        health: /healthz
        ready_timeout: 20s
        env:
          SAMPLE_BIN: "{bin}"
          WORKERS: "1"
    strategy:
{strategy}
{judge}
{extra}
"#,
        bin = bin.display()
    );
    let cfg = andon_config::parse("andon.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut env = cfg.environments.into_iter().next().unwrap();
    env.rollback_window = Duration::ZERO;
    env
}

/// Counts of a load run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Load {
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    /// Answers by `x-andon-served-by`.
    pub(crate) served_by: BTreeMap<String, u64>,
    pub(crate) first_failures: Vec<String>,
}

/// Sends up to `total` GETs through the router with `workers` clients,
/// until `stop` flips or `within` passes. A failure is a connection error
/// or a 5xx the router made itself or got from a version not in `allowed_5xx`.
pub(crate) async fn load(
    url: String,
    total: u64,
    workers: usize,
    within: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    allowed_5xx: &'static [&'static str],
) -> Load {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + within;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let client = client.clone();
        let url = url.clone();
        let sent = sent.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut l = Load::default();
            while sent.fetch_add(1, Ordering::Relaxed) < total
                && !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                l.sent += 1;
                match client.get(format!("{url}/x")).send().await {
                    Ok(r) => {
                        let by = r
                            .headers()
                            .get("x-andon-served-by")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let status = r.status();
                        let body = r.bytes().await.unwrap_or_default();
                        // The router's own answers are `{"error":{...}}`: a
                        // 502/503/504 it made is a failure whoever was chosen.
                        let by_router = body.starts_with(br#"{"error""#);
                        if status.is_server_error()
                            && (by_router || !allowed_5xx.contains(&by.as_str()))
                        {
                            l.failed += 1;
                            if l.first_failures.len() < 5 {
                                l.first_failures.push(format!("{status} from '{by}'"));
                            }
                        }
                        *l.served_by.entry(by).or_default() += 1;
                    }
                    Err(e) => {
                        l.failed += 1;
                        if l.first_failures.len() < 5 {
                            l.first_failures.push(format!("{e:?}"));
                        }
                    }
                }
            }
            l
        }));
    }
    let mut all = Load::default();
    for t in tasks {
        let l = t.await.unwrap();
        all.sent += l.sent;
        all.failed += l.failed;
        for (k, v) in l.served_by {
            *all.served_by.entry(k).or_default() += v;
        }
        all.first_failures.extend(l.first_failures);
    }
    all
}

/// One GET through the router: (status, served by, body).
pub(crate) async fn get(url: &str, header: Option<(&str, &str)>) -> (u16, String, String) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client.get(format!("{url}/x"));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let by = r
        .headers()
        .get("x-andon-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, by, r.text().await.unwrap())
}
