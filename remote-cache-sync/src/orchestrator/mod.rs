//! [`Orchestrator`]: read paths, offline writes, and `synchronize` (push, pull, merge).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> remote_cache_sync::Result<()> {
//! use std::sync::Arc;
//! use remote_cache_sync::{CachePolicy, InMemoryLocalStore, InMemoryRemoteStore, Orchestrator, QuerySpec, SyncScope};
//! use remote_cache_sync::testing::TestRecord;
//!
//! let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
//! let device = Orchestrator::new(Arc::new(InMemoryLocalStore::new()), remote.clone());
//! let scope = SyncScope::new("records", [("userId", "u1")])?;
//!
//! device.enqueue_create(&scope, TestRecord::new("r1", "offline write", jiff::Timestamp::now())).await?;
//! let report = device.synchronize(&scope).await?;
//! assert_eq!(report.pushed, 1);
//! assert_eq!(remote.snapshot(&scope).len(), 1);
//! let rows = device.read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new()).await?;
//! assert_eq!(rows[0].title, "offline write");
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use jiff::Timestamp;

use crate::conflict::{ConflictResolver, LastWriteWins};
use crate::delta::QuarantinedRow;
use crate::error::{Error, Result};
use crate::local::{LocalStore, QueueStatus, ScopePause};
use crate::op::{OpId, OpKind, PendingOp};
use crate::policy::CachePolicy;
use crate::query::QuerySpec;
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

mod background;
mod coalesce;
mod decide;
mod sync;

pub use background::{BackgroundSync, Backoff};
pub use decide::{ConflictOutcome, ResolvedConflict};

/// Moves a new local write past the version the record already has (another device's clock may
/// be ahead, a browser's clock coarse): versions are the compare-and-set token, so two different
/// contents must never share one. Deletes are restamped freely; records through
/// [`Record::with_updated_at`], and a record that cannot be restamped is refused.
fn restamp_write<T: Record>(mut op: PendingOp<T>, current: Timestamp) -> Result<PendingOp<T>> {
    let version = op.change().version();
    if version > current {
        return Ok(op);
    }
    let at = current + decide::RESTAMP_STEP;
    let stale = || Error::StaleVersion {
        id: op.id.clone(),
        version,
        current,
    };
    match op.payload.take() {
        None => op.updated_at = at,
        Some(record) => {
            let record = record.with_updated_at(at).map_err(|_| stale())?;
            if crate::record::Change::Upsert(record.clone()).version() <= current {
                return Err(stale());
            }
            op.updated_at = record.updated_at();
            op.payload = Some(record);
        }
    }
    tracing::debug!(id = %op.id, %version, %current, "local write restamped past the record's version");
    Ok(op)
}

/// Tunables for an [`Orchestrator`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OrchestratorConfig {
    /// Queued ops read and pushed per request.
    pub push_batch_size: usize,
    /// Changes requested per pull page.
    pub pull_page_size: usize,
    /// Rejections after which an op is parked (1: park at the first permanent rejection).
    pub max_rejections: u32,
    /// Start a background sync of the scope after every `enqueue_*`.
    pub sync_after_write: bool,
    /// Retry schedule for background syncs after transient failures.
    pub backoff: Backoff,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            push_batch_size: 100,
            pull_page_size: 500,
            max_rejections: 1,
            sync_after_write: true,
            backoff: Backoff::default(),
        }
    }
}

impl OrchestratorConfig {
    /// Sets `push_batch_size`.
    pub fn push_batch_size(mut self, n: usize) -> Self {
        self.push_batch_size = n.max(1);
        self
    }
    /// Sets `pull_page_size`.
    pub fn pull_page_size(mut self, n: usize) -> Self {
        self.pull_page_size = n.max(1);
        self
    }
    /// Sets `max_rejections`.
    pub fn max_rejections(mut self, n: u32) -> Self {
        self.max_rejections = n.max(1);
        self
    }
    /// Sets `sync_after_write`.
    pub fn sync_after_write(mut self, on: bool) -> Self {
        self.sync_after_write = on;
        self
    }
    /// Sets the retry schedule.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// What one [`Orchestrator::synchronize`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Records whose queued ops the remote applied.
    pub pushed: usize,
    /// Changes received from the remote (re-deliveries included).
    pub pulled: usize,
    /// Conflicts settled by the resolver (details in [`resolved`](Self::resolved)).
    pub conflicts: usize,
    /// Every conflict the resolver settled: the record and what won, so an app can tell the
    /// user which edit lost.
    pub resolved: Vec<ResolvedConflict>,
    /// Ops parked after permanent rejections.
    pub parked: usize,
    /// Ops rejected but still queued for another attempt.
    pub rejected: usize,
    /// Pulled changes not applied because the record has a queued local write.
    pub skipped: usize,
    /// Pulled rows that did not decode and were quarantined (see [`Orchestrator::quarantined`]).
    pub quarantined: usize,
}

