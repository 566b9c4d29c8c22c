//! What makes an app live: watched queries ([`Orchestrator::watch`](super::Orchestrator::watch))
//! and the sync-status stream ([`Orchestrator::status_stream`](super::Orchestrator::status_stream)).
//!
//! [`Live`] is the orchestrator's change hub. Every change to the local store goes through
//! [`NotifyingStore`], which tells the hub the scope it touched; the hub wakes the watches of
//! that scope (a `tokio::sync::watch` per watched scope: runtime-neutral, it works in the
//! browser too, and it coalesces: a watch that is busy re-running its query sees one wake-up for
//! any number of changes). Changes made by other processes are seen by a poller of
//! [`LocalStore::change_token`](crate::LocalStore::change_token) that runs only while a watch is
//! alive. When nobody watches, a change costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::scope::SyncScope;

mod notify;
mod status;
mod watch_query;

pub(crate) use notify::NotifyingStore;
pub use status::{Paused, ScopeStatus, SyncPhase, SyncStatus};
pub use watch_query::Watch;

/// The change hub of one orchestrator.
pub(crate) struct Live {
    /// Live watches; zero makes [`changed`](Self::changed) a no-op.
    watchers: AtomicUsize,
    /// A wake-up channel per watched scope.
    signals: Mutex<HashMap<SyncScope, watch::Sender<()>>>,
    /// Whether the cross-process poller runs.
    poller: AtomicBool,
    /// The sync status of every scope this orchestrator has seen.
    status: watch::Sender<SyncStatus>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            watchers: AtomicUsize::new(0),
            signals: Mutex::new(HashMap::new()),
            poller: AtomicBool::new(false),
            status: watch::Sender::new(SyncStatus::default()),
        }
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("watchers", &self.watchers())
            .finish_non_exhaustive()
    }
}

impl Live {
    fn signals(&self) -> std::sync::MutexGuard<'_, HashMap<SyncScope, watch::Sender<()>>> {
        self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something in `scope` changed: wakes its watches.
    #[inline]
    pub(crate) fn changed(&self, scope: &SyncScope) {
        if self.watchers.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(tx) = self.signals().get(scope) {
            tx.send_modify(|_| {});
        }
    }

    /// Something changed, in no known scope (another process wrote): wakes every watch.
    pub(crate) fn changed_all(&self) {
        for tx in self.signals().values() {
            tx.send_modify(|_| {});
        }
    }

    /// Live watches.
    pub(crate) fn watchers(&self) -> usize {
        self.watchers.load(Ordering::SeqCst)
    }

    /// A watch of `scope` starts: its wake-ups, until the subscription is dropped.
    pub(crate) fn subscribe(self: &Arc<Self>, scope: &SyncScope) -> Subscription {
        let rx = {
            let mut signals = self.signals();
            self.watchers.fetch_add(1, Ordering::SeqCst);
            signals
                .entry(scope.clone())
                .or_insert_with(|| watch::Sender::new(()))
                .subscribe()
        };
        Subscription {
            live: self.clone(),
            scope: scope.clone(),
            rx: Some(rx),
        }
    }

    /// Claims the poller: `true` when the caller is to start it (it was not running).
    pub(crate) fn claim_poller(&self) -> bool {
        !self.poller.swap(true, Ordering::SeqCst)
    }

    /// The poller stops when no watch is left: `true` when it should stop (it has released its
    /// claim), `false` when a watch started meanwhile and it keeps running.
    pub(crate) fn poller_may_stop(&self) -> bool {
        if self.watchers() > 0 {
            return false;
        }
        self.poller.store(false, Ordering::SeqCst);
        // A watch that started after the check saw the poller running and started none.
        self.watchers() == 0 || self.poller.swap(true, Ordering::SeqCst)
    }

    /// Releases the poller's claim unconditionally (cancelled, or nothing to poll).
    pub(crate) fn release_poller(&self) {
        self.poller.store(false, Ordering::SeqCst);
    }
}

/// One watch's wake-ups; dropping it unsubscribes.
pub(crate) struct Subscription {
    live: Arc<Live>,
    scope: SyncScope,
    rx: Option<watch::Receiver<()>>,
}

impl Subscription {
    /// Waits for the next change of the scope (`false`: the hub is gone).
    pub(crate) async fn changed(&mut self) -> bool {
        match &mut self.rx {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut signals = self.live.signals();
        drop(self.rx.take());
        if signals
            .get(&self.scope)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            signals.remove(&self.scope);
        }
        self.live.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}
