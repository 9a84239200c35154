//! Test helpers: start a router, start backends, send requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_router::{RouterConfig, RouterError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) const TOKEN: &str = "test-token";

pub(crate) struct Router {
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RouterError>>,
    pub(crate) client: HttpClient,
}

pub(crate) fn config(dir: &std::path::Path) -> RouterConfig {
    let mut cfg = RouterConfig::new(dir);
    cfg.admin_token = Some(TOKEN.into());
    cfg.upstream_timeout = Duration::from_secs(5);
    cfg
}

impl Router {
    pub(crate) async fn start(cfg: RouterConfig) -> Router {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (pa, aa) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(andon_router::run(cfg, proxy, admin, async {
            let _ = rx.await;
        }));
        Router {
            proxy: pa,
            admin: aa,
            stop: Some(tx),
            task,
            client: client(),
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("router stops in time")
            .unwrap()
            .unwrap();
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// PUT /routes with the token; returns status and JSON answer.
    pub(crate) async fn put_routes(&self, table: &Value) -> (StatusCode, Value) {
        let r = send(
            &self.client,
            "PUT",
            &format!("http://{}/routes", self.admin),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            serde_json::to_vec(table).unwrap(),
        )
        .await;
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    /// PUT that must succeed.
    pub(crate) async fn routes(&self, table: Value) {
        let (s, v) = self.put_routes(&table).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub(crate) async fn admin_get(&self, path: &str) -> Resp {
        send(
            &self.client,
            "GET",
            &format!("http://{}{}", self.admin, path),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Vec::new(),
        )
        .await
    }

    pub(crate) async fn stats(&self) -> Value {
        serde_json::from_str(&self.admin_get("/stats").await.body).unwrap()
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        send(&self.client, "GET", &self.url(path), headers, Vec::new()).await
    }
}

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn served_by(&self) -> &str {
        self.headers
            .get("x-andon-served-by")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

pub(crate) async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("answer in time")
        .expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// How an in-test backend answers.
#[derive(Clone, Copy)]
pub(crate) enum Behaviour {
    /// 200 with its name as body.
    Ok,
    /// This status, name as body.
    Status(u16),
    /// 200 after a delay.
    Delay(Duration),
    /// Status after a delay.
    SlowStatus(u16, Duration),
    /// Never answers.
    Hang,
}

/// What a backend saw last, to check forwarding.
#[derive(Default, Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
    pub(crate) method: String,
}

pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    pub(crate) fn ep(&self) -> String {
        self.addr.to_string()
    }
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A backend on 127.0.0.1:0 that lives as long as the test's runtime.
pub(crate) async fn backend(name: &'static str, behaviour: Behaviour) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (hits.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (h, s) = (h.clone(), s.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (h, s) = (h.clone(), s.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let headers = parts
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    s.lock().unwrap().push(Seen {
                        headers,
                        body: body.to_vec(),
                        method: parts.method.to_string(),
                    });
                    let status = match behaviour {
                        Behaviour::Ok => 200,
                        Behaviour::Status(c) => c,
                        Behaviour::Delay(d) => {
                            tokio::time::sleep(d).await;
                            200
                        }
                        Behaviour::SlowStatus(c, d) => {
                            tokio::time::sleep(d).await;
                            c
                        }
                        Behaviour::Hang => {
                            std::future::pending::<()>().await;
                            200
                        }
                    };
                    let mut r = Response::new(Full::new(Bytes::from(name)));
                    *r.status_mut() = StatusCode::from_u16(status).unwrap();
                    r.headers_mut()
                        .insert("connection", "keep-alive".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend { addr, hits, seen }
}

/// A port with nothing listening (bound then released).
pub(crate) async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

/// A one-service table routing everything to `versions`, e.g.
/// `[("stable", 90, vec![ep]), ("canary", 10, vec![ep2])]`; version ids are `id-<name>`.
pub(crate) fn table(generation: u64, versions: &[(&str, u32, Vec<String>)], extra: Value) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|(n, w, eps)| json!({"name": n, "version": format!("id-{n}"), "weight": w, "endpoints": eps}))
        .collect();
    let mut svc = json!({"versions": versions});
    if let (Value::Object(s), Value::Object(e)) = (&mut svc, extra) {
        s.extend(e);
    }
    json!({
        "generation": generation,
        "services": {"shop/production": svc},
        "routes": [{"host": null, "path_prefix": "/", "service": "shop/production"}],
    })
}
