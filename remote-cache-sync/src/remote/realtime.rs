//! Realtime change notifications from a remote: [`RemoteEvent`], the stream
//! [`RemoteStore::subscribe`](super::RemoteStore::subscribe) hands out ([`RemoteEvents`]), and the
//! plumbing every realtime adapter shares, written once:
//!
//! - a reconnecting driver: one task per subscription opens a connection, forwards its events,
//!   and after any failure reopens it with jittered exponential backoff (`backon`), so an adapter
//!   only writes "open one connection and turn what arrives into events";
//! - stall detection (`stall_guard`): a connection on which nothing arrives (no event, no
//!   heartbeat) for [`RealtimeOptions::stall_timeout`] is treated as dead and reopened, since a
//!   half-open TCP connection can stay silent forever;
//! - the SSE transport for the HTTP adapters lives beside the other HTTP plumbing, in
//!   `remote::client::sse`.
//!
//! # Events are triggers, never data
//!
//! Notifications can be lost (a dropped connection, a server restart, a slow consumer), so a
//! [`RemoteEvent`] never carries records: [`Changed`](RemoteEvent::Changed) says "pull this
//! scope", and [`Reconnected`](RemoteEvent::Reconnected), sent each time a connection is (re)made
//! and listening, says "pull every subscribed scope": whatever happened while no connection was
//! listening is caught up by the pull itself, through the cursor. An adapter sends `Reconnected`
//! only once its connection listens, so a change committed after the pull that answers it
//! started always produces a later event.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio_util::sync::DropGuard;

use crate::scope::SyncScope;

/// What a realtime subscription reports. A trigger, never data: answer it by pulling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteEvent {
    /// Something in this scope changed: pull it.
    Changed(SyncScope),
    /// The subscription is (again) listening after a connect or reconnect; events may have been
    /// missed meanwhile: pull every subscribed scope.
    Reconnected,
}

/// Timings of a realtime subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RealtimeOptions {
    /// A connection on which nothing arrives for this long (no event, no heartbeat) is closed
    /// and reopened. Keep it a few times the server's heartbeat interval.
    pub stall_timeout: Duration,
    /// First reconnect delay (jittered).
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl Default for RealtimeOptions {
    /// Stall after 45 s (three heartbeats of our server), reconnect after 250 ms to 30 s.
    fn default() -> Self {
        RealtimeOptions {
            stall_timeout: Duration::from_secs(45),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RealtimeOptions {
    /// Sets [`stall_timeout`](Self::stall_timeout).
    pub fn stall_timeout(mut self, d: Duration) -> Self {
        self.stall_timeout = d.max(Duration::from_millis(10));
        self
    }

    /// Sets the reconnect backoff range.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}

/// A live subscription: a stream of [`RemoteEvent`]s that never ends on its own while the
/// subscription lives (connections are reopened behind it). Dropping it stops every task and
/// closes the connection.
pub struct RemoteEvents {
    rx: futures::channel::mpsc::Receiver<RemoteEvent>,
    _stop: Option<DropGuard>,
}

impl std::fmt::Debug for RemoteEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEvents").finish_non_exhaustive()
    }
}

impl RemoteEvents {
    /// A subscription fed by `rx`, whose producer stops when `stop` is dropped (for adapters
    /// outside this crate: pass the receiving half of a channel their task writes to).
    pub fn from_channel(
        rx: futures::channel::mpsc::Receiver<RemoteEvent>,
        stop: Option<tokio_util::sync::CancellationToken>,
    ) -> Self {
        RemoteEvents {
            rx,
            _stop: stop.map(|t| t.drop_guard()),
        }
    }
}

impl Stream for RemoteEvents {
    type Item = RemoteEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RemoteEvent>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

// A build whose only HTTP backend has no realtime (Supabase) uses the stall guard alone.
#[cfg(any(feature = "http-base", feature = "postgres"))]
#[cfg_attr(
    not(any(
        feature = "http",
        feature = "pocketbase",
        feature = "appwrite",
        feature = "postgres"
    )),
    allow(unused_imports)
)]
pub(crate) use driver::{Connection, spawn, stall_guard};

#[cfg(any(feature = "http-base", feature = "postgres"))]
#[cfg_attr(
    not(any(
        feature = "http",
        feature = "pocketbase",
        feature = "appwrite",
        feature = "postgres"
    )),
    allow(dead_code)
)]
mod driver {
    use std::time::Duration;

    use backon::BackoffBuilder;
    use futures::{SinkExt, StreamExt};
    use tokio_util::sync::CancellationToken;

    use super::{RealtimeOptions, RemoteEvent, RemoteEvents};
    use crate::error::{Error, Result};
    use crate::rt::{BoxFuture, BoxStream, MaybeSend};

    /// One open connection: its events until it fails or ends.
    pub(crate) type Connection = BoxStream<'static, Result<RemoteEvent>>;

