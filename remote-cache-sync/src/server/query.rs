//! `POST /v1/query`: a [`QuerySpec`](crate::QuerySpec) evaluated by the storage
//! ([`RemoteStore::query`](crate::RemoteStore::query)) over one scope's live records,
//! authorized exactly as a pull (read access to that scope; nothing of another scope is
//! considered).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use super::{Access, ApiError, ApiResult, AppState, authenticate, authorize, codes, parse_body};
use crate::error::Error;
use crate::json_record::JsonRecord;
use crate::remote::protocol::{MAX_QUERY_ROWS, QueryRequest, QueryResponse};

pub(super) async fn query(
    axum::extract::State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<QueryResponse<JsonRecord>> {
    let principal = authenticate(&server, &headers)?;
    let req: QueryRequest = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Read)?;
    let unprocessable = |code, m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m);
    req.query
        .validate()
        .map_err(|e| unprocessable(codes::INVALID_QUERY, e.to_string()))?;
    // One row more than the answer may hold tells "more" from "exactly the maximum".
    let mut asked = req.query.clone();
    let capped = asked.limit.is_none_or(|l| l > MAX_QUERY_ROWS);
    if capped {
        asked.limit = Some(MAX_QUERY_ROWS + 1);
    }
    let records = server
        .storage
        .query(&req.scope, &asked)
        .await
        .map_err(|e| match e {
            Error::InvalidQuery(m) => unprocessable(codes::INVALID_QUERY, m),
            Error::Unsupported { message, .. } => unprocessable(codes::UNSUPPORTED_QUERY, message),
            e => ApiError::from_storage(e),
        })?
        .ok_or_else(|| {
            unprocessable(
                codes::UNSUPPORTED_QUERY,
                "this server's storage cannot evaluate queries".into(),
            )
        })?;
    if capped && records.len() > MAX_QUERY_ROWS {
        return Err(unprocessable(
            codes::UNSUPPORTED_QUERY,
            format!("the query matches more than {MAX_QUERY_ROWS} records; give a limit"),
        ));
    }
    tracing::debug!(principal = %principal.name, scope = %req.scope, rows = records.len(), "query");
    Ok(axum::Json(QueryResponse { records }))
}
