//! Realtime over `LISTEN`/`NOTIFY`: [`RemoteStore::subscribe`](crate::RemoteStore::subscribe)
//! for the PostgreSQL remote, and the [`ChangeFeed`](crate::server::ChangeFeed) through which
//! several `rcs serve` processes sharing one database wake each other's clients.
//!
//! Every push that writes anything runs `SELECT pg_notify('{p}changes', scope)` (channel and
//! payload bound) inside its transaction, so the notification is delivered when, and only if,
//! the transaction commits; PostgreSQL folds identical notifications of one transaction into
//! one. The payload is the scope's [`SyncScope::canonical`] form; one longer than a
//! notification can carry is sent empty, which listeners take as "some scope changed": a
//! resync of every subscribed scope.
//!
//! A subscription holds one dedicated connection outside the pool (a pooled connection is
//! shared, and `LISTEN` belongs to a session). It sends [`RemoteEvent::Reconnected`] once its
//! `LISTEN` is in effect, pings the server every third of the stall timeout (a `LISTEN`
//! connection is otherwise silent, and a half-open one would stay so forever), and is reopened
//! by the shared realtime driver after any failure. Notifications a slow subscriber has not
//! taken yet wait coalesced, per scope and bounded (`coalesce`), never in an unbounded queue.
//! Notifications sent while no connection listened are lost, which is why every reconnect
//! answers with a full pull.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Socket};

use super::{BACKEND, ErrorMapper, coalesce};
use crate::error::{Error, Result};
use crate::remote::realtime::{self, Connection, RealtimeOptions, RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// Largest payload sent: PostgreSQL refuses 8,000 bytes and more.
const MAX_PAYLOAD: usize = 7_999;

/// The payload announcing a change of the scope whose canonical form is `canonical`.
pub(super) fn notify_payload(canonical: &str) -> &str {
    if canonical.len() <= MAX_PAYLOAD {
        canonical
    } else {
        ""
    }
}

/// How to open a listening connection: the store's connection settings.
pub(super) struct ListenSetup {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub(super) channel: String,
    pub(super) errors: ErrorMapper,
    pub(super) options: RealtimeOptions,
}

/// Which scopes a subscription reports: canonical form → scope, or every scope (`None`).
type Filter = Option<Arc<HashMap<String, SyncScope>>>;

/// Starts a subscription (`scopes: None`: every scope, for the server's change feed).
pub(super) fn spawn(setup: Arc<ListenSetup>, scopes: Option<&[SyncScope]>) -> RemoteEvents {
    let filter: Filter =
        scopes.map(|s| Arc::new(s.iter().map(|s| (s.canonical(), s.clone())).collect()));
    let options = setup.options;
    realtime::spawn(
        BACKEND,
        options,
        Box::new(move || {
            let (setup, filter) = (setup.clone(), filter.clone());
            Box::pin(async move {
                match setup.tls.clone() {
                    Some(tls) => connect(setup, tls, filter).await,
                    None => connect(setup, tokio_postgres::NoTls, filter).await,
                }
            })
        }),
    )
}

/// The event one notification means (`None`: a scope this subscription does not follow).
fn decode(payload: &str, filter: &Filter) -> Option<RemoteEvent> {
    if payload.is_empty() {
        return Some(RemoteEvent::Reconnected);
    }
    match filter {
        Some(scopes) => scopes.get(payload).map(|s| RemoteEvent::Changed(s.clone())),
        None => Some(match SyncScope::from_canonical(payload) {
            Ok(scope) => RemoteEvent::Changed(scope),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable change notification; resyncing");
                RemoteEvent::Reconnected
            }
        }),
    }
}

async fn connect<T>(setup: Arc<ListenSetup>, tls: T, filter: Filter) -> Result<Connection>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let pg = |e: tokio_postgres::Error| setup.errors.pg(&e);
    let (client, mut connection) = setup.config.connect(tls).await.map_err(pg)?;
    // The connection delivers notifications and must be polled for the client to work at all
    // (the pings' answers travel on it too), so it is read all the time, into a queue that
    // coalesces what a slow subscriber has not taken yet (bounded: see `coalesce`).
    let (sink, source) = coalesce::queue();
    let errors = setup.errors.clone();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if let Some(event) = decode(n.payload(), &filter)
                        && !sink.offer(event)
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => return sink.fail(errors.pg(&e)),
            }
        }
        sink.fail(Error::Unavailable {
            backend: BACKEND,
            message: "the listening connection closed".into(),
            source: None,
        });
    });
    // The channel is `{prefix}changes`, and the prefix is validated as `[a-z_][a-z0-9_]*`.
    client
        .batch_execute(&format!("LISTEN {}", setup.channel))
        .await
        .map_err(pg)?;
    let notifications = futures::stream::unfold(source, |source| async move {
        let item = source.next().await.map(Some);
        Some((item, source))
    });
    let ping_every = setup.options.stall_timeout / 3;
    let errors = setup.errors.clone();
    let pings = futures::stream::unfold(client, move |client| {
        let errors = errors.clone();
        async move {
            crate::rt::sleep(ping_every).await;
            let answer = client.simple_query("").await;
            Some((answer.map(|_| None).map_err(|e| errors.pg(&e)), client))
        }
    });
    let live = futures::stream::select(notifications, pings).boxed();
    let live = realtime::stall_guard(BACKEND, live, setup.options.stall_timeout);
    let events = futures::stream::iter([Ok(RemoteEvent::Reconnected)]).chain(
        live.filter_map(|item: Result<Option<RemoteEvent>>| std::future::ready(item.transpose())),
    );
    Ok(events.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_decoding() {
        let s = SyncScope::new("records", [("owner", "a,b=c")]).unwrap();
        let c = s.canonical();
        assert_eq!(notify_payload(&c), c);
        assert_eq!(notify_payload(&"x".repeat(9_000)), "");
        let only: Filter = Some(Arc::new(HashMap::from([(c.clone(), s.clone())])));
        assert_eq!(decode(&c, &only), Some(RemoteEvent::Changed(s.clone())));
        assert_eq!(decode(&c, &None), Some(RemoteEvent::Changed(s.clone())));
        let other = SyncScope::named("other").unwrap().canonical();
        assert_eq!(decode(&other, &only), None);
        assert_eq!(decode("", &only), Some(RemoteEvent::Reconnected));
    }
}
