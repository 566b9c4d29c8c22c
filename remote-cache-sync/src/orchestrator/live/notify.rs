//! [`NotifyingStore`]: the orchestrator's view of its local store, telling the change hub what
//! every write touched.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::Live;
use crate::delta::{Delta, QuarantinedRow, SyncPoint};
use crate::error::Result;
use crate::local::{Ack, LocalStore, QueueStatus, ScopePause, Settlement};
use crate::op::{OpId, PendingOp};
use crate::query::QuerySpec;
use crate::record::{Record, Tombstone};
use crate::scope::SyncScope;

/// Forwards every call to the store; after a write that succeeded, wakes the watches of its
/// scope and, when someone listens to the status, refreshes the scope's queue counts.
pub(crate) struct NotifyingStore<T> {
    pub(crate) store: Arc<dyn LocalStore<T>>,
    pub(crate) live: Arc<Live>,
}

impl<T: Record> NotifyingStore<T> {
    async fn wrote<R>(&self, scope: &SyncScope, result: Result<R>) -> Result<R> {
        if result.is_ok() {
            self.live.changed(scope);
            if self.live.status_listened() {
                self.live.refresh_counts(&*self.store, scope).await;
            }
        }
        result
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> LocalStore<T> for NotifyingStore<T> {
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        self.store.get_by_id(scope, id).await
    }
    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>> {
        self.store.version(scope, id).await
    }
    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        self.store.query(scope, spec).await
    }
    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>> {
        self.store.query_since(scope, since).await
    }
    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        let r = self.store.upsert_many(scope, items).await;
        self.wrote(scope, r).await
    }
    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        let r = self.store.delete_many(scope, tombstones).await;
        self.wrote(scope, r).await
    }
    fn supports_soft_delete(&self) -> bool {
        self.store.supports_soft_delete()
    }
    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>> {
        self.store.sync_point(scope).await
    }
    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()> {
        self.store.save_sync_point(scope, point).await
    }
    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>> {
        let r = self.store.apply_remote(scope, page, point).await;
        self.wrote(scope, r).await
    }
    async fn enqueue(&self, op: PendingOp<T>) -> Result<()> {
        let scope = op.scope.clone();
        let r = self.store.enqueue(op).await;
        self.wrote(&scope, r).await
    }
    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>> {
        self.store.pending_ops(scope, limit).await
    }
    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()> {
        let r = self.store.ack_ops(scope, acks).await;
        self.wrote(scope, r).await
    }
    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()> {
        let r = self.store.reject_ops(scope, op_ids, error, park).await;
        self.wrote(scope, r).await
    }
    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        self.store.parked_ops(scope).await
    }
    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let r = self.store.unpark_ops(scope, op_ids).await;
        self.wrote(scope, r).await
    }
    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let r = self.store.discard_ops(scope, op_ids).await;
        self.wrote(scope, r).await
    }
    async fn settle_conflict(&self, scope: &SyncScope, settlement: Settlement<T>) -> Result<()> {
        let r = self.store.settle_conflict(scope, settlement).await;
        self.wrote(scope, r).await
    }
    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        self.store.queue_status(scope).await
    }
    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        self.store.quarantined(scope).await
    }
    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        self.store.pause(scope).await
    }
    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()> {
        self.store.set_pause(scope, pause).await
    }
    async fn scopes(&self) -> Result<Vec<SyncScope>> {
        self.store.scopes().await
    }
    async fn change_token(&self) -> Result<Option<u64>> {
        self.store.change_token().await
    }
    async fn reconcile_rows(&self, scope: &SyncScope) -> Result<Vec<(String, Timestamp)>> {
        self.store.reconcile_rows(scope).await
    }
    async fn apply_reconciled(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        let r = self.store.apply_reconciled(scope, fetched, removed).await;
        self.wrote(scope, r).await
    }
}
