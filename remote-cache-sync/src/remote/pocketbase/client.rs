//! The HTTP side: one `reqwest` client, the token cache, and PocketBase's hook into the shared
//! status → [`Error`] table.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, DATE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::auth::{Credentials, Token};
use super::filter::parse_date;
use crate::error::{Error, Result};
use crate::remote::client::retry::READS;
use crate::remote::client::status::{self, ErrorDetail};

pub(crate) const BACKEND: &str = "pocketbase";

/// Refresh a token this many seconds before it expires.
const REFRESH_MARGIN_S: i64 = 120;

/// Re-check a refreshable token with the server at least this often: a revoked token (password
/// change, deleted user) with a future `exp` would otherwise read lists as a guest.
pub(crate) const REVALIDATE_S: i64 = 600;

/// A decoded HTTP answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The `Date` header (1 s resolution), if present and valid.
    pub fn date(&self) -> Option<Timestamp> {
        let v = self.headers.get(DATE)?.to_str().ok()?;
        jiff::fmt::rfc2822::parse(v).ok().map(|z| z.timestamp())
    }

    /// The body as JSON.
    pub fn json<D: serde::de::DeserializeOwned>(&self) -> Result<D> {
        serde_json::from_slice(&self.body).map_err(|e| Error::MalformedResponse {
            backend: BACKEND,
            message: format!("{} answer is not the expected JSON: {e}", self.status),
        })
    }

    /// PocketBase's `message` field, for error texts.
    pub fn message(&self) -> String {
        error_detail(&self.body).message.unwrap_or_default()
    }

    /// Maps a non-success answer to the error enum (the shared status table).
    pub fn error(&self) -> Error {
        status::status_error(
            BACKEND,
            self.status,
            &self.headers,
            error_detail(&self.body),
        )
    }
}

/// The status table's hook: PocketBase's error body is `{"status","message","data"}`, with no
/// stable top-level code; a body that is not JSON stands as its first 200 characters.
fn error_detail(body: &[u8]) -> ErrorDetail {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    ErrorDetail {
        code: None,
        message: (!message.is_empty()).then_some(message),
    }
}

/// The shared status table ([`status::status_error`]) for a status whose reason the adapter
/// already has (a batch sub-request's).
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap, message: String) -> Error {
    status::status_error(
        BACKEND,
        status,
        headers,
        ErrorDetail {
            code: None,
            message: (!message.is_empty()).then_some(message),
        },
    )
}

fn unauthorized(message: &str) -> Error {
    Error::Unauthorized {
        backend: BACKEND,
        message: message.to_owned(),
    }
}

fn transport_error(e: reqwest::Error) -> Error {
    // reqwest's Display includes the URL, which never carries credentials here (they travel in
    // a header or a JSON body).
    Error::Unavailable {
        backend: BACKEND,
        message: if e.is_timeout() {
            format!("timeout: {}", crate::error::with_sources(&e))
        } else {
            format!("network: {}", crate::error::with_sources(&e))
        },
        source: Some(std::sync::Arc::new(e)),
    }
}

