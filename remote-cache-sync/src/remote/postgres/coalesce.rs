//! The bounded queue between a `LISTEN` connection and its subscriber.
//!
//! The connection must be read all the time (it also carries the answers to the pings), so
//! notifications keep arriving while a slow subscriber does not take them. They are triggers,
//! never data, so what waits is coalesced: each scope is pending at most once, and once more
//! than [`MAX_PENDING_SCOPES`] distinct scopes wait they are all replaced by one
//! [`RemoteEvent::Reconnected`] ("pull everything"). Memory stays bounded whatever the rate of
//! writes, and no change is lost: a pending scope or a resync always covers it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::remote::realtime::RemoteEvent;
use crate::scope::SyncScope;

/// Most distinct scopes waiting for a slow subscriber; beyond, one resync replaces them.
pub(super) const MAX_PENDING_SCOPES: usize = 1_024;

#[derive(Default)]
struct Pending {
    /// Changed scopes not yet taken, in arrival order, each once.
    order: VecDeque<SyncScope>,
    queued: HashSet<SyncScope>,
    /// Every scope is to be pulled (covers whatever `order` held).
    resync: bool,
    /// The connection failed: reported before anything still pending (the reconnect that
    /// follows resyncs everything anyway).
    failed: Option<Error>,
    /// The subscriber is gone.
    closed: bool,
}

/// The producer's side: the task that reads the connection.
pub(super) struct Sink(Arc<Shared>);

/// The subscriber's side; dropping it tells the producer to stop.
pub(super) struct Source(Arc<Shared>);

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new queue.
pub(super) fn queue() -> (Sink, Source) {
    let shared = Arc::new(Shared::default());
    (Sink(shared.clone()), Source(shared))
}

impl Sink {
    /// Queues `event`, coalesced. `false` when the subscriber is gone (stop reading).
    pub(super) fn offer(&self, event: RemoteEvent) -> bool {
        {
            let mut p = self.0.lock();
            if p.closed {
                return false;
            }
            match event {
                _ if p.resync => {}
                RemoteEvent::Changed(scope) => {
                    if !p.queued.contains(&scope) {
                        if p.queued.len() >= MAX_PENDING_SCOPES {
                            tracing::debug!(
                                "slow realtime subscriber: pending changes become a resync"
                            );
                            p.order.clear();
                            p.queued.clear();
                            p.resync = true;
                        } else {
                            p.queued.insert(scope.clone());
                            p.order.push_back(scope);
                        }
                    }
                }
                RemoteEvent::Reconnected => {
                    p.order.clear();
                    p.queued.clear();
                    p.resync = true;
                }
            }
        }
        self.0.wake.notify_one();
        true
    }

    /// The connection failed with `error`.
    pub(super) fn fail(&self, error: Error) {
        self.0.lock().failed.get_or_insert(error);
        self.0.wake.notify_one();
    }
}

impl Source {
    /// The next event (an `Err` once the connection failed), waiting for one.
    pub(super) async fn next(&self) -> Result<RemoteEvent> {
        loop {
            if let Some(item) = self.take() {
                return item;
            }
            self.0.wake.notified().await;
        }
    }

    fn take(&self) -> Option<Result<RemoteEvent>> {
        let mut p = self.0.lock();
        if let Some(e) = p.failed.take() {
            // The connection is over; the next one starts with a resync.
            p.order.clear();
            p.queued.clear();
            p.resync = false;
            return Some(Err(e));
        }
        if p.resync {
            p.resync = false;
            return Some(Ok(RemoteEvent::Reconnected));
        }
        let scope = p.order.pop_front()?;
        p.queued.remove(&scope);
        Some(Ok(RemoteEvent::Changed(scope)))
    }

    /// Events waiting (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let p = self.0.lock();
        p.order.len() + usize::from(p.resync)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.0.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(i: usize) -> SyncScope {
        SyncScope::new("records", [("owner", format!("o{i}"))]).unwrap()
    }

    #[tokio::test]
    async fn a_flood_of_one_scope_waits_as_one_event() {
        let (sink, source) = queue();
        for _ in 0..10_000 {
            assert!(sink.offer(RemoteEvent::Changed(scope(1))));
        }
        sink.offer(RemoteEvent::Changed(scope(2)));
        sink.offer(RemoteEvent::Changed(scope(1)));
        assert_eq!(source.waiting(), 2);
        assert_eq!(source.next().await.unwrap(), RemoteEvent::Changed(scope(1)));
        assert_eq!(source.next().await.unwrap(), RemoteEvent::Changed(scope(2)));
        assert_eq!(source.waiting(), 0);
        // Taken scopes queue again.
        sink.offer(RemoteEvent::Changed(scope(1)));
        assert_eq!(source.next().await.unwrap(), RemoteEvent::Changed(scope(1)));
    }

    #[tokio::test]
    async fn too_many_scopes_become_one_resync() {
        let (sink, source) = queue();
        for i in 0..MAX_PENDING_SCOPES * 3 {
            sink.offer(RemoteEvent::Changed(scope(i)));
        }
        assert_eq!(source.waiting(), 1);
        assert_eq!(source.next().await.unwrap(), RemoteEvent::Reconnected);
        assert_eq!(source.waiting(), 0);
        // Below the bound, scopes are told apart again.
        sink.offer(RemoteEvent::Changed(scope(7)));
        assert_eq!(source.next().await.unwrap(), RemoteEvent::Changed(scope(7)));
    }

    #[tokio::test]
    async fn failures_come_first_and_a_gone_subscriber_stops_the_producer() {
        let (sink, source) = queue();
        sink.offer(RemoteEvent::Changed(scope(1)));
        sink.fail(Error::Unavailable {
            backend: "postgres",
            message: "gone".into(),
            source: None,
        });
        assert!(source.next().await.is_err());
        // A waiting subscriber is woken by a later offer.
        let waiter = tokio::spawn(async move {
            let e = source.next().await.unwrap();
            (e, source)
        });
        tokio::task::yield_now().await;
        sink.offer(RemoteEvent::Reconnected);
        let (e, source) = waiter.await.unwrap();
        assert_eq!(e, RemoteEvent::Reconnected);
        drop(source);
        assert!(!sink.offer(RemoteEvent::Changed(scope(1))));
    }
}
