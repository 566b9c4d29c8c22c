//! The tasks an orchestrator starts, and how they end: `sync_in_background` (started by every
//! write and by `LocalFirst` reads), `flush`, `shutdown`.
//!
//! Every task is tracked and stops at its next await once [`Orchestrator::shutdown`] is called or
//! the last handle the app holds is dropped. Cancellation is checked before anything else is
//! polled, so a task never touches the runtime's timers or sockets after that: a program that
//! writes and returns from `main` ends cleanly (a runtime that is being shut down panics when a
//! task polls a timer), and its queued writes wait in the cache for the next sync.

use std::future::Future;
use std::time::Duration;

use super::Orchestrator;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::scope::SyncScope;

/// Cancels the orchestrator's tasks when the last handle of the app is dropped, and waits
/// (briefly) until they have stopped.
pub(super) struct HandleGuard {
    pub(super) cancel: tokio_util::sync::CancellationToken,
    // Waited for on drop natively; the browser has nothing to wait for.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(super) tasks: tokio_util::task::TaskTracker,
}

/// How long dropping the last handle waits for the tasks to notice the cancellation.
#[cfg(not(target_arch = "wasm32"))]
const DROP_WAIT: Duration = Duration::from_secs(1);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.cancel.cancel();
        // In the browser there is one thread: no task is in the middle of a poll while this
        // runs, so there is nothing to wait for (and no clock to wait on).
        #[cfg(not(target_arch = "wasm32"))]
        wait_stopped(&self.tasks);
    }
}

/// Waits (up to [`DROP_WAIT`]) until the cancelled `tasks` have stopped.
#[cfg(not(target_arch = "wasm32"))]
fn wait_stopped(tasks: &tokio_util::task::TaskTracker) {
    if tasks.is_empty() {
        return;
    }
    // On a multi-thread runtime a task may be in the middle of a poll on another worker
    // while the app returns from `main` and the runtime shuts down its timers under it.
    // Waiting here until every task has seen the cancellation closes that window. On a
    // current-thread runtime no task runs while this thread is busy, and the runtime drops
    // them unpolled, so there is nothing to wait for.
    let wait = || {
        let deadline = std::time::Instant::now() + DROP_WAIT;
        while !tasks.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        Ok(_) => {}
        Err(_) => wait(),
    }
}

impl<T: Record> Orchestrator<T> {
    /// Starts a sync of `scope` in a task on the current tokio runtime (nothing happens outside
    /// one; in the browser, on the event loop), retrying transient failures with backoff while
    /// ops stay queued; errors are logged. At most one such task per scope.
    ///
    /// Every `enqueue_*` calls this (unless
    /// [`sync_after_write`](super::OrchestratorConfig::sync_after_write) is off), and so does a
    /// [`LocalFirst`](crate::CachePolicy::LocalFirst) read. The task holds no handle of its own:
    /// it stops when the app drops its last [`Orchestrator`] clone or calls
    /// [`shutdown`](Self::shutdown). To make sure queued writes reached the remote before a
    /// program exits, call [`flush`](Self::flush).
    pub fn sync_in_background(&self, scope: &SyncScope) {
        let Some(spawner) = crate::rt::Spawner::current() else {
            return;
        };
        if self.inner.cancel.is_cancelled()
            || !self
                .inner
                .kicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(scope.clone())
        {
            return;
        }
        let this = self.task_handle();
        let scope = scope.clone();
        spawner.spawn_tracked(&self.inner.tasks, async move {
            this.kick_loop(&scope).await;
            this.inner
                .kicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&scope);
        });
    }

    /// Runs `fut` unless the orchestrator is cancelled first; `None` when cancelled. The
    /// cancellation is polled first, so nothing in `fut` runs after it.
    pub(super) async fn unless_cancelled<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.inner.cancel.cancelled() => None,
            out = fut => Some(out),
        }
    }

    async fn kick_loop(&self, scope: &SyncScope) {
        let backoff = &self.inner.config.backoff;
        let mut failures = 0u32;
        // Writes made while a sync was past its push phase are still queued afterwards; a few
        // follow-up syncs pick them up (bounded, so a remote that keeps answering conflicts
        // cannot keep this task busy).
        let mut follow_ups = 3;
        loop {
            let Some(result) = self.unless_cancelled(self.synchronize(scope)).await else {
                return;
            };
            match result {
                Ok(_) => {
                    failures = 0;
                    let status = self
                        .unless_cancelled(self.inner.local.queue_status(scope))
                        .await;
                    match status {
                        Some(Ok(s)) if s.pending > 0 && follow_ups > 0 => follow_ups -= 1,
                        _ => return,
                    }
                }
                Err(e) if e.is_retryable() && failures < backoff.max_retries => {
                    // Capped like the periodic loop: a huge Retry-After must not park this task
                    // (and with it every later write-triggered sync of the scope) for hours.
                    let delay = backoff.delay(failures, e.retry_after()).min(backoff.max);
                    failures += 1;
                    tracing::debug!(%scope, error = %e, ?delay, "background sync failed, retrying");
                    if self
                        .unless_cancelled(crate::rt::sleep(delay))
                        .await
                        .is_none()
                    {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(%scope, error = %e, "background sync failed");
                    return;
                }
            }
        }
    }

    /// Syncs every scope that has queued ops, until none is left or `timeout` passes: call it
    /// before a program exits so its writes reach the remote now rather than on the next run.
    /// Writes stay safe in the cache either way.
    ///
    /// Fails with the first sync error (a remote that refuses or cannot be reached), or with
    /// [`Error::Unavailable`] naming what is still queued when the time is up.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let work = async {
            for scope in self.inner.local.scopes().await? {
                // A sync pushes what was queued when it started; writes made meanwhile need
                // another round (bounded: another writer may keep writing).
                for _ in 0..4 {
                    if self.inner.local.queue_status(&scope).await?.pending == 0 {
                        break;
                    }
                    self.synchronize(&scope).await?;
                }
            }
            Ok(())
        };
        match crate::rt::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable {
                backend: self.inner.remote.name(),
                message: format!("flush did not finish within {timeout:?}; writes stay queued"),
                source: None,
            }),
        }
    }

    /// Stops every task this orchestrator started (write-triggered syncs, LocalFirst refreshes
    /// and [`start_background_sync`](Self::start_background_sync) loops) and waits until they
    /// have stopped. Queued writes stay in the cache. Later writes are still recorded but start
    /// no task; `synchronize` still works when called.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}
