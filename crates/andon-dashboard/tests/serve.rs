//! The dashboard's routes as a browser meets them: content types, ETags and
//! 304s, the security headers, and 404 for what is not embedded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str, if_none_match: Option<&str>) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    andon_dashboard::router::<()>()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header_of(resp: &axum::response::Response, name: header::HeaderName) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn index_is_html_with_a_strict_csp() {
    let resp = get("/", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header_of(&resp, header::CONTENT_TYPE).starts_with("text/html"));
    let csp = header_of(&resp, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header_of(&resp, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("/assets/js/main.js"));
}

#[tokio::test]
async fn assets_have_their_content_types() {
    for (path, ctype) in [
        ("/assets/js/main.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let resp = get(path, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            header_of(&resp, header::CONTENT_TYPE).starts_with(ctype),
            "{path}"
        );
        assert_eq!(header_of(&resp, header::CACHE_CONTROL), "no-cache");
    }
}

#[tokio::test]
async fn etag_revalidation_answers_304_without_a_body() {
    let first = get("/assets/js/main.js", None).await;
    let tag = header_of(&first, header::ETAG);
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let again = get("/assets/js/main.js", Some(&tag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&again, header::ETAG), tag);
    let body = again.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
    let stale = get("/assets/js/main.js", Some("\"0000000000000000\"")).await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_files_are_404() {
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/js/",
        "/assets/index.html",
    ] {
        let resp = get(path, None).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
