//! [`Orchestrator`]: read paths, offline writes, and `synchronize` (push, pull, decide).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::Shared;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conflict::ConflictResolver;
use crate::delta::QuarantinedRow;
use crate::error::Result;
use crate::local::{LocalStore, QueueStatus, ScopePause};
use crate::op::{OpId, PendingOp};
use crate::policy::CachePolicy;
use crate::query::QuerySpec;
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

mod background;
mod builder;
mod coalesce;
mod config;
mod decide;
mod live;
mod online;
mod reconcile;
mod sync;
mod tasks;
mod write;

pub use background::{BackgroundSync, Backoff};
pub use builder::OrchestratorBuilder;
pub use config::{OrchestratorConfig, SyncReport};
pub use decide::{ConflictOutcome, ResolvedConflict};
pub use live::{Paused, ScopeStatus, SyncPhase, SyncStatus, Watch};

type SharedSync = Shared<crate::rt::BoxFuture<'static, Result<SyncReport>>>;

pub(crate) struct Inner<T: Record> {
    /// The app's store behind a [`live::NotifyingStore`], which tells `live` of every write.
    pub local: Arc<dyn LocalStore<T>>,
    pub remote: Arc<dyn RemoteStore<T>>,
    pub resolver: Arc<dyn ConflictResolver<T>>,
    pub config: OrchestratorConfig,
    /// The running sync of each scope: `true` for a full sync, `false` for a push only
    /// (an online read's).
    inflight: Mutex<HashMap<SyncScope, (bool, SharedSync)>>,
    /// Held by whatever writes a scope's rows from the remote (a sync, a push, a
    /// reconciliation), so they never interleave: a reconciliation's rows, read from the remote
    /// before a pull applied newer ones, must not land after them.
    exclusive: Mutex<HashMap<SyncScope, Arc<tokio::sync::Mutex<()>>>>,
    kicked: Mutex<HashSet<SyncScope>>,
    /// Fires on [`Orchestrator::shutdown`] or when the app drops its last handle.
    cancel: CancellationToken,
    /// Every task this orchestrator started.
    tasks: TaskTracker,
    /// Watches and the sync status.
    live: Arc<live::Live>,
}

impl<T: Record> Inner<T> {
    /// The lock of `scope`'s remote-to-cache writers (see `exclusive`).
    pub(crate) fn exclusive(&self, scope: &SyncScope) -> Arc<tokio::sync::Mutex<()>> {
        self.exclusive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(scope.clone())
            .or_default()
            .clone()
    }
}

