//! A tiny HTTP service whose version, latency and error rate are set from the environment,
//! so tests, benches and the demo can deploy "good" and "bad" releases of something real.
//!
//! Settings (environment, `--port` also as a flag):
//! - `PORT` / `--port N`: port on 127.0.0.1 (0 picks one; the bound address is printed).
//! - `VERSION`: reported in every answer (default `dev`).
//! - `ERROR_RATE`: fraction 0..1 of requests answered 500.
//! - `LATENCY_MS`, `LATENCY_JITTER_MS`: added delay, plus a uniform random extra.
//! - `UNHEALTHY=1`: `/healthz` answers 503.
//! - `SEED`: makes errors and jitter reproducible.
//! - `WORKERS`: runtime threads (default: one per core).
//! - `FLAG`: a feature flag (bool) that switches on a new code path, read in-process
//!   through the Andon flags SDK (`andon-flags-sdk`) from `ANDON_URL` with the SDK
//!   token `ANDON_TOKEN` in environment `ANDON_ENVIRONMENT` (default `production`).
//!   Each request is evaluated for the user `?user=ID` (targeting key); on the new
//!   path it fails with probability `FLAG_ERROR_RATE` instead of `ERROR_RATE`. Every
//!   answer is reported to the SDK as an outcome of the variant served (success, or
//!   error for a 500), sent to the server every `FLAG_FLUSH_MS` (default 1000): what a
//!   guarded rollout of the flag judges.
//!
//! `/healthz` answers `{"ok":true}`; every other path `{"version":"...","ok":true}` (or
//! `"ok":false` with status 500). SIGTERM or SIGINT stop accepting and finish requests in flight.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Settings {
    port: u16,
    version: String,
    error_rate: f64,
    latency: Duration,
    jitter_ms: u64,
    unhealthy: bool,
    seed: Option<u64>,
    workers: Option<usize>,
    flag: Option<FlagSettings>,
}

/// The flag-guarded code path (see the crate docs).
struct FlagSettings {
    key: String,
    server: String,
    token: String,
    environment: String,
    error_rate: f64,
    flush: Duration,
}

fn flag_settings() -> Result<Option<FlagSettings>, String> {
    let Some(key) = std::env::var("FLAG").ok().filter(|k| !k.trim().is_empty()) else {
        return Ok(None);
    };
    let need = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("FLAG={key} needs {name}"))
    };
    let error_rate: f64 = env("FLAG_ERROR_RATE")?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err("FLAG_ERROR_RATE must be between 0 and 1".into());
    }
    Ok(Some(FlagSettings {
        key: key.clone(),
        server: need("ANDON_URL")?,
        token: need("ANDON_TOKEN")?,
        environment: std::env::var("ANDON_ENVIRONMENT").unwrap_or_else(|_| "production".into()),
        error_rate,
        flush: Duration::from_millis(env("FLAG_FLUSH_MS")?.unwrap_or(1000)),
    }))
}

fn env<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v} is not valid")),
        _ => Ok(None),
    }
}

fn settings(args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut port: u16 = env("PORT")?.unwrap_or(8080);
    let mut args = args;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--port", Some(p)) => {
                port = p.parse().map_err(|_| format!("--port {p} is not valid"))?
            }
            _ => {
                return Err(format!(
                    "unknown argument {a}; usage: sample-service [--port N]"
                ));
            }
        }
    }
    let error_rate: f64 = env("ERROR_RATE")?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err("ERROR_RATE must be between 0 and 1".into());
    }
    Ok(Settings {
        port,
        version: std::env::var("VERSION").unwrap_or_else(|_| "dev".into()),
        error_rate,
        latency: Duration::from_millis(env("LATENCY_MS")?.unwrap_or(0)),
        jitter_ms: env("LATENCY_JITTER_MS")?.unwrap_or(0),
        unhealthy: std::env::var("UNHEALTHY").is_ok_and(|v| v == "1"),
        seed: env("SEED")?,
        workers: env("WORKERS")?,
        flag: flag_settings()?,
    })
}

