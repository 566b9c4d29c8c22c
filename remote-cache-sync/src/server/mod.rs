//! Our HTTP sync server (feature `server`): the protocol of `docs/protocol.md` over any
//! [`RemoteStore<JsonRecord>`] — the in-memory remote, [`SqliteRemoteStore`](crate::remote::sqlite::SqliteRemoteStore)
//! or the PostgreSQL remote.
//!
//! ```no_run
//! # async fn doc() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use remote_cache_sync::{InMemoryRemoteStore, JsonRecord};
//! use remote_cache_sync::server::{AllowAll, Server, serve, shutdown_signal};
//! let router = Server::new(InMemoryRemoteStore::<JsonRecord>::new(), AllowAll).into_router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, router, shutdown_signal()).await
//! # }
//! ```
//!
//! Over [`SqliteRemoteStore`](crate::remote::sqlite::SqliteRemoteStore), also pass it as the
//! [`Server::raw_feed`] so pulls copy stored JSON into the answer instead of decoding and
//! re-encoding every record (about twice the pull throughput):
//!
//! ```no_run
//! # async fn doc() -> remote_cache_sync::Result<()> {
//! use std::sync::Arc;
//! use remote_cache_sync::JsonRecord;
//! use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
//! use remote_cache_sync::server::{Server, StaticTokens};
//! let store = SqliteRemoteStore::<JsonRecord>::open("server.sqlite").await?;
//! let mut tokens = StaticTokens::new();
//! tokens.grant_spec("s3cret:records,owner=alice")?;
//! let router = Server::new(store.clone(), tokens).raw_feed(Arc::new(store)).into_router();
//! # Ok(()) }
//! ```
//!
//! The server validates everything it is sent and answers bad input with a 4xx and a stable JSON
//! error body; storage failures become 503 (retryable) or 500. Logs go through `tracing` and
//! name the caller by its [`Principal::name`], never by its token.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::delta::Cursor;
use crate::error::Error;
use crate::json_record::JsonRecord;
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::record::{Record, Tombstone};
use crate::remote::RemoteStore;
use crate::remote::protocol::{
    self, GetRequest, GetResponse, HealthResponse, PullRequest, PullResponse, PushRequest,
    PushResponse, TimeResponse, WireOutcome, codes,
};
use crate::scope::SyncScope;
use jiff::Timestamp;

pub mod auth;
mod count;
mod digest;
mod events;
mod query;
mod request;

pub use auth::{Access, AllowAll, Authorizer, Principal, ScopePattern, StaticTokens};
use events::Hub;
pub use events::{ChangeFeed, DEFAULT_HEARTBEAT, MAX_EVENT_SCOPES};
use request::{ApiError, ApiResult, authenticate, authorize, deadline, parse_body};

/// Default largest request body: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// Default longest time one request may take, body upload included: 60 s.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Builds the server's [`Router`].
pub struct Server {
    storage: Arc<dyn RemoteStore<JsonRecord>>,
    raw_feed: Option<Arc<dyn RawFeed>>,
    authorizer: Arc<dyn Authorizer>,
    max_body_bytes: usize,
    max_pull_limit: usize,
    max_push_ops: usize,
    request_timeout: std::time::Duration,
    heartbeat: std::time::Duration,
    change_feed: Option<Arc<dyn ChangeFeed>>,
    hub: Arc<Hub>,
    stop: tokio_util::sync::CancellationToken,
}

impl Server {
    /// A server over `storage`, admitting requests `authorizer` allows.
    pub fn new(storage: impl RemoteStore<JsonRecord>, authorizer: impl Authorizer) -> Self {
        Self::from_arcs(Arc::new(storage), Arc::new(authorizer))
    }