type SharedSync = Shared<BoxFuture<'static, Result<SyncReport>>>;

pub(crate) struct Inner<T: Record> {
    pub local: Arc<dyn LocalStore<T>>,
    pub remote: Arc<dyn RemoteStore<T>>,
    pub resolver: Arc<dyn ConflictResolver<T>>,
    pub config: OrchestratorConfig,
    inflight: Mutex<HashMap<SyncScope, SharedSync>>,
    kicked: Mutex<HashSet<SyncScope>>,
}

/// Keeps a local cache of a remote in sync. Cheap to clone; clones share state.
pub struct Orchestrator<T: Record> {
    inner: Arc<Inner<T>>,
}

impl<T: Record> Clone for Orchestrator<T> {
    fn clone(&self) -> Self {
        Orchestrator {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Record> Orchestrator<T> {
    /// An orchestrator with last-write-wins and the default config.
    pub fn new(local: Arc<dyn LocalStore<T>>, remote: Arc<dyn RemoteStore<T>>) -> Self {
        Self::with(
            local,
            remote,
            Arc::new(LastWriteWins::new()),
            OrchestratorConfig::default(),
        )
    }

    /// An orchestrator with a resolver and config of your choice.
    pub fn with(
        local: Arc<dyn LocalStore<T>>,
        remote: Arc<dyn RemoteStore<T>>,
        resolver: Arc<dyn ConflictResolver<T>>,
        config: OrchestratorConfig,
    ) -> Self {
        Orchestrator {
            inner: Arc::new(Inner {
                local,
                remote,
                resolver,
                config,
                inflight: Mutex::new(HashMap::new()),
                kicked: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The local store.
    pub fn local(&self) -> &Arc<dyn LocalStore<T>> {
        &self.inner.local
    }

    /// The remote.
    pub fn remote(&self) -> &Arc<dyn RemoteStore<T>> {
        &self.inner.remote
    }

    /// Reads records of a scope according to `policy` (see [`CachePolicy`]).
    pub async fn read(
        &self,
        scope: &SyncScope,
        policy: CachePolicy,
        query: &QuerySpec,
    ) -> Result<Vec<T>> {
        query.validate()?;
        self.before_read(scope, policy).await?;
        self.inner.local.query(scope, query).await
    }

    /// Reads one record according to `policy`.
    pub async fn get(&self, scope: &SyncScope, id: &str, policy: CachePolicy) -> Result<Option<T>> {
        self.before_read(scope, policy).await?;
        self.inner.local.get_by_id(scope, id).await
    }

    async fn before_read(&self, scope: &SyncScope, policy: CachePolicy) -> Result<()> {
        match policy {
            CachePolicy::OfflineOnly => Ok(()),
            CachePolicy::LocalFirst => {
                self.sync_in_background(scope);
                Ok(())
            }
            CachePolicy::OnlineOnly => self.synchronize(scope).await.map(drop),
            CachePolicy::RemoteFirst => match self.synchronize(scope).await {
                Err(e) if e.is_retryable() => {
                    tracing::debug!(%scope, error = %e, "remote unreachable, answering from cache");
                    Ok(())
                }
                other => other.map(drop),
            },
        }
    }

    /// Creates a record offline: written to the cache and queued in one transaction, then synced
    /// in the background (when enabled). Returns the op id.
    ///
    /// ## Versions
    /// A record's version (`updated_at`, `deleted_at` for deletes) is what conflicts are detected
    /// and decided on, so every write must move past the version the record already has in the
    /// cache. A write that does not (an app that forgot to bump `updated_at`, a clock behind
    /// another device's, a coarse browser clock) is restamped to one millisecond after that
    /// version through [`Record::with_updated_at`]; if that fails it is refused with
    /// [`Error::StaleVersion`] and nothing is written. Read the record back to see its version.
    pub async fn enqueue_create(&self, scope: &SyncScope, record: T) -> Result<OpId> {
        self.enqueue(PendingOp::upsert(scope.clone(), OpKind::Create, record))
            .await
    }

    /// Updates a record offline (see [`enqueue_create`](Self::enqueue_create)).
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

    async fn enqueue(&self, mut op: PendingOp<T>) -> Result<OpId> {
        if op.id.is_empty() {
            return Err(Error::InvalidInput("record id must not be empty".into()));
        }
        if let Some(current) = self.inner.local.version(&op.scope, &op.id).await? {
            op = restamp_write(op, current)?;
        }
        let op_id = op.op_id.clone();
        let scope = op.scope.clone();
        self.inner.local.enqueue(op).await?;
        if self.inner.config.sync_after_write {
            self.sync_in_background(&scope);
        }
        Ok(op_id)
    }

    /// Pushes the scope's queue, then pulls until the remote has no more changes. One sync per
    /// scope runs at a time: concurrent callers share the running sync's result.
    pub async fn synchronize(&self, scope: &SyncScope) -> Result<SyncReport> {
        let fut = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match inflight.get(scope) {
                Some(f) => f.clone(),
                None => {
                    let inner = self.inner.clone();
                    let s = scope.clone();
                    let f = async move {
                        let result = sync::run(&inner, &s).await;
                        inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&s);
                        result
                    }
                    .boxed()
                    .shared();
                    inflight.insert(scope.clone(), f.clone());
                    f
                }
            }
        };
        fut.await
    }

    /// Queue counters of a scope.
    pub async fn status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        self.inner.local.queue_status(scope).await
    }

    /// Why the scope's sync is paused, if it is: the remote refused the request itself
    /// ([`Error::pauses_scope`]). Queued ops stay pending meanwhile, their attempts untouched;
    /// the next successful sync clears the pause.
    pub async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        self.inner.local.pause(scope).await
    }

    /// Remote rows of the scope that did not decode, with their reasons. Each is retried when it
    /// changes on the remote.
    pub async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        self.inner.local.quarantined(scope).await
    }

    /// Ops the remote rejected permanently, with their errors.
    pub async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        self.inner.local.parked_ops(scope).await
    }

    /// Puts parked ops back in the queue (after fixing what the remote objected to).
    pub async fn retry_parked(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        self.inner.local.unpark_ops(scope, op_ids).await
    }

    /// Drops parked ops and restores their records from the remote (removing them locally when
    /// the remote has none). See [`discard_ops`](Self::discard_ops).
    pub async fn discard_parked(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        sync::discard(&self.inner, scope, op_ids).await
    }

    /// Drops queued ops, pending or parked, without pushing them: the app gives up on these
    /// writes. Their records are restored from the remote (removed locally when the remote has
    /// none, or when its row does not decode). Needs the remote; unknown op ids are ignored.
    pub async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        sync::discard(&self.inner, scope, op_ids).await
    }

