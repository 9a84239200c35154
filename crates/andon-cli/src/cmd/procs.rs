//! The long-running processes: `andon server` and `andon router`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::default_parallelism;
use crate::ui;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANDON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ui::color())
        .try_init();
}

/// Resolves on SIGINT or SIGTERM: both mean "drain and stop".
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub(crate) async fn server(
    data: PathBuf,
    listen: SocketAddr,
    store: Option<String>,
    parallelism: Option<usize>,
) -> Result<ExitCode> {
    init_tracing();
    let admin_token = std::env::var("ANDON_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: data.clone(),
        store_url: store,
        admin_token,
        parallelism: parallelism.unwrap_or_else(default_parallelism),
    })
    .await
    .with_context(|| format!("could not start the server with data in {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ui::hinted(format!("could not listen on {listen}: {e}"), "pick another address with --listen"))?;
    let addr = listener.local_addr().unwrap_or(listen);
    if let Some(token) = &server.first_admin_token {
        // Printed once, on first start: the store keeps only its hash.
        println!("admin token (shown once, keep it safe): {token}");
    }
    if server.interrupted_runs > 0 {
        tracing::warn!(runs = server.interrupted_runs, "marked runs interrupted by the previous stop");
    }
    println!("andon server listening on http://{addr} (data in {})", data.display());
    server.serve(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn router(
    data: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
    admin_token: Option<String>,
) -> Result<ExitCode> {
    init_tracing();
    let proxy = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ui::hinted(format!("could not listen on {listen}: {e}"), "pick another address with --listen"))?;
    let admin_l = tokio::net::TcpListener::bind(admin)
        .await
        .map_err(|e| ui::hinted(format!("could not listen on {admin}: {e}"), "pick another address with --admin"))?;
    println!(
        "andon router proxying on http://{} (admin on http://{})",
        proxy.local_addr().unwrap_or(listen),
        admin_l.local_addr().unwrap_or(admin)
    );
    let cfg = andon_router::RouterConfig {
        admin_token,
        ..andon_router::RouterConfig::new(data)
    };
    andon_router::run(cfg, proxy, admin_l, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
