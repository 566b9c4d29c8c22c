//! [`JsonRecord`]: a schemaless record, for tools and servers that move JSON they do not model.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::record::Record;

/// A JSON object with a string `id`, an RFC 3339 `updated_at` and an optional `deleted_at`.
/// The id and timestamps are parsed once, on construction.
///
/// ```
/// use remote_cache_sync::{JsonRecord, Record};
/// let r = JsonRecord::from_value(serde_json::json!({
///     "id": "a1", "updated_at": "2026-11-22T10:00:00Z", "title": "hi"
/// })).unwrap();
/// assert_eq!(r.id(), "a1");
/// assert_eq!(r.value()["title"], "hi");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRecord {
    id: String,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
    value: Map<String, Value>,
}

fn timestamp_field(obj: &Map<String, Value>, field: &str) -> Result<Option<Timestamp>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| {
            Error::InvalidInput(format!("field {field:?} is not an RFC 3339 timestamp: {e}"))
        }),
        Some(_) => Err(Error::InvalidInput(format!(
            "field {field:?} must be a string"
        ))),
    }
}

impl JsonRecord {
    /// Validates and wraps a JSON object.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(value) = value else {
            return Err(Error::InvalidInput("a record must be a JSON object".into()));
        };
        let id = match value.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(Error::InvalidInput(
                    "a record needs a non-empty string \"id\"".into(),
                ));
            }
        };
        let updated_at = timestamp_field(&value, "updated_at")?
            .ok_or_else(|| Error::InvalidInput("a record needs \"updated_at\"".into()))?;
        let deleted_at = timestamp_field(&value, "deleted_at")?;
        Ok(JsonRecord {
            id,
            updated_at,
            deleted_at,
            value,
        })
    }

    /// The JSON object.
    pub fn value(&self) -> &Map<String, Value> {
        &self.value
    }

    /// Unwraps into the JSON object.
    pub fn into_value(self) -> Map<String, Value> {
        self.value
    }
}

impl Serialize for JsonRecord {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        JsonRecord::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Record for JsonRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    fn deleted_at(&self) -> Option<Timestamp> {
        self.deleted_at
    }
    fn with_updated_at(&self, at: Timestamp) -> Result<Self> {
        let mut r = self.clone();
        r.updated_at = at;
        r.value
            .insert("updated_at".into(), Value::String(at.to_string()));
        Ok(r)
    }
}
