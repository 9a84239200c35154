//! The admin API: auth, validation, generations, persistence, counters.

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn every_admin_call_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    for (method, path) in [
        ("GET", "/routes"),
        ("GET", "/stats"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("PUT", "/routes"),
    ] {
        let url = format!("http://{}{}", r.admin, path);
        for auth in [None, Some("Bearer wrong"), Some("test-token")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let resp = send(&r.client, method, &url, &headers, b"{}".to_vec()).await;
            assert_eq!(
                resp.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let v: Value = serde_json::from_str(&resp.body).unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(r.admin_get("/healthz").await.status, StatusCode::OK);
    r.stop().await;
}

#[tokio::test]
async fn invalid_tables_are_refused_with_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let ep = "127.0.0.1:9".to_owned();
    let cases = [
        (
            table(
                1,
                &[
                    ("stable", 90, vec![ep.clone()]),
                    ("canary", 20, vec![ep.clone()]),
                ],
                json!({}),
            ),
            "invalid_weights",
        ),
        (
            table(1, &[("stable", 100, vec![])], json!({})),
            "missing_endpoints",
        ),
        (
            table(1, &[("stable", 100, vec!["nohost".into()])], json!({})),
            "invalid_routes",
        ),
        (
            table(
                1,
                &[("stable", 100, vec![ep.clone()])],
                json!({"mirror": {"to": "ghost", "percent": 5}}),
            ),
            "invalid_routes",
        ),
        (json!({"generation": "x"}), "invalid_json"),
    ];
    for (t, code) in cases {
        let (status, v) = r.put_routes(&t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{t}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Nothing was applied.
    let routes: Value = serde_json::from_str(&r.admin_get("/routes").await.body).unwrap();
    assert_eq!(routes["generation"], 0);
    // All dark (weights sum to 0) is valid.
    r.routes(table(1, &[("dark", 0, vec![ep])], json!({})))
        .await;
    let resp = r.get("/", &[]).await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_lower_generation_is_refused_with_409() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("a", Behaviour::Ok).await;
    let b = backend("b", Behaviour::Ok).await;
    r.routes(table(7, &[("a", 100, vec![a.ep()])], json!({})))
        .await;
    let (status, v) = r
        .put_routes(&table(6, &[("b", 100, vec![b.ep()])], json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "stale_generation");
    assert_eq!(r.get("/", &[]).await.body, "a");
    // The same generation again is an idempotent retry.
    r.routes(table(7, &[("a", 100, vec![a.ep()])], json!({})))
        .await;
    r.routes(table(8, &[("b", 100, vec![b.ep()])], json!({})))
        .await;
    assert_eq!(r.get("/", &[]).await.body, "b");
    let routes: Value = serde_json::from_str(&r.admin_get("/routes").await.body).unwrap();
    assert_eq!(routes["generation"], 8);
    assert_eq!(
        routes["services"]["shop/production"]["versions"][0]["name"],
        "b"
    );
}

#[tokio::test]
async fn the_last_table_is_served_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = backend("a", Behaviour::Ok).await;
    let r = Router::start(config(dir.path())).await;
    r.routes(table(3, &[("a", 100, vec![a.ep()])], json!({})))
        .await;
    r.stop().await;
    assert!(dir.path().join("routes.json").exists());

    let r = Router::start(config(dir.path())).await;
    let resp = r.get("/", &[]).await;
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "a"));
    let (status, _) = r
        .put_routes(&table(2, &[("a", 100, vec![a.ep()])], json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the generation survived too");
    r.stop().await;
}

#[tokio::test]
async fn a_corrupt_saved_table_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("routes.json"), "{").unwrap();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = andon_router::run(config(dir.path()), proxy, admin, async {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("routes.json"), "{e}");
}

#[tokio::test]
async fn stats_and_metrics_count_requests_errors_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("stable", Behaviour::Ok).await;
    let b = backend("canary", Behaviour::Status(500)).await;
    r.routes(table(
        1,
        &[("stable", 100, vec![a.ep()]), ("canary", 0, vec![b.ep()])],
        json!({}),
    ))
    .await;
    for _ in 0..7 {
        assert_eq!(r.get("/", &[]).await.status, StatusCode::OK);
    }
    for _ in 0..3 {
        let resp = r.get("/", &[("x-andon-version", "canary")]).await;
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let s = r.stats().await;
    let stable = &s["services"]["shop/production"]["stable"];
    let canary = &s["services"]["shop/production"]["canary"];
    assert_eq!(stable["version"], "id-stable");
    assert_eq!(
        (stable["requests"].as_u64(), stable["errors"].as_u64()),
        (Some(7), Some(0))
    );
    assert_eq!(
        (canary["requests"].as_u64(), canary["errors"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(stable["inflight"], 0);
    let buckets = stable["latency_buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 14);
    assert_eq!(buckets.iter().map(|b| b.as_u64().unwrap()).sum::<u64>(), 7);

    let m = r.admin_get("/metrics").await;
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let labels = r#"service="shop/production",name="canary",version="id-canary""#;
    for line in [
        format!(r#"andon_router_requests_total{{{labels},code_class="5xx"}} 3"#),
        format!("andon_router_errors_total{{{labels}}} 3"),
        format!(r#"andon_router_request_duration_seconds_bucket{{{labels},le="+Inf"}} 3"#),
        format!("andon_router_request_duration_seconds_count{{{labels}}} 3"),
        format!("andon_router_inflight{{{labels}}} 0"),
        format!("andon_router_mirror_requests_total{{{labels}}} 0"),
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line} in\n{}",
            m.body
        );
    }
}