    /// Same as [`Server::new`] with shared handles.
    pub fn from_arcs(
        storage: Arc<dyn RemoteStore<JsonRecord>>,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        Server {
            storage,
            raw_feed: None,
            authorizer,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_pull_limit: protocol::MAX_PULL_LIMIT,
            max_push_ops: protocol::MAX_PUSH_OPS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            change_feed: None,
            hub: Arc::new(Hub::default()),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Interval of the heartbeat comment an idle event stream (`GET /v1/events`) sends, so
    /// clients can tell a silent stream from a dead one (default 15 s).
    pub fn heartbeat(mut self, interval: std::time::Duration) -> Self {
        self.heartbeat = interval.max(std::time::Duration::from_millis(10));
        self
    }

    /// Also announces on the event streams the changes `feed` reports: pushes made through
    /// other servers sharing the storage (the PostgreSQL storage implements [`ChangeFeed`]
    /// with `LISTEN`). Without it only pushes through this server are announced.
    pub fn change_feed(mut self, feed: Arc<dyn ChangeFeed>) -> Self {
        self.change_feed = Some(feed);
        self
    }

    /// A token that ends every event stream when cancelled. Cancel it when shutting down:
    /// a graceful shutdown waits for open connections, and an event stream never ends by
    /// itself. [`serve_server`] does it for you.
    pub fn stop_handle(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    /// Serves pulls from `feed`, which must read the same data as the storage, as ready-made
    /// JSON: records are copied from storage to the response without being decoded and
    /// re-encoded. [`SqliteRemoteStore`](crate::remote::sqlite::SqliteRemoteStore) implements it.
    pub fn raw_feed(mut self, feed: Arc<dyn RawFeed>) -> Self {
        self.raw_feed = Some(feed);
        self
    }

    /// Largest accepted request body; larger ones get 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Largest page served (requests for more are clamped).
    pub fn max_pull_limit(mut self, limit: usize) -> Self {
        self.max_pull_limit = limit.max(1);
        self
    }

    /// Longest time one request may take, reading its body included; a slower one is answered
    /// 503 `unavailable` (retryable: pushes are idempotent, so a client may resend the batch).
    pub fn request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Most ops one push may carry; more gets 422.
    pub fn max_push_ops(mut self, ops: usize) -> Self {
        self.max_push_ops = ops.max(1);
        self
    }

    /// The router, with body limit and request tracing.
    pub fn into_router(self) -> Router {
        let max_body = self.max_body_bytes;
        let timeout = self.request_timeout;
        let mut server = self;
        server.hub = Arc::new(Hub::new(server.change_feed.clone(), server.stop.clone()));
        if tokio::runtime::Handle::try_current().is_ok() {
            // Listen for other servers' writes from the start, not from the first stream.
            server.hub.ensure_feed();
        }
        let state = Arc::new(server);
        Router::new()
            .route(protocol::HEALTH, get(health))
            .route(protocol::TIME, get(time))
            .route(protocol::PULL, post(pull))
            .route(protocol::PUSH, post(push))
            .route(protocol::GET, post(get_one))
            .route(protocol::COUNT, post(count::count))
            .route(
                crate::reconcile::protocol::DIGEST_PATH,
                post(digest::digest),
            )
            .route(protocol::QUERY, post(query::query))
            .route(protocol::EVENTS, get(events))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(max_body))
            .layer(axum::middleware::from_fn_with_state(timeout, deadline))
            // The default span holds method, URI and version; never headers (tokens).
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(state)
    }
}

type AppState = State<Arc<Server>>;

/// A storage that can serve a pull page as JSON text, skipping record decoding: an optional
/// fast path for [`Server::raw_feed`]. Same contract as [`RemoteStore::fetch_since`].
#[async_trait::async_trait]
pub trait RawFeed: Send + Sync + 'static {
    /// One page of the scope's feed; each upsert is one record as a JSON object.
    async fn fetch_raw(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> crate::error::Result<RawPage>;
}

/// A pull page whose upserts are JSON text.
#[derive(Debug, Clone)]
pub struct RawPage {
    /// Each a JSON object (a record), written verbatim into the answer.
    pub upserts: Vec<String>,
    /// Tombstones.
    pub deletes: Vec<Tombstone>,
    /// The storage's clock.
    pub server_time: Timestamp,
    /// Where the next pull continues.
    pub cursor: Option<Cursor>,
    /// Whether more changes wait.
    pub has_more: bool,
    /// Stored rows that are not JSON objects, sent as [`PullResponse::quarantined`].
    pub quarantined: Vec<crate::delta::QuarantinedRow>,
}

impl RawPage {
    /// The page as a [`PullResponse`] body.
    fn into_json(self) -> Result<String, serde_json::Error> {
        let size: usize = self.upserts.iter().map(|u| u.len() + 1).sum();
        let mut out = String::with_capacity(size + 64 * self.deletes.len() + 128);
        out.push_str("{\"upserts\":[");
        for (i, u) in self.upserts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(u);
        }
        out.push_str("],\"deletes\":");
        out.push_str(&serde_json::to_string(&self.deletes)?);
        out.push_str(",\"cursor\":");
        out.push_str(&serde_json::to_string(&self.cursor)?);
        out.push_str(",\"has_more\":");
        out.push_str(if self.has_more { "true" } else { "false" });
        out.push_str(",\"server_time\":");
        out.push_str(&serde_json::to_string(&self.server_time)?);
        if !self.quarantined.is_empty() {
            out.push_str(",\"quarantined\":");
            out.push_str(&serde_json::to_string(&self.quarantined)?);
        }
        out.push('}');
        Ok(out)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `server` on `listener` until `shutdown` completes; then ends the event streams and
/// lets in-flight requests finish.
pub async fn serve_server(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = server.stop_handle();
    let router = server.into_router();
    serve(listener, router, async move {
        shutdown.await;
        stop.cancel();
    })
    .await
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

async fn health() -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse {
        status: "ok".into(),
    })
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "method not allowed",
    )
}

async fn time(State(server): AppState, headers: HeaderMap) -> ApiResult<TimeResponse> {
    authenticate(&server, &headers)?;
    let server_time = server
        .storage
        .server_time()
        .await
        .map_err(ApiError::from_storage)?;
    Ok(axum::Json(TimeResponse { server_time }))
}

async fn pull(
    State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&server, &headers)?;
    let req: PullRequest = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Read)?;
    if req.limit == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_REQUEST,
            "limit must be at least 1",
        ));
    }
    let limit = req.limit.min(server.max_pull_limit);
    let cursor_error = |e: Error| match e {
        Error::InvalidInput(m) if req.cursor.is_some() => {
            ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_CURSOR, m)
        }
        e => ApiError::from_storage(e),
    };
    if let Some(raw) = &server.raw_feed {
        let page = raw
            .fetch_raw(&req.scope, req.cursor.as_ref(), limit)
            .await
            .map_err(cursor_error)?;
        let n = page.upserts.len() + page.deletes.len();
        let body = page
            .into_json()
            .map_err(|e| ApiError::from_storage(e.into()))?;
        tracing::debug!(principal = %principal.name, scope = %req.scope, changes = n, "pull");
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    let delta = server
        .storage
        .fetch_since(&req.scope, req.cursor.as_ref(), limit)
        .await
        .map_err(cursor_error)?;
    tracing::debug!(principal = %principal.name, scope = %req.scope, changes = delta.len(), "pull");
    Ok(axum::Json(PullResponse {
        upserts: delta.upserts,
        deletes: delta.deletes,
        cursor: delta.cursor,
        has_more: delta.has_more,
        server_time: delta.server_time,
        quarantined: delta.quarantined,
    })
    .into_response())
}

