//! The client side of `GET /v1/events` (`docs/protocol.md`, "Events"): one server-sent event
//! stream per subscription, reopened by the shared realtime driver.
//!
//! `ready` (the server registered the stream) and `resync` (the server may have missed
//! changes) become [`RemoteEvent::Reconnected`]; `changed` becomes [`RemoteEvent::Changed`].
//! A `changed` whose scope does not parse is answered as a resync: pulling everything is
//! always safe, skipping an event is not.

use futures::StreamExt;
use reqwest::Url;

use super::{BACKEND, status_error, transport_error};
use crate::error::Result;
use crate::remote::client::{sse, url};
use crate::remote::protocol;
use crate::remote::realtime::{self, Connection, RealtimeOptions, RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// The events URL of `scopes`: one `scope` parameter (a JSON scope) each.
pub(super) fn url(base: &Url, scopes: &[SyncScope]) -> Result<Url> {
    let mut url = url::join_path(base, protocol::EVENTS)?;
    {
        let mut query = url.query_pairs_mut();
        for scope in scopes {
            query.append_pair("scope", &serde_json::to_string(scope)?);
        }
    }
    Ok(url)
}

/// Starts a subscription on `url`.
pub(super) fn spawn(
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    options: RealtimeOptions,
) -> RemoteEvents {
    realtime::spawn(
        BACKEND,
        options,
        Box::new(move || {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            Box::pin(connect(client, url, token, options))
        }),
    )
}

async fn connect(
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    options: RealtimeOptions,
) -> Result<Connection> {
    let mut req = sse::request(client.get(url));
    if let Some(token) = &token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        return Err(status_error(status, &headers, &body));
    }
    let events = sse::events(BACKEND, resp, options.stall_timeout).filter_map(|ev| {
        std::future::ready(match ev {
            Err(e) => Some(Err(e)),
            Ok(ev) => decode(&ev.event, &ev.data).map(Ok),
        })
    });
    Ok(crate::rt::box_stream(events))
}

/// The meaning of one event (`None`: not ours, ignored).
fn decode(event: &str, data: &str) -> Option<RemoteEvent> {
    #[derive(serde::Deserialize)]
    struct Changed {
        scope: SyncScope,
    }
    match event {
        "ready" | "resync" => Some(RemoteEvent::Reconnected),
        "changed" => Some(match serde_json::from_str::<Changed>(data) {
            Ok(c) => RemoteEvent::Changed(c.scope),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable change event; resyncing every scope");
                RemoteEvent::Reconnected
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode() {
        let s = SyncScope::new("records", [("owner", "a&b=c")]).unwrap();
        assert_eq!(decode("ready", "{}"), Some(RemoteEvent::Reconnected));
        assert_eq!(decode("resync", ""), Some(RemoteEvent::Reconnected));
        assert_eq!(
            decode("changed", &serde_json::json!({ "scope": s }).to_string()),
            Some(RemoteEvent::Changed(s.clone()))
        );
        assert_eq!(decode("changed", "{"), Some(RemoteEvent::Reconnected));
        assert_eq!(decode("other", "{}"), None);
        let u = url(
            &Url::parse("http://h:1/base/").unwrap(),
            std::slice::from_ref(&s),
        )
        .unwrap();
        let pairs: Vec<_> = u.query_pairs().into_owned().collect();
        assert_eq!(pairs.len(), 1);
        assert_eq!(serde_json::from_str::<SyncScope>(&pairs[0].1).unwrap(), s);
    }
}
