//! Reconciliation digests for PocketBase ([`RemoteStore::digest`](crate::RemoteStore::digest)).
//!
//! PocketBase cannot hash on the server, so the cheapest answer is a listing of the scope's rows
//! with only the fields a digest needs (`fields=id,record_id,updated,updated_at,deleted_at`:
//! no record data), paged by `id`, digested here. Every round of a reconciliation lists again
//! (rows change between rounds; the planner only trusts what one answer says).

use super::RECORD_ID_FIELD;
use super::decode::{row_version, text_field};
use super::filter::{scope_filter, validate_scope};
use super::store::PocketBaseRemoteStore;
use crate::error::Result;
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
        let mut fields = format!("id,{RECORD_ID_FIELD},updated,updated_at,deleted_at");
        for k in scope.keys().keys() {
            fields.push(',');
            fields.push_str(k);
        }
        let mut rows = Vec::new();
        let bytes = self
            .list_by_id(scope, scope_filter(scope), Some(&fields), |pb_id, raw| {
                match row_version(&raw) {
                    Ok((_, true)) => {}
                    Ok((version, false)) => rows.push((
                        text_field(&raw, RECORD_ID_FIELD)
                            .unwrap_or(pb_id)
                            .to_owned(),
                        canonical_version(version),
                    )),
                    // Not a row of ours (no readable version): pulls quarantine it, so the
                    // cache does not hold it either.
                    Err(e) => {
                        tracing::debug!(id = %pb_id, error = %e, "row left out of the digest")
                    }
                }
                Ok(())
            })
            .await?;
        Ok((rows, bytes))
    }
}
