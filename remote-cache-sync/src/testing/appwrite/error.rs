//! Appwrite's error answers: `{"message","code","type","version"}` with the HTTP status in
//! `code` (<https://appwrite.io/docs/advanced/platform/response-codes>; the types and statuses
//! are those of Appwrite's `app/config/errors.php`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The API version the stand-in answers as.
pub const VERSION: &str = "1.8.0";

/// An Appwrite error.
#[derive(Debug, Clone)]
pub struct AwError {
    /// HTTP status (and the body's `code`).
    pub status: u16,
    /// The stable error type, e.g. `document_not_found`.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// The stand-in's handler result.
pub type AwResult<T> = Result<T, AwError>;

impl AwError {
    /// An error of `kind` with `status`.
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        AwError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "general_bad_request", message)
    }

    pub(crate) fn query(message: impl Into<String>) -> Self {
        Self::new(
            400,
            "general_query_invalid",
            format!("Invalid query: {}", message.into()),
        )
    }

    pub(crate) fn structure(message: impl Into<String>) -> Self {
        Self::new(
            400,
            "document_invalid_structure",
            format!("Invalid document structure: {}", message.into()),
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            401,
            "user_unauthorized",
            "The current user is not authorized to perform the requested action.",
        )
    }

    pub(crate) fn scope(scope: &str) -> Self {
        Self::new(
            401,
            "general_unauthorized_scope",
            format!(
                "The current user or API key does not have the required scopes to access the requested resource ({scope})."
            ),
        )
    }

    pub(crate) fn not_found(kind: &'static str, what: &str, id: &str) -> Self {
        Self::new(
            404,
            kind,
            format!("{what} with the requested ID '{id}' could not be found."),
        )
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(500, "general_server_error", format!("Server Error: {e}"))
    }
}

impl From<rusqlite::Error> for AwError {
    fn from(e: rusqlite::Error) -> Self {
        AwError::internal(e)
    }
}

impl IntoResponse for AwError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "message": self.message,
            "code": self.status,
            "type": self.kind,
            "version": VERSION,
        });
        (status, Json(body)).into_response()
    }
}
