//! What the release examples share: an in-process router, a controller with
//! a recording observer, sample-service artifacts, an `andon.yaml`
//! environment, and a load client that remembers who answered.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use andon_artifacts::{ArtifactStore, Digest};
use andon_core::{DeployOutcome, Event};
use andon_deploy::{Controller, ControllerConfig, DeployObserver, DeployRequest};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// `--sample-service PATH` or `SAMPLE_SERVICE_BIN`.
pub(crate) fn sample_service_arg() -> Result<PathBuf, Error> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--sample-service" {
            return args
                .next()
                .map(PathBuf::from)
                .ok_or_else(|| "--sample-service needs a path".into());
        }
    }
    std::env::var_os("SAMPLE_SERVICE_BIN")
        .map(PathBuf::from)
        .ok_or_else(|| "give --sample-service PATH (or SAMPLE_SERVICE_BIN)".into())
}

pub(crate) fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) events: Mutex<Vec<(Instant, Event)>>,
    pub(crate) notes: Mutex<Vec<String>>,
    incident: AtomicU64,
}

impl DeployObserver for Recorder {
    fn event(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), e));
    }
    fn notify(&self, title: &str, detail: &str) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{title}: {detail}"));
    }
    fn next_incident_id(&self) -> u64 {
        self.incident.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Recorder {
    pub(crate) fn finished(&self, deploy_id: u64) -> Option<DeployOutcome> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|(_, e)| match e {
                Event::DeployFinished {
                    deploy_id: d,
                    outcome,
                    ..
                } if *d == deploy_id => Some(*outcome),
                _ => None,
            })
    }

    /// When the judge failed `deploy_id`.
    pub(crate) fn fail_verdict(&self, deploy_id: u64) -> Option<Instant> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|(t, e)| match e {
                Event::JudgeVerdict {
                    deploy_id: d,
                    outcome,
                    ..
                } if *d == deploy_id && outcome == "fail" => Some(*t),
                _ => None,
            })
    }

    /// When the request of `deploy_id` was recorded.
    pub(crate) fn requested_at(&self, deploy_id: u64) -> Option<Instant> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|(t, e)| match e {
                Event::DeployRequested { deploy_id: d, .. } if *d == deploy_id => Some(*t),
                _ => None,
            })
    }

    pub(crate) fn pids_of(&self, deploy_id: u64) -> Vec<i32> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(_, e)| match e {
                Event::InstanceStarted {
                    deploy_id: d, pid, ..
                } if *d == deploy_id => *pid,
                _ => None,
            })
            .collect()
    }

    pub(crate) fn all_pids(&self) -> Vec<i32> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(_, e)| match e {
                Event::InstanceStarted { pid, .. } => *pid,
                _ => None,
            })
            .collect()
    }
}

/// Whether a process runs (zombies do not count).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        !matches!(state, Some('Z') | Some('X') | None)
    })
}

pub(crate) struct Stack {
    pub(crate) router_url: String,
    pub(crate) store: ArtifactStore,
    pub(crate) rec: Arc<Recorder>,
    pub(crate) ctl: Controller,
    pub(crate) root: PathBuf,
    stop_router: Option<tokio::sync::oneshot::Sender<()>>,
    router: Option<tokio::task::JoinHandle<()>>,
    next_id: AtomicU64,
}

impl Stack {
    /// A router on 127.0.0.1 (in this process) and a controller driving it.
    pub(crate) async fn start(root: &Path) -> Result<Stack, Error> {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let router_url = format!("http://{}", proxy.local_addr()?);
        let admin_url = format!("http://{}", admin.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = andon_router::RouterConfig::new(root.join("router"));
        let router = tokio::spawn(async move {
            if let Err(e) = andon_router::run(cfg, proxy, admin, async {
                let _ = rx.await;
            })
            .await
            {
                eprintln!("router: {e}");
            }
        });
        let store = ArtifactStore::open(&root.join("data/artifacts"))?;
        let rec = Arc::new(Recorder::default());
        let cfg = ControllerConfig::new(root.join("data"), admin_url, router_url.clone());
        let ctl = Controller::new(cfg, store.clone(), rec.clone())?;
        Ok(Stack {
            router_url,
            store,
            rec,
            ctl,
            root: root.to_path_buf(),
            stop_router: Some(tx),
            router: Some(router),
            next_id: AtomicU64::new(1),
        })
    }

    /// A release: the sample-service binary and a `release.env` with its
    /// version name and error rate, as one artifact `app/`.
    pub(crate) fn release(&self, bin: &Path, tag: &str, error_rate: f64) -> Result<Digest, Error> {
        let dir = self.root.join("src").join(tag).join("app");
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(bin, dir.join("sample-service"))?;
        std::fs::write(
            dir.join("release.env"),
            format!("export VERSION={tag} ERROR_RATE={error_rate}\n"),
        )?;
        Ok(self.store.put_path(&dir)?)
    }

    /// Starts a release (after "appending" its request, as the server does).
    pub(crate) async fn deploy(
        &self,
        env: &andon_config::Environment,
        version: Digest,
    ) -> Result<u64, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.rec.event(Event::DeployRequested {
            project: "shop".into(),
            environment: env.name.clone(),
            deploy_id: id,
            version: version.to_string(),
            strategy: "example".into(),
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
                contract_migration: false,
            })
            .await?;
        Ok(id)
    }

