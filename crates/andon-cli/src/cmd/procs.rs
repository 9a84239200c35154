//! The long-running processes: `andon server` and `andon router`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::default_parallelism;
use crate::cli::RouterArgs;
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
    advertise: Option<String>,
    parallelism: Option<usize>,
    router: RouterArgs,
) -> Result<ExitCode> {
    init_tracing();
    let admin_token = std::env::var("ANDON_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    std::fs::create_dir_all(&data)
        .with_context(|| format!("could not create the data directory {}", data.display()))?;
    let router = router_link(&data, router).await?;
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: data.clone(),
        store_url: store,
        admin_token,
        parallelism: parallelism.unwrap_or_else(default_parallelism),
        router,
    })
    .await
    .with_context(|| format!("could not start the server with data in {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        ui::hinted(
            format!("could not listen on {listen}: {e}"),
            "pick another address with --listen",
        )
    })?;
    let addr = listener.local_addr().unwrap_or(listen);
    server.advertise(advertise.unwrap_or_else(|| format!("http://{addr}")));
    if let Some(token) = &server.first_admin_token {
        // Printed once, on first start: the store keeps only its hash.
        println!("admin token (shown once, keep it safe): {token}");
    }
    if server.interrupted_runs > 0 {
        tracing::warn!(
            runs = server.interrupted_runs,
            "marked runs interrupted by the previous stop"
        );
    }
    println!(
        "andon server listening on http://{addr} (data in {})",
        data.display()
    );
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
    let proxy = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        ui::hinted(
            format!("could not listen on {listen}: {e}"),
            "pick another address with --listen",
        )
    })?;
    let admin_l = tokio::net::TcpListener::bind(admin).await.map_err(|e| {
        ui::hinted(
            format!("could not listen on {admin}: {e}"),
            "pick another address with --admin",
        )
    })?;
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

/// The router the server releases through: the one given, or its own. Its
/// own router is a separate process (its own process group) so traffic keeps
/// flowing when the server stops or crashes; a restarted server finds it
/// running and reuses it.
async fn router_link(
    data: &std::path::Path,
    args: RouterArgs,
) -> Result<Option<andon_server::RouterLink>> {
    if args.no_router {
        return Ok(None);
    }
    if let Some(admin) = args.router_admin {
        let with_scheme = |s: String| {
            if s.contains("://") {
                s
            } else {
                format!("http://{s}")
            }
        };
        let admin = with_scheme(admin);
        let url = with_scheme(
            args.router_url
                .unwrap_or_else(|| args.router_listen.to_string()),
        );
        return Ok(Some(andon_server::RouterLink {
            admin,
            url,
            token: args.router_token,
        }));
    }
    let dir = data.join("router");
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let token_file = dir.join("admin.token");
    let token = match std::fs::read_to_string(&token_file) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            let t = format!("router_{:032x}", rand::random::<u128>());
            write_private(&token_file, &t)?;
            t
        }
    };
    let admin = format!("http://{}", args.router_admin_listen);
    let url = format!("http://{}", args.router_listen);
    let link = andon_server::RouterLink {
        admin: admin.clone(),
        url,
        token: Some(token.clone()),
    };
    if healthy(&admin, &token).await {
        tracing::info!(%admin, "reusing the running router");
        return Ok(Some(link));
    }
    let exe =
        std::env::current_exe().context("could not find the andon binary to start the router")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("router.log"))
        .context("could not open the router's log")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("router")
        .arg("--data")
        .arg(&dir)
        .arg("--listen")
        .arg(args.router_listen.to_string())
        .arg("--admin")
        .arg(args.router_admin_listen.to_string())
        .env("ANDON_ROUTER_TOKEN", &token)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().context("could not start the router")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !healthy(&admin, &token).await {
        if std::time::Instant::now() > deadline {
            return Err(ui::hinted(
                format!("the router did not come up on {admin}"),
                format!(
                    "see {}; if another program holds the port, pick others with --router-listen / --router-admin-listen",
                    dir.join("router.log").display()
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!(
        "andon router started: traffic on http://{}, admin on {admin}",
        args.router_listen
    );
    Ok(Some(link))
}

/// Whether a router answers on `admin` and accepts our token (so it is ours).
async fn healthy(admin: &str, token: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(1))
        .build()
    else {
        return false;
    };
    client
        .get(format!("{admin}/healthz"))
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn write_private(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
