//! Reading our server's answers: error bodies, pull pages (rows that do not decode as `T` are
//! quarantined), push outcomes.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::{BACKEND, DIALECT};
use crate::delta::QuarantinedRow;
use crate::error::{Error, Result};
use crate::op::PushOutcome;
use crate::record::{Change, Record, Tombstone};
use crate::remote::client::status::ErrorDetail;
use crate::remote::protocol::{ErrorBody, PullResponse, PushResponse, WireChange, WireOutcome};

/// The error a non-success answer means: the shared status table
/// ([`client::status`](crate::remote::client::status)), reading our protocol's error body
/// `{"error":{"code","message"}}`.
pub(super) fn status_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    DIALECT.error(status, headers, body)
}

/// The status table's hook: the code and message of our protocol's error body.
pub(super) fn error_detail(body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ErrorDetail {
            code: Some(b.error.code),
            message: Some(b.error.message),
        },
        Err(_) => ErrorDetail::default(),
    }
}

/// Decodes a pull answer. A row that does not decode as `T` is quarantined, not fatal: the
/// whole page is first decoded as `T` (the fast path), and only when that fails row by row.
pub(super) fn decode_pull<T: Record>(
    bytes: &[u8],
) -> Result<(PullResponse<T>, Vec<QuarantinedRow>)> {
    if let Ok(mut resp) = serde_json::from_slice::<PullResponse<T>>(bytes) {
        let quarantined = std::mem::take(&mut resp.quarantined);
        return Ok((resp, quarantined));
    }
    let raw: PullResponse<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let mut upserts = Vec::with_capacity(raw.upserts.len());
    let mut quarantined = raw.quarantined;
    for row in raw.upserts {
        match T::deserialize(&row) {
            Ok(r) => upserts.push(r),
            Err(e) => quarantined.push(quarantine_row(&row, &e)),
        }
    }
    Ok((
        PullResponse {
            upserts,
            deletes: raw.deletes,
            cursor: raw.cursor,
            has_more: raw.has_more,
            server_time: raw.server_time,
            quarantined: Vec::new(),
        },
        quarantined,
    ))
}

pub(super) fn quarantine_row(row: &serde_json::Value, e: &serde_json::Error) -> QuarantinedRow {
    let id = row
        .get("id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    QuarantinedRow::new(id, row.to_string(), format!("does not decode: {e}"))
}

/// Decodes a push answer. A conflict against a remote version that does not decode as `T` is
/// a verdict on that one op: it becomes `Rejected` with the reason (the other ops stand).
pub(super) fn decode_push<T: Record>(bytes: &[u8]) -> Result<Vec<PushOutcome<T>>> {
    let convert = |r: WireOutcome<T>| match r {
        WireOutcome::Applied { version } => PushOutcome::Applied { version },
        WireOutcome::Conflict { current } => PushOutcome::Conflict {
            current: current.map(Into::into),
        },
        WireOutcome::Rejected { reason } => PushOutcome::Rejected { reason },
    };
    if let Ok(resp) = serde_json::from_slice::<PushResponse<T>>(bytes) {
        return Ok(resp.results.into_iter().map(convert).collect());
    }
    let raw: PushResponse<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    Ok(raw
        .results
        .into_iter()
        .map(|r| match r {
            WireOutcome::Applied { version } => PushOutcome::Applied { version },
            WireOutcome::Rejected { reason } => PushOutcome::Rejected { reason },
            WireOutcome::Conflict { current: None } => PushOutcome::Conflict { current: None },
            WireOutcome::Conflict {
                current: Some(WireChange::Delete { id, deleted_at }),
            } => PushOutcome::Conflict {
                current: Some(Change::Delete(Tombstone { id, deleted_at })),
            },
            WireOutcome::Conflict {
                current: Some(WireChange::Upsert { record }),
            } => match T::deserialize(&record) {
                Ok(r) => PushOutcome::Conflict {
                    current: Some(Change::Upsert(r)),
                },
                Err(e) => PushOutcome::undecodable_current(e),
            },
        })
        .collect())
}

pub(super) fn decode_json<R: DeserializeOwned>(bytes: &[u8]) -> Result<R> {
    serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))
}

pub(super) fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedResponse {
        backend: BACKEND,
        message: message.into(),
    }
}
