//! The request path: admit, route, choose a version, forward, measure, answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST, SET_COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::compiled::Version;
use crate::forward::{self, Payload};
use crate::mirror;
use crate::reply;
use crate::select;
use crate::state::{Inflight, Worker};

/// Response header naming the version (role name) that answered.
static SERVED_BY: HeaderName = HeaderName::from_static("x-andon-served-by");

/// Largest request body buffered to be copied to a mirror; larger ones are not mirrored.
const MIRROR_BODY_LIMIT: u64 = 1 << 20;

pub(crate) async fn handle(
    worker: Arc<Worker>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(proxy(worker, remote, req).await)
}

/// Host of the request: the URI's authority (HTTP/2, absolute-form) or the `Host` header.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    req.uri()
        .host()
        .or_else(|| req.headers().get(HOST).and_then(|v| v.to_str().ok()))
}

async fn proxy(
    worker: Arc<Worker>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let shared = &worker.shared;
    let Some(mut guard) = Inflight::admit(&worker) else {
        shared
            .registry
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight",
        );
    };
    let service = {
        let table = shared.table.load();
        match table.route(request_host(&req), req.uri().path()) {
            Some(s) => s.clone(),
            None => {
                shared
                    .registry
                    .unrouted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return reply::error(
                    StatusCode::NOT_FOUND,
                    "no_route",
                    "no route matches this host and path",
                );
            }
        }
    };
    let choice = select::choose(&service, req.headers());
    let Some(version) = choice.version else {
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_version",
            "no version of this service takes traffic",
        );
    };
    guard.attach(version.clone());
    let mirror_to = service
        .mirror
        .as_ref()
        .filter(|m| !Arc::ptr_eq(&m.to, &version) && rand::random::<f64>() * 100.0 < m.percent)
        .map(|m| m.to.clone());

    let (mut parts, body) = req.into_parts();
    forward::prepare_headers(&mut parts.headers, remote, &parts.uri);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let payload = if body.is_end_stream() {
        Payload::Bytes(bytes::Bytes::new())
    } else if mirror_to.is_some()
        && content_length(&parts.headers).is_some_and(|n| n <= MIRROR_BODY_LIMIT)
    {
        match Limited::new(body, MIRROR_BODY_LIMIT as usize)
            .collect()
            .await
        {
            Ok(c) => Payload::Bytes(c.to_bytes()),
            Err(_) => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "could not read the request body",
                );
            }
        }
    } else {
        Payload::Stream(body)
    };
    let live = match (mirror_to, &payload) {
        (Some(to), Payload::Bytes(b)) => {
            mirror::spawn(&worker, to, &parts.method, &path, &parts.headers, b.clone())
        }
        _ => None,
    };

    let start = Instant::now();
    let sent = tokio::time::timeout(
        shared.cfg.upstream_timeout,
        forward::send(
            &worker.client,
            &version,
            parts.method,
            path,
            parts.headers,
            payload,
        ),
    )
    .await;
    let elapsed = start.elapsed();
    let outcome = match sent {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => {
            tracing::debug!(version = %version.name, error = %e, "upstream failed");
            Err((
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the version could not be reached",
            ))
        }
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the version did not answer in time",
        )),
    };
    let status = match &outcome {
        Ok(r) => r.status(),
        Err((s, _, _)) => *s,
    };
    version.stats.record(status.as_u16(), elapsed);
    if let Some(tx) = live {
        let _ = tx.send((status.as_u16(), elapsed));
    }
    let mut resp = match outcome {
        Ok(resp) => {
            let (mut rparts, body) = resp.into_parts();
            forward::strip_hop_by_hop(&mut rparts.headers);
            Response::from_parts(rparts, ProxyBody::Upstream { body, guard })
        }
        Err((s, code, msg)) => reply::error(s, code, msg),
    };
    decorate(&mut resp, &version, choice.set_cookie);
    resp
}

fn decorate(resp: &mut Response<ProxyBody>, version: &Version, cookie: Option<http::HeaderValue>) {
    let h = resp.headers_mut();
    h.insert(SERVED_BY.clone(), version.served_by.clone());
    if let Some(c) = cookie {
        h.append(SET_COOKIE, c);
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
