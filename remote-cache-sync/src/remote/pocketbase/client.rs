//! The HTTP side: one `reqwest` client, the token cache, and PocketBase's hook into the shared
//! status → [`Error`] table.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::credential::{Credentials, PocketBaseAuth};
use super::filter::parse_date;
use crate::error::{Error, Result};
use crate::remote::client::status::ErrorDetail;
use crate::remote::client::token::TokenCache;
pub(crate) use crate::remote::client::transport::Reply;
use crate::remote::client::transport::{self, Dialect, Transport};

pub(crate) const BACKEND: &str = "pocketbase";

/// Refresh a token this many seconds (at most) before it expires.
const REFRESH_MARGIN_S: i64 = 120;

/// Re-check a refreshable token with the server at least this often: a revoked token (password
/// change, deleted user) with a future `exp` would otherwise read lists as a guest.
pub(crate) const REVALIDATE_S: i64 = 600;

/// PocketBase for the shared transport: `Authorization` carries the bare token.
pub(crate) static DIALECT: Dialect = Dialect {
    backend: BACKEND,
    detail: error_detail,
    exception: transport::no_exception,
    auth_scheme: "",
};

/// The status table's hook: PocketBase's error body is `{"status","message","data"}`, with no
/// stable top-level code; a body that is not JSON stands as its first 200 characters.
fn error_detail(body: &[u8]) -> ErrorDetail {
    transport::json_detail(body, None)
}

/// The shared status table for a status whose reason the adapter already has (a batch
/// sub-request's).
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap, message: String) -> Error {
    DIALECT.error_from(
        status,
        headers,
        ErrorDetail {
            code: None,
            message: (!message.is_empty()).then_some(message),
        },
    )
}

/// Shared HTTP state of a store and its realtime subscriptions: the transport inside the token
/// cache's provider.
pub(crate) struct Client {
    pub tokens: TokenCache<PocketBaseAuth>,
    /// The `reqwest` client (sharing the transport's pool), for the event stream.
    pub http: reqwest::Client,
    /// 0 unknown, 1 the `/api/rcs/time` hook answers, 2 it does not.
    time_route: AtomicU8,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.tokens.provider();
        f.debug_struct("Client")
            .field("base", &p.transport.base().as_str())
            .field("credentials", &p.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base: Url, credentials: Credentials, timeout: Duration) -> Result<Self> {
        let transport = Transport::new(base, &DIALECT, timeout, Duration::from_secs(10))?;
        Ok(Client {
            http: transport.http().clone(),
            tokens: TokenCache::new(
                PocketBaseAuth {
                    transport,
                    credentials,
                },
                BACKEND,
                REFRESH_MARGIN_S,
            )
            .with_revalidation(REVALIDATE_S),
            time_route: AtomicU8::new(0),
        })
    }

    fn transport(&self) -> &Transport {
        &self.tokens.provider().transport
    }

    /// The base URL.
    #[cfg(test)]
    pub fn base(&self) -> &Url {
        self.transport().base()
    }

    /// Whether the credentials are a superuser's (API rules do not apply).
    pub fn is_superuser(&self) -> bool {
        matches!(
            self.tokens.provider().credentials,
            Credentials::Superuser { .. }
        )
    }

    /// A URL under the base from path segments (each percent-encoded; empty, `.` and `..`
    /// segments are refused).
    pub fn url(&self, segments: &[&str]) -> Result<Url> {
        self.transport().url(segments)
    }

    /// Makes sure the server accepted the token within `max_age_s` seconds (refreshing it when
    /// it can), so an empty answer is not a guest's answer.
    pub async fn ensure_valid(&self, max_age_s: i64) -> Result<()> {
        self.tokens.get_validated(Some(max_age_s)).await.map(|_| ())
    }

    /// Sends an authenticated request; a 401 renews the token once (a refresh or a fresh login)
    /// and retries. Returns every answer (the caller maps statuses), except transport failures
    /// and a final 401. A `GET` is retried in place by the shared read policy (a connection
    /// that could not be made, a 429 with a short `Retry-After`); a 429 on a `GET` is returned
    /// as [`Error::RateLimited`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        let read = method == Method::GET;
        let mut req = self
            .transport()
            .request(method, url)
            .query(query)
            .idempotent(read);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.transport().send_authorized(&self.tokens, req).await
    }

    /// The server's clock: the `/api/rcs/time` hook from the guide (milliseconds) when installed,
    /// else the `Date` header of `/api/health` (seconds).
    pub async fn server_time(&self) -> Result<Timestamp> {
        if self.time_route.load(Ordering::Relaxed) != 2 {
            let reply = self
                .send(Method::GET, self.url(&["api", "rcs", "time"])?, &[], None)
                .await?;
            if reply.status.is_success() {
                let v: Value = reply.json()?;
                if let Some(t) = v.get("now").and_then(Value::as_str).and_then(parse_date) {
                    self.time_route.store(1, Ordering::Relaxed);
                    return Ok(t);
                }
            } else if reply.status != StatusCode::NOT_FOUND {
                return Err(reply.error());
            }
            self.time_route.store(2, Ordering::Relaxed);
        }
        let reply = self
            .send(Method::GET, self.url(&["api", "health"])?, &[], None)
            .await?;
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        reply.date().ok_or_else(|| Error::MalformedResponse {
            backend: BACKEND,
            message: "no Date header".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        let h = HeaderMap::new();
        let m = || "m".to_owned();
        assert!(status_error(StatusCode::UNAUTHORIZED, &h, m()).is_auth());
        assert_eq!(
            status_error(StatusCode::UNAUTHORIZED, &h, "token expired".into()).to_string(),
            "pocketbase: unauthorized: token expired"
        );
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, &h, m()),
            Error::Refused {
                status: Some(403),
                ..
            }
        ));
        assert!(status_error(StatusCode::FORBIDDEN, &h, m()).pauses_scope());
        assert!(status_error(StatusCode::NOT_FOUND, &h, m()).pauses_scope());
        assert!(matches!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &h, m()),
            Error::RateLimited { .. }
        ));
        assert!(status_error(StatusCode::BAD_GATEWAY, &h, m()).is_retryable());
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, &h, m()),
            Error::Rejected {
                status: Some(400),
                ..
            }
        ));
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &h, m()).retry_after(),
            Some(Duration::from_secs(3))
        );
    }
}
