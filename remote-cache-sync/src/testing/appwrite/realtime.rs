//! `GET /v1/realtime`: Appwrite's realtime WebSocket, as Appwrite 1.8 serves it
//! (`app/realtime.php` and `src/Appwrite/Messaging/Adapter/Realtime.php` of 1.8.1;
//! <https://appwrite.io/docs/apis/realtime>):
//!
//! - the upgrade request names the project (`project` query parameter, else the
//!   `X-Appwrite-Project` header) and the channels (`channels[]`); the user is resolved from the
//!   request like a REST call's: `X-Appwrite-JWT` acts as its user (an invalid one is
//!   `{"type":"error","data":{"code":401,…}}`), anything else is a guest. API keys are not read
//!   by realtime (a key's connection is a guest's);
//! - an unknown project or no channel: `error` with code `1008` and the socket is closed;
//! - otherwise `{"type":"connected","data":{"channels":[…],"user":…}}`;
//! - every document create, update, upsert or delete, including those of a committed
//!   transaction (whose upserts are reported as `update`, as `Transactions/Update.php` does),
//!   is an `event` on the channels `documents`, `databases.<db>.collections.<c>.documents`,
//!   `….documents.<id>` and the TablesDB aliases `rows`, `databases.<db>.tables.<c>.rows`,
//!   `….rows.<id>`, with the event names Appwrite generates, a `timestamp` and the document as
//!   `payload`;
//! - permission filtering (`Realtime::fromPayload`, `getSubscribers`): an event reaches a
//!   connection only when one of its roles is among the event's roles: the collection's `read`
//!   roles, plus the document's with document security; `any` reaches everyone;
//! - `{"type":"ping"}` is answered `{"type":"pong"}`; an `authentication` message (a session
//!   cookie) is answered `error` 1003 `Session is not valid.` (the stand-in has no sessions);
//!   other messages `error` 1003.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State as Ext};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::State;
use super::store::{self, Collection, Doc, Identity};

/// One published event: who may receive it and its text.
pub(crate) struct Published {
    channels: Vec<String>,
    roles: Vec<String>,
    text: String,
}

/// Fans events out to the open sockets.
pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(4096).0,
        }
    }
}

fn read_roles(permissions: &[String]) -> impl Iterator<Item = String> + '_ {
    permissions
        .iter()
        .filter_map(|p| store::parse_permission(p))
        .filter(|(action, _)| action == "read")
        .map(|(_, role)| role)
}

impl Hub {
    /// Publishes `action` (`create`, `update`, `upsert`, `delete`) on `doc` of `c`.
    pub(crate) fn document(&self, c: &Collection, doc: &Doc, action: &str) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let (db, coll, id) = (&c.db, &c.id, &doc.id);
        let channels = vec![
            "documents".to_owned(),
            format!("databases.{db}.collections.{coll}.documents"),
            format!("databases.{db}.collections.{coll}.documents.{id}"),
            "rows".to_owned(),
            format!("databases.{db}.tables.{coll}.rows"),
            format!("databases.{db}.tables.{coll}.rows.{id}"),
        ];
        let mut roles: Vec<String> = read_roles(&c.permissions).collect();
        if c.document_security {
            roles.extend(read_roles(&doc.permissions));
        }
        // Event::generateEvents: every combination of ids and wildcards, with and without the
        // action, and the parents.
        let mut events = Vec::new();
        for d in [db.as_str(), "*"] {
            for k in [coll.as_str(), "*"] {
                for i in [id.as_str(), "*"] {
                    let base = format!("databases.{d}.collections.{k}.documents.{i}");
                    events.push(format!("{base}.{action}"));
                    events.push(base);
                }
            }
        }
        events.push(format!("databases.{db}.collections.{coll}"));
        events.push(format!("databases.{db}"));
        let text = json!({
            "type": "event",
            "data": {
                "events": events,
                "channels": channels,
                "timestamp": store::now_stamp(),
                "payload": doc.to_json(c),
            }
        })
        .to_string();
        let _ = self.tx.send(Arc::new(Published {
            channels,
            roles,
            text,
        }));
    }
}

