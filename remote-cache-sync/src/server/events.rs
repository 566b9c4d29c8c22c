//! `GET /v1/events`: change notifications as server-sent events (`docs/protocol.md`, "Events").
//!
//! Every open stream registers with the server's [`Hub`] under its scopes. A push through this
//! server that applies anything marks its scope on every stream subscribed to it; a
//! [`ChangeFeed`] (the PostgreSQL storage's `LISTEN`) brings in the pushes made through other
//! servers sharing the storage. A stream keeps a set of pending scopes, not a queue, so bursts
//! coalesce and a slow client costs one entry per scope at most. Events are triggers: the data
//! comes from the client's next pull.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::remote::{RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// Default interval of the heartbeat comment on an idle event stream.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Most scopes one event stream may subscribe to.
pub const MAX_EVENT_SCOPES: usize = 256;

/// Changes committed to the storage by someone else than this server (another `rcs serve`
/// sharing the database), for [`Server::change_feed`](super::Server::change_feed).
pub trait ChangeFeed: Send + Sync + 'static {
    /// Every change of every scope, as [`RemoteEvent`]s: `Changed(scope)`, and `Reconnected`
    /// whenever the feed (re)starts listening, after which every stream is told to resync.
    fn changes(&self) -> RemoteEvents;
}

/// What one stream has to tell its client.
#[derive(Default)]
struct Pending {
    /// Indexes into the stream's scopes.
    scopes: BTreeSet<usize>,
    /// Everything may have changed: the client pulls all its scopes.
    resync: bool,
}

/// One open stream.
#[derive(Default)]
struct Listener {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Listener {
    fn mark(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The streams subscribed to one scope: stream id → (stream, index of the scope in it).
type Subscribers = HashMap<u64, (Arc<Listener>, usize)>;

/// The streams of one server, by scope.
#[derive(Default)]
pub(super) struct Hub {
    /// Canonical scope → its subscribers.
    by_scope: Mutex<HashMap<String, Subscribers>>,
    all: Mutex<HashMap<u64, Arc<Listener>>>,
    next_id: AtomicU64,
    feed: Option<Arc<dyn ChangeFeed>>,
    feed_started: AtomicBool,
    pub(super) stop: CancellationToken,
}

impl Hub {
    pub(super) fn new(feed: Option<Arc<dyn ChangeFeed>>, stop: CancellationToken) -> Self {
        Hub {
            feed,
            stop,
            ..Hub::default()
        }
    }

    /// Tells every stream subscribed to `scope` that it changed.
    pub(super) fn publish(&self, scope: &SyncScope) {
        let by_scope = self.by_scope.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(listeners) = by_scope.get(&scope.canonical()) {
            for (listener, index) in listeners.values() {
                listener.mark(|p| {
                    p.scopes.insert(*index);
                });
            }
        }
    }

    /// Tells every stream to resync all its scopes.
    fn resync_all(&self) {
        for listener in self.all.lock().unwrap_or_else(|e| e.into_inner()).values() {
            listener.mark(|p| p.resync = true);
        }
    }

    /// Starts forwarding the change feed, once (needs a tokio runtime).
    pub(super) fn ensure_feed(self: &Arc<Self>) {
        let Some(feed) = self.feed.clone() else {
            return;
        };
        if self.feed_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let hub = Arc::downgrade(self);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut changes = feed.changes();
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    e = changes.next() => e,
                };
                let (Some(event), Some(hub)) = (event, hub.upgrade()) else {
                    return;
                };
                match event {
                    RemoteEvent::Changed(scope) => hub.publish(&scope),
                    RemoteEvent::Reconnected => hub.resync_all(),
                }
            }
        });
    }

    fn register(self: &Arc<Self>, scopes: &[SyncScope]) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let listener = Arc::new(Listener::default());
        let keys: Vec<String> = scopes.iter().map(SyncScope::canonical).collect();
        {
            let mut by_scope = self.by_scope.lock().unwrap_or_else(|e| e.into_inner());
            for (index, key) in keys.iter().enumerate() {
                by_scope
                    .entry(key.clone())
                    .or_default()
                    .insert(id, (listener.clone(), index));
            }
        }
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, listener.clone());
        Registration {
            hub: self.clone(),
            id,
            keys,
            listener,
        }
    }

    /// Number of open streams.
    #[cfg(test)]
    fn streams(&self) -> usize {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A stream's place in the hub; leaves it when dropped (the client went away).
struct Registration {
    hub: Arc<Hub>,
    id: u64,
    keys: Vec<String>,
    listener: Arc<Listener>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut by_scope = self.hub.by_scope.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(listeners) = by_scope.get_mut(key) {
                listeners.remove(&self.id);
                if listeners.is_empty() {
                    by_scope.remove(key);
                }
            }
        }
        drop(by_scope);
        self.hub
            .all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn changed(scope: &SyncScope) -> Event {
    Event::default()
        .event("changed")
        .data(serde_json::json!({ "scope": scope }).to_string())
}

/// The event stream of `scopes` (already authorized): `ready` once registered, then `changed`
/// and `resync` as they come, with a heartbeat comment every `heartbeat` of silence. Ends when
/// the server stops.
pub(super) fn stream(
    hub: &Arc<Hub>,
    scopes: Vec<SyncScope>,
    heartbeat: Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + use<>> {
    hub.ensure_feed();
    // Registered before the answer leaves: a push committed after the client sees `ready`
    // (and so after its catch-up pull starts) is always announced.
    let registration = hub.register(&scopes);
    let stop = hub.stop.clone();
    let ready = Event::default().event("ready").data("{}");
    let events = futures::stream::unfold(
        (registration, scopes, stop),
        |(registration, scopes, stop)| async move {
            let batch = loop {
                let pending = registration.listener.take();
                if pending.resync {
                    break vec![Event::default().event("resync").data("{}")];
                }
                if !pending.scopes.is_empty() {
                    break pending
                        .scopes
                        .iter()
                        .map(|i| changed(&scopes[*i]))
                        .collect();
                }
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = registration.listener.wake.notified() => {}
                }
            };
            Some((
                futures::stream::iter(batch.into_iter().map(Ok)),
                (registration, scopes, stop),
            ))
        },
    )
    .flatten();
    let events = futures::stream::iter([Ok(ready)]).chain(events);
    Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(owner: &str) -> SyncScope {
        SyncScope::new("records", [("owner", owner)]).unwrap()
    }

    #[test]
    fn publish_marks_only_subscribers_and_coalesces() {
        let hub = Arc::new(Hub::default());
        let a = hub.register(&[scope("a"), scope("b")]);
        let b = hub.register(&[scope("b")]);
        hub.publish(&scope("b"));
        hub.publish(&scope("b"));
        hub.publish(&scope("c"));
        assert_eq!(a.listener.take().scopes, BTreeSet::from([1]));
        assert_eq!(b.listener.take().scopes, BTreeSet::from([0]));
        hub.resync_all();
        assert!(a.listener.take().resync);
        assert_eq!(hub.streams(), 2);
        drop(a);
        assert_eq!(hub.streams(), 1);
        assert_eq!(
            hub.by_scope.lock().unwrap().keys().collect::<Vec<_>>(),
            vec![&scope("b").canonical()]
        );
    }
}
