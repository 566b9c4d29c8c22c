//! Server-sent events over `reqwest`, parsed by `eventsource-stream`, with stall detection:
//! the transport of every HTTP realtime adapter (our `/v1/events`, PocketBase's
//! `/api/realtime`).
//!
//! [`events`] turns an answered request into a stream of [`Event`]s. Silence is measured on
//! the bytes, not on the events, so a heartbeat comment (`: …`), which the parser drops, still
//! proves the connection alive: when no byte arrives for the stall limit the stream ends with
//! [`Error::Unavailable`] and the realtime driver reopens it.

use std::time::Duration;

pub(crate) use eventsource_stream::Event;
use eventsource_stream::Eventsource;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::remote::realtime::stall_guard;
use crate::rt::BoxStream;

/// A request for an event stream: `Accept: text/event-stream` and, natively, no whole-request
/// timeout (the stall guard replaces it). The browser's client has no timeout of its own.
pub(crate) fn request(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let req = req.header(reqwest::header::ACCEPT, "text/event-stream");
    // Natively this overrides the client's timeout. In the browser a timer this long would
    // fire at once.
    #[cfg(not(target_arch = "wasm32"))]
    let req = req.timeout(Duration::from_secs(365 * 24 * 3600));
    req
}

/// The events of an answered (2xx) event-stream response; ends with an error once nothing
/// arrived for `stall` or the transport fails.
pub(crate) fn events(
    backend: &'static str,
    resp: reqwest::Response,
    stall: Duration,
) -> BoxStream<'static, Result<Event>> {
    let transport = move |e: reqwest::Error| Error::Unavailable {
        backend,
        message: format!("realtime stream: {}", e.without_url()),
        source: None,
    };
    let bytes = resp.bytes_stream().map(move |r| r.map_err(transport));
    let bytes = stall_guard(backend, crate::rt::box_stream(bytes), stall);
    crate::rt::box_stream(bytes.eventsource().map(move |r| {
        r.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(e) => e,
            other => Error::MalformedResponse {
                backend,
                message: format!("realtime stream: {other}"),
            },
        })
    }))
}
