//! [`Orchestrator::watch`], [`Orchestrator::watch_record`], [`Orchestrator::status_stream`] and
//! the cross-process poller.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use serde::Serialize;

use super::{Live, Subscription, SyncStatus};
use crate::error::{Error, Result};
use crate::local::LocalStore;
use crate::orchestrator::Orchestrator;
use crate::query::QuerySpec;
use crate::record::Record;
use crate::rt::MaybeSend;
use crate::scope::SyncScope;

/// A watched query: first the current result, then every changed result (see
/// [`Orchestrator::watch`]). Dropping it stops all work for it.
#[must_use = "a watch does nothing unless polled"]
pub struct Watch<R> {
    inner: crate::rt::BoxStream<'static, Result<R>>,
}

impl<R> std::fmt::Debug for Watch<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl<R> Stream for Watch<R> {
    type Item = Result<R>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Where a watch is between two results.
struct State<T: Record, F> {
    orch: Orchestrator<T>,
    sub: Subscription,
    fetch: F,
    /// The last result sent, serialized (results are compared in this form).
    last: Option<Vec<u8>>,
    first: bool,
    ended: bool,
}

impl<T: Record> Orchestrator<T> {
    /// Watches a query: yields the current result at once, then the new result whenever a
    /// change of the local cache altered it (a write, a pulled page, a settled conflict, a
    /// discarded or retried op, in this process or in another one writing the same cache
    /// file). Wake-ups are coalesced: a burst of changes while the query re-runs yields one
    /// result, and a result equal to the last one yielded is not yielded again. Changes of
    /// other scopes never re-run it.
    ///
    /// A failed query yields its error and the watch goes on (an invalid `query` yields
    /// [`Error::InvalidQuery`] and ends it). The stream ends when the orchestrator is
    /// [`shut down`](Self::shutdown); dropping it stops all work for it. The stream holds a
    /// handle of the orchestrator (so it keeps its tasks running while it lives).
    ///
    /// Changes made by another process are noticed by polling
    /// [`LocalStore::change_token`] every
    /// [`watch_poll_interval`](crate::OrchestratorConfig::watch_poll_interval) (20 ms by
    /// default) while at least one watch is alive: `SqliteLocalStore` answers with SQLite's
    /// `data_version`, a read of shared memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> remote_cache_sync::Result<()> {
    /// use futures::StreamExt;
    /// use remote_cache_sync::testing::{TestRecord, ts};
    /// use remote_cache_sync::{InMemoryLocalStore, InMemoryRemoteStore, Orchestrator, QuerySpec, SyncScope};
    ///
    /// let orch = Orchestrator::builder(InMemoryLocalStore::new(), InMemoryRemoteStore::new())
    ///     .sync_after_write(false)
    ///     .build();
    /// let scope = SyncScope::new("notes", [("user", "u1")])?;
    /// let mut notes = orch.watch(&scope, QuerySpec::new());
    /// assert!(notes.next().await.unwrap()?.is_empty()); // the current result
    /// orch.enqueue_create(&scope, TestRecord::new("n1", "hello", ts(1))).await?;
    /// assert_eq!(notes.next().await.unwrap()?[0].title, "hello");
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, scope: &SyncScope, query: QuerySpec) -> Watch<Vec<T>> {
        let (scope_q, query) = (scope.clone(), Arc::new(query));
        self.watch_with(scope, move |local: Arc<dyn LocalStore<T>>| {
            let (scope, query) = (scope_q.clone(), query.clone());
            async move {
                query.validate()?;
                local.query(&scope, &query).await
            }
        })
    }

    /// Watches one record as [`watch`](Self::watch) watches a query: `None` while the cache
    /// has no live record `id`.
    pub fn watch_record(&self, scope: &SyncScope, id: &str) -> Watch<Option<T>> {
        let (scope_q, id) = (scope.clone(), Arc::<str>::from(id));
        self.watch_with(scope, move |local: Arc<dyn LocalStore<T>>| {
            let (scope, id) = (scope_q.clone(), id.clone());
            async move { local.get_by_id(&scope, &id).await }
        })
    }

