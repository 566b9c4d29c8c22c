//! PocketBase realtime (SSE) → [`RemoteEvent`]s, for
//! [`RemoteStore::subscribe`](crate::RemoteStore::subscribe).
//!
//! Protocol (tested on 0.40.6): `GET /api/realtime` opens an event stream whose first event is
//! `PB_CONNECT` with `{"clientId": …}`; `POST /api/realtime {"clientId", "subscriptions": [topics]}`
//! (authenticated) subscribes. A topic here is `<collection>/*?options={"query":{"filter":…}}`
//! with the scope's escaped key filter, and every event is named by its exact topic, which maps it
//! back to the scope.
//!
//! Realtime is a trigger, never a source of truth: PocketBase replays nothing, drops clients idle
//! for 5 minutes, and sends no event for a row that leaves a filter. The shared realtime driver
//! ([`remote::realtime`](crate::remote::realtime)) reconnects with jittered backoff, and this
//! adapter sends [`RemoteEvent::Reconnected`] after every successful (re)subscription: the
//! orchestrator answers it by pulling every subscribed scope, and answers
//! [`RemoteEvent::Changed`] by pulling that scope. SSE parsing and stall detection are the shared
//! `remote::client::sse`; PocketBase sends no heartbeat, so a stream silent for longer than its
//! idle timeout is reopened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::client::{BACKEND, Client};
use super::filter::scope_filter;
use crate::error::{Error, Result};
use crate::remote::client::sse;
use crate::remote::realtime::{self, Connection, RealtimeOptions, RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// Reconnect when the stream has been silent this long (the server's idle timeout is 5 min).
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(330);

/// The topic of a scope: `<collection>/*`, plus the key filter as an `options` query.
pub(crate) fn topic(scope: &SyncScope) -> String {
    let base = format!("{}/*", scope.name());
    match scope_filter(scope) {
        None => base,
        Some(f) => {
            let options = serde_json::json!({ "query": { "filter": f } }).to_string();
            let mut u = reqwest::Url::parse("http://topic/").expect("static URL");
            u.query_pairs_mut().append_pair("options", &options);
            format!("{base}?{}", u.query().unwrap_or_default())
        }
    }
}

/// Starts a subscription to `scopes` (already validated).
pub(crate) fn spawn(
    client: Arc<Client>,
    scopes: Vec<SyncScope>,
    options: RealtimeOptions,
) -> RemoteEvents {
    let topics: Arc<HashMap<String, SyncScope>> =
        Arc::new(scopes.into_iter().map(|s| (topic(&s), s)).collect());
    realtime::spawn(
        BACKEND,
        options,
        Box::new(move || {
            let (client, topics) = (client.clone(), topics.clone());
            Box::pin(async move { connect(client, topics, options.stall_timeout).await })
        }),
    )
}

fn unavailable(message: String) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        message,
        source: None,
    }
}

/// Opens the stream, waits for `PB_CONNECT`, subscribes the topics; then the connection's
/// events, starting with [`RemoteEvent::Reconnected`].
async fn connect(
    client: Arc<Client>,
    topics: Arc<HashMap<String, SyncScope>>,
    stall: Duration,
) -> Result<Connection> {
    let url = client.url(&["api", "realtime"])?;
    let resp = sse::request(client.http.get(url.clone()))
        .send()
        .await
        .map_err(|e| unavailable(format!("realtime connect: {}", e.without_url())))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!("realtime connect: {}", resp.status())));
    }
    let mut events = sse::events(BACKEND, resp, stall);
    let client_id = loop {
        let Some(ev) = events.next().await else {
            return Err(unavailable(
                "realtime stream ended before PB_CONNECT".into(),
            ));
        };
        let ev = ev?;
        if ev.event == "PB_CONNECT" {
            break serde_json::from_str::<Value>(&ev.data)
                .ok()
                .and_then(|v| v.get("clientId").and_then(Value::as_str).map(str::to_owned))
                .ok_or_else(|| Error::MalformedResponse {
                    backend: BACKEND,
                    message: "PB_CONNECT without clientId".into(),
                })?;
        }
    };
    let body = serde_json::json!({
        "clientId": client_id,
        "subscriptions": topics.keys().collect::<Vec<_>>(),
    });
    let reply = client.send(Method::POST, url, &[], Some(&body)).await?;
    if !reply.status.is_success() {
        return Err(reply.error());
    }
    let changes = events.filter_map(move |ev| {
        let out = match ev {
            Err(e) => Some(Err(e)),
            Ok(ev) => topics
                .get(&ev.event)
                .map(|scope| Ok(RemoteEvent::Changed(scope.clone()))),
        };
        std::future::ready(out)
    });
    Ok(crate::rt::box_stream(
        futures::stream::iter([Ok(RemoteEvent::Reconnected)]).chain(changes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_escape_values() {
        let s = SyncScope::new("records", [("owner", "a\" || owner != \"")]).unwrap();
        let t = topic(&s);
        assert!(t.starts_with("records/*?options="), "{t}");
        assert!(!t.contains(' ') && !t.contains('"'), "{t}");
        assert_eq!(topic(&SyncScope::named("records").unwrap()), "records/*");
    }
}
