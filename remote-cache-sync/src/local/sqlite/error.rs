//! Mapping rusqlite failures to [`Error::Storage`] kinds, and timestamp conversions.

use jiff::Timestamp;
use rusqlite::ErrorCode;

use crate::error::{Error, StorageErrorKind};

/// Classifies a rusqlite error so callers can react (retry on `Locked`, alert on `Corrupt`, ...).
pub(crate) fn map_err(e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageErrorKind::Locked,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StorageErrorKind::Corrupt,
        Some(ErrorCode::DiskFull) => StorageErrorKind::Full,
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StorageErrorKind::ReadOnly,
        _ => match e {
            // A stored value of the wrong type: the file was not written by this store.
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StorageErrorKind::Corrupt,
            _ => StorageErrorKind::Other,
        },
    };
    Error::Storage {
        kind,
        message: e.to_string(),
    }
}

/// Whether `e` is a UNIQUE/PRIMARY KEY violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error().is_some_and(|f| {
        f.code == ErrorCode::ConstraintViolation
            && matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
    })
}

/// A corrupt-data error for values this store cannot have written.
pub(crate) fn corrupt(message: impl Into<String>) -> Error {
    Error::Storage {
        kind: StorageErrorKind::Corrupt,
        message: message.into(),
    }
}

/// Timestamps are stored as nanoseconds since the Unix epoch in an `INTEGER` column: exact
/// (remotes compare base versions for equality) and ordered. The representable range is the
/// years 1677–2262; anything outside is refused as invalid input.
pub(crate) fn ts_to_sql(t: Timestamp) -> Result<i64, Error> {
    i64::try_from(t.as_nanosecond()).map_err(|_| {
        Error::InvalidInput(format!(
            "timestamp {t} is outside the range the SQLite store can hold (years 1677-2262)"
        ))
    })
}

/// Inverse of [`ts_to_sql`].
pub(crate) fn ts_from_sql(ns: i64) -> Result<Timestamp, Error> {
    Timestamp::from_nanosecond(i128::from(ns))
        .map_err(|e| corrupt(format!("bad stored timestamp: {e}")))
}
