//! The HTTP side: one `reqwest` client with the `apikey` header on every request, the token
//! cache ([`TokenCache`] over GoTrue), and Supabase's hook into the shared status → [`Error`]
//! table.

use std::time::Duration;

use reqwest::header::HeaderName;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::credential::{Credentials, GoTrue};
use crate::error::{Error, Result};
use crate::remote::client::status::ErrorDetail;
use crate::remote::client::token::TokenCache;
pub(crate) use crate::remote::client::transport::Reply;
use crate::remote::client::transport::{Dialect, Request, Transport};

pub(crate) const BACKEND: &str = "supabase";

/// Renew a session this long (at most) before its access token expires.
const REFRESH_MARGIN_S: i64 = 60;

/// Codes that mean the guide's functions or tables are missing (PostgREST answers them 404).
const MISSING: &[&str] = &["PGRST202", "PGRST205", "42P01", "42883"];

/// Supabase for the shared transport.
pub(crate) static DIALECT: Dialect = Dialect {
    backend: BACKEND,
    detail: error_detail,
    exception: missing,
    auth_scheme: "Bearer ",
};

/// The status table's hook: PostgREST's `{code, message, details, hint}`, the gateway's
/// `{message}`, GoTrue's `{error_code, msg}`; a body that is not JSON stands as its first 200
/// characters.
pub(crate) fn error_detail(body: &[u8]) -> ErrorDetail {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        return ErrorDetail {
            code: None,
            message: (!text.trim().is_empty()).then_some(text),
        };
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let code = text("code")
        .or_else(|| text("error_code"))
        .map(str::to_owned);
    let mut message = text("message").or_else(|| text("msg")).map(str::to_owned);
    let extra: Vec<&str> = [text("details"), text("hint")]
        .into_iter()
        .flatten()
        .collect();
    if let Some(m) = &mut message
        && !extra.is_empty()
    {
        m.push_str(&format!(" ({})", extra.join("; ")));
    }
    ErrorDetail { code, message }
}

/// The one exception to the status table: a missing function or table (404 `PGRST202`,
/// `PGRST205`, `42P01`, `42883`) is [`Error::NotFound`] pointing at the guide.
fn missing(status: StatusCode, detail: &ErrorDetail) -> Option<Error> {
    (status == StatusCode::NOT_FOUND
        && detail.code.as_deref().is_some_and(|c| MISSING.contains(&c)))
    .then(|| Error::NotFound {
        what: format!(
            "supabase: {} (apply docs/backends/supabase.md)",
            detail.message.as_deref().unwrap_or_default()
        ),
    })
}

/// The project: the shared transport and the anon key sent with every request.
pub(crate) struct Http {
    pub transport: Transport,
    pub anon_key: String,
}

impl Http {
    pub fn new(base: Url, anon_key: String, timeout: Duration) -> Result<Self> {
        Ok(Http {
            transport: Transport::new(base, &DIALECT, timeout, Duration::from_secs(10))?,
            anon_key,
        })
    }

    /// The project's URL.
    pub fn base(&self) -> &Url {
        self.transport.base()
    }

    /// A URL under the project from path segments (each percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Result<Url> {
        self.transport.url(segments)
    }

    /// A request with the `apikey` header (marked sensitive).
    pub fn request(&self, method: Method, url: Url) -> Request {
        self.transport
            .request(method, url)
            .secret_header(HeaderName::from_static("apikey"), &self.anon_key)
    }
}

/// [`Http`] plus the current token.
pub(crate) struct Client {
    pub tokens: TokenCache<GoTrue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.tokens.provider();
        f.debug_struct("Client")
            .field("base", &p.http.base().as_str())
            .field("credentials", &p.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(http: Http, credentials: Credentials) -> Self {
        Client {
            tokens: TokenCache::new(GoTrue { http, credentials }, BACKEND, REFRESH_MARGIN_S),
        }
    }

    pub fn http(&self) -> &Http {
        &self.tokens.provider().http
    }

    /// A URL under `/rest/v1/`.
    pub fn rest(&self, segments: &[&str]) -> Result<Url> {
        let mut all = vec!["rest", "v1"];
        all.extend_from_slice(segments);
        self.http().url(&all)
    }

    /// Sends an authenticated request. A 401 renews the token once and retries; a second 401 is
    /// [`Error::Unauthorized`]. Reads (`read`) are retried in place by the shared policy; a 429
    /// on a read is [`Error::RateLimited`]. Other statuses are returned.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(String, String)],
        body: Option<&Value>,
        prefer: Option<&str>,
        read: bool,
    ) -> Result<Reply> {
        let mut req = self
            .http()
            .request(method, url)
            .query(query)
            .idempotent(read);
        if let Some(p) = prefer {
            req = req.header(HeaderName::from_static("prefer"), p);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.http()
            .transport
            .send_authorized(&self.tokens, req)
            .await
    }

    /// `POST /rest/v1/rpc/<function>` with named arguments; a non-success answer is an error.
    pub async fn rpc(&self, function: &str, args: &Value, read: bool) -> Result<Reply> {
        let url = self.rest(&["rpc", function])?;
        self.send(Method::POST, url, &[], Some(args), None, read)
            .await?
            .success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, body: &str) -> Error {
        DIALECT.error(
            StatusCode::from_u16(status).unwrap(),
            &reqwest::header::HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn postgrest_errors_map_to_typed_errors() {
        let e = map(
            401,
            r#"{"code":"PGRST303","message":"JWT expired","details":null,"hint":null}"#,
        );
        assert!(e.is_auth());
        assert_eq!(
            e.to_string(),
            "supabase: unauthorized: PGRST303: JWT expired"
        );
        assert!(
            map(
                401,
                r#"{"code":"PGRST301","message":"JWT cryptographic operation failed"}"#
            )
            .is_auth()
        );
        assert!(map(401, r#"{"message":"Invalid API key"}"#).is_auth());
        let e = map(
            403,
            r#"{"code":"42501","message":"new row violates row-level security policy"}"#,
        );
        assert!(
            matches!(&e, Error::Refused { status: Some(403), code: Some(c), .. } if c == "42501"),
            "{e:?}"
        );
        assert!(e.pauses_scope());
        for code in ["PGRST202", "PGRST205", "42P01"] {
            let e = map(404, &format!(r#"{{"code":"{code}","message":"missing"}}"#));
            assert!(matches!(e, Error::NotFound { .. }), "{code}: {e:?}");
            assert!(e.pauses_scope());
        }
        let e = map(
            409,
            r#"{"code":"23505","message":"duplicate key value","details":"Key (id)=(x) already exists."}"#,
        );
        assert!(
            matches!(&e, Error::Rejected { status: Some(409), message, .. } if message.contains("23505") && message.contains("already exists")),
            "{e:?}"
        );
        assert!(
            map(
                503,
                r#"{"code":"PGRST001","message":"Database client error"}"#
            )
            .is_retryable()
        );
        assert!(map(500, r#"{"code":"40001","message":"could not serialize"}"#).is_retryable());
        assert!(matches!(
            map(400, r#"{"code":"PGRST100","message":"bad filter"}"#),
            Error::Rejected {
                status: Some(400),
                ..
            }
        ));
    }
}
