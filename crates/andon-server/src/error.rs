//! The API's one error boundary.
//!
//! Every handler returns [`ApiError`]; it becomes a JSON body
//! `{"error": {"code", "message"}}` with a 4xx/5xx status. The message is what
//! the caller may see; internal causes are logged here and replaced by a
//! generic sentence so no path, SQL or secret leaks into an answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A flow rule said no (`andon_flow::Refusal`): its own code and status.
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("too many failed authentications; retry later")]
    TooManyRequests,
    /// The store cannot take a write now (disk full: 507, locked: 503); the
    /// store's message tells the operator what to do and holds no secret.
    #[error("{message}")]
    Unavailable {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Refused { status, code, .. } | ApiError::Unavailable { status, code, .. } => {
                (*status, *code)
            }
            ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<andon_store::StoreError> for ApiError {
    fn from(e: andon_store::StoreError) -> Self {
        let (status, code) = match e {
            andon_store::StoreError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            andon_store::StoreError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "store_busy"),
            _ => return ApiError::Internal(format!("store: {e}")),
        };
        tracing::error!(error = %e, "the store refused a write");
        ApiError::Unavailable {
            status,
            code,
            message: e.to_string(),
        }
    }
}

/// Builds the JSON error body the contract fixes.
pub(crate) fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error answering a request");
        }
        error_body(status, code, &self.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
