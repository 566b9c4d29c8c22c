//! PocketBase realtime (SSE) → "scope changed" notifications.
//!
//! Protocol (tested on 0.40.6): `GET /api/realtime` opens an event stream whose first event is
//! `PB_CONNECT` with `{"clientId": …}`; `POST /api/realtime {"clientId", "subscriptions": [topics]}`
//! (authenticated) subscribes. A topic here is `<collection>/*?options={"query":{"filter":…}}`
//! with the scope's escaped key filter, and every event is named by its exact topic, which maps it
//! back to the scope.
//!
//! Realtime is a trigger, never a source of truth: PocketBase replays nothing, drops clients idle
//! for 5 minutes, and sends no event for a row that leaves a filter. So the subscription
//! reconnects with exponential backoff (jittered, capped at 30 s) and emits
//! [`RealtimeEvent::Resync`] after every successful (re)subscription; the app answers it by pulling
//! every subscribed scope, and answers [`RealtimeEvent::Changed`] by pulling that scope.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{BACKEND, Client};
use super::filter::scope_filter;
use crate::error::{Error, Result};
use crate::scope::SyncScope;

/// Reconnect when the stream has been silent this long (the server's idle timeout is 5 min).
const IDLE_LIMIT: Duration = Duration::from_secs(330);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a subscription reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RealtimeEvent {
    /// Connected and subscribed (first time or after a reconnect). Events may have been missed:
    /// pull every subscribed scope.
    Resync,
    /// A record of this scope was created, updated or deleted: pull it.
    Changed(SyncScope),
    /// The connection dropped or could not be set up; a reconnect follows after `retry_in`.
    Disconnected {
        /// Why (never contains credentials).
        reason: String,
        /// Backoff before the next attempt.
        retry_in: Duration,
    },
}

/// A live subscription. Dropping it stops the background task.
#[derive(Debug)]
pub struct RealtimeSubscription {
    rx: mpsc::Receiver<RealtimeEvent>,
    cancel: CancellationToken,
}

impl RealtimeSubscription {
    /// The next event; `None` once closed.
    pub async fn recv(&mut self) -> Option<RealtimeEvent> {
        self.rx.recv().await
    }

    /// Stops the subscription.
    pub fn close(&mut self) {
        self.cancel.cancel();
        self.rx.close();
    }
}

