//! Appwrite realtime (WebSocket) → [`RemoteEvent`]s, for
//! [`RemoteStore::subscribe`](crate::RemoteStore::subscribe). Native only (see below).
//!
//! Protocol (Appwrite 1.8, `app/realtime.php`; <https://appwrite.io/docs/apis/realtime>):
//! - `GET /v1/realtime?project=P&channels[]=C…`, upgraded to a WebSocket. The user is resolved
//!   from the upgrade request as for REST calls: the `X-Appwrite-JWT` header is read by the same
//!   `user` resource (`app/init/resources.php`), so a JWT acts as its user here too. An API key
//!   is not read by realtime: its connection is a guest's.
//! - The server's first message is `{"type":"connected","data":{"channels":[…],"user":…}}`, or
//!   `{"type":"error","data":{"code","message"}}` (e.g. `1008` for an unknown project, `401`
//!   for a bad JWT) followed by a close.
//! - Then `{"type":"event","data":{"events":[…],"channels":[…],"timestamp","payload"}}` for each
//!   create, update or delete (also those a committed transaction makes) of a document the
//!   user may read, on every channel it belongs to, among them
//!   `databases.<db>.collections.<collection>.documents`.
//! - The client sends `{"type":"ping"}` (the SDKs every 20 s); the server answers
//!   `{"type":"pong"}`.
//!
//! One channel per scope collection. Every event, whatever its type (a delete too), is only
//! [`RemoteEvent::Changed`] for each subscribed scope on that collection: the payload is never
//! used as data, so a hard delete is never mistaken for a live document, and a row that left a
//! scope is found by the pull. Each connection starts with [`RemoteEvent::Reconnected`] once
//! `connected` arrived (the orchestrator pulls every scope, catching up whatever happened while
//! nothing listened). The shared driver ([`remote::realtime`](crate::remote::realtime))
//! reconnects with jittered backoff; the adapter pings every `stall_timeout / 3` (at most every
//! 20 s), so a connection on which not even a `pong` arrives for
//! [`stall_timeout`](RealtimeOptions::stall_timeout) is reopened.
//!
//! Not in the browser: a browser `WebSocket` cannot send the `X-Appwrite-JWT` header, and the
//! protocol's in-band `authentication` message takes a session cookie, not a JWT; so on wasm32
//! `subscribe` returns `None` and the orchestrator polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest_websocket::{Message, Upgrade};
use serde_json::Value;

use super::client::{BACKEND, Client};
use crate::error::{Error, Result};
use crate::remote::realtime::{self, Connection, RealtimeOptions, RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// The SDKs' heartbeat interval; shorter when the stall timeout asks for it.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(20);

/// The channel of a collection's documents.
pub(crate) fn channel(database: &str, collection: &str) -> String {
    format!("databases.{database}.collections.{collection}.documents")
}

/// Which scopes each channel wakes.
type Channels = Arc<HashMap<String, Vec<SyncScope>>>;

/// Starts a subscription to `scopes` (already validated) of `database`.
pub(crate) fn spawn(
    client: Arc<Client>,
    database: &str,
    scopes: Vec<SyncScope>,
    options: RealtimeOptions,
) -> Result<RemoteEvents> {
    let mut channels: HashMap<String, Vec<SyncScope>> = HashMap::new();
    for s in scopes {
        channels
            .entry(channel(database, s.name()))
            .or_default()
            .push(s);
    }
    let channels: Channels = Arc::new(channels);
    // HTTP/1.1 only (the upgrade needs it) and no whole-request timeout (the socket lives long).
    let http = reqwest::Client::builder()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::InvalidInput(format!("appwrite: cannot build HTTP client: {e}")))?;
    Ok(realtime::spawn(
        BACKEND,
        options,
        Box::new(move || {
            let (http, client, channels) = (http.clone(), client.clone(), channels.clone());
            Box::pin(async move { connect(http, client, channels, options).await })
        }),
    ))
}

fn unavailable(message: String) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        message,
        source: None,
    }
}

fn ws_error(e: reqwest_websocket::Error) -> Error {
    // The URL in reqwest's errors carries the project and channels, never the credential.
    unavailable(format!("realtime: {}", crate::error::with_sources(&e)))
}

/// What one server message means here.
#[derive(Debug, PartialEq)]
enum Frame {
    Connected(Vec<String>),
    Event(Vec<String>),
    /// `pong`, `response`, WebSocket pings: proof of life only.
    Alive,
    Error(i64, String),
    Closed,
}

