//! Offline writes: `enqueue_*`, and the fix for a parked write, `replace_parked`.

use jiff::Timestamp;

use super::{Orchestrator, decide};
use crate::error::{Error, Result};
use crate::local::Settlement;
use crate::op::{OpId, OpKind, PendingOp};
use crate::record::{Change, Record};
use crate::scope::SyncScope;

impl<T: Record> Orchestrator<T> {
    /// Creates a record offline: the cache row and the queued op commit in one transaction
    /// (durable when this returns), then a background sync of the scope starts (see
    /// [`sync_in_background`](Self::sync_in_background); off with
    /// [`OrchestratorConfig::sync_after_write`](super::OrchestratorConfig::sync_after_write)).
    /// Returns the op id. Creating an id the cache already holds replaces it, like an update.
    ///
    /// ## Versions
    /// A record's version (`updated_at`, `deleted_at` for deletes) is what conflicts are detected
    /// and decided on, so every write must move past the version the record already has in the
    /// cache. A write that does not (an app that forgot to bump `updated_at`, a clock behind
    /// another device's, a coarse browser clock) is restamped to one millisecond after that
    /// version through [`Record::with_updated_at`]; if that fails it is refused with
    /// [`Error::StaleVersion`] and nothing is written. Read the record back to see its version.
    /// Two devices' writes with equal stamps are still told apart: the compare-and-set on the
    /// version each was made on makes the second a conflict, and last-write-wins keeps the one
    /// the remote already holds.
    pub async fn enqueue_create(&self, scope: &SyncScope, record: T) -> Result<OpId> {
        self.enqueue(PendingOp::upsert(scope.clone(), OpKind::Create, record))
            .await
    }

    /// Updates a record offline (see [`enqueue_create`](Self::enqueue_create)).
    ///
    /// The record must be live in the cache: updating an id the cache does not hold (never
    /// pulled, or deleted) is refused with [`Error::NotFound`] and nothing is written. Use
    /// [`enqueue_create`](Self::enqueue_create) for new records.
    pub async fn enqueue_update(&self, scope: &SyncScope, record: T) -> Result<OpId> {
        self.enqueue(PendingOp::upsert(scope.clone(), OpKind::Update, record))
            .await
    }

    /// Deletes a record offline, stamped now (see [`enqueue_create`](Self::enqueue_create)).
    pub async fn enqueue_delete(&self, scope: &SyncScope, id: &str) -> Result<OpId> {
        self.enqueue_delete_at(scope, id, Timestamp::now()).await
    }

    /// Deletes a record offline with the given deletion time (for apps that keep their own clock).
    pub async fn enqueue_delete_at(
        &self,
        scope: &SyncScope,
        id: &str,
        deleted_at: Timestamp,
    ) -> Result<OpId> {
        self.enqueue(PendingOp::delete(scope.clone(), id, deleted_at))
            .await
    }

    /// Replaces a parked op with a corrected record: the parked op leaves the queue and a new op
    /// carrying `record` takes its place, pending, made on the same remote version. The cache
    /// row shows `record` at once. Returns the new op id.
    ///
    /// This is the fix for a write the remote refused (validation, a field it does not accept):
    /// list them with [`parked_ops`](Self::parked_ops) (their `last_error` says why), then
    /// either correct the record here, give the write up with
    /// [`discard_parked`](Self::discard_parked), or, when the remote side was fixed instead,
    /// send it again as it is with [`retry_parked`](Self::retry_parked). While an op is parked,
    /// pulls do not overwrite its record.
    pub async fn replace_parked(&self, scope: &SyncScope, op_id: &OpId, record: T) -> Result<OpId> {
        let parked = self
            .inner
            .local
            .parked_ops(scope)
            .await?
            .into_iter()
            .find(|o| &o.op_id == op_id)
            .ok_or_else(|| Error::NotFound {
                what: format!("parked op {op_id} in scope {scope}"),
            })?;
        if record.id() != parked.id {
            return Err(Error::InvalidInput(format!(
                "the parked op is for record {:?}, not {:?}",
                parked.id,
                record.id()
            )));
        }
        let kind = match parked.kind {
            OpKind::Delete => OpKind::Update,
            k => k,
        };
        let mut op = PendingOp::upsert(scope.clone(), kind, record);
        if let Some((current, _)) = self.inner.local.version(scope, &op.id).await? {
            op = restamp_write(op, current)?;
        }
        let new_id = op.op_id.clone();
        self.inner
            .local
            .settle_conflict(
                scope,
                Settlement {
                    id: parked.id.clone(),
                    settled_ops: vec![parked.op_id],
                    // Unchanged: the new write is made on the version the parked one was.
                    remote_version: parked.base_version,
                    local: Some(op.change()),
                    requeue: Some(op),
                },
            )
            .await?;
        self.after_write(scope);
        Ok(new_id)
    }

    async fn enqueue(&self, mut op: PendingOp<T>) -> Result<OpId> {
        if op.id.is_empty() {
            return Err(Error::InvalidInput("record id must not be empty".into()));
        }
        match self.inner.local.version(&op.scope, &op.id).await? {
            Some((current, deleted)) => {
                if deleted && op.kind == OpKind::Update {
                    return Err(not_cached(&op));
                }
                op = restamp_write(op, current)?;
            }
            None if op.kind == OpKind::Update => return Err(not_cached(&op)),
            None => {}
        }
        let op_id = op.op_id.clone();
        let scope = op.scope.clone();
        self.inner.local.enqueue(op).await?;
        self.after_write(&scope);
        Ok(op_id)
    }

    fn after_write(&self, scope: &SyncScope) {
        if self.inner.config.sync_after_write {
            self.sync_in_background(scope);
        }
    }
}

fn not_cached<T>(op: &PendingOp<T>) -> Error {
    Error::NotFound {
        what: format!(
            "record {:?} in scope {} (update needs a live cached record; use enqueue_create)",
            op.id, op.scope
        ),
    }
}

/// Moves a new local write past the version the record already has (another device's clock may
/// be ahead, a browser's clock coarse): versions are the compare-and-set token, so two different
/// contents must never share one. Deletes are restamped freely; records through
/// [`Record::with_updated_at`], and a record that cannot be restamped is refused.
fn restamp_write<T: Record>(mut op: PendingOp<T>, current: Timestamp) -> Result<PendingOp<T>> {
    let version = op.change().version();
    if version > current {
        return Ok(op);
    }
    match decide::try_restamp_past(op.change(), current) {
        Ok(Change::Upsert(record)) => {
            op.updated_at = record.updated_at();
            op.payload = Some(record);
        }
        Ok(Change::Delete(t)) => op.updated_at = t.deleted_at,
        Err(_) => {
            return Err(Error::StaleVersion {
                id: op.id.clone(),
                version,
                current,
            });
        }
    }
    tracing::debug!(id = %op.id, %version, %current, "local write restamped past the record's version");
    Ok(op)
}