async fn get_one(
    State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<GetResponse<JsonRecord>> {
    let principal = authenticate(&server, &headers)?;
    let req: GetRequest = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Read)?;
    let record = server
        .storage
        .get_by_id(&req.scope, &req.id)
        .await
        .map_err(ApiError::from_storage)?;
    Ok(axum::Json(GetResponse { record }))
}

/// Turns a wire op into a pending op, or the reason it is rejected.
fn to_pending(
    scope: &SyncScope,
    op: protocol::WireOp<Value>,
) -> Result<PendingOp<JsonRecord>, String> {
    if op.id.is_empty() {
        return Err("op id (record id) must not be empty".into());
    }
    let payload = match (op.kind, op.payload) {
        (OpKind::Delete, _) => None,
        (_, None | Some(Value::Null)) => {
            return Err(format!("{:?} op for {} carries no record", op.kind, op.id));
        }
        (_, Some(v)) => {
            let record =
                JsonRecord::from_value(v).map_err(|e| format!("bad record {}: {e}", op.id))?;
            if record.id() != op.id {
                return Err(format!(
                    "op targets id {:?} but its record has id {:?}",
                    op.id,
                    record.id()
                ));
            }
            Some(record)
        }
    };
    Ok(PendingOp {
        op_id: op.op_id,
        scope: scope.clone(),
        kind: op.kind,
        id: op.id,
        payload,
        updated_at: op.updated_at,
        base_version: op.base_version,
        attempts: 0,
        last_error: None,
    })
}

