//! Rows to records, records to rows. Both modes store a record as one row `{id, version,
//! deleted, data}`: `version` is the record's exact version (RFC 3339 with nanoseconds, what
//! compare-and-set compares), `deleted` the soft-delete column, `data` the record as JSON (`null`
//! for a pure tombstone).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::client::BACKEND;
use crate::delta::{Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::op::PendingOp;
use crate::record::{Change, Record, Tombstone};

fn malformed(message: String) -> Error {
    Error::MalformedResponse {
        backend: BACKEND,
        message,
    }
}

/// A row's `id`, if it has one.
pub(crate) fn row_id(row: &Value) -> Option<&str> {
    row.get("id").and_then(Value::as_str)
}

/// A row's `(version, deleted)`.
pub(crate) fn row_state(row: &Value) -> Result<(Timestamp, bool)> {
    let id = row_id(row).unwrap_or_default();
    let version = row
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("record {id:?} has no version")))?;
    let version = version
        .parse()
        .map_err(|e| malformed(format!("record {id:?} has a bad version {version:?}: {e}")))?;
    let deleted = row
        .get("deleted")
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed(format!("record {id:?} has no `deleted` flag")))?;
    Ok((version, deleted))
}

/// The change a row holds: the record, or a tombstone when `data` is null.
pub(crate) fn decode_row<T: Record>(row: &Value) -> Result<Change<T>> {
    let id = row_id(row).ok_or_else(|| malformed("a row has no id".into()))?;
    let (version, _) = row_state(row)?;
    match row.get("data") {
        None | Some(Value::Null) => Ok(Change::Delete(Tombstone {
            id: id.to_owned(),
            deleted_at: version,
        })),
        Some(d) => {
            let r = T::deserialize(d)
                .map_err(|e| malformed(format!("record {id:?} does not decode: {e}")))?;
            if r.id() != id {
                return Err(malformed(format!(
                    "row {id:?} holds a record with id {:?}",
                    r.id()
                )));
            }
            Ok(Change::Upsert(r))
        }
    }
}

/// Adds a row to a page: its change, or quarantined with the reason (one bad row never blocks
/// the scope).
pub(crate) fn push_row<T: Record>(delta: &mut Delta<T>, row: &Value) {
    match decode_row::<T>(row) {
        Ok(Change::Upsert(r)) => delta.upserts.push(r),
        Ok(Change::Delete(t)) => delta.deletes.push(t),
        Err(e) => delta.quarantined.push(QuarantinedRow::new(
            row_id(row).unwrap_or_default(),
            row.to_string(),
            e.to_string(),
        )),
    }
}

/// The live record of a row read by id (`None` for a tombstone).
pub(crate) fn live<T: Record>(row: &Value) -> Result<Option<T>> {
    Ok(match decode_row::<T>(row)? {
        Change::Upsert(r) if r.deleted_at().is_none() => Some(r),
        _ => None,
    })
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// What an op writes: `{id, version, deleted, data}`, or the reason it cannot be stored
/// (answered [`PushOutcome::Rejected`](crate::op::PushOutcome::Rejected) without sending it).
pub(crate) fn op_row<T: Record>(
    op: &PendingOp<T>,
) -> std::result::Result<Map<String, Value>, String> {
    if op.id.is_empty() {
        return Err("record id must not be empty".into());
    }
    if op.id.contains('\0') || op.op_id.as_str().contains('\0') {
        return Err("ids must not contain NUL characters".into());
    }
    let change = op.change();
    let data = match change.record() {
        Some(r) => {
            if r.id() != op.id {
                return Err(format!(
                    "op targets record {:?} but its payload has id {:?}",
                    op.id,
                    r.id()
                ));
            }
            serde_json::to_value(r).map_err(|e| format!("record does not encode: {e}"))?
        }
        None => Value::Null,
    };
    if contains_nul(&data) {
        return Err("text containing NUL characters cannot be stored".into());
    }
    let Value::Object(row) = json!({
        "id": op.id,
        "version": change.version().to_string(),
        "deleted": change.is_delete(),
        "data": data,
    }) else {
        unreachable!("a JSON object literal")
    };
    Ok(row)
}

/// A PostgREST timestamp (`2026-01-01T00:00:00.123456+00:00`) as a fixed-width UTC string that
/// sorts like the instant (`2026-01-01T00:00:00.123456Z`), for cursors.
pub(crate) fn stamp(text: &str) -> Result<String> {
    let t: Timestamp = text
        .parse()
        .map_err(|e| malformed(format!("bad timestamp {text:?}: {e}")))?;
    Ok(fixed(t))
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, PostgreSQL's precision).
pub(crate) fn fixed(t: Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond().max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpKind;
    use crate::scope::SyncScope;
    use crate::testing::{TestRecord, ts};

    #[test]
    fn rows_and_ops() {
        let row = json!({"id": "a", "version": "2026-01-01T00:00:00.001Z", "deleted": false,
            "data": {"id": "a", "title": "t", "n": 1, "updated_at": "2026-01-01T00:00:00.001Z"}});
        assert_eq!(row_state(&row).unwrap(), (ts(1), false));
        assert!(matches!(decode_row::<TestRecord>(&row).unwrap(), Change::Upsert(r) if r.n == 1));
        let tomb = json!({"id": "a", "version": "2026-01-01T00:00:00.002Z", "deleted": true, "data": null});
        assert!(
            matches!(decode_row::<TestRecord>(&tomb).unwrap(), Change::Delete(t) if t.deleted_at == ts(2))
        );
        let mut d = Delta::<TestRecord>::empty(ts(0), None);
        push_row(
            &mut d,
            &json!({"id": "b", "version": "nope", "deleted": false, "data": {}}),
        );
        assert_eq!(d.quarantined.len(), 1);
        let scope = SyncScope::named("s").unwrap();
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "x\0", ts(0)),
        );
        assert!(op_row(&op).unwrap_err().contains("NUL"));
        let del = PendingOp::<TestRecord>::delete(scope, "a", ts(5));
        let r = op_row(&del).unwrap();
        assert_eq!(
            (r["deleted"].clone(), r["data"].clone()),
            (json!(true), Value::Null)
        );
    }

    #[test]
    fn stamps_sort() {
        assert_eq!(
            stamp("2026-12-01T23:13:45.03+00:00").unwrap(),
            "2026-12-01T23:13:45.030000Z"
        );
        assert_eq!(
            stamp("2026-12-01T23:13:45+01:00").unwrap(),
            "2026-12-01T22:13:45.000000Z"
        );
        assert!(stamp("x").is_err());
    }
}
