//! Shaping a request for a backend and sending it, with the single bounded retry.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{
    CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;

use crate::body::UpstreamBody;
use crate::compiled::Version;
use crate::state::Upstream;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A request body as the proxy holds it.
pub(crate) enum Payload {
    /// Passed through as it arrives.
    Stream(Incoming),
    /// Held whole: empty or buffered.
    Bytes(Bytes),
}

/// Why no response came back from the version.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("version has no endpoints")]
    NoEndpoint,
    #[error("invalid upstream uri")]
    Uri(#[from] http::Error),
    #[error("upstream request failed")]
    Upstream(#[from] hyper_util::client::legacy::Error),
}

/// Removes headers that describe one connection rather than the request (RFC 9110 7.6.1),
/// including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ] {
        h.remove(n);
    }
}

/// Headers of the forwarded request: hop-by-hop ones removed, the client added to
/// `x-forwarded-for`, `x-forwarded-proto` set, and `Host` kept (taken from the HTTP/2
/// `:authority` when the client sent no `Host`).
pub(crate) fn prepare_headers(h: &mut HeaderMap, remote: SocketAddr, uri: &Uri) {
    strip_hop_by_hop(h);
    if !h.contains_key(HOST)
        && let Some(v) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        h.insert(HOST, v);
    }
    let ip = remote.ip();
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
}

/// An HTTP/1.1 request to one endpoint (the pool is keyed by scheme and authority).
pub(crate) fn build(
    method: Method,
    endpoint: &Authority,
    path: PathAndQuery,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, http::Error> {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(endpoint.clone())
        .path_and_query(path)
        .build()?;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 9.2.2).
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// Sends to the next endpoint of `version`. If that fails before any response, an idempotent
/// request whose body we still hold is sent once more to another endpoint; a streamed body
/// may already be partly sent, so it never is.
pub(crate) async fn send(
    client: &Upstream,
    version: &Version,
    method: Method,
    path: PathAndQuery,
    headers: HeaderMap,
    payload: Payload,
) -> Result<Response<Incoming>, SendError> {
    let (idx, endpoint) = version.pick().ok_or(SendError::NoEndpoint)?;
    let (bytes, retry_to) = match payload {
        Payload::Stream(b) => {
            let req = build(method, endpoint, path, headers, UpstreamBody::Stream(b))?;
            return Ok(client.request(req).await?);
        }
        Payload::Bytes(b) => {
            let other = if idempotent(&method) {
                version.other_than(idx)
            } else {
                None
            };
            (b, other)
        }
    };
    let Some(other) = retry_to else {
        let req = build(method, endpoint, path, headers, UpstreamBody::full(bytes))?;
        return Ok(client.request(req).await?);
    };
    let first = build(
        method.clone(),
        endpoint,
        path.clone(),
        headers.clone(),
        UpstreamBody::full(bytes.clone()),
    )?;
    match client.request(first).await {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::debug!(endpoint = %endpoint, error = %e, "retrying on another endpoint");
            version.stats.record_retry();
            let req = build(method, other, path, headers, UpstreamBody::full(bytes))?;
            Ok(client.request(req).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_are_appended_and_host_kept() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("shop.localhost"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        prepare_headers(&mut h, remote, &Uri::from_static("/x"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h[HOST], "shop.localhost");

        let mut h = HeaderMap::new();
        prepare_headers(&mut h, remote, &Uri::from_static("http://a.b:81/x"));
        assert_eq!(h[HOST], "a.b:81");
    }
}
