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
use reqwest::header::HeaderName;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::credential::Credential;
use crate::error::{Error, Result};
use crate::remote::client::status::ErrorDetail;
pub(crate) use crate::remote::client::transport::Reply;
use crate::remote::client::transport::{self, Dialect, Transport};

pub(crate) const BACKEND: &str = "appwrite";

/// Appwrite for the shared transport: its error bodies, no exceptions to the status table.
pub(crate) static DIALECT: Dialect = Dialect {
    backend: BACKEND,
    detail: error_detail,
    exception: transport::no_exception,
    auth_scheme: "Bearer ",
};

/// The status table's hook: `{"message","code","type"}`; a body that is not JSON stands as its
/// first 200 characters.
pub(crate) fn error_detail(body: &[u8]) -> ErrorDetail {
    transport::json_detail(body, Some("type"))
}

/// Shared HTTP state of a store.
pub(crate) struct Client {
    transport: Transport,
    /// The API endpoint, ending in `/v1`.
    pub base: Url,
    pub project: String,
    credential: RwLock<Credential>,
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
        let transport = Transport::new(base.clone(), &DIALECT, timeout, Duration::from_secs(10))?;
        Ok(Client {
            transport,
            base,
            project,
            credential: RwLock::new(credential),
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
        self.transport.url(segments)
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
        let (name, value) = {
            let c = self.credential();
            // Before anything is sent: an expired JWT is Unauthorized, never an empty page.
            c.check(Timestamp::now())?;
            let (n, v) = c.header();
            (n, v.to_owned())
        };
        let read = method == Method::GET;
        let mut req = self
            .transport
            .request(method, url)
            .query(query)
            .header(HeaderName::from_static("x-appwrite-project"), &self.project)
            .secret_header(HeaderName::from_static(name), &value)
            .header(reqwest::header::ACCEPT, "application/json")
            .idempotent(read);
        if let Some(b) = body {
            req = req.json(b);
        }
        let reply = self.transport.send(&req).await?;
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
        let e = DIALECT.error(
            StatusCode::UNAUTHORIZED,
            &reqwest::header::HeaderMap::new(),
            br#"{"message":"Failed to verify JWT. Expired.","code":401,"type":"user_jwt_invalid"}"#,
        );
        assert_eq!(
            e.to_string(),
            "appwrite: unauthorized: user_jwt_invalid: Failed to verify JWT. Expired."
        );
    }
}
