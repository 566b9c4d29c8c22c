//! Documents ↔ records: document ids, the attributes we write, and decoding what we read.
//!
//! - A document's attributes are the record's top-level JSON fields, except `id` (kept in the
//!   `record_id` attribute) and Appwrite's own `$…` attributes, which records cannot use.
//! - `updated_at` / `deleted_at` are string attributes holding our versions exactly as written
//!   (RFC 3339); Appwrite's `$updatedAt` is the server's stamp, used only by the pull cursor.
//! - A delete writes a tombstone: `deleted_at` set (and `updated_at` = the delete's time).
//! - Appwrite answers every attribute, `null` when unset; a `null` attribute reads as an absent
//!   field.
//! - A **JSON attribute** ([`AppwriteConfig::json_attributes`](super::AppwriteConfig)) is a
//!   string attribute holding the field's JSON text (`serde_json`'s, so any JSON value,
//!   `null` included, round-trips exactly); every other field is written as it is, so it must
//!   fit its typed attribute.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp};
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

/// The attribute holding the record's own id.
pub const RECORD_ID_ATTR: &str = "record_id";

/// Namespace of derived document ids (a fixed random UUID).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x2f6e_93a1_5c0d_4e7b_9a18_74c2_d05b_e3f6);

/// Whether `id` is a valid custom Appwrite id: at most 36 characters of `a-z A-Z 0-9 . - _`,
/// not starting with a special character (<https://appwrite.io/docs/products/databases/documents#create-documents>:
/// "Valid chars are a-z, A-Z, 0-9, period, hyphen, and underscore. Can't start with a special
/// char. Max length is 36 chars.").
pub fn fits_id_rules(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=36).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// The document id of record `id` in `scope`.
///
/// A scope without keys owns its whole collection, so a record id that fits Appwrite's id rules
/// is the document id itself. Otherwise (an id that does not fit, or a scope with keys, whose
/// records share the collection with other scopes' records of possibly the same ids) it is a
/// UUID v5 of the scope's canonical form and the id: 36 characters, valid, and distinct per
/// scope. The record's own id is always kept in [`RECORD_ID_ATTR`].
pub fn document_id(scope: &SyncScope, id: &str) -> String {
    if scope.keys().is_empty() && fits_id_rules(id) {
        return id.to_owned();
    }
    let mut name = scope.canonical().into_bytes();
    name.push(0);
    name.extend_from_slice(id.as_bytes());
    uuid::Uuid::new_v5(&ID_NAMESPACE, &name).to_string()
}