    /// Runs a sync of `scope` on the current tokio runtime, retrying transient failures with
    /// backoff while ops stay queued. At most one such task per scope; errors are logged.
    pub fn sync_in_background(&self, scope: &SyncScope) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self
            .inner
            .kicked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.clone())
        {
            return;
        }
        let this = self.clone();
        let scope = scope.clone();
        handle.spawn(async move {
            this.kick_loop(&scope).await;
            this.inner
                .kicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&scope);
        });
    }

    async fn kick_loop(&self, scope: &SyncScope) {
        let backoff = &self.inner.config.backoff;
        let mut failures = 0u32;
        // Writes made while a sync was past its push phase are still queued afterwards; a few
        // follow-up syncs pick them up (bounded, so a remote that keeps answering conflicts
        // cannot keep this task busy).
        let mut follow_ups = 3;
        loop {
            match self.synchronize(scope).await {
                Ok(_) => {
                    failures = 0;
                    match self.inner.local.queue_status(scope).await {
                        Ok(s) if s.pending > 0 && follow_ups > 0 => follow_ups -= 1,
                        _ => return,
                    }
                }
                Err(e) if e.is_retryable() && failures < backoff.max_retries => {
                    // Capped like the periodic loop: a huge Retry-After must not park this task
                    // (and with it every later write-triggered sync of the scope) for hours.
                    let delay = backoff.delay(failures, e.retry_after()).min(backoff.max);
                    failures += 1;
                    tracing::debug!(%scope, error = %e, ?delay, "background sync failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    tracing::warn!(%scope, error = %e, "background sync failed");
                    return;
                }
            }
        }
    }

    /// Starts a periodic sync of `scopes` every `interval` (see [`BackgroundSync`]).
    pub fn start_background_sync(
        &self,
        scopes: Vec<SyncScope>,
        interval: Duration,
    ) -> BackgroundSync {
        background::start(self.clone(), scopes, interval)
    }
}
