//! Errors of `POST /v1/query` mapped to the typed errors of
//! [`RemoteStore::query`](crate::RemoteStore::query).

use crate::error::{Error, Result};
use crate::remote::protocol;

/// Maps a failed `/v1/query` to the typed errors of [`RemoteStore::query`].
pub(super) fn query_error<T>(e: Error) -> Result<Option<T>> {
    use protocol::codes;
    match e {
        Error::Refused {
            status: Some(404),
            code: Some(code),
            ..
        } if code == codes::NOT_FOUND => Ok(None),
        Error::Rejected {
            backend,
            status: Some(422),
            message,
        } => {
            let strip = |code: &str| {
                message
                    .strip_prefix(code)?
                    .strip_prefix(": ")
                    .map(str::to_owned)
            };
            if let Some(m) = strip(codes::INVALID_QUERY) {
                Err(Error::InvalidQuery(m))
            } else if let Some(m) = strip(codes::UNSUPPORTED_QUERY) {
                Err(Error::Unsupported {
                    backend,
                    message: m,
                })
            } else {
                Err(Error::Rejected {
                    backend,
                    status: Some(422),
                    message,
                })
            }
        }
        e => Err(e),
    }
}