    fn watch_with<R, F, Fut>(&self, scope: &SyncScope, fetch: F) -> Watch<R>
    where
        R: Serialize + MaybeSend + 'static,
        F: FnMut(Arc<dyn LocalStore<T>>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = Result<R>> + MaybeSend,
    {
        let sub = self.inner.live.subscribe(scope);
        self.start_poller();
        let state = State {
            orch: self.clone(),
            sub,
            fetch,
            last: None,
            first: true,
            ended: false,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.ended {
                return None;
            }
            loop {
                if !st.first {
                    let changed = tokio::select! {
                        biased;
                        _ = st.orch.inner.cancel.cancelled() => false,
                        alive = st.sub.changed() => alive,
                    };
                    if !changed {
                        return None;
                    }
                }
                st.first = false;
                match (st.fetch)(st.orch.inner.local.clone()).await {
                    Ok(result) => {
                        let bytes = serde_json::to_vec(&result).ok();
                        if bytes.is_some() && bytes == st.last {
                            continue;
                        }
                        st.last = bytes;
                        return Some((Ok(result), st));
                    }
                    Err(e) => {
                        st.ended = matches!(e, Error::InvalidQuery(_));
                        return Some((Err(e), st));
                    }
                }
            }
        });
        Watch {
            inner: Box::pin(stream),
        }
    }

    /// The sync status of every scope, kept current: phase, progress, queue counts, the last
    /// error and report, pauses, connectivity (see [`SyncStatus`]). A `tokio::sync::watch`
    /// receiver (it works in the browser too): `borrow()` reads the current status,
    /// `changed().await` waits for the next change. Counts are refreshed after every local
    /// write while at least one receiver lives; on the first call the scopes already in the
    /// cache are loaded in the background.
    pub fn status_stream(&self) -> tokio::sync::watch::Receiver<SyncStatus> {
        let rx = self.inner.live.status_receiver();
        if let Some(spawner) = crate::rt::Spawner::current()
            && !self.inner.cancel.is_cancelled()
        {
            let this = self.task_handle();
            spawner.spawn_tracked(&self.inner.tasks, async move {
                let load = this.load_status();
                this.unless_cancelled(load).await;
            });
        }
        rx
    }

    /// Loads the counts, pause and last pull of every scope in the cache into the status.
    async fn load_status(&self) {
        let live = &self.inner.live;
        let scopes = match self.inner.local.scopes().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the cached scopes");
                return;
            }
        };
        for scope in scopes {
            let (queue, pause, point) = (
                self.inner.local.queue_status(&scope).await,
                self.inner.local.pause(&scope).await,
                self.inner.local.sync_point(&scope).await,
            );
            live.update_status(&scope, |s| {
                if let Ok(q) = queue {
                    s.queue = q;
                }
                if let (Ok(Some(p)), None) = (pause, &s.paused) {
                    s.paused = Some(super::Paused::ByRefusal(p));
                }
                if let (Ok(Some(p)), None) = (point, s.last_synced_at) {
                    s.last_synced_at = Some(p.server_time);
                }
            });
        }
    }

    /// Starts the cross-process poller unless it runs (or nothing can run it).
    fn start_poller(&self) {
        let live = &self.inner.live;
        if self.inner.cancel.is_cancelled() || !live.claim_poller() {
            return;
        }
        let Some(spawner) = crate::rt::Spawner::current() else {
            live.release_poller();
            return;
        };
        let this = self.task_handle();
        spawner.spawn_tracked(&self.inner.tasks, async move { this.poll_changes().await });
    }

    /// Polls the store's change token while a watch is alive; a change wakes every watch.
    async fn poll_changes(&self) {
        let live: &Live = &self.inner.live;
        let interval = self.inner.config.watch_poll_interval;
        let mut last: Option<u64> = None;
        loop {
            if live.poller_may_stop() {
                return;
            }
            match self.unless_cancelled(self.inner.local.change_token()).await {
                None => return live.release_poller(),
                // The store cannot tell: in-process changes still wake the watches.
                Some(Ok(None)) => return live.release_poller(),
                Some(Ok(Some(token))) => {
                    // The first token closes the gap between a watch's first query and the
                    // poller's start: one extra wake-up, suppressed if nothing changed.
                    if last != Some(token) {
                        last = Some(token);
                        live.changed_all();
                        if live.status_listened() {
                            for scope in live.status_scopes() {
                                live.refresh_counts(&*self.inner.local, &scope).await;
                            }
                        }
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "cannot read the cache's change token"),
            }
            if self
                .unless_cancelled(crate::rt::sleep(interval))
                .await
                .is_none()
            {
                return live.release_poller();
            }
        }
    }
}
