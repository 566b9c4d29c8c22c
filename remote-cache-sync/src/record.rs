//! What a synced record must provide, and the change types that flow between stores.

use jiff::Timestamp;
use serde::{Serialize, de::DeserializeOwned};

/// A record type that can be cached and synced.
///
/// Records are serde types; every store keeps them as JSON. Ids are strings on every backend
/// (URL paths, PocketBase ids, JSON keys): generate them offline, e.g. as UUID v7 strings.
///
/// `updated_at` must be UTC and is what last-write-wins compares. A record whose
/// [`deleted_at`](Record::deleted_at) is set is a tombstone: stores keep it but queries hide it.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The record's id, unique within its scope.
    fn id(&self) -> &str;
    /// When the record was last changed (UTC).
    fn updated_at(&self) -> Timestamp;
    /// When the record was soft-deleted, for types that carry the tombstone in the payload.
    fn deleted_at(&self) -> Option<Timestamp> {
        None
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
