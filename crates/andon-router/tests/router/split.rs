//! Weighted split, stickiness, overrides and path routing.

use std::collections::{BTreeMap, BTreeSet};

use hyper::StatusCode;
use serde_json::json;

use crate::support::*;

async fn two_versions(w_canary: u32, extra: serde_json::Value) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("stable", Behaviour::Ok).await;
    let b = backend("canary", Behaviour::Ok).await;
    r.routes(table(
        1,
        &[
            ("stable", 100 - w_canary, vec![a.ep()]),
            ("canary", w_canary, vec![b.ep()]),
        ],
        extra,
    ))
    .await;
    (r, dir)
}

#[tokio::test]
async fn weights_split_traffic_as_configured() {
    let (r, _d) = two_versions(10, json!({})).await;
    let mut counts = BTreeMap::<String, u32>::new();
    for _ in 0..2000 {
        let resp = r.get("/", &[]).await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, resp.served_by(), "the header names who answered");
        *counts.entry(resp.served_by().to_owned()).or_default() += 1;
    }
    // Binomial(2000, 0.1): mean 200, sd 13.4; +-6 sd.
    let canary = counts.get("canary").copied().unwrap_or(0);
    assert!((120..=280).contains(&canary), "{counts:?}");
    assert_eq!(counts.values().sum::<u32>(), 2000);
}

#[tokio::test]
async fn a_sticky_header_keeps_each_user_on_one_version() {
    let (r, _d) = two_versions(50, json!({"sticky": {"header": "x-user-id"}})).await;
    let mut per_version = BTreeMap::<String, u32>::new();
    for user in 0..200 {
        let id = format!("user-{user}");
        let first = r
            .get("/", &[("x-user-id", &id)])
            .await
            .served_by()
            .to_owned();
        for _ in 0..4 {
            assert_eq!(
                r.get("/", &[("x-user-id", &id)]).await.served_by(),
                first,
                "{id}"
            );
        }
        *per_version.entry(first).or_default() += 1;
    }
    assert!(per_version.values().all(|n| *n >= 50), "{per_version:?}");
}

#[tokio::test]
async fn a_sticky_cookie_is_set_once_then_honoured() {
    let (r, _d) = two_versions(10, json!({"sticky": {"cookie": "andon_bucket"}})).await;
    let first = r.get("/", &[]).await;
    let cookie = first.headers["set-cookie"].to_str().unwrap().to_owned();
    let (pair, attrs) = cookie.split_once(';').unwrap();
    assert_eq!(attrs.trim(), "Path=/; HttpOnly; SameSite=Lax");
    let bucket: u32 = pair.strip_prefix("andon_bucket=").unwrap().parse().unwrap();
    assert!(bucket < 100);
    for _ in 0..20 {
        let again = r.get("/", &[("cookie", pair)]).await;
        assert_eq!(again.served_by(), first.served_by());
        assert!(again.headers.get("set-cookie").is_none(), "set only once");
    }
    // The canary owns the low buckets.
    assert_eq!(
        r.get("/", &[("cookie", "andon_bucket=3")])
            .await
            .served_by(),
        "canary"
    );
    assert_eq!(
        r.get("/", &[("cookie", "andon_bucket=10")])
            .await
            .served_by(),
        "stable"
    );
}

/// When the canary's weight grows, users already on it stay on it (by header and by cookie).
#[tokio::test]
async fn users_on_a_growing_canary_stay_there() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("stable", Behaviour::Ok).await;
    let b = backend("canary", Behaviour::Ok).await;
    for (sticky, key) in [
        (json!({"header": "x-user-id"}), "x-user-id"),
        (json!({"cookie": "andon_bucket"}), "cookie"),
    ] {
        let mut previous = BTreeSet::new();
        for (i, w) in [5u32, 10, 25, 50, 90, 100].into_iter().enumerate() {
            let gen_base = if key == "cookie" { 100 } else { 0 };
            r.routes(table(
                gen_base + i as u64 + 1,
                &[
                    ("stable", 100 - w, vec![a.ep()]),
                    ("canary", w, vec![b.ep()]),
                ],
                json!({"sticky": sticky}),
            ))
            .await;
            let mut on_canary = BTreeSet::new();
            for user in 0..300u32 {
                let value = if key == "cookie" {
                    format!("andon_bucket={}", user % 100)
                } else {
                    format!("user-{user}")
                };
                if r.get("/", &[(key, &value)]).await.served_by() == "canary" {
                    on_canary.insert(user);
                }
            }
            assert!(
                previous.is_subset(&on_canary),
                "{key}: someone left the canary at weight {w}"
            );
            assert!(on_canary.len() > previous.len() || w == 100 || previous.is_empty());
            previous = on_canary;
        }
        assert_eq!(previous.len(), 300);
    }
}

