//! Driver errors → [`Error`], with the password scrubbed from every message.

use std::fmt;

use deadpool_postgres::PoolError;

use super::BACKEND;
use crate::error::Error;

/// Turns driver errors into the crate's [`Error`], scrubbing the password from every message.
#[derive(Clone)]
pub(super) struct ErrorMapper {
    pub(super) secret: Option<String>,
}

impl fmt::Debug for ErrorMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorMapper").finish_non_exhaustive()
    }
}

impl ErrorMapper {
    pub(super) fn scrub(&self, message: impl Into<String>) -> String {
        let message = message.into();
        match &self.secret {
            Some(s) if !s.is_empty() => message.replace(s.as_str(), "***"),
            _ => message,
        }
    }

    pub(super) fn pg(&self, e: &tokio_postgres::Error) -> Error {
        let unavailable = |message: String| Error::Unavailable {
            backend: BACKEND,
            message: self.scrub(message),
            source: None,
        };
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let message = match db.detail() {
                Some(d) => format!("{} ({code}): {}: {d}", db.severity(), db.message()),
                None => format!("{} ({code}): {}", db.severity(), db.message()),
            };
            let class = &code[..2];
            return match class {
                "28" => Error::Unauthorized {
                    backend: BACKEND,
                    message: self.scrub(message),
                },
                "08" | "53" | "57" | "58" | "XX" => unavailable(message),
                "40" | "55" if matches!(code, "40001" | "40P01" | "55P03" | "55006") => {
                    unavailable(message)
                }
                "42" if code == "42501" => Error::Rejected {
                    backend: BACKEND,
                    status: None,
                    message: self.scrub(format!("permission denied: {message}")),
                },
                _ => Error::Rejected {
                    backend: BACKEND,
                    status: None,
                    message: self.scrub(message),
                },
            };
        }
        // Client-side errors: the Display text names the kind; the causes (io, TLS) follow.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if text.starts_with("error performing TLS handshake") && text.contains("certificate") {
            Error::Rejected {
                backend: BACKEND,
                status: None,
                message: self.scrub(format!(
                    "the server's TLS certificate is not trusted: {text}"
                )),
            }
        } else if text.starts_with("authentication error") {
            Error::Unauthorized {
                backend: BACKEND,
                message: self.scrub(text),
            }
        } else if text.starts_with("invalid connection string")
            || text.starts_with("invalid configuration")
        {
            Error::InvalidInput(self.scrub(format!("postgres: {text}")))
        } else if text.starts_with("error serializing") {
            Error::Codec(self.scrub(format!("postgres: {text}")))
        } else if text.starts_with("error deserializing")
            || text.starts_with("invalid column")
            || text.starts_with("query returned an unexpected")
        {
            Error::MalformedResponse {
                backend: BACKEND,
                message: self.scrub(text),
            }
        } else {
            // io, closed connection, timeout, TLS, protocol errors: transient.
            unavailable(text)
        }
    }

    pub(super) fn pool(&self, e: PoolError) -> Error {
        match e {
            PoolError::Backend(e) => self.pg(&e),
            PoolError::PostCreateHook(h) => Error::Unavailable {
                backend: BACKEND,
                message: self.scrub(h.to_string()),
                source: None,
            },
            other => Error::Unavailable {
                backend: BACKEND,
                message: self.scrub(format!("connection pool: {other}")),
                source: None,
            },
        }
    }
}
