//! The HTTP side: one `reqwest` client with the `apikey` header on every request, the token
//! cache ([`TokenCache`] over GoTrue), and Supabase's hook into the shared status → [`Error`]
//! table.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::credential::{Credentials, GoTrue};
use crate::error::{Error, Result};
use crate::remote::client::retry::READS;
use crate::remote::client::status::{self, ErrorDetail};
use crate::remote::client::token::TokenCache;

pub(crate) const BACKEND: &str = "supabase";

/// Renew a session this long (at most) before its access token expires.
const REFRESH_MARGIN_S: i64 = 60;

/// Codes that mean the guide's functions or tables are missing (PostgREST answers them 404).
const MISSING: &[&str] = &["PGRST202", "PGRST205", "42P01", "42883"];

/// An HTTP answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json<D: serde::de::DeserializeOwned>(&self) -> Result<D> {
        serde_json::from_slice(&self.body).map_err(|e| Error::MalformedResponse {
            backend: BACKEND,
            message: format!("{} answer is not the expected JSON: {e}", self.status),
        })
    }

    /// The `Date` header (1 s resolution).
    pub fn date(&self) -> Option<jiff::Timestamp> {
        let v = self.headers.get(DATE)?.to_str().ok()?;
        jiff::fmt::rfc2822::parse(v).ok().map(|z| z.timestamp())
    }

    /// The error a non-success answer means.
    pub fn error(&self) -> Error {
        reply_error(self.status, &self.headers, &self.body)
    }
}

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

/// A non-success answer as an [`Error`]: the shared status table, except that a missing
/// function or table (404 `PGRST202`, `PGRST205`, `42P01`, `42883`) is [`Error::NotFound`]
/// pointing at the guide.
pub(crate) fn reply_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let detail = error_detail(body);
    if status == StatusCode::NOT_FOUND
        && detail.code.as_deref().is_some_and(|c| MISSING.contains(&c))
    {
        return Error::NotFound {
            what: format!(
                "supabase: {} (apply docs/backends/supabase.md)",
                detail.message.unwrap_or_default()
            ),
        };
    }
    status::status_error(BACKEND, status, headers, detail)
}

fn transport_error(e: reqwest::Error) -> Error {
    // reqwest's Display includes the URL, which never carries a key here (keys travel in
    // headers).
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

/// The project: its URL, the anon key and one `reqwest` client.
pub(crate) struct Http {
    http: reqwest::Client,
    pub base: Url,
    pub anon_key: String,
    #[cfg(target_arch = "wasm32")]
    timeout: Duration,
}

impl Http {
    pub fn new(base: Url, anon_key: String, timeout: Duration) -> Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10));
        #[cfg(target_arch = "wasm32")]
        let http = reqwest::Client::builder();
        let http = http
            .build()
            .map_err(|e| Error::InvalidInput(format!("supabase: cannot build HTTP client: {e}")))?;
        #[cfg(not(target_arch = "wasm32"))]
        let _ = timeout;
        Ok(Http {
            http,
            base,
            anon_key,
            #[cfg(target_arch = "wasm32")]
            timeout,
        })
    }

    /// A URL under the project from path segments (each percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Result<Url> {
        crate::remote::client::url::join(&self.base, segments)
    }

    /// One request: `apikey` always, `Authorization: Bearer` when given.
    pub async fn raw(
        &self,
        method: Method,
        url: Url,
        query: &[(String, String)],
        body: Option<&Value>,
        bearer: Option<&str>,
        prefer: Option<&str>,
    ) -> Result<Reply> {
        let mut req = self
            .http
            .request(method, url)
            .header("apikey", &self.anon_key);
        if let Some(t) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(p) = prefer {
            req = req.header("Prefer", p);
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b)?);
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
}

/// [`Http`] plus the current token.
pub(crate) struct Client {
    pub tokens: TokenCache<GoTrue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.tokens.provider();
        f.debug_struct("Client")
            .field("base", &p.http.base.as_str())
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
    /// [`Error::Unauthorized`]. Reads (`read`) are retried in place by the shared policy
    /// ([`READS`]); a 429 on a read is [`Error::RateLimited`]. Other statuses are returned.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(String, String)],
        body: Option<&Value>,
        prefer: Option<&str>,
        read: bool,
    ) -> Result<Reply> {
        let mut token = self.tokens.get().await?;
        let mut renewed = false;
        loop {
            let once = || {
                self.http().raw(
                    method.clone(),
                    url.clone(),
                    query,
                    body,
                    token.as_deref(),
                    prefer,
                )
            };
            let reply = if read {
                READS
                    .run(|| async {
                        let r = once().await?;
                        if r.status == StatusCode::TOO_MANY_REQUESTS {
                            return Err(r.error());
                        }
                        Ok(r)
                    })
                    .await?
            } else {
                once().await?
            };
            if reply.status == StatusCode::UNAUTHORIZED {
                if !renewed {
                    renewed = true;
                    tracing::debug!("supabase refused the token; renewing it once");
                    token = match self.tokens.after_refusal(token.as_deref()).await {
                        Ok(t) => t,
                        // No way to renew it: the server's own reason (PGRST301, PGRST303).
                        Err(e) if e.is_auth() => return Err(reply.error()),
                        Err(e) => return Err(e),
                    };
                    continue;
                }
                return Err(reply.error());
            }
            return Ok(reply);
        }
    }

    /// `POST /rest/v1/rpc/<function>` with named arguments; a non-success answer is an error.
    pub async fn rpc(&self, function: &str, args: &Value, read: bool) -> Result<Reply> {
        let url = self.rest(&["rpc", function])?;
        let reply = self
            .send(Method::POST, url, &[], Some(args), None, read)
            .await?;
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, body: &str) -> Error {
        reply_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
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
