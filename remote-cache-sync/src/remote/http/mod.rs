//! [`HttpRemoteStore`]: a remote reached through our HTTP sync protocol (`docs/protocol.md`),
//! as served by [`server`](crate::server) and `rcs serve`.
//!
//! ```no_run
//! # async fn doc() -> remote_cache_sync::Result<()> {
//! use std::time::Duration;
//! use remote_cache_sync::JsonRecord;
//! use remote_cache_sync::remote::http::HttpRemoteStore;
//! let remote = HttpRemoteStore::<JsonRecord>::builder("http://127.0.0.1:8080")
//!     .token("s3cret")
//!     .timeout(Duration::from_secs(10))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! Failures map onto [`Error`] through the status table every HTTP adapter shares (see
//! [`HttpRemoteStore`]'s "Errors"); the token is sent as a bearer header marked sensitive,
//! redacted in `Debug`, and never part of an error message.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::reconcile::protocol::DIGEST_PATH;
use crate::reconcile::{DigestRequest, DigestResponse, WireDigestRequest};
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::remote::client::prefetch::Prefetcher;
use crate::remote::client::retry::READS;
use crate::remote::client::transport::{self, Dialect, Transport};
use crate::remote::client::url;
use crate::remote::protocol::{
    self, GetRequest, GetResponse, PullRequest, PushRequest, TimeResponse, WireOp,
};
use crate::scope::SyncScope;

mod builder;
mod decode;
mod events;
mod query;

pub use builder::HttpRemoteStoreBuilder;
use decode::{decode_json, decode_pull, decode_push, error_detail, malformed, status_error};

const BACKEND: &str = "http";

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The client of our sync server: a [`RemoteStore`] speaking the HTTP sync protocol
/// (`docs/protocol.md`) to `rcs serve` or an app embedding [`server`](crate::server). Feature
/// `http` (the server side is `server`; a client needs only `http`). Cheap to clone: clones
/// share the connection pool.
///
/// # Setting up
///
/// [`HttpRemoteStore::builder`] takes the server's base URL; [`token`](HttpRemoteStoreBuilder::token)
/// sets the bearer token the server was started with (`rcs serve --token TOKEN:PATTERN` grants
/// it the scopes matching `PATTERN`), [`timeout`](HttpRemoteStoreBuilder::timeout) bounds each
/// request (30 s by default: a read with [`CachePolicy::RemoteFirst`](crate::CachePolicy) on a
/// hung network waits that long before answering from the cache). Then hand it, with a local
/// store, to an [`Orchestrator`](crate::Orchestrator):
///
/// ```no_run
/// # async fn doc() -> remote_cache_sync::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use remote_cache_sync::local::sqlite::SqliteLocalStore;
/// use remote_cache_sync::remote::http::HttpRemoteStore;
/// use remote_cache_sync::{JsonRecord, Orchestrator};
///
/// let token = std::env::var("RCS_TOKEN").expect("RCS_TOKEN");
/// let remote = HttpRemoteStore::<JsonRecord>::builder("http://127.0.0.1:8080")
///     .token(token)
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// let local = SqliteLocalStore::open("cache.db").await?;
/// let sync = Orchestrator::new(Arc::new(local), Arc::new(remote));
/// # Ok(()) }
/// ```
///
/// Building checks the URL only; nothing is sent until the first sync.
///
/// # Errors
///
/// Statuses go through the status table every HTTP adapter shares:
///
/// - connection failures, timeouts, 408 and 5xx: [`Error::Unavailable`] (retryable; the
///   message keeps the cause, e.g. "connection refused");
/// - 429: [`Error::RateLimited`] with the server's `Retry-After` (delay-seconds or an
///   HTTP-date);
/// - 401 (missing, wrong or expired token): [`Error::Unauthorized`]; the orchestrator pauses
///   the scope instead of burning attempts;
/// - 403 (the token has no grant for the scope) and 404: [`Error::Refused`], with the
///   protocol's stable error `code`; the scope pauses too;
/// - other 4xx: [`Error::Rejected`] with the server's message;
/// - a body that does not parse: [`Error::MalformedResponse`]. A pulled row that does not
///   decode as `T` is quarantined, not fatal (see [`QuarantinedRow`](crate::delta::QuarantinedRow)).
///
/// Reads (pulls, [`get_by_id`](RemoteStore::get_by_id), the clock, [`health`](Self::health))
/// are retried once in place when the connection could not be made, or after a 429 whose
/// `Retry-After` is at most 1 s; anything else is returned at once and left to the
/// orchestrator's backoff. Pushes are never retried in place.
///
/// The token is sent as a bearer header marked sensitive, redacted in `Debug`, and never part
/// of an error message. Use `https://` anywhere but on a trusted network: the token travels
/// with every request.
pub struct HttpRemoteStore<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    /// The shared transport; requests are joined onto its base URL.
    transport: Transport,
    /// The base URL as given (without a trailing `/`), for [`HttpRemoteStore::base_url`].
    base: String,
    token: Option<String>,
    /// Next pages being fetched in the background, by scope.
    prefetch: Option<Prefetcher<T>>,
    /// Timings of event streams.
    realtime: crate::remote::RealtimeOptions,
}