/// A server stamp (`$updatedAt`) parsed: Appwrite writes `2020-10-15T06:38:00.000+00:00`.
pub(crate) fn parse_stamp(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// The canonical text of a stamp, as Appwrite writes it (milliseconds, `+00:00`): cursor
/// positions and query values use it, so they compare as strings in time order.
pub(crate) fn format_stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

fn text<'a>(raw: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    raw.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `(version, is_tombstone)` of a document: `deleted_at` when set, else `updated_at`, else (a
/// document another app wrote without it) the server's `$updatedAt`.
pub(crate) fn doc_version(raw: &Map<String, Value>) -> Result<(Timestamp, bool)> {
    let bad = |f: &str| {
        Error::Codec(format!(
            "appwrite: document {:?} has an invalid {f}",
            raw.get("$id")
        ))
    };
    if let Some(d) = text(raw, "deleted_at") {
        return Ok((parse_stamp(d).ok_or_else(|| bad("deleted_at"))?, true));
    }
    let u = text(raw, "updated_at")
        .or_else(|| text(raw, "$updatedAt"))
        .ok_or_else(|| bad("updated_at"))?;
    Ok((parse_stamp(u).ok_or_else(|| bad("updated_at"))?, false))
}

/// Whether a document's scope key attributes equal the scope's values.
pub(crate) fn in_scope(raw: &Map<String, Value>, scope: &SyncScope) -> bool {
    scope
        .keys()
        .iter()
        .all(|(k, v)| raw.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// The record id a document holds.
pub(crate) fn record_id(raw: &Map<String, Value>) -> Option<&str> {
    raw.get(RECORD_ID_ATTR).and_then(Value::as_str)
}

/// The JSON text a JSON attribute holds for `v`.
pub(crate) fn json_text(v: &Value) -> String {
    v.to_string()
}

/// Decodes a document: `$…` attributes dropped, `record_id` back to `id`, JSON attributes
/// parsed, a set `deleted_at` is a tombstone, a null one is removed.
pub(crate) fn decode_doc<T: Record>(
    mut raw: Map<String, Value>,
    json: &[String],
) -> Result<Change<T>> {
    if text(&raw, "updated_at").is_none()
        && let Some(stamp) = text(&raw, "$updatedAt").map(str::to_owned)
    {
        raw.insert("updated_at".into(), Value::String(stamp));
    }
    // Appwrite answers every attribute of the collection, `null` when unset: an unset attribute
    // is an absent field (so `#[serde(default)]` and `skip_serializing_if` fields round-trip).
    raw.retain(|k, v| !k.starts_with('$') && !v.is_null());
    let Some(Value::String(id)) = raw.remove(RECORD_ID_ATTR) else {
        return Err(Error::Codec(format!(
            "appwrite: document has no `{RECORD_ID_ATTR}` attribute (see docs/backends/appwrite.md)"
        )));
    };
    for k in json {
        if let Some(v) = raw.get_mut(k) {
            let Value::String(text) = v else {
                return Err(Error::Codec(format!(
                    "appwrite: document {id:?}: JSON attribute {k:?} is not a string"
                )));
            };
            *v = serde_json::from_str(text).map_err(|e| {
                Error::Codec(format!(
                    "appwrite: document {id:?}: JSON attribute {k:?} does not parse: {e}"
                ))
            })?;
        }
    }
    raw.insert("id".into(), Value::String(id.clone()));
    if let Some(d) = text(&raw, "deleted_at") {
        let deleted_at = parse_stamp(d).ok_or_else(|| {
            Error::Codec(format!(
                "appwrite: document {id:?} has an invalid deleted_at"
            ))
        })?;
        return Ok(Change::Delete(Tombstone { id, deleted_at }));
    }
    raw.remove("deleted_at");
    serde_json::from_value(Value::Object(raw))
        .map(Change::Upsert)
        .map_err(|e| Error::Codec(format!("appwrite: document {id:?} does not decode: {e}")))
}

/// The attributes written for an op: the record's fields (or a tombstone's; JSON attributes as
/// their JSON text), `record_id`, the scope keys. The same whatever the document holds, so it
/// can be staged before the document is read. `Err` is the reason to reject the op.
pub(crate) fn op_data<T: Record>(
    scope: &SyncScope,
    op: &PendingOp<T>,
    json: &[String],
) -> std::result::Result<Map<String, Value>, String> {
    let mut data = match (&op.payload, op.kind) {
        (Some(p), OpKind::Create | OpKind::Update) => {
            let Value::Object(mut m) =
                serde_json::to_value(p).map_err(|e| format!("record does not encode: {e}"))?
            else {
                return Err("record does not encode as a JSON object".into());
            };
            if m.remove("id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref()
                != Some(op.id.as_str())
            {
                return Err("record id differs from the op id".into());
            }
            if let Some(k) = m
                .keys()
                .find(|k| k.starts_with('$') || *k == RECORD_ID_ATTR)
            {
                return Err(format!(
                    "record field {k:?} is reserved by Appwrite or this adapter"
                ));
            }
            match m.get("deleted_at") {
                None => {
                    m.insert("deleted_at".into(), Value::Null);
                }
                Some(Value::Null) => {}
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                Some(_) => return Err("deleted_at must be an RFC 3339 timestamp or null".into()),
            }
            match m.get("updated_at") {
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                _ => return Err("updated_at must serialize as an RFC 3339 string".into()),
            }
            for k in json {
                if let Some(v) = m.get_mut(k) {
                    *v = Value::String(json_text(v));
                }
            }
            m
        }
        _ => {
            let mut m = Map::new();
            let at = Value::String(op.updated_at.to_string());
            m.insert("deleted_at".into(), at.clone());
            m.insert("updated_at".into(), at);
            m
        }
    };
    data.insert(RECORD_ID_ATTR.into(), Value::String(op.id.clone()));
    for (k, v) in scope.keys() {
        match data.get(k) {
            None | Some(Value::Null) => {
                data.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::String(s)) if s == v => {}
            Some(_) => return Err(format!("record field {k:?} disagrees with the scope")),
        }
    }
    Ok(data)
}

/// Whether the stored document has every attribute of `data` with the same value (a replay
/// that would change nothing).
pub(crate) fn holds(raw: &Map<String, Value>, data: &Map<String, Value>) -> bool {
    data.iter()
        .all(|(k, v)| raw.get(k).unwrap_or(&Value::Null) == v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestRecord, ts};

    #[test]
    fn ids_follow_appwrite_rules() {
        for ok in ["a", "rec00001", "A.b-c_d", &"x".repeat(36), "0abc"] {
            assert!(fits_id_rules(ok), "{ok}");
        }
        for bad in [
            "",
            "_a",
            ".a",
            "-a",
            "a b",
            "a/b",
            "é",
            &"x".repeat(37),
            "a\"b",
        ] {
            assert!(!fits_id_rules(bad), "{bad}");
        }
        let plain = SyncScope::new("records", [] as [(&str, &str); 0]).unwrap();
        assert_eq!(document_id(&plain, "rec1"), "rec1");
        let derived = document_id(&plain, "a/b");
        assert!(fits_id_rules(&derived) && derived.len() == 36);
        let a = SyncScope::new("records", [("owner", "u1")]).unwrap();
        let b = SyncScope::new("records", [("owner", "u2")]).unwrap();
        assert_ne!(document_id(&a, "rec1"), document_id(&b, "rec1"));
        assert_ne!(document_id(&a, "A"), document_id(&a, "a"));
        assert!(fits_id_rules(&document_id(&a, "rec1")));
    }

    #[test]
    fn stamps_round_trip_in_appwrites_format() {
        let t = parse_stamp("2020-10-15T06:38:00.120+00:00").unwrap();
        assert_eq!(format_stamp(t), "2020-10-15T06:38:00.120+00:00");
        assert!(format_stamp(ts(1)) < format_stamp(ts(2)));
    }

    #[test]
    fn documents_decode_and_ops_encode() {
        let scope = SyncScope::new("records", [("owner", "u\"1")]).unwrap();
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "t", ts(0)),
        );
        let mut d = op_data(&scope, &op, &[]).unwrap();
        assert_eq!(d["owner"], "u\"1");
        assert_eq!(d["deleted_at"], Value::Null);
        assert_eq!(d[RECORD_ID_ATTR], "a");
        assert!(!d.contains_key("id"));
        d.insert("$id".into(), "x".into());
        d.insert("$updatedAt".into(), "2026-01-01T00:00:00.000+00:00".into());
        assert_eq!(doc_version(&d).unwrap(), (ts(0), false));
        match decode_doc::<TestRecord>(d.clone(), &[]).unwrap() {
            Change::Upsert(r) => assert_eq!(r, TestRecord::new("a", "t", ts(0))),
            other => panic!("{other:?}"),
        }
        let del = PendingOp::<TestRecord>::delete(scope.clone(), "a", ts(5));
        let t = op_data(&scope, &del, &[]).unwrap();
        assert_eq!(t["deleted_at"], ts(5).to_string());
        d.extend(t);
        assert_eq!(doc_version(&d).unwrap(), (ts(5), true));
        assert!(
            matches!(decode_doc::<TestRecord>(d, &[]).unwrap(), Change::Delete(t) if t.deleted_at == ts(5))
        );
        let other = SyncScope::new("records", [("owner", "u2")]).unwrap();
        let json_op = PendingOp::upsert(
            other.clone(),
            OpKind::Create,
            crate::JsonRecord::from_value(
                serde_json::json!({"id":"a","updated_at":"2026-01-01T00:00:00Z","owner":"u1"}),
            )
            .unwrap(),
        );
        assert!(
            op_data(&other, &json_op, &[])
                .unwrap_err()
                .contains("disagrees")
        );
        let reserved = PendingOp::upsert(
            other.clone(),
            OpKind::Create,
            crate::JsonRecord::from_value(
                serde_json::json!({"id":"a","updated_at":"2026-01-01T00:00:00Z","$permissions":[]}),
            )
            .unwrap(),
        );
        assert!(
            op_data(&other, &reserved, &[])
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn json_attributes_hold_any_json_value_exactly() {
        let scope = SyncScope::new("notes", [("owner", "u1")]).unwrap();
        let json = ["title".to_owned(), "n".to_owned(), "meta".to_owned()];
        let value = serde_json::json!({"id": "a", "updated_at": "2026-01-01T00:00:00Z",
            "title": null, "n": 9_007_199_254_740_993_i64, "meta": {"k": ["x", 1, true]},
            "plain": "as is", "owner": "u1"});
        let rec = crate::JsonRecord::from_value(value.clone()).unwrap();
        let op = PendingOp::upsert(scope.clone(), OpKind::Create, rec.clone());
        let mut d = op_data(&scope, &op, &json).unwrap();
        assert_eq!(d["title"], "null");
        assert_eq!(d["n"], "9007199254740993");
        assert_eq!(d["meta"], r#"{"k":["x",1,true]}"#);
        assert_eq!(d["plain"], "as is");
        match decode_doc::<crate::JsonRecord>(d.clone(), &json).unwrap() {
            Change::Upsert(r) => assert_eq!(r, rec),
            other => panic!("{other:?}"),
        }
        d.insert("n".into(), "{not json".into());
        assert!(decode_doc::<crate::JsonRecord>(d, &json).is_err());
    }
}
