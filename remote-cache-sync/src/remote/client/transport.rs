//! Sending a request, written once: client set-up (timeouts, per request in the browser), the
//! send itself, the answer read whole, its status mapped through the [`status`] table with the
//! backend's hook, idempotent requests retried in place ([`retry`](super::retry)), and bearer
//! tokens from a [`TokenCache`] renewed once after a 401. An adapter describes its backend once
//! (a [`Dialect`]), then writes only its requests and the decoding of its answers.
//!
//! # Redaction
//! Credential headers are marked sensitive (`reqwest` prints them as `Sensitive` in `Debug`), a
//! header value that cannot be sent is refused without echoing it, and network errors are
//! stripped of their URL (`without_url`): a URL carries no credentials (see [`url`](super::url)),
//! but its query holds scope values, which are the app's data.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::retry::{READS, refused_connection};
use super::status::{self, ErrorDetail};
use super::token::{TokenCache, TokenProvider};
use crate::error::{Error, Result};

/// What the shared layer needs to know of a backend.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// The backend's name in errors (`"pocketbase"`).
    pub backend: &'static str,
    /// The status table's hook: what the backend's error body says.
    pub detail: fn(&[u8]) -> ErrorDetail,
    /// Exceptions the backend documents before the table applies (Supabase: a 404 naming a
    /// missing function is [`Error::NotFound`]); `None` lets the table decide.
    pub exception: fn(StatusCode, &ErrorDetail) -> Option<Error>,
    /// What precedes a token in `Authorization` (`"Bearer "`; PocketBase takes the bare token).
    pub auth_scheme: &'static str,
}

impl Dialect {
    /// The error a non-success answer means.
    pub fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
        self.error_from(status, headers, (self.detail)(body))
    }

    /// The error a non-success status means, with a reason already read (a batch sub-request's).
    pub fn error_from(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        detail: ErrorDetail,
    ) -> Error {
        if let Some(e) = (self.exception)(status, &detail) {
            return e;
        }
        status::status_error(self.backend, status, headers, detail)
    }
}

/// No exceptions: the table decides.
pub(crate) fn no_exception(_: StatusCode, _: &ErrorDetail) -> Option<Error> {
    None
}

/// The usual hook reading: a JSON body's `message` (and, with `code_field`, its code), or a body
/// that is not JSON as its first 200 characters.
pub(crate) fn json_detail(body: &[u8], code_field: Option<&str>) -> ErrorDetail {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let text = |k: &str| {
                v.get(k)
                    .and_then(serde_json::Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            ErrorDetail {
                code: code_field.and_then(text),
                message: text("message"),
            }
        }
        Err(_) => {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            ErrorDetail {
                code: None,
                message: (!text.trim().is_empty()).then_some(text),
            }
        }
    }
}

/// A network failure of `backend` as [`Error::Unavailable`] (retryable), without its URL.
pub(crate) fn network_error(backend: &'static str, e: reqwest::Error) -> Error {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if refused_connection(&e) {
        "cannot connect"
    } else {
        "request failed"
    };
    Error::Unavailable {
        backend,
        message: format!("{what}: {}", crate::error::with_sources(&e)),
        source: Some(std::sync::Arc::new(e)),
    }
}

