//! `POST /v1/query`: a [`QuerySpec`] evaluated by the server over one scope's live records.

use serde::{Deserialize, Serialize};

use crate::query::QuerySpec;
use crate::scope::SyncScope;

/// `POST` [`QueryRequest`] → [`QueryResponse`].
pub const QUERY: &str = "/v1/query";

/// Most rows one query answer holds: a query without a `limit`, or with a larger one, that
/// matches more is refused (`422 unsupported_query`) rather than cut short; the client's
/// orchestrator then syncs the scope and queries its cache.
pub const MAX_QUERY_ROWS: usize = 5_000;

/// `POST /v1/query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The scope to read.
    pub scope: SyncScope,
    /// Filters, order, limit and offset, with the semantics of [`crate::query`].
    pub query: QuerySpec,
}

/// Answer to a query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryResponse<T> {
    /// The matching live records, in the query's order.
    pub records: Vec<T>,
}