/// Keeps a local cache of a remote in sync: reads by [`CachePolicy`], offline writes, and
/// [`synchronize`](Self::synchronize) (push the queue, pull the changes, decide conflicts).
///
/// Cheap to clone; clones share everything. Build one with [`Orchestrator::new`] (last-write-wins,
/// default settings) or [`Orchestrator::builder`].
///
/// ## What happens on a write
/// `enqueue_create`/`enqueue_update`/`enqueue_delete` write the cache row and queue the op in one
/// transaction, then start a sync of the scope in the background (a tokio task; see
/// [`sync_in_background`](Self::sync_in_background)). The write is safe from that moment, network
/// or not. Before a program exits, [`flush`](Self::flush) pushes what is queued;
/// [`shutdown`](Self::shutdown) stops the tasks (dropping the last clone stops them too).
///
/// ## What `synchronize` guarantees
/// Every queued write ends acknowledged by the remote, or decided by the
/// [`ConflictResolver`] (counted in [`SyncReport::conflicts`], listed in
/// [`SyncReport::resolved`]), or parked with the remote's reason when the remote refused that
/// one write ([`parked_ops`](Self::parked_ops)). A refusal of the whole request (credentials,
/// a scope without a grant, a missing endpoint) parks nothing: the scope pauses
/// ([`pause`](Self::pause)) and the next successful sync resumes it. A remote row that does not
/// decode is quarantined ([`quarantined`](Self::quarantined)), never blocks the scope.
///
/// ## Example
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> remote_cache_sync::Result<()> {
/// use std::sync::Arc;
/// use remote_cache_sync::{
///     CachePolicy, InMemoryLocalStore, InMemoryRemoteStore, Orchestrator, QuerySpec, Record,
///     SyncScope, Timestamp,
/// };
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Note {
///     id: String,
///     text: String,
///     updated_at: Timestamp,
/// }
///
/// impl Record for Note {
///     fn id(&self) -> &str { &self.id }
///     fn updated_at(&self) -> Timestamp { self.updated_at }
/// }
///
/// let remote = Arc::new(InMemoryRemoteStore::<Note>::new());
/// let device = Orchestrator::new(InMemoryLocalStore::new(), remote.clone());
/// let scope = SyncScope::new("notes", [("user", "u1")])?;
///
/// let note = Note { id: "n1".into(), text: "offline".into(), updated_at: Timestamp::now() };
/// device.enqueue_create(&scope, note).await?;
/// let report = device.synchronize(&scope).await?;
/// assert_eq!(report.pushed, 1);
/// assert_eq!(remote.snapshot(&scope).len(), 1);
/// let rows = device.read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new()).await?;
/// assert_eq!(rows[0].text, "offline");
/// device.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Orchestrator<T: Record> {
    inner: Arc<Inner<T>>,
    /// `None` in the orchestrator's own tasks, so they do not keep it alive.
    guard: Option<Arc<tasks::HandleGuard>>,
}

impl<T: Record> Clone for Orchestrator<T> {
    fn clone(&self) -> Self {
        Orchestrator {
            inner: self.inner.clone(),
            guard: self.guard.clone(),
        }
    }
}

impl<T: Record> Orchestrator<T> {
    /// An orchestrator with last-write-wins and the default settings. Takes the stores by value
    /// or behind an `Arc` (any `LocalStore`/`RemoteStore`, `Arc`s of them included).
    pub fn new(local: impl LocalStore<T>, remote: impl RemoteStore<T>) -> Self {
        Self::builder(local, remote).build()
    }

    /// A builder to choose the resolver and settings (see [`OrchestratorBuilder`]).
    pub fn builder(
        local: impl LocalStore<T>,
        remote: impl RemoteStore<T>,
    ) -> OrchestratorBuilder<T> {
        OrchestratorBuilder::new(Arc::new(local), Arc::new(remote))
    }

    /// An orchestrator with a resolver and settings of your choice
    /// ([`builder`](Self::builder) reads better).
    pub fn with(
        local: impl LocalStore<T>,
        remote: impl RemoteStore<T>,
        resolver: Arc<dyn ConflictResolver<T>>,
        config: OrchestratorConfig,
    ) -> Self {
        Self::from_parts(Arc::new(local), Arc::new(remote), resolver, config)
    }

    pub(crate) fn from_parts(
        local: Arc<dyn LocalStore<T>>,
        remote: Arc<dyn RemoteStore<T>>,
        resolver: Arc<dyn ConflictResolver<T>>,
        config: OrchestratorConfig,
    ) -> Self {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let live = Arc::new(live::Live::default());
        let local = Arc::new(live::NotifyingStore {
            store: local,
            live: live.clone(),
        });
        Orchestrator {
            inner: Arc::new(Inner {
                local,
                remote,
                resolver,
                config,
                inflight: Mutex::new(HashMap::new()),
                exclusive: Mutex::new(HashMap::new()),
                kicked: Mutex::new(HashSet::new()),
                cancel: cancel.clone(),
                tasks: tasks.clone(),
                live,
            }),
            guard: Some(Arc::new(tasks::HandleGuard { cancel, tasks })),
        }
    }

    /// A handle for the orchestrator's own tasks: it does not keep them running.
    fn task_handle(&self) -> Self {
        Orchestrator {
            inner: self.inner.clone(),
            guard: None,
        }
    }

    /// The local store (writes through it wake [`watch`](Self::watch)es too).
    pub fn local(&self) -> &Arc<dyn LocalStore<T>> {
        &self.inner.local
    }

    /// The remote.
    pub fn remote(&self) -> &Arc<dyn RemoteStore<T>> {
        &self.inner.remote
    }

    /// Reads records of a scope according to `policy` (see [`CachePolicy`]).
    ///
    /// With [`OnlineOnly`](CachePolicy::OnlineOnly) and [`RemoteFirst`](CachePolicy::RemoteFirst)
    /// the query runs on the remote when it can ([`RemoteStore::query`]): the scope's queue is
    /// pushed first (so the app's own writes are in the answer), records that still have a
    /// queued or parked op are answered as the cache holds them, and the answer is not written
    /// into the cache (see [Queries answered by the remote](CachePolicy#queries-answered-by-the-remote)).
    /// A remote that cannot run it (`Ok(None)`, or [`Error::Unsupported`](crate::Error::Unsupported))
    /// gets the sync-then-cache path instead. `RemoteFirst` answers from the cache when the remote
    /// fails with a retryable error, as before, and after a remote answer starts a sync of the
    /// scope in the background, so that cache stays warm.
    pub async fn read(
        &self,
        scope: &SyncScope,
        policy: CachePolicy,
        query: &QuerySpec,
    ) -> Result<Vec<T>> {
        query.validate()?;
        if matches!(policy, CachePolicy::OnlineOnly | CachePolicy::RemoteFirst) {
            match online::read(self, scope, query).await {
                Ok(Some(rows)) => {
                    if policy == CachePolicy::RemoteFirst {
                        // Keep the cache this policy falls back on warm.
                        self.sync_in_background(scope);
                    }
                    return Ok(rows);
                }
                Ok(None) => {}
                Err(e) if policy == CachePolicy::RemoteFirst && e.is_retryable() => {
                    tracing::debug!(%scope, error = %e, "remote unreachable, answering from cache");
                    return self.inner.local.query(scope, query).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.before_read(scope, policy).await?;
        self.inner.local.query(scope, query).await
    }

    /// Reads one record according to `policy`.
    ///
    /// With [`OnlineOnly`](CachePolicy::OnlineOnly) and [`RemoteFirst`](CachePolicy::RemoteFirst)
    /// the record is read from the remote by id ([`RemoteStore::get_by_id`]) after the scope's
    /// queue is pushed, not by syncing the whole scope: a record that still has a queued or
    /// parked op is answered as the cache holds it, and the answer is not written into the
    /// cache, as for [`read`](Self::read). A remote row that does not decode gets the
    /// sync-then-cache path (the pull quarantines it). `RemoteFirst` answers from the cache when
    /// the remote fails with a retryable error, and after a remote answer syncs the scope in the
    /// background.
    pub async fn get(&self, scope: &SyncScope, id: &str, policy: CachePolicy) -> Result<Option<T>> {
        if matches!(policy, CachePolicy::OnlineOnly | CachePolicy::RemoteFirst) {
            match online::get(self, scope, id).await {
                Ok(Some(answer)) => {
                    if policy == CachePolicy::RemoteFirst {
                        self.sync_in_background(scope);
                    }
                    return Ok(answer);
                }
                Ok(None) => {}
                Err(e) if policy == CachePolicy::RemoteFirst && e.is_retryable() => {
                    tracing::debug!(%scope, error = %e, "remote unreachable, answering from cache");
                    return self.inner.local.get_by_id(scope, id).await;
                }
                Err(e) => return Err(e),
            }
        }
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

    /// Pushes the scope's queue, then pulls until the remote has no more changes. One sync per
    /// scope runs at a time: concurrent callers share the running sync's result.
    pub async fn synchronize(&self, scope: &SyncScope) -> Result<SyncReport> {
        loop {
            let (full, fut) = self.shared_run(scope, true);
            let result = fut.await;
            if full {
                return result;
            }
            // An online read's push was running: it did not pull. Run a sync of our own.
        }
    }

    /// Pushes the scope's queue without pulling (an online read's first step), sharing the
    /// slot of [`synchronize`](Self::synchronize): one push or sync per scope at a time.
    async fn push_only(&self, scope: &SyncScope) -> Result<SyncReport> {
        self.shared_run(scope, false).1.await
    }

    /// The sync or push running for `scope`, if any.
    fn running(&self, scope: &SyncScope) -> Option<SharedSync> {
        let inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        inflight.get(scope).map(|(_, f)| f.clone())
    }

    /// The running sync of `scope` (whether it is full, and its future), or a new one: a full
    /// sync when `full`, else a push only.
    fn shared_run(&self, scope: &SyncScope, full: bool) -> (bool, SharedSync) {
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((kind, f)) = inflight.get(scope) {
            return (*kind, f.clone());
        }
        let inner = self.inner.clone();
        let s = scope.clone();
        let f: crate::rt::BoxFuture<'static, _> = Box::pin(async move {
            let lock = inner.exclusive(&s);
            let guard = lock.lock().await;
            let result = if full {
                sync::run(&inner, &s).await
            } else {
                sync::push_only(&inner, &s).await
            };
            drop(guard);
            inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&s);
            result
        });
        let f = f.shared();
        inflight.insert(scope.clone(), (full, f.clone()));
        (full, f)
    }

    /// Queue counters of a scope: pending, parked and quarantined.
    pub async fn status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        self.inner.local.queue_status(scope).await
    }

    /// Why the scope's sync is paused, if it is: the remote refused the request itself
    /// ([`Error::pauses_scope`](crate::Error::pauses_scope)). Queued ops stay pending meanwhile,
    /// their attempts untouched; the next successful sync clears the pause.
    pub async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        self.inner.local.pause(scope).await
    }

    /// Remote rows of the scope that did not decode, with their reasons. Each is retried when it
    /// changes on the remote.
    pub async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        self.inner.local.quarantined(scope).await
    }

    /// Ops the remote refused (a verdict on that one write), with their errors. What to do about
    /// them: see [`replace_parked`](Self::replace_parked).
    pub async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        self.inner.local.parked_ops(scope).await
    }

    /// Puts parked ops back in the queue as they are (after fixing what the remote objected to
    /// on the remote's side). To change the record, use [`replace_parked`](Self::replace_parked).
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

    /// Keeps `scopes` in sync in the background (see [`BackgroundSync`]): driven by the remote's
    /// realtime events when it offers them ([`RemoteStore::subscribe`], unless
    /// [`OrchestratorConfig::realtime`] is off), and every `interval` in any case. With
    /// realtime, `interval` is only a safety net: make it long (minutes).
    pub fn start_background_sync(
        &self,
        scopes: Vec<SyncScope>,
        interval: Duration,
    ) -> BackgroundSync {
        background::start(self.clone(), scopes, interval)
    }
}