    /// Deploys and waits (at most two minutes) for the outcome.
    pub(crate) async fn release_and_wait(
        &self,
        env: &andon_config::Environment,
        version: Digest,
    ) -> Result<(u64, DeployOutcome), Error> {
        let id = self.deploy(env, version).await?;
        tokio::time::timeout(
            Duration::from_secs(120),
            self.ctl.wait_idle("shop", &env.name),
        )
        .await
        .map_err(|_| "release did not finish within 2 minutes")?;
        let outcome = self.rec.finished(id).ok_or("no DeployFinished")?;
        Ok((id, outcome))
    }

    pub(crate) async fn stop(mut self) {
        self.ctl.shutdown(true).await;
        if let Some(tx) = self.stop_router.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.router.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// The `production` environment of an `andon.yaml` with this strategy and judge.
pub(crate) fn environment(
    instances: u32,
    strategy: &str,
    judge: &str,
) -> Result<andon_config::Environment, Error> {
    let yaml = format!(
        r#"
pipeline:
  stages:
    - name: s
      jobs:
        - name: j
          run: "true"
environments:
  production:
    target:
      process:
        command: cd app && . ./release.env && exec ./sample-service
        instances: {instances}
        health: /healthz
        ready_timeout: 20s
    strategy:
{strategy}
{judge}
    rollback_window: 1s
"#
    );
    let cfg = andon_config::parse("andon.yaml", &yaml).map_err(|e| e.to_string())?;
    cfg.environments
        .into_iter()
        .next()
        .ok_or_else(|| "no environment".into())
}

/// Who answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Answer {
    /// 2xx-4xx from a version (role name index in `ROLES`).
    Ok(u8),
    /// 5xx the version itself answered (its deliberate error).
    AppError(u8),
    /// 5xx the router made (502/503/504): no version could answer.
    RouterError,
    /// No answer at all.
    ConnectionError,
}

pub(crate) const ROLES: [&str; 7] = [
    "stable", "canary", "baseline", "green", "previous", "next", "",
];

fn role_index(name: &str) -> u8 {
    ROLES
        .iter()
        .position(|r| *r == name)
        .unwrap_or(ROLES.len() - 1) as u8
}

/// One request: when it was sent, who answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) answer: Answer,
}

/// Sends GETs through the router with `workers` clients until `stop` (and
/// at least `min_total` were sent), or `within` passes.
pub(crate) async fn hammer(
    url: String,
    workers: usize,
    min_total: u64,
    within: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(_) => return Vec::new(),
    };
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + within;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, url, sent, stop) = (client.clone(), url.clone(), sent.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let n = sent.load(Ordering::Relaxed);
                if (stop.load(Ordering::Relaxed) && n >= min_total) || Instant::now() >= deadline {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let answer = match client.get(format!("{url}/x")).send().await {
                    Ok(r) => {
                        let role = role_index(
                            r.headers()
                                .get("x-andon-served-by")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or(""),
                        );
                        let status = r.status();
                        let body = r.bytes().await.unwrap_or_default();
                        if !status.is_server_error() {
                            Answer::Ok(role)
                        } else if body.starts_with(br#"{"error""#) {
                            Answer::RouterError
                        } else {
                            Answer::AppError(role)
                        }
                    }
                    Err(_) => Answer::ConnectionError,
                };
                out.push(Sample { sent: t, answer });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(v) = t.await {
            all.extend(v);
        }
    }
    all.sort_by_key(|s| s.sent);
    all
}

/// Milliseconds between two instants (0 when `b` is before `a`).
pub(crate) fn ms(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1000.0
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