async fn push(
    State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<PushResponse<JsonRecord>> {
    let principal = authenticate(&server, &headers)?;
    let req: PushRequest<Value> = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Write)?;
    if req.ops.len() > server.max_push_ops {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_REQUEST,
            format!("a push may carry at most {} ops", server.max_push_ops),
        ));
    }
    let n = req.ops.len();
    // Reject malformed ops individually; push the rest in order.
    let mut results: Vec<Option<WireOutcome<JsonRecord>>> = Vec::with_capacity(n);
    let mut valid = Vec::with_capacity(n);
    for op in req.ops {
        match to_pending(&req.scope, op) {
            Ok(p) => {
                valid.push(p);
                results.push(None);
            }
            Err(reason) => results.push(Some(WireOutcome::Rejected { reason })),
        }
    }
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        server
            .storage
            .push(&req.scope, &valid)
            .await
            .map_err(ApiError::from_storage)?
    };
    if outcomes.len() != valid.len() {
        tracing::error!(
            sent = valid.len(),
            got = outcomes.len(),
            "storage returned the wrong number of outcomes"
        );
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        ));
    }
    if outcomes
        .iter()
        .any(|o| matches!(o, PushOutcome::Applied { .. }))
    {
        server.hub.publish(&req.scope);
    }
    let mut outcomes = outcomes.into_iter();
    let results: Vec<_> = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| match outcomes.next().expect("counted above") {
                PushOutcome::Applied { version } => WireOutcome::Applied { version },
                PushOutcome::Conflict { current } => WireOutcome::Conflict {
                    current: current.map(Into::into),
                },
                PushOutcome::Rejected { reason } => WireOutcome::Rejected { reason },
            })
        })
        .collect();
    tracing::debug!(principal = %principal.name, scope = %req.scope, ops = n, "push");
    Ok(axum::Json(PushResponse { results }))
}

/// `GET /v1/events?scope=…`: authenticated and authorized exactly as a pull of each scope.
async fn events(
    State(server): AppState,
    headers: HeaderMap,
    query: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, ApiError> {
    let principal = authenticate(&server, &headers)?;
    let axum::extract::Query(pairs) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            e.body_text(),
        )
    })?;
    let mut scopes: Vec<SyncScope> = Vec::new();
    for (key, value) in pairs {
        if key != "scope" {
            continue;
        }
        let scope: SyncScope = serde_json::from_str(&value).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_SCOPE, e.to_string())
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() || scopes.len() > MAX_EVENT_SCOPES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_REQUEST,
            format!("give between 1 and {MAX_EVENT_SCOPES} scope parameters"),
        ));
    }
    for scope in &scopes {
        authorize(&server, &principal, scope, Access::Read)?;
    }
    tracing::debug!(principal = %principal.name, scopes = scopes.len(), "events stream opened");
    Ok(events::stream(&server.hub, scopes, server.heartbeat).into_response())
}
