//! Reconciliation digests for Appwrite ([`RemoteStore::digest`](crate::RemoteStore::digest)).
//!
//! Appwrite cannot hash on the server, so the cheapest answer is a listing of the scope's
//! documents with only what a digest needs: `select(["record_id", "updated_at", "deleted_at",
//! <scope keys>])` (<https://appwrite.io/docs/products/databases/queries#select>; Appwrite
//! always adds its internal `$id`, `$sequence`, `$createdAt`, `$updatedAt`, `$permissions`),
//! paged by `$id` keyset, digested here with the shared helpers. Every round of a
//! reconciliation lists again (documents change between rounds; the planner only trusts what
//! one answer says).
//!
//! Trust: an empty listing would empty the cache, so it must come from a credential the server
//! accepted. An expired JWT fails with [`Error::Unauthorized`] before any page is asked for
//! (checked before every request), and Appwrite answers a JWT it does not accept with `401
//! user_jwt_invalid` (also `Unauthorized`), never as a guest's listing.

use super::decode::{RECORD_ID_ATTR, doc_version, record_id};
use super::query;
use super::store::AppwriteRemoteStore;
use crate::error::Result;
use crate::reconcile::{DigestRequest, DigestResponse, RowSet, canonical_version};
use crate::record::Record;
use crate::scope::SyncScope;

impl<T: Record> AppwriteRemoteStore<T> {
    /// One round of reconciliation over the scope's live documents, listed without their data.
    pub(super) async fn digest_by_listing(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<DigestResponse> {
        self.validate(scope)?;
        request.validate()?;
        let (rows, bytes) = self.live_versions(scope).await?;
        let mut answer = RowSet::new(rows).answer(request);
        answer.bytes = bytes;
        Ok(answer)
    }

    /// `(record id, canonical version)` of the scope's live documents, and the bytes listed.
    async fn live_versions(&self, scope: &SyncScope) -> Result<(Vec<(String, String)>, u64)> {
        let mut fields = vec![RECORD_ID_ATTR, "updated_at", "deleted_at"];
        fields.extend(scope.keys().keys().map(String::as_str));
        let mut rows = Vec::new();
        let filters = query::scope_queries(scope);
        let bytes = self
            .list_by_id(scope, &filters, Some(&fields), |id, raw| {
                match (record_id(&raw), doc_version(&raw)) {
                    (_, Ok((_, true))) => {}
                    (Some(rid), Ok((version, false))) => {
                        rows.push((rid.to_owned(), canonical_version(version)))
                    }
                    // No record id or no readable version: pulls quarantine it, so the cache
                    // does not hold it either.
                    _ => tracing::debug!(id = %id, "document left out of the digest"),
                }
                Ok(())
            })
            .await?;
        Ok((rows, bytes))
    }
}