fn error_text(code: i64, message: &str) -> String {
    json!({"type": "error", "data": {"code": code, "message": message}}).to_string()
}

/// The handler of `GET /v1/realtime`.
pub(crate) async fn connect(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(state, headers, query.unwrap_or_default(), socket))
}

/// Sends an `error` and closes (what Appwrite does when a connection cannot open).
async fn refuse(mut socket: WebSocket, code: i64, message: &str) {
    let _ = socket
        .send(Message::Text(error_text(code, message).into()))
        .await;
    let close = u16::try_from(code)
        .ok()
        .filter(|c| (1000..5000).contains(c))
        .unwrap_or(1011);
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close,
            reason: "".into(),
        })))
        .await;
}

async fn serve(state: State, headers: HeaderMap, query: String, mut socket: WebSocket) {
    let url = reqwest::Url::parse(&format!("http://standin/?{query}")).expect("a query");
    let mut project = None;
    let mut channels: Vec<String> = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "project" => project = Some(v.into_owned()),
            "channels[]" if !channels.contains(&v.to_string()) => channels.push(v.into_owned()),
            _ => {}
        }
    }
    let project = project.or_else(|| {
        headers
            .get("x-appwrite-project")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if project.as_deref() != Some(state.config.project.as_str()) {
        return refuse(socket, 1008, "Missing or unknown project ID").await;
    }
    // The user as a REST call would resolve it, without the API key realtime does not read.
    let mut h = headers.clone();
    h.remove("x-appwrite-key");
    h.insert(
        "x-appwrite-project",
        HeaderValue::from_str(&state.config.project).expect("a header value"),
    );
    let who = match state.identity(&h) {
        Ok(w) => w,
        Err(e) => return refuse(socket, i64::from(e.status), &e.message).await,
    };
    if channels.is_empty() {
        return refuse(socket, 1008, "Missing channels").await;
    }
    let roles = who.roles();
    let user = match &who {
        Identity::User(u) => json!({"$id": u}),
        _ => Value::Null,
    };
    // Subscribed before `connected` is sent: every later commit reaches this socket.
    let mut rx = state.realtime.tx.subscribe();
    let connected = json!({"type": "connected", "data": {"channels": channels, "user": user}});
    if socket
        .send(Message::Text(connected.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(_)) => continue,
                };
                let answer = answer(&text);
                if socket.send(Message::Text(answer.into())).await.is_err() {
                    return;
                }
            }
            ev = rx.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let listening = ev.channels.iter().any(|c| channels.contains(c));
                let allowed = ev.roles.iter().any(|r| r == "any" || roles.contains(r));
                if listening
                    && allowed
                    && socket.send(Message::Text(ev.text.clone().into())).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The answer to a client message (`onMessage`).
fn answer(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return error_text(1003, "Message format is not valid.");
    };
    if v.get("type").is_none() && v.get("data").is_none() {
        return error_text(1003, "Message format is not valid.");
    }
    match v["type"].as_str() {
        Some("ping") => json!({"type": "pong"}).to_string(),
        Some("authentication") if v["data"].get("session").is_none() => {
            error_text(1003, "Payload is not valid.")
        }
        Some("authentication") => error_text(1003, "Session is not valid."),
        _ => error_text(1003, "Message type is not valid."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_are_answered_and_bad_messages_are_errors() {
        assert_eq!(answer(r#"{"type":"ping"}"#), r#"{"type":"pong"}"#);
        for bad in ["nope", "{}", r#"{"type":"subscribe","data":{}}"#] {
            let v: Value = serde_json::from_str(&answer(bad)).unwrap();
            assert_eq!(v["type"], "error", "{bad}");
            assert_eq!(v["data"]["code"], 1003, "{bad}");
        }
        let v: Value = serde_json::from_str(&answer(
            r#"{"type":"authentication","data":{"session":"x"}}"#,
        ))
        .unwrap();
        assert_eq!(v["data"]["message"], "Session is not valid.");
    }
}
