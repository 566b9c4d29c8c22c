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

use serde_json::Value;

use super::client::BACKEND;
use super::decode::{RECORD_ID_ATTR, doc_version, in_scope, record_id};
use super::query;
use super::store::{AppwriteRemoteStore, DocumentList};
use crate::error::{Error, Result};
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
        let per_page = self.config.max_page_size;
        let mut after: Option<String> = None;
        let (mut rows, mut bytes) = (Vec::new(), 0u64);
        loop {
            let mut queries = query::scope_queries(scope);
            if let Some(a) = &after {
                queries.push(query::greater_than("$id", a));
            }
            queries.extend([
                query::select(&fields),
                query::order_asc("$id"),
                query::limit(per_page),
            ]);
            let reply = self.list_reply(scope.name(), &queries).await?;
            if !reply.status.is_success() {
                return Err(reply.error());
            }
            bytes += reply.body.len() as u64;
            let page: DocumentList = reply.json()?;
            let n = page.documents.len();
            if n > per_page {
                return Err(Error::MalformedResponse {
                    backend: BACKEND,
                    message: format!("{n} documents for limit {per_page}"),
                });
            }
            for raw in page.documents {
                let Some(id) = raw.get("$id").and_then(Value::as_str).map(str::to_owned) else {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a listed document has no `$id`".into(),
                    });
                };
                if after.as_deref().is_some_and(|a| id.as_str() <= a) {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "the listing is not in increasing `$id` order".into(),
                    });
                }
                after = Some(id.clone());
                // `equal` on a scope key folds case on Appwrite (MariaDB's default collation):
                // another scope's document is not ours.
                if !in_scope(&raw, scope) {
                    continue;
                }
                match (record_id(&raw), doc_version(&raw)) {
                    (_, Ok((_, true))) => {}
                    (Some(rid), Ok((version, false))) => {
                        rows.push((rid.to_owned(), canonical_version(version)))
                    }
                    // No record id or no readable version: pulls quarantine it, so the cache
                    // does not hold it either.
                    _ => tracing::debug!(id = %id, "document left out of the digest"),
                }
            }
            if n < per_page {
                return Ok((rows, bytes));
            }
        }
    }
}