/// One `reqwest` client for one base URL and backend.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    dialect: &'static Dialect,
    /// The request timeout (the browser's client has none of its own).
    #[cfg(target_arch = "wasm32")]
    timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("backend", &self.dialect.backend)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client for `base` with a whole-request `timeout` and a connect timeout (at most the
    /// request timeout). In the browser `fetch` has no connect timeout, and the request
    /// timeout is set per request.
    pub fn new(
        base: Url,
        dialect: &'static Dialect,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout.min(timeout));
        #[cfg(target_arch = "wasm32")]
        let http = {
            let _ = connect_timeout;
            reqwest::Client::builder()
        };
        let http = http.build().map_err(|e| {
            Error::InvalidInput(format!(
                "{}: cannot build HTTP client: {}",
                dialect.backend,
                e.without_url()
            ))
        })?;
        Ok(Transport {
            http,
            base,
            dialect,
            #[cfg(target_arch = "wasm32")]
            timeout,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The `reqwest` client, for streams this layer does not read whole (server-sent events).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A URL under the base from path segments (each percent-encoded; see [`super::url::join`]).
    pub fn url<S: AsRef<str>>(&self, segments: &[S]) -> Result<Url> {
        super::url::join(&self.base, segments)
    }

    /// A request to build, then [`send`](Self::send).
    pub fn request(&self, method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent: false,
            invalid: None,
        }
    }

    /// A network failure as [`Error::Unavailable`], without its URL.
    pub fn network_error(&self, e: reqwest::Error) -> Error {
        network_error(self.dialect.backend, e)
    }

    /// Sends `req` once and reads the whole answer, whatever its status.
    async fn once(&self, req: &Request) -> Result<Reply> {
        if let Some(what) = &req.invalid {
            return Err(Error::InvalidInput(format!(
                "{}: {what}",
                self.dialect.backend
            )));
        }
        let mut r = self
            .http
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(b) = &req.body {
            r = r.header(CONTENT_TYPE, "application/json").body(b.clone());
        }
        #[cfg(target_arch = "wasm32")]
        {
            r = r.timeout(self.timeout);
        }
        let resp = r.send().await.map_err(|e| self.network_error(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.network_error(e))?;
        Ok(Reply {
            status,
            headers,
            body,
            dialect: self.dialect,
        })
    }

    /// Sends `req` and returns its answer, whatever the status; the caller maps statuses
    /// ([`Reply::success`], [`Reply::error`]). An [idempotent](Request::idempotent) request is
    /// retried in place by the shared policy ([`READS`]: a connection that could not be made,
    /// a 429 with a short `Retry-After`), and a 429 on it is [`Error::RateLimited`].
    pub async fn send(&self, req: &Request) -> Result<Reply> {
        if !req.idempotent {
            return self.once(req).await;
        }
        READS
            .run(|| async {
                let reply = self.once(req).await?;
                if reply.status == StatusCode::TOO_MANY_REQUESTS {
                    return Err(reply.error());
                }
                Ok(reply)
            })
            .await
    }

    /// [`send`](Self::send) with the token of `tokens` in `Authorization` (none when the
    /// provider has none). A 401 renews the token once and sends again; a second 401, or one
    /// whose token cannot be renewed, is [`Error::Unauthorized`] with the server's reason.
    pub async fn send_authorized<P: TokenProvider>(
        &self,
        tokens: &TokenCache<P>,
        req: Request,
    ) -> Result<Reply> {
        let mut token = tokens.get().await?;
        let mut renewed = false;
        loop {
            let reply = self
                .send(&self.authorize(req.clone(), token.as_deref()))
                .await?;
            if reply.status != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            if renewed {
                return Err(reply.error());
            }
            renewed = true;
            tracing::debug!(
                backend = self.dialect.backend,
                "the server refused the token; renewing it once"
            );
            token = match tokens.after_refusal(token.as_deref()).await {
                Ok(t) => t,
                // No way to renew it: the server's own reason.
                Err(e) if e.is_auth() => return Err(reply.error()),
                Err(e) => return Err(e),
            };
        }
    }

    /// `req` with `token` in `Authorization` (marked sensitive).
    pub fn authorize(&self, req: Request, token: Option<&str>) -> Request {
        match token {
            Some(t) => {
                req.secret_header(AUTHORIZATION, &format!("{}{t}", self.dialect.auth_scheme))
            }
            None => req,
        }
    }
}

/// A request being built; cheap to clone for a retry.
#[derive(Clone)]
pub(crate) struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    idempotent: bool,
    /// Why it cannot be sent (a header value that is not a valid header), without the value.
    invalid: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `HeaderMap`'s Debug prints sensitive values as `Sensitive`.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("idempotent", &self.idempotent)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Appends query parameters (form-encoded, as `reqwest`'s `query` does).
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if !pairs.is_empty() {
            let mut q = self.url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    fn insert(mut self, name: HeaderName, value: &str, sensitive: bool) -> Self {
        match HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(sensitive);
                self.headers.insert(name, v);
            }
            Err(_) => {
                self.invalid = Some(format!("the {name} header value is not a valid header"));
            }
        }
        self
    }

    /// A header.
    pub fn header(self, name: HeaderName, value: &str) -> Self {
        self.insert(name, value, false)
    }

    /// A header carrying a credential: marked sensitive, never echoed in an error.
    pub fn secret_header(self, name: HeaderName, value: &str) -> Self {
        self.insert(name, value, true)
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<B: serde::Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(b) => self.body = Some(b),
            Err(e) => self.invalid = Some(format!("the request body does not serialize: {e}")),
        }
        self
    }

    /// Whether the request may be retried in place (reads; writes that are idempotent by op
    /// id).
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// The URL, query included.
    #[cfg(test)]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The headers.
    #[cfg(test)]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    dialect: &'static Dialect,
}

