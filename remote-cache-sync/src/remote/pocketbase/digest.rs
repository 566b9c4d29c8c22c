//! Reconciliation digests for PocketBase ([`RemoteStore::digest`](crate::RemoteStore::digest)).
//!
//! PocketBase cannot hash on the server, so the cheapest answer is a listing of the scope's rows
//! with only the fields a digest needs (`fields=id,record_id,updated,updated_at,deleted_at`:
//! no record data), paged by `id`, digested here. Every round of a reconciliation lists again
//! (rows change between rounds; the planner only trusts what one answer says).

use serde_json::Value;

use super::RECORD_ID_FIELD;
use super::client::BACKEND;
use super::decode::{in_scope, row_version, text_field};
use super::filter::{self, quote, scope_filter, validate_scope};
use super::store::{ListPage, PocketBaseRemoteStore};
use crate::error::{Error, Result};
use crate::reconcile::{DigestRequest, DigestResponse, RowSet, canonical_version};
use crate::record::Record;
use crate::scope::SyncScope;

impl<T: Record> PocketBaseRemoteStore<T> {
    /// One round of reconciliation over the scope's live rows, listed without their data.
    pub(super) async fn digest_by_listing(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<DigestResponse> {
        validate_scope(scope)?;
        request.validate()?;
        let (rows, bytes) = self.live_versions(scope).await?;
        // PocketBase answers a revoked or expired token's listing as a guest's (empty, or only
        // public rows): rows missing from such a listing would be removed from the cache. Only
        // trust a listing made with a token the server accepted within `auth_recheck`.
        let max_age = i64::try_from(self.config.auth_recheck.as_secs()).unwrap_or(i64::MAX);
        self.client.ensure_valid(max_age).await?;
        let mut answer = RowSet::new(rows).answer(request);
        answer.bytes = bytes;
        Ok(answer)
    }

    /// `(record id, canonical version)` of the scope's live rows, and the bytes listed.
    async fn live_versions(&self, scope: &SyncScope) -> Result<(Vec<(String, String)>, u64)> {
        let per_page = self.config.max_page_size.to_string();
        let mut fields = format!("id,{RECORD_ID_FIELD},updated,updated_at,deleted_at");
        for k in scope.keys().keys() {
            fields.push(',');
            fields.push_str(k);
        }
        let base = scope_filter(scope);
        let mut after: Option<String> = None;
        let (mut rows, mut bytes) = (Vec::new(), 0u64);
        loop {
            let keyset = after.as_deref().map(|id| format!("id > {}", quote(id)));
            let f = filter::and([base.clone(), keyset]);
            let query = [
                ("filter", f.as_str()),
                ("sort", "id"),
                ("perPage", per_page.as_str()),
                ("skipTotal", "1"),
                ("fields", fields.as_str()),
            ];
            let reply = self.list_request(scope.name(), &query).await?;
            bytes += reply.body.len() as u64;
            let page: ListPage = reply.json()?;
            let n = page.items.len();
            for raw in page.items {
                let Some(pb_id) = raw.get("id").and_then(Value::as_str).map(str::to_owned) else {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a listed row has no id".into(),
                    });
                };
                if after.as_deref().is_some_and(|a| pb_id.as_str() <= a) {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "the listing is not in increasing id order".into(),
                    });
                }
                if in_scope(&raw, scope) {
                    match row_version(&raw) {
                        Ok((_, true)) => {}
                        Ok((version, false)) => rows.push((
                            text_field(&raw, RECORD_ID_FIELD)
                                .unwrap_or(&pb_id)
                                .to_owned(),
                            canonical_version(version),
                        )),
                        // Not a row of ours (no readable version): pulls quarantine it, so the
                        // cache does not hold it either.
                        Err(e) => {
                            tracing::debug!(id = %pb_id, error = %e, "row left out of the digest")
                        }
                    }
                }
                after = Some(pb_id);
            }
            if n < self.config.max_page_size {
                return Ok((rows, bytes));
            }
        }
    }
}
