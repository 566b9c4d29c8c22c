//! What every handler shares: the error answer (`{"error":{"code","message"}}`), bearer-token
//! authentication, scope authorization, JSON body parsing and the request deadline.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Access, Principal, Server};
use crate::error::Error;
use crate::remote::protocol::{ErrorBody, ErrorDetail, codes};
use crate::scope::SyncScope;

/// An error answer: status plus `{"error":{"code","message"}}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Maps a storage error. Details of unexpected failures are logged, not sent.
    pub(super) fn from_storage(e: Error) -> Self {
        match e {
            Error::InvalidScope(m) => Self::new(StatusCode::BAD_REQUEST, codes::INVALID_SCOPE, m),
            Error::InvalidInput(m) | Error::InvalidQuery(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, codes::INVALID_REQUEST, m)
            }
            Error::RateLimited { retry_after, .. } => ApiError {
                retry_after: retry_after.map(|d| d.as_secs().max(1)),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::RATE_LIMITED,
                    "slow down",
                )
            },
            e if e.is_retryable() => {
                tracing::warn!(error = %e, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "storage is unavailable, retry later",
                )
            }
            e => {
                tracing::error!(error = %e, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub(super) type ApiResult<T> = Result<axum::Json<T>, ApiError>;

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(super) fn authenticate(server: &Server, headers: &HeaderMap) -> Result<Principal, ApiError> {
    server
        .authorizer
        .authenticate(bearer(headers))
        .ok_or_else(|| {
            tracing::info!("refused: missing or unknown bearer token");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                "missing or invalid bearer token",
            )
        })
}

pub(super) fn authorize(
    server: &Server,
    principal: &Principal,
    scope: &SyncScope,
    access: Access,
) -> Result<(), ApiError> {
    if server.authorizer.authorize(principal, scope, access) {
        Ok(())
    } else {
        tracing::info!(principal = %principal.name, %scope, ?access, "refused: scope not granted");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!(
                "this token may not {} scope {scope}",
                if access == Access::Read {
                    "read"
                } else {
                    "write"
                }
            ),
        ))
    }
}

/// Parses a JSON body, mapping every failure to a clear 4xx.
pub(super) fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                "request body is too large",
            )
        } else {
            ApiError::new(r.status(), codes::INVALID_JSON, r.body_text())
        }
    })?;
    // Parse to a Value first so a bad scope can be told apart from bad JSON.
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            format!("body is not JSON: {e}"),
        )
    })?;
    if let Some(scope) = value.get("scope") {
        serde_json::from_value::<SyncScope>(scope.clone()).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_SCOPE, e.to_string())
        })?;
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            format!("unexpected body: {e}"),
        )
    })
}

/// Answers 503 when a request takes longer than the configured timeout.
pub(super) async fn deadline(
    State(limit): State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::UNAVAILABLE,
                format!("the request took longer than {} ms", limit.as_millis()),
            )
            .into_response()
        }
    }
}