impl<T> Clone for HttpRemoteStore<T> {
    fn clone(&self) -> Self {
        HttpRemoteStore {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for HttpRemoteStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRemoteStore")
            .field("base", &self.inner.base)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .field("prefetch", &self.inner.prefetch.is_some())
            .finish()
    }
}

/// Our protocol for the shared transport.
static DIALECT: Dialect = Dialect {
    backend: BACKEND,
    detail: error_detail,
    exception: transport::no_exception,
    auth_scheme: "Bearer ",
};

fn transport_error(e: reqwest::Error) -> Error {
    transport::network_error(BACKEND, e)
}

impl<T: Record> HttpRemoteStore<T> {
    /// Starts configuring a store for the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn builder(base_url: impl Into<String>) -> HttpRemoteStoreBuilder<T> {
        HttpRemoteStoreBuilder::new(base_url.into())
    }

    /// A store with default settings and no token.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        Self::builder(base_url).build()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Checks `GET /v1/health` (retried in place like every read, see [`HttpRemoteStore`]).
    pub async fn health(&self) -> Result<()> {
        let _: protocol::HealthResponse = self
            .read::<(), _>(reqwest::Method::GET, protocol::HEALTH, None)
            .await?;
        Ok(())
    }

    /// A read: [`call`](Self::call) retried in place by the shared read policy.
    async fn read<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R> {
        let bytes = READS
            .run(|| Self::call_bytes_with(&self.inner, method.clone(), path, body))
            .await?;
        decode_json(&bytes)
    }

