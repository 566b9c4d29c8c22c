//! `POST /v1/digest`: one round of [reconciliation](crate::reconcile) for a scope, authorized
//! exactly as a pull. The storage computes it where the rows live
//! ([`RemoteStore::digest`](crate::RemoteStore::digest)); a storage that cannot is listed through
//! its feed here, so clients always get an answer.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use super::{Access, ApiError, ApiResult, AppState, authenticate, authorize, codes, parse_body};
use crate::error::Error;
use crate::reconcile::{DigestResponse, WireDigestRequest, digest_by_listing};
use crate::remote::protocol::MAX_PULL_LIMIT;

pub(super) async fn digest(
    axum::extract::State(server): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<DigestResponse> {
    let principal = authenticate(&server, &headers)?;
    let req: WireDigestRequest = parse_body(body)?;
    authorize(&server, &principal, &req.scope, Access::Read)?;
    let request = req.request();
    request.validate().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            e.to_string(),
        )
    })?;
    let storage = &server.storage;
    let answer = match storage.digest(&req.scope, &request).await {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            let (rows, _) = digest_by_listing(&**storage, &req.scope, MAX_PULL_LIMIT)
                .await
                .map_err(ApiError::from_storage)?;
            rows.answer(&request)
        }
        Err(Error::InvalidInput(m)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                m,
            ));
        }
        Err(e) => return Err(ApiError::from_storage(e)),
    };
    tracing::debug!(
        principal = %principal.name,
        scope = %req.scope,
        buckets = answer.buckets.len(),
        rows = answer.rows.len(),
        "digest"
    );
    Ok(axum::Json(answer))
}
