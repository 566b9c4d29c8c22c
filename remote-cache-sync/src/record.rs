//! What a synced record must provide, and the change types that flow between stores.

use jiff::Timestamp;
use serde::{Serialize, de::DeserializeOwned};

/// A record type that can be cached and synced.
///
/// Records are serde types; every store keeps them as JSON, and queries
/// ([`QuerySpec`](crate::QuerySpec)) address their JSON fields by name. Ids are strings on
/// every backend (URL paths, PocketBase ids, JSON keys), unique within a
/// [`SyncScope`](crate::SyncScope): generate them offline, e.g. as UUID v7 strings.
///
/// `updated_at` is the record's **version**: UTC, set by the app on every change (the
/// orchestrator restamps a write that does not move past the cached version, see
/// [`with_updated_at`](Record::with_updated_at)), and what conflicts are detected and
/// last-write-wins decided on. A record whose [`deleted_at`](Record::deleted_at) is set is a
/// tombstone: stores keep it but queries hide it. Records without such a field are deleted
/// with [`Orchestrator::enqueue_delete`](crate::Orchestrator::enqueue_delete) instead.
///
/// # Implementing it
///
/// Three methods for the usual struct: `id` and `updated_at` return fields, and the provided
/// [`with_updated_at`](Record::with_updated_at) works as is when the version's field is
/// called `updated_at` (it sets it through serde; override it for another name).
///
/// ```
/// use remote_cache_sync::{Record, Timestamp};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Note {
///     id: String,
///     title: String,
///     #[serde(default)]
///     tags: Vec<String>,
///     updated_at: Timestamp,
/// }
///
/// impl Record for Note {
///     fn id(&self) -> &str {
///         &self.id
///     }
///     fn updated_at(&self) -> Timestamp {
///         self.updated_at
///     }
/// }
///
/// let note = Note {
///     id: "0190c1d2-note-1".into(),
///     title: "groceries".into(),
///     tags: vec!["home".into()],
///     updated_at: Timestamp::now(),
/// };
/// let later = note.updated_at() + std::time::Duration::from_millis(1);
/// // The provided method, used when a kept write must be pushed again past a remote version.
/// assert_eq!(note.with_updated_at(later).unwrap().updated_at(), later);
/// ```
///
/// With the version under another name, implement [`with_updated_at`](Record::with_updated_at)
/// too:
///
/// ```
/// # use remote_cache_sync::{Record, Timestamp};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Task {
///     id: String,
///     modified: Timestamp,
///     done: bool,
/// }
///
/// impl Record for Task {
///     fn id(&self) -> &str {
///         &self.id
///     }
///     fn updated_at(&self) -> Timestamp {
///         self.modified
///     }
///     fn with_updated_at(&self, at: Timestamp) -> remote_cache_sync::Result<Self> {
///         Ok(Task { modified: at, ..self.clone() })
///     }
/// }
/// ```
///
/// For untyped data, [`JsonRecord`](crate::JsonRecord) implements it over a JSON object.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The record's id, unique within its scope.
    fn id(&self) -> &str;
    /// When the record was last changed (UTC).
    fn updated_at(&self) -> Timestamp;
    /// When the record was soft-deleted, for types that carry the tombstone in the payload.
    fn deleted_at(&self) -> Option<Timestamp> {
        None
    }

    /// The record with `updated_at` set to `at`.
    ///
    /// Used when a write the conflict resolver kept or merged must be pushed again on top of a
    /// remote version that is not older than it: the write then gets a version just past the
    /// remote's, so no two different contents ever share a version. The default sets the
    /// top-level field `"updated_at"` through serde; override it when the field has another
    /// name (or return an error, and such writes keep their own version).
    fn with_updated_at(&self, at: Timestamp) -> crate::Result<Self> {
        let mut value = serde_json::to_value(self)?;
        match value.as_object_mut() {
            Some(obj) if obj.contains_key("updated_at") => {
                obj.insert("updated_at".into(), serde_json::to_value(at)?);
            }
            _ => {
                return Err(crate::Error::Codec(
                    "the record has no top-level \"updated_at\" field: implement \
                     Record::with_updated_at"
                        .into(),
                ));
            }
        }
        let r: Self = serde_json::from_value(value)?;
        if r.updated_at() != at {
            return Err(crate::Error::Codec(
                "setting \"updated_at\" did not change Record::updated_at(): implement \
                 Record::with_updated_at"
                    .into(),
            ));
        }
        Ok(r)
    }
}

/// A deletion: the id and the time it happened (which orders it against upserts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tombstone {
    /// Id of the deleted record.
    pub id: String,
    /// When it was deleted (UTC).
    pub deleted_at: Timestamp,
}

/// One change to one record: the new version, or its deletion.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// The record was created or updated.
    Upsert(T),
    /// The record was deleted.
    Delete(Tombstone),
}

impl<T: Record> Change<T> {
    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            Change::Upsert(r) => r.id(),
            Change::Delete(t) => &t.id,
        }
    }

    /// The version timestamp: `updated_at` for upserts (or `deleted_at` for payload
    /// tombstones), `deleted_at` for deletions.
    pub fn version(&self) -> Timestamp {
        match self {
            Change::Upsert(r) => r.deleted_at().unwrap_or_else(|| r.updated_at()),
            Change::Delete(t) => t.deleted_at,
        }
    }

    /// Whether this change removes the record.
    pub fn is_delete(&self) -> bool {
        match self {
            Change::Upsert(r) => r.deleted_at().is_some(),
            Change::Delete(_) => true,
        }
    }

    /// The record, for upserts.
    pub fn record(&self) -> Option<&T> {
        match self {
            Change::Upsert(r) => Some(r),
            Change::Delete(_) => None,
        }
    }
}
