//! [`Orchestrator::reconcile`]: repairs the cache against the remote (see
//! [`reconcile`](crate::reconcile)).

use super::Orchestrator;
use crate::error::Result;
use crate::reconcile::ReconcileReport;
use crate::record::Record;
use crate::scope::SyncScope;

impl<T: Record> Orchestrator<T> {
    /// Compares the cache of `scope` with the remote and repairs what the change feed never
    /// carried: rows the remote no longer has (hard-deleted, purged) leave the cache, rows it
    /// has that the cache lacks or holds at another version are fetched and applied like
    /// pulled rows. Returns what was checked, found and transferred.
    ///
    /// It compares digests of buckets of the id space and descends only into buckets that
    /// differ (see
    /// [`reconcile`](crate::reconcile)), so an unchanged scope costs one round of about 4096
    /// bucket digests, whatever its size. The remote computes its digests where the data lives
    /// ([`RemoteStore::digest`](crate::RemoteStore::digest)); one that cannot is listed in full.
    ///
    /// It does not push or pull: run it after a [`synchronize`](Self::synchronize) (as the
    /// background sync does with [`OrchestratorConfig::reconcile_every`](crate::OrchestratorConfig::reconcile_every)),
    /// otherwise rows changed since the last pull are counted as stale and fetched one by one
    /// (correct, only dearer). The sync point is not touched.
    ///
    /// It never runs at the same time as a sync (or an online read's push) of the same scope on
    /// this orchestrator: each waits for the other, so a row a pull brings cannot be replaced
    /// by an older row fetched here. (Another process syncing the same cache file is not
    /// excluded; removals only take rows still at the version compared, and the next
    /// reconciliation repairs a row replaced that way.)
    ///
    /// Queued local writes are never touched: a record with queued ops (pending or parked) is
    /// neither overwritten nor removed, and is counted in [`ReconcileReport::skipped`] when it
    /// differs.
    pub async fn reconcile(&self, scope: &SyncScope) -> Result<ReconcileReport> {
        // Never interleaved with a sync of the scope (module docs of `crate::reconcile`).
        let lock = self.inner.exclusive(scope);
        let _guard = lock.lock().await;
        crate::reconcile::reconcile(
            &*self.inner.local,
            &*self.inner.remote,
            scope,
            self.inner.config.pull_page_size,
        )
        .await
    }
}
