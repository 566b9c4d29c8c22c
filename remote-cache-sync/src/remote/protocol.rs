//! Wire types of our HTTP sync protocol (`docs/protocol.md`), shared by the
//! [server](crate::server) and the [`HttpRemoteStore`](crate::remote::http::HttpRemoteStore).
//!
//! Every request and response body is JSON. Records travel as JSON objects with a string `id`,
//! an RFC 3339 `updated_at` and an optional `deleted_at`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::delta::{Cursor, QuarantinedRow};
use crate::op::{OpId, OpKind};
use crate::record::{Change, Tombstone};
use crate::scope::SyncScope;

mod query;
pub use query::{MAX_QUERY_ROWS, QUERY, QueryRequest, QueryResponse};

/// Path prefix of every endpoint.
pub const PREFIX: &str = "/v1";
/// `GET`: liveness, no auth.
pub const HEALTH: &str = "/v1/health";
/// `GET`: the server clock.
pub const TIME: &str = "/v1/time";
/// `POST` [`PullRequest`] → [`PullResponse`].
pub const PULL: &str = "/v1/pull";
/// `POST` [`PushRequest`] → [`PushResponse`].
pub const PUSH: &str = "/v1/push";
/// `POST` [`GetRequest`] → [`GetResponse`].
pub const GET: &str = "/v1/get";
/// `POST` [`CountRequest`] → [`CountResponse`]: a progress hint.
pub const COUNT: &str = "/v1/count";
/// `GET`: server-sent change notifications of the `scope` query parameters (JSON scopes).
pub const EVENTS: &str = "/v1/events";

/// Largest page a server returns, whatever the client asks for.
pub const MAX_PULL_LIMIT: usize = 5_000;
/// Most ops one push may carry.
pub const MAX_PUSH_OPS: usize = 1_000;

/// `POST /v1/pull`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The scope to read.
    pub scope: SyncScope,
    /// Continue after this cursor; `null` starts from the beginning of the feed.
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// Most changes wanted (1..=[`MAX_PULL_LIMIT`]; larger values are clamped).
    pub limit: usize,
}

/// `POST /v1/count`: how many changes of the feed wait after a cursor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// The scope to count.
    pub scope: SyncScope,
    /// Count after this cursor; `null` counts the whole feed.
    #[serde(default)]
    pub cursor: Option<Cursor>,
}

/// Answer to a count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountResponse {
    /// Changes waiting after the cursor (`null`: the storage cannot tell cheaply).
    pub remaining: Option<u64>,
}

/// Answer to a pull: one page of the scope's change feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullResponse<T> {
    /// Records created or updated (a payload `deleted_at` makes one a tombstone).
    pub upserts: Vec<T>,
    /// Records deleted.
    pub deletes: Vec<Tombstone>,
    /// Where the next pull continues (`null` only when the feed is empty and none was given).
    pub cursor: Option<Cursor>,
    /// Whether more changes wait after this page.
    pub has_more: bool,
    /// The server's clock when it served the page.
    pub server_time: Timestamp,
    /// Stored rows of this page the server cannot read as records (their text is not a JSON
    /// object, e.g. written into the storage by hand). The client keeps them as quarantined rows
    /// (visible, counted, released when the row changes) and goes on; never fatal. Absent when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<QuarantinedRow>,
}

/// `POST /v1/get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    /// The scope to read.
    pub scope: SyncScope,
    /// The record id.
    pub id: String,
}

/// Answer to a get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetResponse<T> {
    /// The live record, or `null` when missing or deleted.
    pub record: Option<T>,
}

/// One op in a push.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireOp<T> {
    /// Idempotency key: an op id applied before answers `applied` again and changes nothing.
    pub op_id: OpId,
    /// `create`, `update` or `delete`.
    pub kind: OpKind,
    /// Target record id (must equal the payload's `id`).
    pub id: String,
    /// The record for creates and updates; `null` for deletes.
    pub payload: Option<T>,
    /// Client time of the write (the tombstone's `deleted_at` for deletes).
    pub updated_at: Timestamp,
    /// The version the write was made on top of; `null` writes unconditionally.
    #[serde(default)]
    pub base_version: Option<Timestamp>,
}

