//! The SDK against a real in-process server on 127.0.0.1: the first
//! snapshot, changes over the stream, life without the server, reconnecting,
//! exposure reports, and the OpenFeature provider.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use andon_flags_sdk::{Client, ClientConfig, Context, Reason};
use serde_json::{Value, json};

const ADMIN: &str = "sdk-test-admin";

struct TestServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server: it ends its change streams, drains and closes.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_at(dir: &Path, addr: &str) -> TestServer {
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: dir.to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 1,
        router: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    TestServer {
        addr,
        task,
        stop: Some(tx),
    }
}

async fn call(base: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn put_flag(base: &str, key: &str, flag: Value) {
    call(
        base,
        reqwest::Method::PUT,
        &format!("/api/v1/flags/{key}"),
        json!({"flag": flag, "reason": "sdk test"}),
    )
    .await;
}

async fn sdk_token(base: &str, env: &str) -> String {
    let v = call(
        base,
        reqwest::Method::POST,
        "/api/v1/tokens",
        json!({"name": "web-sdk", "role": "viewer", "environment": env}),
    )
    .await;
    v["token"].as_str().unwrap().to_string()
}

async fn setup() -> (TestServer, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = start_at(dir.path(), "127.0.0.1:0").await;
    let base = s.base();
    put_flag(
        &base,
        "checkout",
        json!({"environments": {
            "production": {"enabled": true, "rules": [
                {"conditions": [{"attribute": "country", "operator": "in", "values": ["no"]}], "serve": "on"}
            ]},
            "staging": {"enabled": false}
        }}),
    )
    .await;
    put_flag(
        &base,
        "theme",
        json!({"kind": "string", "variants": {"light": "#fff", "dark": "#000"},
               "environments": {"production": {"enabled": true, "default_variant": "dark"}}}),
    )
    .await;
    put_flag(
        &base,
        "limits",
        json!({"kind": "json", "variants": {"std": {"max": 5, "ratio": 0.5}},
               "environments": {"production": {"enabled": true, "default_variant": "std"}}}),
    )
    .await;
    let token = sdk_token(&base, "production").await;
    (s, dir, token)
}

fn config(base: &str, token: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(base, token, "production");
    cfg.poll_every = Duration::from_secs(60);
    cfg.flush_every = Duration::from_secs(3600);
    cfg
}

async fn wait_for(client: &Client, what: &str, cond: impl Fn(&Client) -> bool) -> Duration {
    let start = Instant::now();
    while !cond(client) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluates_in_process_from_the_snapshot() {
    let (s, _dir, token) = setup().await;
    let client = Client::connect(config(&s.base(), &token)).await;
    assert!(client.is_ready());
    assert!(client.version() > 0);
    let no = Context::with_key("u1").attr("country", "no");
    let se = Context::with_key("u1").attr("country", "se");
    assert!(client.bool_value("checkout", &no, false));
    assert!(!client.bool_value("checkout", &se, true));
    assert_eq!(client.evaluate("checkout", &se).reason, Reason::Default);
    assert_eq!(client.string_value("theme", &no, "x"), "#000");
    assert_eq!(client.json_value("limits", &no, Value::Null)["max"], 5);
    assert!(
        client.bool_value("missing", &no, true),
        "unknown flags give the default"
    );
    assert_eq!(
        client.int_value("theme", &no, 7),
        7,
        "wrong type gives the default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_client_over_the_stream() {
    let (s, _dir, token) = setup().await;
    let client = Client::connect(config(&s.base(), &token)).await;
    wait_for(&client, "the stream", Client::is_streaming).await;
    let no = Context::with_key("u1").attr("country", "no");
    assert!(client.bool_value("checkout", &no, false));
    let before = client.version();
    call(
        &s.base(),
        reqwest::Method::POST,
        "/api/v1/flags/checkout/kill",
        json!({"environment": "production", "reason": "errors"}),
    )
    .await;
    // Polling is set to a minute: only the stream can bring this in time.
    let took = wait_for(&client, "the change", |c| c.version() > before).await;
    assert!(!client.bool_value("checkout", &no, true));
    eprintln!("change reached the SDK in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_snapshot_serves_while_the_server_is_gone_then_it_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_at(dir.path(), "127.0.0.1:0").await;
    let base = s.base();
    put_flag(
        &base,
        "checkout",
        json!({"environments": {"production": {"enabled": true}}}),
    )
    .await;
    let token = sdk_token(&base, "production").await;
    let client = Client::connect(config(&base, &token)).await;
    wait_for(&client, "the stream", Client::is_streaming).await;
    let ctx = Context::with_key("u1");
    assert!(client.bool_value("checkout", &ctx, false));

    let addr = s.addr;
    s.stop().await;
    wait_for(&client, "the disconnect", |c| !c.is_streaming()).await;
    assert!(client.refresh().await.is_err(), "the server is gone");
    assert!(
        client.bool_value("checkout", &ctx, false),
        "the last snapshot still serves"
    );

    // The server comes back on the same address; a change made there
    // reaches the client once it has reconnected.
    let s = start_at(dir.path(), &addr.to_string()).await;
    wait_for(&client, "the reconnect", Client::is_streaming).await;
    call(
        &s.base(),
        reqwest::Method::POST,
        "/api/v1/flags/checkout/kill",
        json!({"reason": "off after restart"}),
    )
    .await;
    wait_for(&client, "the change after restart", |c| {
        !c.bool_value("checkout", &ctx, true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_works_without_the_stream() {
    let (s, _dir, token) = setup().await;
    let mut cfg = config(&s.base(), &token);
    cfg.stream = false;
    cfg.poll_every = Duration::from_millis(200);
    let client = Client::connect(cfg).await;
    let before = client.version();
    call(
        &s.base(),
        reqwest::Method::POST,
        "/api/v1/flags/checkout/rollout",
        json!({"environment": "production", "percentage": 10, "reason": "ramp"}),
    )
    .await;
    wait_for(&client, "the polled change", |c| c.version() > before).await;
    assert!(!client.is_streaming());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposures_and_outcomes_arrive_as_one_event() {
    let (s, _dir, token) = setup().await;
    let client = Client::connect(config(&s.base(), &token)).await;
    let no = Context::with_key("u1").attr("country", "no");
    let se = Context::with_key("u2").attr("country", "se");
    for _ in 0..5 {
        client.bool_value("checkout", &no, false);
    }
    client.bool_value("checkout", &se, false);
    client.record_outcome("checkout", "on", true);
    client.record_outcome("checkout", "on", false);
    client.flush().await.unwrap();
    client.flush().await.unwrap(); // nothing new: no second event

    let events: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/events?limit=1000", s.base()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reports: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "flag_exposures")
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = reports[0];
    assert_eq!(r["actor"], "web-sdk");
    assert_eq!(r["environment"], "production");
    assert_eq!(
        r["counts"]["checkout"]["on"],
        json!({"evaluations": 5, "errors": 1, "outcomes": 2})
    );
    assert_eq!(r["counts"]["checkout"]["off"]["evaluations"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openfeature_provider_resolves_every_type() {
    use open_feature::provider::FeatureProvider;
    use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason};

    let (s, _dir, token) = setup().await;
    let client = Client::connect(config(&s.base(), &token)).await;
    let provider = client.provider();
    assert_eq!(provider.metadata().name, "andon");
    let ctx = EvaluationContext::default()
        .with_targeting_key("u1")
        .with_custom_field("country", "no");
    let b = provider.resolve_bool_value("checkout", &ctx).await.unwrap();
    assert!(b.value);
    assert_eq!(b.variant.as_deref(), Some("on"));
    assert_eq!(b.reason, Some(EvaluationReason::TargetingMatch));
    let t = provider.resolve_string_value("theme", &ctx).await.unwrap();
    assert_eq!(t.value, "#000");
    let st = provider.resolve_struct_value("limits", &ctx).await.unwrap();
    assert_eq!(st.value.fields["max"], open_feature::Value::Int(5));
    let e = provider
        .resolve_bool_value("theme", &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = provider
        .resolve_int_value("missing", &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::FlagNotFound);

    // Through the OpenFeature API, as an application would use it.
    let mut api = open_feature::OpenFeature::singleton_mut().await;
    api.set_provider(client.provider()).await;
    let of = api.create_client();
    drop(api);
    assert!(
        of.get_bool_value("checkout", Some(&ctx), None)
            .await
            .unwrap()
    );
    let f = of.get_float_value("missing", Some(&ctx), None).await;
    assert!(f.is_err());
}
