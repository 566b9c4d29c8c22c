//! [`Delta`] pages, cursors and sync points.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::{Change, Record, Tombstone};

/// An opaque position in a remote's change feed. Only the adapter that produced it interprets it
/// (a sequence number for our server and PostgreSQL, an `(updated, id)` keyset for PocketBase).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl Cursor {
    /// Wraps an adapter-specific cursor string.
    pub fn new(s: impl Into<String>) -> Self {
        Cursor(s.into())
    }
    /// The raw cursor string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of remote changes since a cursor.
#[derive(Debug, Clone)]
pub struct Delta<T> {
    /// Records created or updated (payload tombstones, with `deleted_at` set, count as deletes).
    pub upserts: Vec<T>,
    /// Records deleted.
    pub deletes: Vec<Tombstone>,
    /// The remote's clock when it served the page (from the server, never the client).
    pub server_time: Timestamp,
    /// Where the next pull continues; `None` when the feed is empty and no position is known yet.
    pub cursor: Option<Cursor>,
    /// Whether more changes are waiting after this page.
    pub has_more: bool,
    /// Rows of the page that do not decode as `T` (written by another app, say). They do not
    /// fail the pull: the local store keeps them raw with their reason, the cursor moves on, and
    /// a row is retried when it changes on the remote (a later page carries it again).
    pub quarantined: Vec<QuarantinedRow>,
}

/// A remote row that could not be decoded, kept raw in the cache with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuarantinedRow {
    /// The record id as far as it could be read (the adapter's row key when even that fails).
    pub id: String,
    /// The row as the remote sent it (JSON text where the remote speaks JSON).
    pub raw: String,
    /// Why it does not decode.
    pub reason: String,
}

impl QuarantinedRow {
    /// A row that failed to decode.
    pub fn new(id: impl Into<String>, raw: impl Into<String>, reason: impl Into<String>) -> Self {
        QuarantinedRow {
            id: id.into(),
            raw: raw.into(),
            reason: reason.into(),
        }
    }
}

impl<T: Record> Delta<T> {
    /// An empty page.
    pub fn empty(server_time: Timestamp, cursor: Option<Cursor>) -> Self {
        Delta {
            upserts: Vec::new(),
            deletes: Vec::new(),
            server_time,
            cursor,
            has_more: false,
            quarantined: Vec::new(),
        }
    }

    /// Number of changes in the page.
    pub fn len(&self) -> usize {
        self.upserts.len() + self.deletes.len()
    }

    /// Whether the page holds no changes (quarantined rows aside).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All changes as one list, upserts first.
    pub fn into_changes(self) -> Vec<Change<T>> {
        self.upserts
            .into_iter()
            .map(Change::Upsert)
            .chain(self.deletes.into_iter().map(Change::Delete))
            .collect()
    }
}

/// What a local store remembers about the last successful pull of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    /// Cursor to continue from.
    pub cursor: Option<Cursor>,
    /// The server's time at that pull.
    pub server_time: Timestamp,
}