/// `POST /v1/push`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest<T> {
    /// The scope every op writes to.
    pub scope: SyncScope,
    /// At most [`MAX_PUSH_OPS`] ops, applied in order.
    pub ops: Vec<WireOp<T>>,
}

/// A record's current state on the server, sent with a conflict.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WireChange<T> {
    /// The record exists.
    Upsert {
        /// Its current version.
        record: T,
    },
    /// The record is a tombstone.
    Delete {
        /// Record id.
        id: String,
        /// When it was deleted.
        deleted_at: Timestamp,
    },
}

impl<T> From<Change<T>> for WireChange<T> {
    fn from(c: Change<T>) -> Self {
        match c {
            Change::Upsert(record) => WireChange::Upsert { record },
            Change::Delete(t) => WireChange::Delete {
                id: t.id,
                deleted_at: t.deleted_at,
            },
        }
    }
}

impl<T> From<WireChange<T>> for Change<T> {
    fn from(c: WireChange<T>) -> Self {
        match c {
            WireChange::Upsert { record } => Change::Upsert(record),
            WireChange::Delete { id, deleted_at } => Change::Delete(Tombstone { id, deleted_at }),
        }
    }
}

/// The result of one pushed op.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum WireOutcome<T> {
    /// Applied now or earlier (same op id).
    Applied {
        /// The version the server now holds for the record.
        version: Timestamp,
    },
    /// The server's version differs from the op's `base_version`; nothing changed.
    Conflict {
        /// The server's current state (`null`: the record does not exist).
        current: Option<WireChange<T>>,
    },
    /// Permanently refused; retrying as-is fails again.
    Rejected {
        /// Why, suitable for showing to a user.
        reason: String,
    },
}

/// Answer to a push: one result per op, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushResponse<T> {
    /// Per-op results.
    pub results: Vec<WireOutcome<T>>,
}

/// Answer to `GET /v1/time`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeResponse {
    /// The server's clock.
    pub server_time: Timestamp,
}

/// Answer to `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthResponse {
    /// Always `"ok"` when the server answers.
    pub status: String,
}

/// The body of every error response: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable, machine-readable code plus a human-readable message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of the codes in [`codes`].
    pub code: String,
    /// What went wrong (never a credential).
    pub message: String,
}

/// Error codes and the HTTP status each comes with.
pub mod codes {
    /// 400: the body is not JSON or does not have the expected shape.
    pub const INVALID_JSON: &str = "invalid_json";
    /// 400: the scope is missing or fails validation.
    pub const INVALID_SCOPE: &str = "invalid_scope";
    /// 400: the cursor was not produced by this server.
    pub const INVALID_CURSOR: &str = "invalid_cursor";
    /// 422: well-formed but unacceptable (limit 0, too many ops, op scope mismatch, ...).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// 422: a query that fails validation, or compares an array field with a scalar in a
    /// record it would return.
    pub const INVALID_QUERY: &str = "invalid_query";
    /// 422: the storage cannot express an operator of the query (the message names it), or
    /// the query matches more rows than the server answers at once.
    pub const UNSUPPORTED_QUERY: &str = "unsupported_query";
    /// 401: no bearer token, or an unknown one.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: the token is valid but not granted this scope.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: no such endpoint.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: wrong method for the endpoint.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 413: the body is larger than the server accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 415: the body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 429: slow down (see `Retry-After`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 503: storage is busy or unreachable; retry later.
    pub const UNAVAILABLE: &str = "unavailable";
    /// 500: a bug or an unexpected storage failure.
    pub const INTERNAL: &str = "internal";
}