impl Drop for RealtimeSubscription {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

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

pub(crate) fn spawn(client: Arc<Client>, scopes: Vec<SyncScope>) -> RealtimeSubscription {
    let (tx, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let topics: HashMap<String, SyncScope> = scopes.into_iter().map(|s| (topic(&s), s)).collect();
    let task_cancel = cancel.clone();
    crate::rt::spawn_detached(async move {
        let mut attempt: u32 = 0;
        loop {
            let result = tokio::select! {
                r = run_once(&client, &topics, &tx, &mut attempt) => r,
                () = task_cancel.cancelled() => return,
            };
            if tx.is_closed() {
                return;
            }
            let base = BACKOFF_START
                .saturating_mul(1 << attempt.min(8))
                .min(BACKOFF_MAX);
            let retry_in = base.mul_f64(rand::rng().random_range(0.5..1.0));
            attempt = attempt.saturating_add(1);
            let reason = match result {
                Ok(()) => "the server closed the stream".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(%reason, ?retry_in, "pocketbase realtime disconnected");
            if tx
                .send(RealtimeEvent::Disconnected { reason, retry_in })
                .await
                .is_err()
            {
                return;
            }
            tokio::select! {
                () = crate::rt::sleep(retry_in) => {}
                () = task_cancel.cancelled() => return,
            }
        }
    });
    RealtimeSubscription { rx, cancel }
}

/// A streamed response body, chunk by chunk.
#[cfg(not(target_arch = "wasm32"))]
struct Body(reqwest::Response);

#[cfg(not(target_arch = "wasm32"))]
impl Body {
    fn new(resp: reqwest::Response) -> Self {
        Body(resp)
    }

    #[inline]
    async fn chunk(&mut self) -> reqwest::Result<Option<bytes::Bytes>> {
        self.0.chunk().await
    }
}

/// A streamed response body, chunk by chunk (the browser's `fetch` gives a stream).
#[cfg(target_arch = "wasm32")]
struct Body(futures::stream::LocalBoxStream<'static, reqwest::Result<bytes::Bytes>>);

#[cfg(target_arch = "wasm32")]
impl Body {
    fn new(resp: reqwest::Response) -> Self {
        use futures::StreamExt;
        Body(resp.bytes_stream().boxed_local())
    }

    async fn chunk(&mut self) -> reqwest::Result<Option<bytes::Bytes>> {
        use futures::StreamExt;
        self.0.next().await.transpose()
    }
}

/// One SSE event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser (`event:`/`data:` fields, blank line dispatches; CRLF tolerated).
#[derive(Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    cur: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(bytes);
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || !self.cur.event.is_empty() {
                    out.push(std::mem::take(&mut self.cur));
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.cur.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.cur.data.push('\n');
                    }
                    self.cur.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
    }
}

async fn run_once(
    client: &Client,
    topics: &HashMap<String, SyncScope>,
    tx: &mpsc::Sender<RealtimeEvent>,
    attempt: &mut u32,
) -> Result<()> {
    let url = client.url(&["api", "realtime"])?;
    let req = client
        .http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    // Natively this overrides the client's timeout. The browser's client has none, and a timer
    // this long would fire at once there.
    #[cfg(not(target_arch = "wasm32"))]
    let req = req.timeout(Duration::from_secs(365 * 24 * 3600));
    let resp = req.send().await.map_err(|e| Error::Unavailable {
        backend: BACKEND,
        message: format!("realtime connect: {e}"),
        source: None,
    })?;
    if !resp.status().is_success() {
        return Err(Error::Unavailable {
            backend: BACKEND,
            message: format!("realtime connect: {}", resp.status()),
            source: None,
        });
    }
    let mut resp = Body::new(resp);
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut subscribed = false;
    loop {
        let chunk = crate::rt::timeout(IDLE_LIMIT, resp.chunk())
            .await
            .map_err(|_| Error::Unavailable {
                backend: BACKEND,
                message: "realtime stream idle".into(),
                source: None,
            })?
            .map_err(|e| Error::Unavailable {
                backend: BACKEND,
                message: format!("realtime stream: {e}"),
                source: None,
            })?;
        let Some(chunk) = chunk else { return Ok(()) };
        parser.feed(&chunk, &mut events);
        for ev in events.drain(..) {
            if ev.event == "PB_CONNECT" {
                let client_id = serde_json::from_str::<Value>(&ev.data)
                    .ok()
                    .and_then(|v| v.get("clientId").and_then(Value::as_str).map(str::to_owned))
                    .ok_or_else(|| Error::MalformedResponse {
                        backend: BACKEND,
                        message: "PB_CONNECT without clientId".into(),
                    })?;
                let body = serde_json::json!({
                    "clientId": client_id,
                    "subscriptions": topics.keys().collect::<Vec<_>>(),
                });
                let reply = client
                    .send(Method::POST, url.clone(), &[], Some(&body))
                    .await?;
                if !reply.status.is_success() {
                    return Err(reply.error());
                }
                subscribed = true;
                *attempt = 0;
                if tx.send(RealtimeEvent::Resync).await.is_err() {
                    return Ok(());
                }
            } else if subscribed
                && let Some(scope) = topics.get(&ev.event)
                && tx
                    .send(RealtimeEvent::Changed(scope.clone()))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sse() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(
            b"id:abc\r\nevent:PB_CONNECT\r\ndata:{\"clientId\":\"abc\"}\r\n",
            &mut out,
        );
        assert!(out.is_empty());
        p.feed(
            b"\r\nevent: records/*\ndata: {\"a\":1}\ndata: x\n\n: comment\n\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                SseEvent {
                    event: "PB_CONNECT".into(),
                    data: "{\"clientId\":\"abc\"}".into()
                },
                SseEvent {
                    event: "records/*".into(),
                    data: "{\"a\":1}\nx".into()
                },
            ]
        );
    }

    #[test]
    fn topics_escape_values() {
        let s = SyncScope::new("records", [("owner", "a\" || owner != \"")]).unwrap();
        let t = topic(&s);
        assert!(t.starts_with("records/*?options="), "{t}");
        assert!(!t.contains(' ') && !t.contains('"'), "{t}");
        assert_eq!(topic(&SyncScope::named("records").unwrap()), "records/*");
    }
}