#[tokio::test]
async fn the_override_header_forces_a_version_even_at_weight_zero() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("stable", Behaviour::Ok).await;
    let d = backend("dark", Behaviour::Ok).await;
    r.routes(table(
        1,
        &[("stable", 100, vec![a.ep()]), ("dark", 0, vec![d.ep()])],
        json!({}),
    ))
    .await;
    for _ in 0..50 {
        assert_eq!(r.get("/", &[]).await.served_by(), "stable");
    }
    let forced = r.get("/", &[("x-andon-version", "dark")]).await;
    assert_eq!((forced.served_by(), forced.body.as_str()), ("dark", "dark"));
    let by_id = r.get("/", &[("x-andon-version", "id-dark")]).await;
    assert_eq!(by_id.body, "dark");
    let unknown = r.get("/", &[("x-andon-version", "nope")]).await;
    assert_eq!(unknown.body, "stable");
}

#[tokio::test]
async fn paths_and_hosts_route_to_services_by_longest_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let legacy = backend("legacy", Behaviour::Ok).await;
    let api = backend("api", Behaviour::Ok).await;
    let admin = backend("admin-host", Behaviour::Ok).await;
    let svc = |name: &str, ep: String| json!({"versions": [{"name": name, "version": name, "weight": 100, "endpoints": [ep]}]});
    r.routes(json!({
        "generation": 1,
        "services": {
            "legacy": svc("legacy", legacy.ep()),
            "api": svc("api", api.ep()),
            "admin": svc("admin-host", admin.ep()),
        },
        "routes": [
            {"host": null, "path_prefix": "/", "service": "legacy"},
            {"host": null, "path_prefix": "/api", "service": "api"},
            {"host": "admin.localhost", "path_prefix": "/", "service": "admin"},
            {"host": "only.localhost", "path_prefix": "/x", "service": "api"},
        ],
    }))
    .await;
    assert_eq!(r.get("/", &[]).await.body, "legacy");
    assert_eq!(r.get("/api", &[]).await.body, "api");
    assert_eq!(r.get("/api/v1/items?q=1", &[]).await.body, "api");
    assert_eq!(r.get("/apix", &[]).await.body, "legacy");
    assert_eq!(
        r.get("/", &[("host", "ADMIN.localhost:8080")]).await.body,
        "admin-host"
    );
    assert_eq!(
        r.get("/api/x", &[("host", "admin.localhost")]).await.body,
        "api"
    );
    assert_eq!(api.seen.lock().unwrap().len(), 3);

    r.routes(json!({
        "generation": 2,
        "services": {"api": svc("api", api.ep())},
        "routes": [{"host": "only.localhost", "path_prefix": "/x", "service": "api"}],
    }))
    .await;
    let none = r.get("/x", &[("host", "other.localhost")]).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let err: serde_json::Value = serde_json::from_str(&none.body).unwrap();
    assert_eq!(err["error"]["code"], "no_route");
}

#[tokio::test]
async fn forwarding_keeps_host_sets_forwarded_headers_and_drops_hop_by_hop() {
    let dir = tempfile::tempdir().unwrap();
    let r = Router::start(config(dir.path())).await;
    let a = backend("stable", Behaviour::Ok).await;
    r.routes(table(1, &[("stable", 100, vec![a.ep()])], json!({})))
        .await;
    let resp = r
        .get(
            "/p?q=1",
            &[
                ("host", "shop.localhost"),
                ("x-forwarded-for", "10.1.2.3"),
                ("connection", "x-private"),
                ("x-private", "1"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    // The backend says `connection: keep-alive`; that is about its hop, not the client's.
    assert!(
        resp.headers.get("connection").is_none(),
        "{:?}",
        resp.headers
    );
    let seen = a.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.headers["host"], "shop.localhost");
    assert_eq!(seen.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert!(
        !seen.headers.contains_key("x-private"),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let (r, _d) = two_versions(0, json!({})).await;
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let resp = send(&h2, "GET", &r.url("/"), &[], Vec::new()).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, "stable");
}