impl Reply {
    /// The `Date` header (1 s resolution), if present and valid.
    pub fn date(&self) -> Option<Timestamp> {
        let v = self.headers.get(DATE)?.to_str().ok()?;
        jiff::fmt::rfc2822::parse(v).ok().map(|z| z.timestamp())
    }

    /// The body as JSON; [`Error::MalformedResponse`] when it is not the expected JSON.
    pub fn json<D: DeserializeOwned>(&self) -> Result<D> {
        serde_json::from_slice(&self.body).map_err(|e| Error::MalformedResponse {
            backend: self.dialect.backend,
            message: format!("{} answer is not the expected JSON: {e}", self.status),
        })
    }

    /// What the error body says (the backend's hook).
    pub fn detail(&self) -> ErrorDetail {
        (self.dialect.detail)(&self.body)
    }

    /// The error body's message, for texts (empty when it has none).
    pub fn message(&self) -> String {
        self.detail().message.unwrap_or_default()
    }

    /// The error a non-success answer means (the shared status table and the backend's hook).
    pub fn error(&self) -> Error {
        self.dialect.error(self.status, &self.headers, &self.body)
    }

    /// The answer when it is a success (2xx), else the error it means.
    pub fn success(self) -> Result<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static T: Dialect = Dialect {
        backend: "t",
        detail: |b| json_detail(b, Some("code")),
        exception: |s, d| {
            (s == StatusCode::NOT_FOUND && d.code.as_deref() == Some("gone"))
                .then(|| Error::NotFound { what: "x".into() })
        },
        auth_scheme: "Bearer ",
    };

    fn transport() -> Transport {
        let base = Url::parse("http://127.0.0.1:9/api/").unwrap();
        Transport::new(base, &T, Duration::from_secs(5), Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn requests_keep_secrets_out_of_debug_and_errors() {
        let t = transport();
        let url = t.url(&["a b", "c"]).unwrap();
        let r = t
            .request(Method::GET, url)
            .query(&[("filter", "a,owner.neq.x"), ("q", "x y")]);
        let r = t.authorize(r, Some("s3cret"));
        assert_eq!(
            r.url().as_str(),
            "http://127.0.0.1:9/api/a%20b/c?filter=a%2Cowner.neq.x&q=x+y"
        );
        assert!(!format!("{r:?}").contains("s3cret"), "{r:?}");
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer s3cret");
        let bad = r.secret_header(HeaderName::from_static("x-key"), "s3cret\nx");
        let why = bad.invalid.clone().unwrap();
        assert!(!why.contains("s3cret"), "{why}");
    }

    #[test]
    fn the_dialect_hook_and_exceptions() {
        let h = HeaderMap::new();
        let e = T.error(
            StatusCode::NOT_FOUND,
            &h,
            br#"{"code":"gone","message":"m"}"#,
        );
        assert!(matches!(e, Error::NotFound { .. }));
        let e = T.error(
            StatusCode::NOT_FOUND,
            &h,
            br#"{"code":"other","message":"m"}"#,
        );
        assert!(
            matches!(
                e,
                Error::Refused {
                    status: Some(404),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = T.error(StatusCode::BAD_GATEWAY, &h, b"<html>bad gateway</html>");
        assert_eq!(
            e.to_string(),
            "t: unavailable: 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[tokio::test]
    async fn network_errors_carry_no_url_and_invalid_requests_are_not_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let t = Transport::new(
            Url::parse(&format!("http://{addr}/")).unwrap(),
            &T,
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .unwrap();
        let url = t.url(&["secret-path"]).unwrap();
        let e = t
            .send(
                &t.request(Method::GET, url.clone())
                    .query(&[("owner", "alice")]),
            )
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        let text = e.to_string();
        assert!(
            !text.contains("alice") && !text.contains("secret-path"),
            "{text}"
        );
        let e = t
            .send(
                &t.request(Method::GET, url)
                    .header(HeaderName::from_static("x"), "\u{7f}"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    }
}
