//! The client: a compiled snapshot behind an atomic pointer, evaluated
//! in-process, and the background tasks that keep it current and report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_flags::{Context, Engine, Evaluation, FlagSet};
use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::SdkError;
use crate::report::{NO_VARIANT, Tally};

/// How to reach the server, and how often to poll and report.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:7070`.
    pub server: String,
    /// An API token; an SDK token is a viewer token scoped to `environment`.
    pub token: String,
    /// The environment whose flags are evaluated.
    pub environment: String,
    /// Polling interval while the change stream is down (it is the
    /// fallback, not the main path).
    pub poll_every: Duration,
    /// How often exposure and outcome counts are sent.
    pub flush_every: Duration,
    /// Follow the change stream (SSE). Off: polling only.
    pub stream: bool,
    /// How long [`Client::connect`] waits for the first snapshot.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: poll every 30 s when the stream is down, report every
    /// 10 s, wait up to 5 s for the first snapshot.
    pub fn new(
        server: impl Into<String>,
        token: impl Into<String>,
        environment: impl Into<String>,
    ) -> Self {
        ClientConfig {
            server: server.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            environment: environment.into(),
            poll_every: Duration::from_secs(30),
            flush_every: Duration::from_secs(10),
            stream: true,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A compiled snapshot and where it came from.
pub(crate) struct Snap {
    pub(crate) engine: Engine,
    pub(crate) etag: Option<String>,
    /// The server's flag version (from the entity tag `"vN"`); 0 before the
    /// first snapshot.
    pub(crate) version: u64,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) snap: ArcSwap<Snap>,
    pub(crate) versions: watch::Sender<u64>,
    pub(crate) ready: AtomicBool,
    pub(crate) streaming: AtomicBool,
    pub(crate) tally: Mutex<Tally>,
    /// Serialises snapshot fetches so an older answer never replaces a newer.
    pub(crate) fetching: tokio::sync::Mutex<()>,
}

impl Inner {
    pub(crate) fn install(&self, set: &FlagSet, etag: Option<String>) {
        let version = etag.as_deref().and_then(parse_version).unwrap_or(0);
        self.snap.store(Arc::new(Snap {
            engine: Engine::new(set),
            etag,
            version,
        }));
        self.ready.store(true, Ordering::Release);
        self.versions.send_replace(version);
    }

    pub(crate) fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `"v12"` (or `W/"v12"`) → 12.
fn parse_version(etag: &str) -> Option<u64> {
    etag.trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// Aborts the background tasks when the last clone of the client goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Evaluates flags in-process from a snapshot kept current in the
/// background. Cheap to clone; the tasks stop when the last clone drops.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl Client {
    /// Starts the client: fetches the first snapshot (waiting up to
    /// `connect_timeout`), then follows changes and reports in the
    /// background. Never fails: a server that is not there yet leaves the
    /// client serving defaults (`FLAG_NOT_FOUND`) until it answers; see
    /// [`Client::is_ready`] and [`Client::wait_ready`].
    pub async fn connect(cfg: ClientConfig) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            http,
            snap: ArcSwap::from_pointee(Snap {
                engine: Engine::new(&FlagSet::default()),
                etag: None,
                version: 0,
            }),
            versions: watch::channel(0).0,
            ready: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
            tally: Mutex::new(Tally::default()),
            fetching: tokio::sync::Mutex::new(()),
            cfg,
        });
        if let Err(e) = inner.refresh().await {
            tracing::warn!(error = %e, "first flag snapshot failed; retrying in the background");
        }
        let mut tasks = vec![
            tokio::spawn(crate::sync::poll(inner.clone())),
            tokio::spawn(crate::sync::flush_loop(inner.clone())),
        ];
        if inner.cfg.stream {
            tasks.push(tokio::spawn(crate::sync::follow(inner.clone())));
        }
        let client = Client {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        };
        let _ = client.wait_ready(client.inner.cfg.connect_timeout).await;
        client
    }

    /// Whether a snapshot has been loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Waits until a snapshot is loaded.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), SdkError> {
        let mut rx = self.inner.versions.subscribe();
        let ready = async {
            while !self.is_ready() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        match tokio::time::timeout(timeout, ready).await {
            Ok(()) if self.is_ready() => Ok(()),
            _ => Err(SdkError::NotReady(timeout)),
        }
    }

    /// The server's flag version of the current snapshot (0: none yet).
    pub fn version(&self) -> u64 {
        self.inner.snap.load().version
    }

    /// Wakes on every new snapshot, with its version.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.versions.subscribe()
    }

    /// Whether the change stream is connected (else the client polls).
    pub fn is_streaming(&self) -> bool {
        self.inner.streaming.load(Ordering::Relaxed)
    }

    /// Fetches the snapshot now if it changed; `true` if it did.
    pub async fn refresh(&self) -> Result<bool, SdkError> {
        self.inner.refresh().await
    }

    /// Evaluates `key` for `ctx` in the configured environment, and counts
    /// the exposure.
    pub fn evaluate(&self, key: &str, ctx: &Context) -> Evaluation {
        let snap = self.inner.snap.load();
        let r = snap.engine.evaluate(&self.inner.cfg.environment, key, ctx);
        if r.error
            .as_ref()
            .is_none_or(|e| e.code != andon_flags::ErrorCode::FlagNotFound)
        {
            self.inner
                .tally()
                .evaluated(key, r.variant.unwrap_or(NO_VARIANT));
        }
        r.to_evaluation()
    }

    fn value_or<T>(
        &self,
        key: &str,
        ctx: &Context,
        default: T,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let e = self.evaluate(key, ctx);
        if e.error.is_some() {
            return default;
        }
        pick(&e.value).unwrap_or(default)
    }

    /// The flag's boolean value, or `default` (unknown flag, error, or not
    /// a boolean).
    pub fn bool_value(&self, key: &str, ctx: &Context, default: bool) -> bool {
        self.value_or(key, ctx, default, Value::as_bool)
    }

    /// The flag's string value, or `default`.
    pub fn string_value(&self, key: &str, ctx: &Context, default: &str) -> String {
        self.value_or(key, ctx, default.to_owned(), |v| {
            v.as_str().map(str::to_owned)
        })
    }

    /// The flag's numeric value, or `default`.
    pub fn number_value(&self, key: &str, ctx: &Context, default: f64) -> f64 {
        self.value_or(key, ctx, default, Value::as_f64)
    }

    /// The flag's integer value, or `default` (also for a non-integral number).
    pub fn int_value(&self, key: &str, ctx: &Context, default: i64) -> i64 {
        self.value_or(key, ctx, default, Value::as_i64)
    }

    /// The flag's JSON value, or `default`.
    pub fn json_value(&self, key: &str, ctx: &Context, default: Value) -> Value {
        self.value_or(key, ctx, default, |v| (!v.is_null()).then(|| v.clone()))
    }

    /// Reports how a request of a user on `variant` of `key` ended; errors
    /// per variant are what a guarded rollout judges.
    pub fn record_outcome(&self, key: &str, variant: &str, ok: bool) {
        self.inner.tally().outcome(key, variant, ok);
    }

    /// Sends the counts now (they are also sent every `flush_every`).
    pub async fn flush(&self) -> Result<(), SdkError> {
        self.inner.flush().await
    }

    /// An OpenFeature provider over this client.
    pub fn provider(&self) -> crate::AndonProvider {
        crate::AndonProvider::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_from_entity_tags() {
        assert_eq!(super::parse_version("\"v12\""), Some(12));
        assert_eq!(super::parse_version("W/\"v3\""), Some(3));
        assert_eq!(super::parse_version("\"x\""), None);
    }
}
