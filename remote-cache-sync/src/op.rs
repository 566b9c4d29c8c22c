//! Pending operations: the durable queue of local writes not yet acknowledged by the remote.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

/// Unique id of a pending op, also the idempotency key when pushing (a UUID v7 string, so ids
/// sort by creation time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub String);

impl OpId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        OpId(uuid::Uuid::now_v7().to_string())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pending op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Create a new record.
    Create,
    /// Replace an existing record.
    Update,
    /// Delete a record (a tombstone on the remote).
    Delete,
}

/// A queued local write.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOp<T> {
    /// Unique id and idempotency key.
    pub op_id: OpId,
    /// Scope the write belongs to.
    pub scope: SyncScope,
    /// Create, update or delete.
    pub kind: OpKind,
    /// Target record id.
    pub id: String,
    /// The new record; `None` for deletes.
    pub payload: Option<T>,
    /// Client time of the write (the tombstone's `deleted_at` for deletes).
    pub updated_at: Timestamp,
    /// The remote version (`updated_at`) this write was made on top of, if the record had been
    /// synced. Remotes use it to detect concurrent edits. Filled in by the local store.
    pub base_version: Option<Timestamp>,
    /// How many times the remote rejected it so far.
    pub attempts: u32,
    /// The last rejection reason.
    pub last_error: Option<String>,
}

impl<T: Record> PendingOp<T> {
    /// A create or update op carrying `record`.
    pub fn upsert(scope: SyncScope, kind: OpKind, record: T) -> Self {
        PendingOp {
            op_id: OpId::generate(),
            scope,
            kind,
            id: record.id().to_owned(),
            updated_at: record.updated_at(),
            payload: Some(record),
            base_version: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// A delete op for `id` at `deleted_at`.
    pub fn delete(scope: SyncScope, id: impl Into<String>, deleted_at: Timestamp) -> Self {
        PendingOp {
            op_id: OpId::generate(),
            scope,
            kind: OpKind::Delete,
            id: id.into(),
            payload: None,
            updated_at: deleted_at,
            base_version: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// The change this op makes.
    pub fn change(&self) -> Change<T> {
        match (&self.payload, self.kind) {
            (Some(p), OpKind::Create | OpKind::Update) => Change::Upsert(p.clone()),
            _ => Change::Delete(Tombstone {
                id: self.id.clone(),
                deleted_at: self.updated_at,
            }),
        }
    }
}

/// The remote's answer to one pushed op.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome<T> {
    /// Applied (or already applied earlier: pushes are idempotent by op id).
    Applied {
        /// The version this op wrote (the record's `updated_at`, or its `deleted_at` for a
        /// payload tombstone, unless the remote stamps its own; see
        /// [`applied_version`](crate::remote::applied_version)).
        /// For a replayed op, the version it wrote back then — never a later version that
        /// superseded it, which the client has not seen and must not build on.
        version: Timestamp,
    },
    /// Not applied: the remote's current version differs from the op's `base_version`.
    /// `current` is that version (`None` when the record does not exist there).
    Conflict {
        /// The remote's current version.
        current: Option<Change<T>>,
    },
    /// Permanently refused (validation, permission). Retrying as-is will fail again.
    Rejected {
        /// The remote's reason.
        reason: String,
    },
}

impl<T> PushOutcome<T> {
    /// The answer every remote gives an op that conflicts with a remote version that does not
    /// decode (a row another app wrote): a verdict on that one op, the other ops of the push
    /// stand, and the row itself is quarantined when pulled.
    pub fn undecodable_current(reason: impl fmt::Display) -> Self {
        PushOutcome::Rejected {
            reason: format!("the remote's version of this record does not decode: {reason}"),
        }
    }
}