/// Shared HTTP state of a store and its realtime subscriptions.
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub base: Url,
    credentials: Credentials,
    token: tokio::sync::Mutex<Option<Token>>,
    /// The request timeout (the browser's client has none of its own).
    #[cfg(target_arch = "wasm32")]
    timeout: Duration,
    /// 0 unknown, 1 the `/api/rcs/time` hook answers, 2 it does not.
    time_route: AtomicU8,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base: Url, credentials: Credentials, timeout: Duration) -> Result<Self> {
        // In the browser `fetch` has no connect timeout, and the timeout is set per request.
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10));
        #[cfg(target_arch = "wasm32")]
        let http = reqwest::Client::builder();
        let http = http.build().map_err(|e| {
            Error::InvalidInput(format!("pocketbase: cannot build HTTP client: {e}"))
        })?;
        Ok(Client {
            http,
            base,
            credentials,
            token: tokio::sync::Mutex::new(None),
            #[cfg(target_arch = "wasm32")]
            timeout,
            time_route: AtomicU8::new(0),
        })
    }

    /// Whether the credentials are a superuser's (API rules do not apply).
    pub fn is_superuser(&self) -> bool {
        matches!(self.credentials, Credentials::Superuser { .. })
    }

    /// A URL under the base from path segments (each percent-encoded; empty, `.` and `..`
    /// segments are refused).
    pub fn url(&self, segments: &[&str]) -> Result<Url> {
        crate::remote::client::url::join(&self.base, segments)
    }

    /// The current `Authorization` value, logging in or refreshing as needed. `force_new` drops
    /// the cached token (the server just refused it).
    pub async fn authorization(&self, force_new: bool) -> Result<Option<String>> {
        self.authorization_checked(force_new, REVALIDATE_S).await
    }

    /// Makes sure the server accepted the token within `max_age_s` seconds (refreshing it when
    /// it can), so an empty answer is not a guest's answer.
    pub async fn ensure_valid(&self, max_age_s: i64) -> Result<()> {
        self.authorization_checked(false, max_age_s)
            .await
            .map(|_| ())
    }

    async fn authorization_checked(
        &self,
        force_new: bool,
        max_age_s: i64,
    ) -> Result<Option<String>> {
        if matches!(self.credentials, Credentials::Anonymous) {
            return Ok(None);
        }
        let can_login = self.credentials.login().is_some();
        let mut guard = self.token.lock().await;
        if force_new {
            *guard = None;
            if !can_login {
                return Err(unauthorized("the server refused the token"));
            }
        }
        let now = Timestamp::now();
        let cached = guard.clone();
        if let Some(t) = &cached
            && !t.expires_within(now, t.refresh_margin(REFRESH_MARGIN_S))
            && (!t.claims.refreshable || t.validated_within(now, max_age_s))
        {
            return Ok(Some(t.value.clone()));
        }
        let fresh = match (cached, &self.credentials) {
            (Some(t), _) if !t.expired(now) && t.claims.refreshable => match self.refresh(&t).await
            {
                Ok(n) => n,
                Err(e) if (e.is_auth() || matches!(e, Error::Refused { .. })) && can_login => {
                    self.login().await?
                }
                Err(e) => return Err(e),
            },
            // Valid but not refreshable (e.g. impersonation): use it until it expires.
            (Some(t), _) if !t.expired(now) => return Ok(Some(t.value)),
            (_, Credentials::Token(fixed)) => {
                let t = Token::parse(fixed.clone())?;
                if t.expired(now) {
                    return Err(unauthorized("the token has expired"));
                }
                if t.claims.refreshable {
                    // Also proves the token valid: an invalid one would read lists as a guest.
                    self.refresh(&t).await?
                } else {
                    t
                }
            }
            _ => self.login().await?,
        };
        let value = fresh.value.clone();
        *guard = Some(fresh);
        Ok(Some(value))
    }

    async fn login(&self) -> Result<Token> {
        let (collection, identity, password) = self.credentials.login().expect("login credentials");
        let url = self.url(&["api", "collections", collection, "auth-with-password"])?;
        let body = serde_json::json!({ "identity": identity, "password": password });
        let reply = self.raw(Method::POST, url, None, Some(&body), None).await?;
        if reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND {
            return Err(Error::Unauthorized {
                backend: BACKEND,
                message: format!("login to {collection:?} failed: {}", reply.message()),
            });
        }
        token_from(reply)
    }

    async fn refresh(&self, t: &Token) -> Result<Token> {
        // The token names its collection by id; the API accepts ids in place of names.
        let url = self.url(&[
            "api",
            "collections",
            &t.claims.collection_id,
            "auth-refresh",
        ])?;
        let reply = self
            .raw(Method::POST, url, Some(&t.value), None, None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(Error::Unauthorized {
                backend: BACKEND,
                message: "auth-refresh: the token's collection is gone".into(),
            });
        }
        token_from(reply)
    }

    async fn raw(
        &self,
        method: Method,
        url: Url,
        auth: Option<&str>,
        body: Option<&Value>,
        query: Option<&[(&str, &str)]>,
    ) -> Result<Reply> {
        let mut req = self.http.request(method, url);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        #[cfg(target_arch = "wasm32")]
        {
            req = req.timeout(self.timeout);
        }
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport_error)?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends an authenticated request; a 401 triggers one fresh login and a retry. Returns every
    /// answer (the caller maps statuses), except transport failures and a final 401. A `GET` is
    /// retried in place by the shared read policy ([`READS`]: a connection that could not be
    /// made, a 429 with a short `Retry-After`); a 429 on a `GET` is returned as
    /// [`Error::RateLimited`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        let mut force = false;
        loop {
            let auth = self.authorization(force).await?;
            let once = || async {
                self.raw(
                    method.clone(),
                    url.clone(),
                    auth.as_deref(),
                    body,
                    Some(query),
                )
                .await
            };
            let reply = if method == Method::GET {
                READS
                    .run(|| async {
                        let reply = once().await?;
                        if reply.status == StatusCode::TOO_MANY_REQUESTS {
                            return Err(reply.error());
                        }
                        Ok(reply)
                    })
                    .await?
            } else {
                once().await?
            };
            if reply.status == StatusCode::UNAUTHORIZED {
                if !force && self.credentials.login().is_some() {
                    force = true;
                    continue;
                }
                return Err(reply.error());
            }
            return Ok(reply);
        }
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

fn token_from(reply: Reply) -> Result<Token> {
    if !reply.status.is_success() {
        return Err(reply.error());
    }
    let v: Value = reply.json()?;
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::MalformedResponse {
            backend: BACKEND,
            message: "auth answer without a token".into(),
        })?;
    let mut t = Token::parse(token.to_owned())?;
    t.validated = Some(Timestamp::now());
    Ok(t)
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
