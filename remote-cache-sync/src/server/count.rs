//! `POST /v1/count`: how many changes of a scope's feed wait after a cursor
//! ([`RemoteStore::count_since`](crate::RemoteStore::count_since)), authorized exactly as a
//! pull. Clients ask it once per pull that spans several pages, to show progress with a total.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use super::{Access, ApiError, ApiResult, AppState, authenticate, authorize, codes, parse_body};
use crate::error::Error;
use crate::remote::protocol::{CountRequest, CountResponse};

pub(super) async fn count(
    axum::extract::State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<CountResponse> {
    let principal = authenticate(&server, &headers)?;
    let req: CountRequest = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Read)?;
    let remaining = server
        .storage
        .count_since(&req.scope, req.cursor.as_ref())
        .await
        .map_err(|e| match e {
            Error::InvalidInput(m) if req.cursor.is_some() => {
                ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_CURSOR, m)
            }
            e => ApiError::from_storage(e),
        })?;
    tracing::debug!(principal = %principal.name, scope = %req.scope, ?remaining, "count");
    Ok(axum::Json(CountResponse { remaining }))
}
