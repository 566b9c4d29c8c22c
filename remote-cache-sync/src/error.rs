//! The one error type every store, adapter and the orchestrator return.

use std::sync::Arc;
use std::time::Duration;

/// A specialised `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with local storage, so callers can react without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Another connection or process holds a lock; retrying later may succeed.
    Locked,
    /// The database file is damaged or is not a database.
    Corrupt,
    /// The disk (or the configured page limit) is full.
    Full,
    /// The file or directory cannot be written.
    ReadOnly,
    /// The schema on disk is newer than this build understands.
    SchemaTooNew,
    /// The file is a database this crate did not write, e.g. another application's (its
    /// schema version, SQLite's `user_version`, is none of ours). It is left untouched: check
    /// the path rather than deleting the file.
    Foreign,
    /// The cache file is encrypted and no key was given (`SqliteLocalStoreBuilder::key`,
    /// feature `encryption`). The file is untouched.
    KeyRequired,
    /// The key given does not open the cache file: a wrong key, or a key for a file that is not
    /// encrypted. The file is untouched.
    WrongKey,
    /// The storage itself is not available here, e.g. OPFS outside a dedicated worker or in a
    /// browser that does not offer it. Retrying does not help; nothing falls back to memory.
    Unavailable,
    /// Any other storage failure.
    Other,
}

/// Every failure the crate reports. Variants carry meaning, not the backend's type, so generic
/// code can branch on them; the `backend` field names the adapter ("pocketbase", "http", ...).
///
/// Messages never contain credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record, scope or resource does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// The remote holds a different version than the write expected.
    #[error("conflict on record {id}")]
    Conflict {
        /// Id of the record in conflict.
        id: String,
    },
    /// The credentials are missing, invalid or expired. Pauses the queue until they are refreshed.
    #[error("{backend}: unauthorized: {message}")]
    Unauthorized {
        /// Adapter name.
        backend: &'static str,
        /// Human-readable reason (never the credential itself).
        message: String,
    },
    /// The remote asked us to slow down.
    #[error("{backend}: rate limited")]
    RateLimited {
        /// Adapter name.
        backend: &'static str,
        /// Server-provided delay, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The remote could not be reached or failed transiently (network, timeout, 5xx).
    #[error("{backend}: unavailable: {message}")]
    Unavailable {
        /// Adapter name.
        backend: &'static str,
        /// What failed, with the causes' messages (e.g. "connection refused").
        message: String,
        /// The underlying error, when there is one (a transport error), for
        /// [`std::error::Error::source`] chains.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The remote permanently refused the request (validation, permission); retrying as-is will
    /// fail again.
    #[error("{backend}: rejected ({status:?}): {message}")]
    Rejected {
        /// Adapter name.
        backend: &'static str,
        /// HTTP status or backend code, when there is one.
        status: Option<u16>,
        /// The remote's reason, suitable for showing to a user.
        message: String,
    },
    /// The remote refused the request itself, not any one op in it: no permission for the scope
    /// (403), an endpoint or collection that does not exist (404), a feature the server has
    /// disabled. Such a refusal is not a verdict on any op: the scope pauses with this reason
    /// (see [`Orchestrator::pause`](crate::Orchestrator::pause)), queued ops stay pending with
    /// their attempt counts untouched, and the first sync after the cause is fixed pushes them.
    #[error("{backend}: refused{}: {message}", status_code(*status, code.as_deref()))]
    Refused {
        /// Adapter name.
        backend: &'static str,
        /// HTTP status, when there is one.
        status: Option<u16>,
        /// The remote's stable error code (our protocol's `error.code`), when it sent one.
        code: Option<String>,
        /// The remote's reason.
        message: String,
    },
    /// The remote answered with a body we could not understand.
    #[error("{backend}: malformed response: {message}")]
    MalformedResponse {
        /// Adapter name.
        backend: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A [`SyncScope`](crate::SyncScope) failed validation.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// A [`QuerySpec`](crate::QuerySpec) failed validation.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Any other invalid argument (bad record, bad configuration, bad URL).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The remote cannot express part of a request (a query operator it has no equivalent
    /// for): it answers nothing rather than a wrong answer. Not retryable; the
    /// [`Orchestrator`](crate::Orchestrator) answers such a read by syncing the scope and
    /// querying the cache instead.
    #[error("{backend}: unsupported: {message}")]
    Unsupported {
        /// Adapter name.
        backend: &'static str,
        /// What cannot be expressed (names the operator or option).
        message: String,
    },
    /// A local write does not move past the version the record already has, and cannot be
    /// restamped ([`Record::with_updated_at`](crate::Record::with_updated_at) failed). Versions
    /// are the compare-and-set token: two different contents must never share one.
    #[error("stale version for record {id}: {version} does not move past {current}")]
    StaleVersion {
        /// The record.
        id: String,
        /// The write's version.
        version: jiff::Timestamp,
        /// The version the record already has locally.
        current: jiff::Timestamp,
    },
    /// A record could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The local store failed.
    #[error("storage ({kind:?}): {message}")]
    Storage {
        /// Classification of the failure.
        kind: StorageErrorKind,
        /// Details from the storage engine.
        message: String,
    },
    /// The operation was cancelled (shutdown, dropped orchestrator).
    #[error("cancelled")]
    Cancelled,
    /// Anything else, with its source.
    #[error("{backend}: {source}")]
    Other {
        /// Adapter or component name.
        backend: &'static str,
        /// The underlying error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether retrying the same request later may succeed (network, 5xx, 429, a locked file).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Unavailable { .. }
                | Error::Storage {
                    kind: StorageErrorKind::Locked,
                    ..
                }
        )
    }

    /// Whether the failure is about credentials (the queue pauses instead of burning attempts).
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Unauthorized { .. })
    }

    /// Whether the failure refuses the request as a whole (credentials, permission, a missing
    /// endpoint): the sync of the scope pauses with a visible reason and no op is charged.
    pub fn pauses_scope(&self) -> bool {
        matches!(
            self,
            Error::Unauthorized { .. } | Error::Refused { .. } | Error::NotFound { .. }
        )
    }

    /// The server's requested delay for [`Error::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Shorthand for [`Error::Storage`] with [`StorageErrorKind::Other`].
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            kind: StorageErrorKind::Other,
            message: message.into(),
        }
    }
}

