//! The router's request handling from any bytes on the wire: a real router
//! (proxy and admin listeners on 127.0.0.1) serving a fixed route table to a
//! local backend, fed raw HTTP/1.1 or h2c bytes over TCP. It must never
//! panic: libFuzzer's panic hook aborts the process on a panic in any of the
//! router's threads, so a crash here is a crash there.
//!
//! Input: byte 0 picks the mode (`byte % 4`), the rest is the payload.
//! - 0, 1: raw bytes to the proxy listener (routing, sticky buckets,
//!   override header, mirroring, forwarding to the backend);
//! - 2: a route table as JSON, parsed and validated in-process (what
//!   `PUT /routes` and a restart's `routes.json` go through);
//! - 3: raw bytes to the admin listener of a second router (its table may
//!   change when an input carries the token, so the proxy router's stays fixed).
//!
//! Every address is on 127.0.0.1: the table's endpoints are the local
//! backend, and the router dials only table endpoints, never a request's host.
#![no_main]

use std::convert::Infallible;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use andon_router::{RouteTable, RouterConfig};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use libfuzzer_sys::fuzz_target;

const ADMIN: &str = "fuzz-admin";

struct Harness {
    proxy: SocketAddr,
    admin: SocketAddr,
}

/// A backend that answers every request with a small body.
async fn backend(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn table(backend: SocketAddr) -> serde_json::Value {
    let ep = backend.to_string();
    serde_json::json!({
        "generation": 1,
        "services": {
            "shop/production": {
                "versions": [
                    {"name": "stable", "version": "sha256:aaaa", "weight": 90, "endpoints": [ep]},
                    {"name": "canary", "version": "sha256:bbbb", "weight": 10, "endpoints": [ep]},
                    {"name": "dark", "version": "sha256:cccc", "weight": 0, "endpoints": [ep]}
                ],
                "sticky": {"header": "x-user"},
                "mirror": {"to": "dark", "percent": 50.0}
            },
            "shop/staging": {
                "versions": [
                    {"name": "blue", "version": "sha256:dddd", "weight": 100, "endpoints": [ep]}
                ],
                "sticky": {"cookie": "andon_bucket"}
            }
        },
        "routes": [
            {"host": null, "path_prefix": "/", "service": "shop/production"},
            {"host": "staging.example", "path_prefix": "/api", "service": "shop/staging"}
        ]
    })
}

fn router_config(dir: &std::path::Path) -> RouterConfig {
    let mut cfg = RouterConfig::new(dir);
    cfg.admin_token = Some(ADMIN.into());
    cfg.upstream_timeout = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_millis(200);
    cfg.workers = 1;
    cfg
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let root = tempfile::tempdir().expect("tempdir");
                let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let backend_addr = backend_listener.local_addr().expect("addr");
                tokio::spawn(backend(backend_listener));

                let mut addrs = Vec::new();
                for name in ["proxied", "admin"] {
                    let dir = root.path().join(name);
                    std::fs::create_dir_all(&dir).expect("dir");
                    std::fs::write(dir.join("routes.json"), table(backend_addr).to_string())
                        .expect("routes.json");
                    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    addrs.push((
                        proxy.local_addr().expect("addr"),
                        admin.local_addr().expect("addr"),
                    ));
                    let cfg = router_config(&dir);
                    tokio::spawn(async move {
                        let r = andon_router::run(cfg, proxy, admin, std::future::pending()).await;
                        panic!("router stopped: {r:?}");
                    });
                }
                tx.send(Harness {
                    proxy: addrs[0].0,
                    admin: addrs[1].1,
                })
                .expect("send");
                std::future::pending::<()>().await;
                drop(root);
            });
        });
        rx.recv().expect("harness started")
    })
}

/// Sends `bytes`, half-closes, and reads the answer (bounded in time and size).
fn exchange(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    // send(2) with MSG_NOSIGNAL, not write(2): libFuzzer's C main never set
    // SIGPIPE to ignored as a Rust main would, so writing to a connection
    // the router already closed would kill the fuzzer with SIGPIPE.
    let sock = socket2::SockRef::from(&s);
    let mut rest = bytes;
    while !rest.is_empty() {
        match sock.send_with_flags(rest, libc::MSG_NOSIGNAL) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest = &rest[n..],
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    while let Ok(n) = s.read(&mut buf) {
        total += n;
        if n == 0 || total > 1 << 20 {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        2 => {
            if let Ok(t) = serde_json::from_slice::<RouteTable>(payload) {
                if let Err(e) = t.validate() {
                    let _ = (e.code(), e.to_string());
                }
                let _ = serde_json::to_vec(&t);
            }
        }
        3 => exchange(harness().admin, payload),
        _ => exchange(harness().proxy, payload),
    }
});
