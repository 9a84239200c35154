//! Answers for the dashboard's page and files.
//!
//! Files are not fingerprinted (there is no build step to rename them), so
//! every answer says `Cache-Control: no-cache`: the browser keeps its copy
//! but revalidates it with `If-None-Match`, and an unchanged file costs a
//! 304 with no body. After an upgrade the next load sees the new files.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::assets::{self, Asset};

/// Scripts, styles, images and API calls only from this origin; no inline
/// code, no plugins, no framing, no forms posting elsewhere. Setting
/// `element.style` from a module is still allowed (it is not inline code).
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

pub(crate) async fn index(headers: HeaderMap) -> Response {
    respond(&assets::INDEX, &headers)
}

pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match assets::find(&path) {
        Some(a) => respond(a, &headers),
        None => {
            let mut resp = (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
            security_headers(resp.headers_mut());
            resp
        }
    }
}

fn respond(a: &'static Asset, req: &HeaderMap) -> Response {
    let etag = a.etag();
    let mut resp = if matches_etag(req, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    resp
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// `If-None-Match` as RFC 9110 reads it: `*`, or a list of tags compared
/// weakly (a `W/` prefix matches too).
fn matches_etag(req: &HeaderMap, etag: &str) -> bool {
    req.get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_none_match_forms() {
        let tag = "\"00ff\"";
        assert!(matches_etag(&with("\"00ff\""), tag));
        assert!(matches_etag(&with("W/\"00ff\""), tag));
        assert!(matches_etag(&with("\"aa\", \"00ff\""), tag));
        assert!(matches_etag(&with("*"), tag));
        assert!(!matches_etag(&with("\"00fe\""), tag));
        assert!(!matches_etag(&HeaderMap::new(), tag));
    }
}