    /// One request (the shared transport, no retry of its own: reads are wrapped in
    /// [`READS`]); the body of a successful answer, undecoded.
    async fn call_bytes_with<B: Serialize + ?Sized>(
        inner: &Inner<T>,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<bytes::Bytes> {
        let t = &inner.transport;
        let mut req = t.request(method, url::join_path(t.base(), path)?);
        req = t.authorize(req, inner.token.as_deref());
        if let Some(body) = body {
            req = req.json(body);
        }
        Ok(t.send(&req).await?.success()?.body)
    }

    async fn push_chunk(
        &self,
        scope: &SyncScope,
        chunk: &[PendingOp<T>],
    ) -> Result<Vec<PushOutcome<T>>> {
        let body = PushRequest {
            scope: scope.clone(),
            ops: chunk
                .iter()
                .map(|op| WireOp {
                    op_id: op.op_id.clone(),
                    kind: op.kind,
                    id: op.id.clone(),
                    payload: op.payload.as_ref(),
                    updated_at: op.updated_at,
                    base_version: op.base_version,
                })
                .collect(),
        };
        let bytes = Self::call_bytes_with(
            &self.inner,
            reqwest::Method::POST,
            protocol::PUSH,
            Some(&body),
        )
        .await?;
        let results = decode_push::<T>(&bytes)?;
        if results.len() != chunk.len() {
            return Err(malformed(format!(
                "{} results for {} ops",
                results.len(),
                chunk.len()
            )));
        }
        Ok(results)
    }
}

/// One pull request, checked.
async fn pull_page<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    since: Option<&Cursor>,
    limit: usize,
) -> Result<Delta<T>> {
    let body = PullRequest {
        scope: scope.clone(),
        cursor: since.cloned(),
        limit,
    };
    let bytes = READS
        .run(|| {
            HttpRemoteStore::call_bytes_with(
                inner,
                reqwest::Method::POST,
                protocol::PULL,
                Some(&body),
            )
        })
        .await?;
    let (resp, quarantined) = decode_pull::<T>(&bytes)?;
    if resp.upserts.len() + resp.deletes.len() + quarantined.len() > limit {
        return Err(malformed("page is larger than the requested limit"));
    }
    if resp.cursor.is_none()
        && (!resp.upserts.is_empty() || !resp.deletes.is_empty() || !quarantined.is_empty())
    {
        return Err(malformed("non-empty page without a cursor"));
    }
    Ok(Delta {
        upserts: resp.upserts,
        deletes: resp.deletes,
        server_time: resp.server_time,
        cursor: resp.cursor.or_else(|| since.cloned()),
        has_more: resp.has_more,
        quarantined,
    })
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for HttpRemoteStore<T> {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// Realtime over the server's `GET /v1/events` (server-sent events; `docs/protocol.md`,
    /// "Events"), one stream for all `scopes`. A refusal (401, 403) is retried with backoff
    /// like any failure; the pulls the orchestrator makes report it.
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<crate::remote::RemoteEvents> {
        if scopes.is_empty() {
            return None;
        }
        let url = events::url(self.inner.transport.base(), scopes).ok()?;
        Some(events::spawn(
            self.inner.transport.http().clone(),
            url,
            self.inner.token.clone(),
            self.inner.realtime,
        ))
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let body = GetRequest {
            scope: scope.clone(),
            id: id.to_owned(),
        };
        let resp: GetResponse<T> = self
            .read(reqwest::Method::POST, protocol::GET, Some(&body))
            .await?;
        Ok(resp.record)
    }

    /// `POST /v1/digest` (`docs/protocol.md`), with [`DigestResponse::bytes`] the body's size.
    /// A server without it (404) gets `Ok(None)`: the orchestrator lists the feed instead.
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<Option<DigestResponse>> {
        request.validate()?;
        let body = WireDigestRequest::new(scope, request);
        let sent = READS
            .run(|| {
                Self::call_bytes_with(&self.inner, reqwest::Method::POST, DIGEST_PATH, Some(&body))
            })
            .await;
        let bytes = match sent {
            Ok(bytes) => bytes,
            Err(Error::Refused {
                status: Some(404), ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut answer: DigestResponse = decode_json(&bytes)?;
        answer.bytes = bytes.len() as u64;
        Ok(Some(answer))
    }

    /// `POST /v1/count` (`docs/protocol.md`); a server without it answers 404, an error the
    /// orchestrator ignores (the total is only a progress hint).
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        let body = protocol::CountRequest {
            scope: scope.clone(),
            cursor: since.cloned(),
        };
        let resp: protocol::CountResponse = self
            .read(reqwest::Method::POST, protocol::COUNT, Some(&body))
            .await?;
        Ok(resp.remaining)
    }

    /// `POST /v1/query` (`docs/protocol.md`). A server without the endpoint (404 `not_found`)
    /// answers `Ok(None)`: the orchestrator syncs and queries its cache instead.
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        query.validate()?;
        let body = protocol::QueryRequest {
            scope: scope.clone(),
            query: query.clone(),
        };
        match self
            .read::<_, protocol::QueryResponse<T>>(
                reqwest::Method::POST,
                protocol::QUERY,
                Some(&body),
            )
            .await
        {
            Ok(resp) => Ok(Some(resp.records)),
            Err(e) => query::query_error(e),
        }
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let limit = limit.max(1);
        let Some(prefetch) = &self.inner.prefetch else {
            return pull_page(&self.inner, scope, since, limit).await;
        };
        prefetch
            .fetch(scope, since, limit, |since| {
                let (inner, scope) = (self.inner.clone(), scope.clone());
                async move { pull_page(&inner, &scope, since.as_ref(), limit).await }
            })
            .await
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        // Ranges still to send, last first. A batch the server finds too large (413) is split in
        // half; a single op that is still too large is rejected on its own, so it alone gets
        // parked and the ops around it go through.
        let mut todo: Vec<std::ops::Range<usize>> = (0..ops.len())
            .step_by(protocol::MAX_PUSH_OPS)
            .map(|s| s..(s + protocol::MAX_PUSH_OPS).min(ops.len()))
            .rev()
            .collect();
        while let Some(range) = todo.pop() {
            let chunk = &ops[range.clone()];
            match self.push_chunk(scope, chunk).await {
                Ok(results) => outcomes.extend(results),
                Err(Error::Rejected {
                    status: Some(413), ..
                }) if chunk.len() > 1 => {
                    let mid = range.start + chunk.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
                Err(Error::Rejected {
                    status: Some(413), ..
                }) => outcomes.push(PushOutcome::Rejected {
                    reason: format!("record {} is larger than the server accepts", chunk[0].id),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes)
    }

    async fn server_time(&self) -> Result<Timestamp> {
        let resp: TimeResponse = self
            .read::<(), _>(reqwest::Method::GET, protocol::TIME, None)
            .await?;
        Ok(resp.server_time)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::testing::TestRecord;

    #[test]
    fn urls_are_validated_and_tokens_redacted() {
        let s = HttpRemoteStore::<TestRecord>::builder("http://127.0.0.1:1/")
            .token("s3cret")
            .build()
            .unwrap();
        assert_eq!(s.base_url(), "http://127.0.0.1:1");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(HttpRemoteStore::<TestRecord>::new("ftp://x").is_err());
        assert!(HttpRemoteStore::<TestRecord>::new("http://u:p@127.0.0.1").is_err());
        assert!(HttpRemoteStore::<TestRecord>::new("not a url").is_err());
    }

    #[tokio::test]
    async fn connection_refused_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let s = HttpRemoteStore::<TestRecord>::new(format!("http://{addr}")).unwrap();
        let err = s.server_time().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(err.is_retryable());
        // The cause, not just reqwest's "error sending request".
        let text = err.to_string().to_lowercase();
        assert!(text.contains("connection refused"), "{text}");
        // And the chain itself, for `anyhow`-style reporters.
        let mut chain = Vec::new();
        let mut next = std::error::Error::source(&err);
        while let Some(e) = next {
            chain.push(e.to_string().to_lowercase());
            next = e.source();
        }
        assert!(
            chain.iter().any(|m| m.contains("connection refused")),
            "{chain:?}"
        );
    }

    #[test]
    fn unauthorized_says_it_once() {
        let body = br#"{"error":{"code":"unauthorized","message":"missing or invalid token"}}"#;
        let err = status_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body);
        assert_eq!(
            err.to_string(),
            "http: unauthorized: missing or invalid token"
        );
        let body = br#"{"error":{"code":"token_expired","message":"log in again"}}"#;
        let err = status_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body);
        assert_eq!(
            err.to_string(),
            "http: unauthorized: token_expired: log in again"
        );
    }
}
