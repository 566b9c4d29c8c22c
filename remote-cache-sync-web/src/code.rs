//! The stable `code` of the errors the JavaScript API rejects with.

use remote_cache_sync::{Error, StorageErrorKind};

/// The stable, machine-readable code of an error, as the JavaScript API's rejections carry it in
/// `{ code, message, retryable }`: `not_found`, `conflict`, `unauthorized`, `rate_limited`,
/// `unavailable`, `rejected`, `refused`, `malformed_response`, `invalid_scope`,
/// `invalid_query`, `invalid_input`, `stale_version`, `codec`, `storage_locked` (another tab or
/// worker holds the database), `storage_unavailable` (no OPFS here), `storage_full`,
/// `wrong_key` (the key does not open this encrypted cache, or the cache is not encrypted),
/// `key_required` (the cache is encrypted and no key was given), `storage` (other storage
/// failures), `cancelled` or `other`.
pub fn error_code(error: &Error) -> &'static str {
    match error {
        Error::NotFound { .. } => "not_found",
        Error::Conflict { .. } => "conflict",
        Error::Unauthorized { .. } => "unauthorized",
        Error::RateLimited { .. } => "rate_limited",
        Error::Unavailable { .. } => "unavailable",
        Error::Rejected { .. } => "rejected",
        Error::Refused { .. } => "refused",
        Error::MalformedResponse { .. } => "malformed_response",
        Error::InvalidScope(_) => "invalid_scope",
        Error::InvalidQuery(_) => "invalid_query",
        Error::InvalidInput(_) => "invalid_input",
        Error::StaleVersion { .. } => "stale_version",
        Error::Codec(_) => "codec",
        Error::Storage { kind, .. } => match kind {
            StorageErrorKind::Locked => "storage_locked",
            StorageErrorKind::Unavailable => "storage_unavailable",
            StorageErrorKind::Full => "storage_full",
            StorageErrorKind::WrongKey => "wrong_key",
            StorageErrorKind::KeyRequired => "key_required",
            _ => "storage",
        },
        Error::Cancelled => "cancelled",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            error_code(&Error::InvalidInput("x".into())),
            "invalid_input"
        );
        assert_eq!(error_code(&Error::Cancelled), "cancelled");
        let locked = Error::Storage {
            kind: StorageErrorKind::Locked,
            message: "in use".into(),
        };
        assert_eq!(error_code(&locked), "storage_locked");
        let unavailable = Error::Storage {
            kind: StorageErrorKind::Unavailable,
            message: "no OPFS".into(),
        };
        assert_eq!(error_code(&unavailable), "storage_unavailable");
        for (kind, code) in [
            (StorageErrorKind::WrongKey, "wrong_key"),
            (StorageErrorKind::KeyRequired, "key_required"),
        ] {
            let e = Error::Storage {
                kind,
                message: "encrypted".into(),
            };
            assert_eq!(error_code(&e), code);
        }
    }
}
