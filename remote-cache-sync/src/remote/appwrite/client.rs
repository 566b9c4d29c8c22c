//! The HTTP side: one `reqwest` client, the project and credential headers, and Appwrite's hook
//! into the shared status → [`Error`] table.
//!
//! Appwrite's error body is `{"message","code","type","version"}` (`type` is the stable code,
//! e.g. `document_not_found`, `transaction_conflict`, `user_jwt_invalid`; see
//! <https://appwrite.io/docs/advanced/platform/response-codes>); the hook reads `type` and
//! `message`. `GET`s go through the shared in-place read retry.

use std::sync::RwLock;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{DATE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::credential::Credential;
use crate::error::{Error, Result};
use crate::remote::client::retry::READS;
use crate::remote::client::status::{self, ErrorDetail};

pub(crate) const BACKEND: &str = "appwrite";

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

    /// Appwrite's error `type` (`document_not_found`, …), when the body has one.
    pub fn error_type(&self) -> Option<String> {
        error_detail(&self.body).code
    }

    /// The error message, for texts.
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

/// The status table's hook: `{"message","code","type"}`; a body that is not JSON stands as its
/// first 200 characters.
pub(crate) fn error_detail(body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => ErrorDetail {
            code: v.get("type").and_then(Value::as_str).map(str::to_owned),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        },
        Err(_) => {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            ErrorDetail {
                code: None,
                message: (!text.is_empty()).then_some(text),
            }
        }
    }
}

fn transport_error(e: reqwest::Error) -> Error {
    // reqwest's Display includes the URL, which never carries credentials (headers do).
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

/// Shared HTTP state of a store.
pub(crate) struct Client {
    pub http: reqwest::Client,
    /// The API endpoint, ending in `/v1`.
    pub base: Url,
    pub project: String,
    credential: RwLock<Credential>,
    #[cfg(target_arch = "wasm32")]
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("project", &self.project)
            .field("credential", &*self.credential())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(
        base: Url,
        project: String,
        credential: Credential,
        timeout: Duration,
    ) -> Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10));
        #[cfg(target_arch = "wasm32")]
        let http = reqwest::Client::builder();
        let http = http
            .build()
            .map_err(|e| Error::InvalidInput(format!("appwrite: cannot build HTTP client: {e}")))?;
        #[cfg(not(target_arch = "wasm32"))]
        let _ = timeout;
        Ok(Client {
            http,
            base,
            project,
            credential: RwLock::new(credential),
            #[cfg(target_arch = "wasm32")]
            timeout,
        })
    }

    pub(super) fn credential(&self) -> std::sync::RwLockReadGuard<'_, Credential> {
        self.credential.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the credential is a user JWT (what realtime authenticates with).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn has_jwt(&self) -> bool {
        matches!(*self.credential(), Credential::Jwt(_))
    }

    /// Replaces the credential (a fresh JWT).
    pub fn set_credential(&self, c: Credential) {
        *self.credential.write().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// A URL under the endpoint from path segments (each percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Result<Url> {
        crate::remote::client::url::join(&self.base, segments)
    }

    async fn once(
        &self,
        method: Method,
        url: Url,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        let (name, value) = {
            let c = self.credential();
            // Before anything is sent: an expired JWT is Unauthorized, never an empty page.
            c.check(Timestamp::now())?;
            let (n, v) = c.header();
            (n, v.to_owned())
        };
        let mut req = self
            .http
            .request(method, url)
            .header("X-Appwrite-Project", &self.project)
            .header(name, value)
            .header("Accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
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

    /// Sends a request. Returns every answer but a 401 (→ [`Error::Unauthorized`]): the caller
    /// maps the other statuses. A `GET` is retried in place by the shared read policy, and a
    /// 429 on a `GET` is returned as [`Error::RateLimited`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        let reply = if method == Method::GET {
            READS
                .run(|| async {
                    let reply = self.once(method.clone(), url.clone(), query, body).await?;
                    if reply.status == StatusCode::TOO_MANY_REQUESTS {
                        return Err(reply.error());
                    }
                    Ok(reply)
                })
                .await?
        } else {
            self.once(method, url, query, body).await?
        };
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(reply.error());
        }
        Ok(reply)
    }

    /// The server's clock: the `Date` header of `GET /health/version` (1 s resolution; Appwrite
    /// has no client-facing time endpoint).
    pub async fn server_time(&self) -> Result<Timestamp> {
        let reply = self
            .send(Method::GET, self.url(&["health", "version"])?, &[], None)
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
    fn reads_appwrite_error_bodies() {
        let d = error_detail(
            br#"{"message":"Document with the requested ID could not be found.","code":404,"type":"document_not_found","version":"1.8.0"}"#,
        );
        assert_eq!(d.code.as_deref(), Some("document_not_found"));
        assert!(d.message.unwrap().contains("could not be found"));
        let d = error_detail(b"<html>bad gateway</html>");
        assert_eq!(d.code, None);
        assert_eq!(d.message.as_deref(), Some("<html>bad gateway</html>"));
        let h = HeaderMap::new();
        let e = status::status_error(
            BACKEND,
            StatusCode::UNAUTHORIZED,
            &h,
            error_detail(br#"{"message":"Failed to verify JWT. Expired.","code":401,"type":"user_jwt_invalid"}"#),
        );
        assert_eq!(
            e.to_string(),
            "appwrite: unauthorized: user_jwt_invalid: Failed to verify JWT. Expired."
        );
    }
}