fn frame(msg: Message) -> Result<Frame> {
    let text = match msg {
        Message::Text(t) => t,
        Message::Close { .. } => return Ok(Frame::Closed),
        _ => return Ok(Frame::Alive),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::MalformedResponse {
        backend: BACKEND,
        message: format!("realtime message is not JSON: {e}"),
    })?;
    let strings = |key: &str| -> Vec<String> {
        v["data"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match v["type"].as_str() {
        Some("connected") => Frame::Connected(strings("channels")),
        Some("event") => Frame::Event(strings("channels")),
        Some("error") => Frame::Error(
            v["data"]["code"].as_i64().unwrap_or(0),
            v["data"]["message"].as_str().unwrap_or_default().to_owned(),
        ),
        _ => Frame::Alive,
    })
}

/// A server `error` message as an error: 401 (a bad or expired JWT) is
/// [`Error::Unauthorized`]; the rest (1008 policy violation, 1003 bad message, limits) close or
/// spoil the connection, which the driver reopens.
fn server_error(code: i64, message: String) -> Error {
    if code == 401 {
        Error::Unauthorized {
            backend: BACKEND,
            message: format!("realtime: {message}"),
        }
    } else {
        unavailable(format!("realtime error {code}: {message}"))
    }
}

/// The events one message makes: one `Changed` per subscribed scope on its channels.
fn events(f: Frame, channels: &HashMap<String, Vec<SyncScope>>) -> Result<Vec<RemoteEvent>> {
    match f {
        Frame::Event(on) => Ok(on
            .iter()
            .filter_map(|c| channels.get(c))
            .flatten()
            .map(|s| RemoteEvent::Changed(s.clone()))
            .collect()),
        Frame::Error(code, message) => Err(server_error(code, message)),
        Frame::Connected(_) | Frame::Alive | Frame::Closed => Ok(Vec::new()),
    }
}

/// Opens the socket, waits for `connected`; then the connection's events, starting with
/// [`RemoteEvent::Reconnected`].
async fn connect(
    http: reqwest::Client,
    client: Arc<Client>,
    channels: Channels,
    options: RealtimeOptions,
) -> Result<Connection> {
    let (name, value) = {
        let c = client.credential();
        // An expired JWT is Unauthorized before anything is sent (as for REST calls).
        c.check(jiff::Timestamp::now())?;
        let (n, v) = c.header();
        (n, v.to_owned())
    };
    let mut url = client.url(&["realtime"])?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("project", &client.project);
        let mut names: Vec<&String> = channels.keys().collect();
        names.sort();
        for c in names {
            q.append_pair("channels[]", c);
        }
    }
    let mut ws = http
        .get(url)
        .header("X-Appwrite-Project", &client.project)
        .header(name, value)
        .upgrade()
        .send()
        .await
        .map_err(ws_error)?
        .into_websocket()
        .await
        .map_err(ws_error)?;
    let first = crate::rt::timeout(options.stall_timeout, ws.next())
        .await
        .map_err(|_| unavailable("realtime: no `connected` message".into()))?;
    let listening = match first {
        None => return Err(unavailable("realtime: closed before `connected`".into())),
        Some(Err(e)) => return Err(ws_error(e)),
        Some(Ok(m)) => match frame(m)? {
            Frame::Connected(c) => c,
            Frame::Error(code, message) => return Err(server_error(code, message)),
            other => {
                return Err(unavailable(format!(
                    "realtime: expected `connected`, got {other:?}"
                )));
            }
        },
    };
    if let Some(missing) = channels.keys().find(|c| !listening.contains(c)) {
        return Err(unavailable(format!(
            "realtime: the server did not subscribe channel {missing}"
        )));
    }
    let ping_every = (options.stall_timeout / 3).min(MAX_PING_INTERVAL);
    let ping = serde_json::json!({ "type": "ping" }).to_string();
    let frames = futures::stream::unfold(Some((ws, Instant::now() + ping_every)), move |state| {
        let (ping, channels) = (ping.clone(), channels.clone());
        async move {
            let (mut ws, mut ping_at) = state?;
            loop {
                let wait = ping_at.saturating_duration_since(Instant::now());
                match crate::rt::timeout(wait, ws.next()).await {
                    Err(_) => {
                        if let Err(e) = ws.send(Message::Text(ping.clone())).await {
                            return Some((Err(ws_error(e)), None));
                        }
                        ping_at = Instant::now() + ping_every;
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(ws_error(e)), None)),
                    Ok(Some(Ok(m))) => {
                        return match frame(m) {
                            Ok(Frame::Closed) => None,
                            Ok(f) => {
                                let r = events(f, &channels);
                                let next = r.is_ok().then_some((ws, ping_at));
                                Some((r, next))
                            }
                            Err(e) => Some((Err(e), None)),
                        };
                    }
                }
            }
        }
    });
    let guarded = realtime::stall_guard(
        BACKEND,
        crate::rt::box_stream(frames),
        options.stall_timeout,
    );
    let changes = guarded.flat_map(|r| {
        futures::stream::iter(match r {
            Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    });
    Ok(crate::rt::box_stream(
        futures::stream::iter([Ok(RemoteEvent::Reconnected)]).chain(changes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_only_a_trigger_for_the_scopes_of_its_channel() {
        let a = SyncScope::new("records", [("owner", "a")]).unwrap();
        let b = SyncScope::new("records", [("owner", "b")]).unwrap();
        let n = SyncScope::named("notes").unwrap();
        let mut map = HashMap::new();
        map.insert(channel("db", "records"), vec![a.clone(), b.clone()]);
        map.insert(channel("db", "notes"), vec![n]);
        for kind in ["create", "update", "delete"] {
            let msg = serde_json::json!({"type": "event", "data": {
                "events": [format!("databases.db.collections.records.documents.x.{kind}")],
                "channels": ["documents", "databases.db.collections.records.documents",
                             "databases.db.collections.records.documents.x"],
                "timestamp": "2025-01-01T00:00:00.000+00:00",
                "payload": {"$id": "x", "owner": "a"}}});
            let f = frame(Message::Text(msg.to_string())).unwrap();
            assert_eq!(
                events(f, &map).unwrap(),
                vec![
                    RemoteEvent::Changed(a.clone()),
                    RemoteEvent::Changed(b.clone())
                ],
                "{kind}"
            );
        }
        let pong = frame(Message::Text(r#"{"type":"pong"}"#.into())).unwrap();
        assert_eq!(pong, Frame::Alive);
        let err = frame(Message::Text(
            r#"{"type":"error","data":{"code":401,"message":"Failed to verify JWT."}}"#.into(),
        ))
        .unwrap();
        assert!(matches!(
            events(err, &map).unwrap_err(),
            Error::Unauthorized { .. }
        ));
        assert!(frame(Message::Text("not json".into())).is_err());
    }
}
