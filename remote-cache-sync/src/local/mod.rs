//! The [`LocalStore`] trait: the persistent cache, its sync points and the pending-op queue.
//!
//! Implementations: [`InMemoryLocalStore`](memory::InMemoryLocalStore) (tests, demos) and, with
//! the `sqlite` feature, [`SqliteLocalStore`](sqlite::SqliteLocalStore). Every implementation
//! must pass [`testing::local`](crate::testing) — the conformance suite that defines the
//! semantics below in executable form.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::delta::{Delta, QuarantinedRow, SyncPoint};
use crate::error::Result;
use crate::op::{OpId, PendingOp};
use crate::query::QuerySpec;
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

mod check;
pub mod memory;
mod reconcile;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The remote acknowledged a (coalesced) push: its constituent ops leave the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The record the ops targeted.
    pub id: String,
    /// Every queued op folded into the push.
    pub op_ids: Vec<OpId>,
    /// The version the remote now holds, which becomes the record's synced version (the base of
    /// later ops). `None` when nothing was sent (a create and a delete cancelled out).
    pub version: Option<Timestamp>,
}

/// How a conflict on one record was settled, applied by
/// [`LocalStore::settle_conflict`] in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement<T> {
    /// The record.
    pub id: String,
    /// The queued ops the settlement replaces; they are removed.
    pub settled_ops: Vec<OpId>,
    /// The remote's current version, which becomes the record's synced version.
    pub remote_version: Option<Timestamp>,
    /// What the local row becomes (`None`: leave it). Skipped when ops for the id that are not in
    /// `settled_ops` are queued: those newer local writes stay visible.
    pub local: Option<Change<T>>,
    /// An op queued in place of the settled ones (the local side won, or a merge), taking the
    /// queue position of the earliest settled op.
    pub requeue: Option<PendingOp<T>>,
}

/// Queue counters for one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStatus {
    /// Ops waiting to be pushed.
    pub pending: usize,
    /// Ops the remote rejected permanently, waiting for the app to retry or discard them.
    pub parked: usize,
    /// Remote rows that did not decode, kept raw (see [`QuarantinedRow`]).
    pub quarantined: usize,
}

/// Why the sync of a scope is paused: the remote refused the request itself (credentials,
/// permission, a missing endpoint). Kept by the local store so every process sees it; cleared by
/// the next successful sync.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScopePause {
    /// The refusal, as the error displays it (never a credential).
    pub reason: String,
    /// When the scope paused.
    pub since: Timestamp,
}

impl ScopePause {
    /// A pause for `reason` starting at `since`.
    pub fn new(reason: impl Into<String>, since: Timestamp) -> Self {
        ScopePause {
            reason: reason.into(),
            since,
        }
    }
}