fn status_code(status: Option<u16>, code: Option<&str>) -> String {
    match (status, code) {
        (Some(s), Some(c)) => format!(" ({s} {c})"),
        (Some(s), None) => format!(" ({s})"),
        (None, Some(c)) => format!(" ({c})"),
        (None, None) => String::new(),
    }
}

/// `e`'s message followed by each of its sources' (`: `-separated), skipping a source whose
/// text the message already holds, so the cause a wrapper hides ("error sending request")
/// shows ("... tcp connect error: Connection refused (os error 111)").
#[cfg_attr(
    not(any(feature = "http", feature = "pocketbase", test)),
    allow(dead_code)
)]
pub(crate) fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Codec(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<Box<Wrapper>>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|w| w as _)
        }
    }

    /// Every variant once: the message a user sees, with no doubled words and its cause.
    #[test]
    fn every_variant_displays_its_cause_once() {
        let at = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        let cases = [
            (
                Error::NotFound {
                    what: "scope notes".into(),
                },
                "not found: scope notes",
            ),
            (Error::Conflict { id: "n1".into() }, "conflict on record n1"),
            (
                Error::Unauthorized {
                    backend: "http",
                    message: "token expired".into(),
                },
                "http: unauthorized: token expired",
            ),
            (
                Error::RateLimited {
                    backend: "http",
                    retry_after: Some(Duration::from_secs(2)),
                },
                "http: rate limited",
            ),
            (
                Error::Unavailable {
                    backend: "http",
                    message: "cannot connect: connection refused".into(),
                    source: None,
                },
                "http: unavailable: cannot connect: connection refused",
            ),
            (
                Error::Rejected {
                    backend: "http",
                    status: Some(422),
                    message: "bad title".into(),
                },
                "http: rejected (Some(422)): bad title",
            ),
            (
                Error::Refused {
                    backend: "http",
                    status: Some(403),
                    code: Some("forbidden".into()),
                    message: "no grant for scope".into(),
                },
                "http: refused (403 forbidden): no grant for scope",
            ),
            (
                Error::Refused {
                    backend: "pocketbase",
                    status: None,
                    code: None,
                    message: "off".into(),
                },
                "pocketbase: refused: off",
            ),
            (
                Error::MalformedResponse {
                    backend: "http",
                    message: "not JSON".into(),
                },
                "http: malformed response: not JSON",
            ),
            (
                Error::InvalidScope("empty name".into()),
                "invalid scope: empty name",
            ),
            (
                Error::InvalidQuery("bad field".into()),
                "invalid query: bad field",
            ),
            (
                Error::InvalidInput("bad url".into()),
                "invalid input: bad url",
            ),
            (
                Error::Unsupported {
                    backend: "pocketbase",
                    message: "filter `has`".into(),
                },
                "pocketbase: unsupported: filter `has`",
            ),
            (
                Error::StaleVersion {
                    id: "n1".into(),
                    version: at(1),
                    current: at(2),
                },
                "stale version for record n1: 1970-01-01T00:00:01Z does not move past \
                 1970-01-01T00:00:02Z",
            ),
            (
                Error::Codec("missing field id".into()),
                "codec: missing field id",
            ),
            (
                Error::Storage {
                    kind: StorageErrorKind::Foreign,
                    message: "not ours".into(),
                },
                "storage (Foreign): not ours",
            ),
            (Error::Cancelled, "cancelled"),
            (
                Error::Other {
                    backend: "postgres",
                    source: Arc::new(Wrapper("pool closed", None)),
                },
                "postgres: pool closed",
            ),
        ];
        for (e, want) in &cases {
            // No wildcard: a new variant does not compile until it is listed above.
            match e {
                Error::NotFound { .. }
                | Error::Conflict { .. }
                | Error::Unauthorized { .. }
                | Error::RateLimited { .. }
                | Error::Unavailable { .. }
                | Error::Rejected { .. }
                | Error::Refused { .. }
                | Error::MalformedResponse { .. }
                | Error::InvalidScope(_)
                | Error::InvalidQuery(_)
                | Error::InvalidInput(_)
                | Error::Unsupported { .. }
                | Error::StaleVersion { .. }
                | Error::Codec(_)
                | Error::Storage { .. }
                | Error::Cancelled
                | Error::Other { .. } => {}
            }
            assert_eq!(e.to_string(), *want, "{e:?}");
        }
        let listed: std::collections::HashSet<_> = cases
            .iter()
            .map(|(e, _)| std::mem::discriminant(e))
            .collect();
        assert_eq!(listed.len(), 17, "every variant once");
    }

    #[test]
    fn with_sources_keeps_the_cause_and_skips_repeats() {
        let e = Wrapper(
            "error sending request",
            Some(Box::new(Wrapper(
                "client error (Connect)",
                Some(Box::new(Wrapper("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            with_sources(&e),
            "error sending request: client error (Connect): Connection refused (os error 111)"
        );
        let repeat = Wrapper("timed out", Some(Box::new(Wrapper("timed out", None))));
        assert_eq!(with_sources(&repeat), "timed out");
    }
}
