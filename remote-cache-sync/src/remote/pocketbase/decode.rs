//! Pure conversions between PocketBase rows and our records: rows → [`Change`]s, ops → the
//! JSON bodies written, versions read from rows, and failed batch answers parsed.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::filter::parse_date;
use super::{RECORD_ID_FIELD, pocketbase_id};
use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp};
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

/// Fields PocketBase adds to every record, removed before decoding into `T`.
const SYSTEM_FIELDS: &[&str] = &[
    "collectionId",
    "collectionName",
    "expand",
    "created",
    "updated",
];

/// Whether the stored row has every field of `body` with the same value.
pub(super) fn holds(raw: &Map<String, Value>, body: &Value) -> bool {
    body.as_object()
        .is_some_and(|b| b.iter().all(|(k, v)| raw.get(k) == Some(v)))
}

/// Fields of a written body that the saved record (a batch sub-response) does not have.
pub(super) fn dropped_fields(body: &Value, answer: &Value) -> Option<String> {
    let (Some(sent), Some(saved)) = (
        body.as_object(),
        answer.get("body").and_then(Value::as_object),
    ) else {
        return None;
    };
    let missing: Vec<&str> = sent
        .keys()
        .filter(|k| !saved.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The first failing sub-request of a failed batch.
pub(super) struct BatchFailure {
    pub index: usize,
    pub status: u16,
    pub reason: String,
    /// The sub-response named no field: a rule refusal or a server-side error (a busy database
    /// surfaces as a bare `400 "Failed to create record."`), not a validation error.
    pub bare: bool,
}

/// Parses a failed batch answer.
pub(super) fn batch_failure(v: &Value) -> Option<BatchFailure> {
    let requests = v.get("data")?.get("requests")?.as_object()?;
    let (k, detail) = requests
        .iter()
        .filter_map(|(k, d)| Some((k.parse::<usize>().ok()?, d)))
        .min_by_key(|(k, _)| *k)?;
    let resp = detail.get("response");
    let status = resp
        .and_then(|r| r.get("status"))
        .and_then(Value::as_u64)
        .unwrap_or(400) as u16;
    let message = resp
        .and_then(|r| r.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("batch request failed");
    let fields = resp
        .and_then(|r| r.get("data"))
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(f, e)| {
                    let code = e.get("code").and_then(Value::as_str).unwrap_or("invalid");
                    format!("{f}: {code}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let bare = fields.is_empty();
    let reason = if bare {
        format!("{status}: {message}")
    } else {
        format!("{status}: {message} ({fields})")
    };
    Some(BatchFailure {
        index: k,
        status,
        reason,
        bare,
    })
}

pub(super) fn text_field<'a>(raw: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    raw.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `(version, is_tombstone)` of a row: `deleted_at` when set, else `updated_at`.
pub(super) fn row_version(raw: &Map<String, Value>) -> Result<(Timestamp, bool)> {
    let bad = |f: &str| {
        Error::Codec(format!(
            "pocketbase: row {:?} has an invalid {f}",
            raw.get("id")
        ))
    };
    if let Some(d) = text_field(raw, "deleted_at") {
        return Ok((parse_date(d).ok_or_else(|| bad("deleted_at"))?, true));
    }
    // A row written by another client without `updated_at`: its server stamp is the version.
    let u = text_field(raw, "updated_at")
        .or_else(|| text_field(raw, "updated"))
        .ok_or_else(|| bad("updated_at"))?;
    Ok((parse_date(u).ok_or_else(|| bad("updated_at"))?, false))
}

/// Whether a row's scope key fields equal the scope's values.
pub(super) fn in_scope(raw: &Map<String, Value>, scope: &SyncScope) -> bool {
    scope
        .keys()
        .iter()
        .all(|(k, v)| raw.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// Decodes a row: system fields dropped, empty `deleted_at` removed, PocketBase-style dates in
/// `updated_at`/`deleted_at` turned into RFC 3339; a set `deleted_at` is a tombstone.
pub(super) fn decode_row<T: Record>(mut raw: Map<String, Value>) -> Result<Change<T>> {
    if text_field(&raw, "updated_at").is_none()
        && let Some(stamp) = text_field(&raw, "updated").map(str::to_owned)
    {
        // A row written by another client without `updated_at`: its server stamp is the version.
        raw.insert("updated_at".into(), Value::String(stamp));
    }
    for f in SYSTEM_FIELDS {
        raw.remove(*f);
    }
    let Some(Value::String(id)) = raw.remove(RECORD_ID_FIELD) else {
        return Err(Error::Codec(format!(
            "pocketbase: row {:?} has no `{RECORD_ID_FIELD}` field (see the guide)",
            raw.get("id")
        )));
    };
    raw.insert("id".into(), Value::String(id.clone()));
    if let Some(d) = text_field(&raw, "deleted_at") {
        let deleted_at = parse_date(d).ok_or_else(|| {
            Error::Codec(format!("pocketbase: row {id:?} has an invalid deleted_at"))
        })?;
        return Ok(Change::Delete(Tombstone { id, deleted_at }));
    }
    raw.remove("deleted_at");
    if let Some(Value::String(u)) = raw.get_mut("updated_at")
        && u.len() > 10
        && u.as_bytes()[10] == b' '
    {
        u.replace_range(10..11, "T");
    }
    serde_json::from_value(Value::Object(raw))
        .map(Change::Upsert)
        .map_err(|e| Error::Codec(format!("pocketbase: row {id:?} does not decode: {e}")))
}

/// The JSON body written for an op (scope keys set, `deleted_at` explicit).
pub(super) fn op_body<T: Record>(
    scope: &SyncScope,
    op: &PendingOp<T>,
    exists: bool,
) -> std::result::Result<Value, String> {
    let mut body = match (&op.payload, op.kind) {
        (Some(p), OpKind::Create | OpKind::Update) => {
            let Value::Object(mut m) =
                serde_json::to_value(p).map_err(|e| format!("record does not encode: {e}"))?
            else {
                return Err("record does not encode as a JSON object".into());
            };
            if m.get("id").and_then(Value::as_str) != Some(op.id.as_str()) {
                return Err("record id differs from the op id".into());
            }
            for f in SYSTEM_FIELDS.iter().chain(&[RECORD_ID_FIELD]) {
                if m.remove(*f).is_some() {
                    return Err(format!("record field {f:?} is reserved by PocketBase"));
                }
            }
            match m.get("deleted_at") {
                None | Some(Value::Null) => {
                    m.insert("deleted_at".into(), Value::String(String::new()));
                }
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                Some(_) => return Err("deleted_at must be an RFC 3339 timestamp or null".into()),
            }
            match m.get("updated_at") {
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                _ => return Err("updated_at must serialize as an RFC 3339 string".into()),
            }
            m
        }
        _ => {
            let mut m = Map::new();
            m.insert(
                "deleted_at".into(),
                Value::String(op.updated_at.to_string()),
            );
            if !exists {
                m.insert(
                    "updated_at".into(),
                    Value::String(op.updated_at.to_string()),
                );
            }
            m
        }
    };
    body.insert("id".into(), Value::String(pocketbase_id(scope, &op.id)));
    body.insert(RECORD_ID_FIELD.into(), Value::String(op.id.clone()));
    for (k, v) in scope.keys() {
        match body.get(k) {
            None | Some(Value::Null) => {
                body.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::String(s)) if s == v => {}
            Some(_) => return Err(format!("record field {k:?} disagrees with the scope")),
        }
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_record::JsonRecord;
    use crate::testing::{TestRecord, ts};

    #[test]
    fn decodes_rows() {
        let row = serde_json::json!({"collectionId":"c","collectionName":"records","created":"2026-11-22 01:30:20.840Z",
            "updated":"2026-11-22 01:30:20.840Z","deleted_at":"","id":"0000","record_id":"a","title":"t","n":3,"owner":"u1",
            "updated_at":"2026-01-01T00:00:00.001Z"});
        let Value::Object(raw) = row else {
            unreachable!()
        };
        assert_eq!(row_version(&raw).unwrap(), (ts(1), false));
        match decode_row::<TestRecord>(raw.clone()).unwrap() {
            Change::Upsert(r) => assert_eq!(r, TestRecord::new("a", "t", ts(1)).with_n(3)),
            other => panic!("{other:?}"),
        }
        let mut tomb = raw;
        tomb.insert("deleted_at".into(), "2026-01-01 00:00:00.002Z".into());
        assert_eq!(row_version(&tomb).unwrap(), (ts(2), true));
        assert!(
            matches!(decode_row::<TestRecord>(tomb).unwrap(), Change::Delete(t) if t.deleted_at == ts(2))
        );
    }

    #[test]
    fn op_bodies_set_scope_and_refuse_mismatches() {
        let scope = SyncScope::new("records", [("owner", "u\"1")]).unwrap();
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "t", ts(0)),
        );
        let b = op_body(&scope, &op, false).unwrap();
        assert_eq!(b["owner"], "u\"1");
        assert_eq!(b["deleted_at"], "");
        let del = PendingOp::<TestRecord>::delete(scope.clone(), "a", ts(5));
        let b = op_body(&scope, &del, false).unwrap();
        assert_eq!(b["deleted_at"], ts(5).to_string());
        assert_eq!(b["updated_at"], ts(5).to_string());
        assert_eq!(b["record_id"], "a");
        assert_eq!(b["id"], pocketbase_id(&scope, "a"));
        let other = SyncScope::new("records", [("owner", "u2")]).unwrap();
        assert_ne!(pocketbase_id(&other, "a"), pocketbase_id(&scope, "a"));
        assert_ne!(pocketbase_id(&scope, "A"), pocketbase_id(&scope, "a"));
        assert_eq!(pocketbase_id(&scope, "a").len(), 36);
        let json_op = PendingOp::upsert(
            other.clone(),
            OpKind::Create,
            JsonRecord::from_value(
                serde_json::json!({"id":"a","updated_at":"2026-01-01T00:00:00Z","owner":"u1"}),
            )
            .unwrap(),
        );
        assert!(
            op_body(&other, &json_op, false)
                .unwrap_err()
                .contains("disagrees")
        );
    }

    #[test]
    fn parses_batch_failures() {
        let v = serde_json::json!({"data":{"requests":{"1":{"code":"batch_request_failed","message":"Batch request failed.",
            "response":{"data":{"id":{"code":"validation_pk_invalid","message":"…"}},"message":"Failed to create record.","status":400}}}},
            "message":"Batch transaction failed.","status":400});
        let f = batch_failure(&v).unwrap();
        assert_eq!((f.index, f.status, f.bare), (1, 400, false));
        assert!(f.reason.contains("validation_pk_invalid"), "{}", f.reason);
        assert!(batch_failure(&serde_json::json!({"message":"x"})).is_none());
    }
}