/// The local cache. All methods are scope-aware: nothing of one scope is visible through another.
///
/// Versions: a record's version is its `updated_at`, or `deleted_at` for a tombstone.
/// Every store keeps, per record, its *synced version*: the remote version its local state builds
/// on, used as the `base_version` of pushed ops.
///
/// In the browser (`wasm32`) the methods' futures are not `Send` (`async_trait(?Send)`);
/// natively they are. Implement the trait with the same pair of attributes:
/// `#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]` and
/// `#[cfg_attr(not(target_arch = "wasm32"), async_trait)]`.
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
pub trait LocalStore<T: Record>: Send + Sync + 'static {
    /// A live record (tombstones read as `None`).
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>>;

    /// The record's local version (`updated_at`, or `deleted_at` for a tombstone) and whether
    /// it is a tombstone; `None` when the store has no row for it.
    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>>;

    /// Live records matching `spec` (validated first; [`Error::InvalidQuery`](crate::Error) when
    /// invalid), ordered as documented in [`query`](crate::query).
    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>>;

    /// Live records with `updated_at >= since`, ordered by `(updated_at, id)`.
    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>>;

    /// Writes records directly (no queue). An incoming record replaces the stored one (live or
    /// tombstone) when its version is newer or equal; an older one is ignored.
    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()>;

    /// Deletes directly (no queue): a tombstone when [`supports_soft_delete`](Self::supports_soft_delete),
    /// else the row is removed. A tombstone older than the stored version is ignored.
    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()>;

    /// Whether deletions leave tombstones (the default) or remove rows.
    fn supports_soft_delete(&self) -> bool {
        true
    }

    /// The last saved sync point of a scope.
    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>>;

    /// Saves a scope's sync point.
    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()>;

    /// Applies one pulled page and saves `point`, in one transaction. Every change whose id has
    /// no queued op (pending or parked) replaces the local row unconditionally (the remote is the
    /// source of truth) and sets the synced version. Changes for ids with queued ops are skipped
    /// and their ids returned: a pull never overwrites an unsynced local write.
    ///
    /// The page's [`quarantined`](Delta::quarantined) rows are kept (replacing an earlier entry
    /// for the same id); any change of the page for a quarantined id (applied or skipped) ends
    /// its quarantine, since the remote now holds a row that decodes.
    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>>;

    /// Records a local write: applies the op's change to the local row and appends the op to the
    /// queue, in one transaction. Returns only once both are durable.
    async fn enqueue(&self, op: PendingOp<T>) -> Result<()>;

    /// Up to `limit` queued, non-parked ops of the scope in enqueue order, each with
    /// `base_version` set to its record's current synced version.
    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>>;

    /// Removes acknowledged ops and records the new synced versions, in one transaction. Unknown
    /// op ids are ignored (acks are idempotent).
    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()>;

    /// Records a rejection of these ops: `attempts += 1`, `last_error = error`, and parks them when
    /// `park` is true. Parked ops are not returned by [`pending_ops`](Self::pending_ops).
    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()>;

    /// Parked ops of the scope, in enqueue order.
    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>>;

    /// Moves parked ops back to the queue with `attempts` reset.
    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()>;

    /// Removes ops (parked or not) without pushing them.
    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()>;

    /// Applies a conflict settlement in one transaction (see [`Settlement`]).
    async fn settle_conflict(&self, scope: &SyncScope, settlement: Settlement<T>) -> Result<()>;

    /// Queue counters of a scope.
    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus>;

    /// Remote rows of the scope that did not decode, ordered by id.
    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>>;

    /// Why the scope's sync is paused, if it is.
    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>>;

    /// Sets (`Some`) or clears (`None`) the scope's pause.
    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()>;

    /// Every scope the store holds records, ops or a sync point for.
    async fn scopes(&self) -> Result<Vec<SyncScope>>;

    /// The `(id, version)` of the scope's rows as the remote last gave them, for
    /// [reconciliation](crate::reconcile): live rows without queued ops at their version, rows
    /// with queued ops (pending or parked) at their synced version (left out when they have none:
    /// a create not yet pushed). The default reads them through [`query`](Self::query) and the
    /// queue; stores override it with one scan.
    async fn reconcile_rows(&self, scope: &SyncScope) -> Result<Vec<(String, Timestamp)>> {
        reconcile::rows_from_queries(self, scope).await
    }

    /// Applies what [reconciliation](crate::reconcile) decided, in one transaction: `fetched`
    /// records are written like pulled rows (unconditionally, setting the synced version) and
    /// `removed` rows (the remote no longer has them) leave the cache, each only while it still
    /// holds the given version. Ids with queued ops (pending or parked) are left alone, in both
    /// lists, and returned: reconciliation never overwrites nor drops a queued write. The sync
    /// point is not touched.
    ///
    /// The default goes through [`apply_remote`](Self::apply_remote) with the current sync point
    /// (removals become tombstones, applied whatever version the row holds); stores override it.
    async fn apply_reconciled(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        reconcile::apply_through_pull(self, scope, fetched, removed).await
    }

    /// A token that changes whenever any connection (another process included) committed a
    /// change to the store since the last call; `None` when the store cannot tell (the
    /// default). [`Orchestrator::watch`](crate::Orchestrator::watch) polls it while a watch is
    /// alive, to see writes made by others.
    ///
    /// Only equality matters: a token differs from the previous call's after a change; it may
    /// also differ without one (a spurious wake-up only re-runs the watched queries).
    async fn change_token(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A shared, type-erased local store.
pub type DynLocalStore<T> = dyn LocalStore<T>;

/// A shared store is a store: `Arc<S>` (and `Arc<dyn LocalStore<T>>`) forwards every method.
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record, S: LocalStore<T> + ?Sized> LocalStore<T> for std::sync::Arc<S> {
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        (**self).get_by_id(scope, id).await
    }
    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>> {
        (**self).version(scope, id).await
    }
    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        (**self).query(scope, spec).await
    }
    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>> {
        (**self).query_since(scope, since).await
    }
    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        (**self).upsert_many(scope, items).await
    }
    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        (**self).delete_many(scope, tombstones).await
    }
    fn supports_soft_delete(&self) -> bool {
        (**self).supports_soft_delete()
    }
    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>> {
        (**self).sync_point(scope).await
    }
    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()> {
        (**self).save_sync_point(scope, point).await
    }
    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>> {
        (**self).apply_remote(scope, page, point).await
    }
    async fn enqueue(&self, op: PendingOp<T>) -> Result<()> {
        (**self).enqueue(op).await
    }
    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>> {
        (**self).pending_ops(scope, limit).await
    }
    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()> {
        (**self).ack_ops(scope, acks).await
    }
    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()> {
        (**self).reject_ops(scope, op_ids, error, park).await
    }
    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        (**self).parked_ops(scope).await
    }
    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        (**self).unpark_ops(scope, op_ids).await
    }
    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        (**self).discard_ops(scope, op_ids).await
    }
    async fn settle_conflict(&self, scope: &SyncScope, settlement: Settlement<T>) -> Result<()> {
        (**self).settle_conflict(scope, settlement).await
    }
    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        (**self).queue_status(scope).await
    }
    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        (**self).quarantined(scope).await
    }
    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        (**self).pause(scope).await
    }
    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()> {
        (**self).set_pause(scope, pause).await
    }
    async fn scopes(&self) -> Result<Vec<SyncScope>> {
        (**self).scopes().await
    }
    async fn change_token(&self) -> Result<Option<u64>> {
        (**self).change_token().await
    }
    async fn reconcile_rows(&self, scope: &SyncScope) -> Result<Vec<(String, Timestamp)>> {
        (**self).reconcile_rows(scope).await
    }
    async fn apply_reconciled(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        (**self).apply_reconciled(scope, fetched, removed).await
    }
}
