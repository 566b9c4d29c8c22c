//! Rows to records, records to rows. Both modes store a record as one row `{id, version,
//! deleted, data}`: `version` is the record's exact version (RFC 3339 with nanoseconds, what
//! compare-and-set compares), `deleted` the soft-delete column, `data` the record as JSON (`null`
//! for a pure tombstone).

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
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

/// A row's fields, however its JSON was parsed.
struct Fields<'a> {
    id: Option<&'a str>,
    version: Option<&'a str>,
    deleted: Option<bool>,
    data: Data<'a>,
}

/// A row's `data`.
enum Data<'a> {
    /// Absent or null: a pure tombstone.
    None,
    /// Parsed into a tree.
    Tree(&'a Value),
    /// Still JSON text, decoded straight into the record.
    Raw(&'a RawValue),
}

/// The change a row holds: the record, or a tombstone when `data` is null.
fn change<T: Record>(f: Fields<'_>) -> Result<Change<T>> {
    let id = f.id.ok_or_else(|| malformed("a row has no id".into()))?;
    let version = f
        .version
        .ok_or_else(|| malformed(format!("record {id:?} has no version")))?;
    let version: Timestamp = version
        .parse()
        .map_err(|e| malformed(format!("record {id:?} has a bad version {version:?}: {e}")))?;
    if f.deleted.is_none() {
        return Err(malformed(format!("record {id:?} has no `deleted` flag")));
    }
    let decoded = match f.data {
        Data::None => {
            return Ok(Change::Delete(Tombstone {
                id: id.to_owned(),
                deleted_at: version,
            }));
        }
        Data::Tree(d) => T::deserialize(d),
        Data::Raw(d) => serde_json::from_str::<T>(d.get()),
    };
    let r = decoded.map_err(|e| malformed(format!("record {id:?} does not decode: {e}")))?;
    if r.id() != id {
        return Err(malformed(format!(
            "row {id:?} holds a record with id {:?}",
            r.id()
        )));
    }
    Ok(Change::Upsert(r))
}

/// The change a row holds: the record, or a tombstone when `data` is null.
pub(crate) fn decode_row<T: Record>(row: &Value) -> Result<Change<T>> {
    change(Fields {
        id: row_id(row),
        version: row.get("version").and_then(Value::as_str),
        deleted: row.get("deleted").and_then(Value::as_bool),
        data: match row.get("data") {
            None | Some(Value::Null) => Data::None,
            Some(d) => Data::Tree(d),
        },
    })
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

/// A row left as JSON text, its `data` never built into a tree (`rcs_pull` pages: half of a
/// page's decode time went to the tree). The other fields are read as any JSON value, as
/// [`push_row`] reads them: one of the wrong type quarantines the row, never fails the page.
#[derive(Debug, Deserialize)]
pub(crate) struct RawRow<'a> {
    seq: Option<Value>,
    id: Option<Value>,
    version: Option<Value>,
    deleted: Option<Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl<'a> RawRow<'a> {
    /// Parses one row's text.
    pub(crate) fn parse(text: &'a str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| malformed(format!("a row does not parse: {e}")))
    }

    /// The feed position (`rcs_pull` rows).
    pub(crate) fn seq(&self) -> Option<i64> {
        self.seq.as_ref().and_then(Value::as_i64)
    }

    fn id(&self) -> Option<&str> {
        self.id.as_ref().and_then(Value::as_str)
    }

    /// Adds the row to a page, as [`push_row`] does; `text` is the row's JSON.
    pub(crate) fn push_to<T: Record>(&self, delta: &mut Delta<T>, text: &str) {
        let fields = Fields {
            id: self.id(),
            version: self.version.as_ref().and_then(Value::as_str),
            deleted: self.deleted.as_ref().and_then(Value::as_bool),
            data: match self.data {
                Some(d) if d.get() != "null" => Data::Raw(d),
                _ => Data::None,
            },
        };
        match change::<T>(fields) {
            Ok(Change::Upsert(r)) => delta.upserts.push(r),
            Ok(Change::Delete(t)) => delta.deletes.push(t),
            Err(e) => delta.quarantined.push(QuarantinedRow::new(
                self.id().unwrap_or_default(),
                text.to_owned(),
                e.to_string(),
            )),
        }
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

    /// Raw rows (`rcs_pull` pages) decode and quarantine exactly as parsed rows do.
    #[test]
    fn raw_rows_decode_like_parsed_rows() {
        let rows = [
            r#"{"seq": 1, "id": "a", "version": "2026-01-01T00:00:00.001Z", "deleted": false,
               "data": {"id": "a", "title": "t\u00e9", "n": 1, "updated_at": "2026-01-01T00:00:00.001Z"}}"#,
            r#"{"seq": 2, "id": "b", "version": "2026-01-01T00:00:00.002Z", "deleted": true, "data": null}"#,
            r#"{"seq": 3, "id": "c", "version": "2026-01-01T00:00:00.003Z", "deleted": true}"#,
            r#"{"seq": 4, "id": "d", "version": "nope", "deleted": false, "data": {}}"#,
            r#"{"seq": 5, "id": "e", "version": "2026-01-01T00:00:00.005Z", "data": null}"#,
            r#"{"seq": 6, "id": "f", "version": "2026-01-01T00:00:00.006Z", "deleted": false,
               "data": {"id": "other", "title": "t", "n": 1, "updated_at": "2026-01-01T00:00:00.006Z"}}"#,
            r#"{"seq": 7, "id": "g", "version": "2026-01-01T00:00:00.007Z", "deleted": false,
               "data": {"id": "g", "n": "not a number"}}"#,
            // Fields of the wrong type quarantine the row; they never fail the page.
            r#"{"seq": 8, "id": "h", "version": 5, "deleted": false, "data": {}}"#,
            r#"{"seq": 9, "id": "i", "version": "2026-01-01T00:00:00.009Z", "deleted": "no", "data": null}"#,
            r#"{"seq": 10, "id": 10, "version": "2026-01-01T00:00:00.010Z", "deleted": false, "data": null}"#,
        ];
        let mut raw = Delta::<TestRecord>::empty(ts(0), None);
        let mut parsed = Delta::<TestRecord>::empty(ts(0), None);
        for text in rows {
            let row = RawRow::parse(text).unwrap();
            assert!(row.seq().is_some());
            row.push_to(&mut raw, text);
            push_row(&mut parsed, &serde_json::from_str(text).unwrap());
        }
        assert_eq!(raw.upserts, parsed.upserts);
        assert_eq!(raw.upserts.len(), 1);
        assert_eq!(raw.upserts[0].title, "té");
        assert_eq!(raw.deletes, parsed.deletes);
        assert_eq!(raw.deletes.len(), 2);
        let ids = |d: &Delta<TestRecord>| {
            d.quarantined
                .iter()
                .map(|q| q.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&raw), ["d", "e", "f", "g", "h", "i", ""]);
        assert_eq!(ids(&raw), ids(&parsed));
        // The quarantined text is the row as the server sent it.
        assert_eq!(raw.quarantined[0].raw, rows[3]);
        assert!(RawRow::parse("[1]").is_err());
    }

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