    /// Opens one connection. Called again after every failure.
    pub(crate) type Connector = Box<dyn FnMut() -> BoxFuture<'static, Result<Connection>> + Send>;

    /// A connection that lived this long before failing counts as healthy: the next reconnect
    /// starts again from the shortest backoff.
    const HEALTHY_AFTER: Duration = Duration::from_secs(5);

    /// Whether a connection opened at `started` lived long enough to count as healthy.
    fn started_healthy(started: jiff::Timestamp) -> bool {
        let lived = jiff::Timestamp::now().duration_since(started);
        lived.as_secs_f64() >= HEALTHY_AFTER.as_secs_f64()
    }

    /// Ends `stream` with [`Error::Unavailable`] once nothing arrived for `limit`.
    pub(crate) fn stall_guard<T: MaybeSend + 'static>(
        backend: &'static str,
        stream: BoxStream<'static, Result<T>>,
        limit: Duration,
    ) -> BoxStream<'static, Result<T>> {
        let s = futures::stream::unfold(Some(stream), move |state| async move {
            let mut stream = state?;
            match crate::rt::timeout(limit, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(Error::Unavailable {
                        backend,
                        message: format!(
                            "realtime stream stalled: nothing received for {} ms",
                            limit.as_millis()
                        ),
                        source: None,
                    }),
                    None,
                )),
            }
        });
        crate::rt::box_stream(s)
    }

    /// Starts a subscription: a task that keeps one connection from `connect` open, reopening
    /// it with jittered exponential backoff, until the returned stream is dropped.
    pub(crate) fn spawn(
        backend: &'static str,
        options: RealtimeOptions,
        mut connect: Connector,
    ) -> RemoteEvents {
        let (mut tx, rx) = futures::channel::mpsc::channel(64);
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let backoff = move || {
            backon::ExponentialBuilder::default()
                .with_min_delay(options.min_backoff)
                .with_max_delay(options.max_backoff)
                .with_jitter()
                .without_max_times()
                .build()
        };
        crate::rt::spawn_detached(async move {
            let mut delays = backoff();
            loop {
                let started = jiff::Timestamp::now();
                let result = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    r = run_connection(&mut connect, &mut tx) => r,
                };
                let (reason, retry_after) = match result {
                    Ok(true) => return, // The subscriber went away.
                    Ok(false) => ("the server closed the stream".to_owned(), None),
                    Err(e) => (e.to_string(), e.retry_after()),
                };
                if started_healthy(started) {
                    delays = backoff();
                }
                let retry_in = delays.next().unwrap_or(options.max_backoff);
                let retry_in = retry_after.map_or(retry_in, |r| r.max(retry_in));
                tracing::debug!(backend, %reason, ?retry_in, "realtime connection lost; reconnecting");
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    () = crate::rt::sleep(retry_in) => {}
                }
            }
        });
        RemoteEvents::from_channel(rx, Some(stop))
    }

    /// Runs one connection to its end: `Ok(true)` when the subscriber is gone, `Ok(false)` when
    /// the stream ended, `Err` when it failed.
    async fn run_connection(
        connect: &mut Connector,
        tx: &mut futures::channel::mpsc::Sender<RemoteEvent>,
    ) -> Result<bool> {
        let mut events = connect().await?;
        while let Some(event) = events.next().await {
            if tx.send(event?).await.is_err() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(all(test, not(target_arch = "wasm32"), feature = "http-base"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use super::*;
    use crate::error::Error;

    fn scope() -> SyncScope {
        SyncScope::named("records").unwrap()
    }

    #[tokio::test]
    async fn reconnects_after_failures_and_stalls() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let options = RealtimeOptions::default()
            .stall_timeout(Duration::from_millis(50))
            .backoff(Duration::from_millis(1), Duration::from_millis(5));
        let mut events = spawn(
            "test",
            options,
            Box::new(move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    match n {
                        // Connect fails.
                        0 => Err(Error::Unavailable {
                            backend: "test",
                            message: "down".into(),
                            source: None,
                        }),
                        // Connects, reports a change, then goes silent: the stall guard ends it.
                        1 => {
                            let s: Connection = futures::stream::iter([
                                Ok(RemoteEvent::Reconnected),
                                Ok(RemoteEvent::Changed(scope())),
                            ])
                            .chain(futures::stream::pending())
                            .boxed();
                            Ok(stall_guard("test", s, options.stall_timeout))
                        }
                        // Then a connection that stays quiet but alive.
                        _ => Ok(futures::stream::iter([Ok(RemoteEvent::Reconnected)])
                            .chain(futures::stream::pending())
                            .boxed()),
                    }
                })
            }),
        );
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), events.next())
                    .await
                    .expect("event")
                    .expect("open"),
            );
        }
        assert_eq!(
            got,
            vec![
                RemoteEvent::Reconnected,
                RemoteEvent::Changed(scope()),
                RemoteEvent::Reconnected
            ]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
