//! Answers made by the router itself, all JSON: `{"error":{"code","message"}}` for errors.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use serde_json::{Value, json};

use crate::body::ProxyBody;

pub(crate) fn json(status: StatusCode, value: &Value) -> Response<ProxyBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_type(status, "application/json", Bytes::from(body))
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

pub(crate) fn with_type(
    status: StatusCode,
    ctype: &'static str,
    body: Bytes,
) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}
