//! A thin stand-alone router for tests, benches and demos until `andon router` wires it in.
//!
//! `andon-router --data DIR --listen ADDR --admin ADDR [--admin-token T]`
//! (the token may also come from `ANDON_ADMIN_TOKEN`; `RUST_LOG` sets the log filter).
//! Stops on SIGINT or SIGTERM, letting requests in flight finish.

use std::process::ExitCode;

use andon_router::{RouterConfig, run};

fn usage() -> ExitCode {
    eprintln!("usage: andon-router --data DIR --listen ADDR --admin ADDR [--admin-token TOKEN]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut data = None;
    let mut listen = None;
    let mut admin = None;
    let mut token = std::env::var("ANDON_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            return usage();
        };
        match flag.as_str() {
            "--data" => data = Some(value),
            "--listen" => listen = Some(value),
            "--admin" => admin = Some(value),
            "--admin-token" => token = Some(value),
            _ => return usage(),
        }
    }
    let (Some(data), Some(listen), Some(admin)) = (data, listen, admin) else {
        return usage();
    };
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let (proxy, admin) = match (bind(listen).await, bind(admin).await) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cfg = RouterConfig::new(data);
    cfg.admin_token = token;
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    match run(cfg, proxy, admin, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!("\n  caused by: {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