struct App {
    s: Settings,
    ok_body: Bytes,
    err_body: Bytes,
    /// Only used when a setting needs randomness; a seeded generator keeps runs reproducible.
    rng: Mutex<StdRng>,
    flags: Option<andon_flags_sdk::Client>,
}

/// The `user` query parameter, the targeting key of the flag.
fn user_of(query: Option<&str>) -> &str {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("user="))
        .unwrap_or("anonymous")
}

impl App {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().path() == "/healthz" {
            let (status, body) = if self.s.unhealthy {
                (StatusCode::SERVICE_UNAVAILABLE, r#"{"ok":false}"#)
            } else {
                (StatusCode::OK, r#"{"ok":true}"#)
            };
            return Ok(json(status, Bytes::from_static(body.as_bytes())));
        }
        // The flag picks the code path: the new one has its own error rate.
        let mut error_rate = self.s.error_rate;
        let mut served: Option<(String, bool)> = None;
        if let (Some(client), Some(f)) = (&self.flags, &self.s.flag) {
            let ctx = andon_flags_sdk::Context::with_key(user_of(req.uri().query()));
            let ev = client.evaluate(&f.key, &ctx);
            let on = ev.is_on();
            if on {
                error_rate = f.error_rate;
            }
            served = Some((ev.variant.unwrap_or_default(), on));
        }
        let (fail, jitter) = if error_rate > 0.0 || self.s.jitter_ms > 0 {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            let fail = error_rate > 0.0 && rng.random::<f64>() < error_rate;
            let jitter = if self.s.jitter_ms > 0 {
                rng.random_range(0..=self.s.jitter_ms)
            } else {
                0
            };
            (fail, jitter)
        } else {
            (false, 0)
        };
        let delay = self.s.latency + Duration::from_millis(jitter);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let status = if fail {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        if let (Some(client), Some(f), Some((variant, on))) = (&self.flags, &self.s.flag, served) {
            client.record_outcome(&f.key, &variant, !fail);
            let body = format!(
                r#"{{"version":{},"ok":{},"variant":{},"new_path":{on}}}"#,
                serde_string(&self.s.version),
                !fail,
                serde_string(&variant)
            );
            return Ok(json(status, Bytes::from(body)));
        }
        Ok(if fail {
            json(status, self.err_body.clone())
        } else {
            json(status, self.ok_body.clone())
        })
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Runs the service with settings from the environment and `args` (the
/// command line without the program name). Blocks until SIGTERM or SIGINT.
/// The `andon` binary embeds it as `andon sample-service` for the demo.
pub fn main_with_args(args: impl Iterator<Item = String>) -> ExitCode {
    let s = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = s.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(s)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(s: Settings) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], s.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("sample-service {} listening on {local}", s.version);
    let quoted = serde_string(&s.version);
    let flags = match &s.flag {
        Some(f) => {
            let mut cfg = andon_flags_sdk::ClientConfig::new(&f.server, &f.token, &f.environment);
            cfg.flush_every = f.flush;
            let client = andon_flags_sdk::Client::connect(cfg).await;
            if !client.is_ready() {
                eprintln!(
                    "warning: no flags from {} yet; serving defaults until it answers",
                    f.server
                );
            }
            Some(client)
        }
        None => None,
    };
    let app = Arc::new(App {
        flags,
        ok_body: Bytes::from(format!(r#"{{"version":{quoted},"ok":true}}"#)),
        err_body: Bytes::from(format!(r#"{{"version":{quoted},"ok":false}}"#)),
        rng: Mutex::new(match s.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        }),
        s,
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let svc = service_fn(move |req| {
                    let app = app.clone();
                    async move { app.handle(req).await }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
                tokio::spawn(conn);
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}

/// A JSON string literal for `v` (quotes and control characters escaped).
fn serde_string(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
