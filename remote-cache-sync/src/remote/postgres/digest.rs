//! [`RemoteStore::digest`](crate::RemoteStore::digest) in SQL: buckets and row hashes computed
//! by PostgreSQL (`sha256`, PostgreSQL 11+; `bit_xor`, PostgreSQL 14+) exactly as
//! [`reconcile::hash`](crate::reconcile::hash) does, all values bound. Only the live rows of the
//! scope are read (`NOT deleted AND data IS NOT NULL`, as `get_by_id` answers).
//!
//! The `version` column is hashed as stored: it must hold the canonical form the store writes
//! (RFC 3339 as `Timestamp` displays it). A row whose version was written by hand in another form
//! always digests as different, and is fetched again by each reconciliation.

use super::{PostgresRemoteStore, column};
use crate::error::Result;
use crate::reconcile::{BucketDigest, DigestRequest, DigestResponse, ListedRow};
use crate::record::Record;
use crate::scope::SyncScope;

/// The live rows of a scope with their bucket (`$1`: scope).
fn bucketed(records: &str) -> String {
    format!(
        "SELECT id, version, encode(sha256(convert_to(id, 'UTF8')), 'hex') AS b \
         FROM {records} WHERE scope = $1 AND NOT deleted AND data IS NOT NULL"
    )
}

/// Groups under prefixes (`$2`: prefix length, `$3`: prefixes, `$4`: group length).
pub(super) fn digest_sql(records: &str) -> String {
    format!(
        "SELECT left(r.b, $4) AS prefix, count(*) AS n, \
         bit_xor(('x' || encode(substring(sha256(convert_to(r.id || E'\\n' || r.version, 'UTF8')) \
         FROM 1 FOR 8), 'hex'))::bit(64)::bigint) AS h \
         FROM ({}) r WHERE left(r.b, $2) IN (SELECT unnest($3::text[])) GROUP BY 1",
        bucketed(records)
    )
}

/// Rows under prefixes (`$2`: prefix length, `$3`: prefixes).
pub(super) fn list_sql(records: &str) -> String {
    format!(
        "SELECT r.id, r.version FROM ({}) r WHERE left(r.b, $2) IN (SELECT unnest($3::text[]))",
        bucketed(records)
    )
}

impl<T: Record> PostgresRemoteStore<T> {
    pub(super) async fn digest_in_sql(
        &self,
        scope: &SyncScope,
        req: &DigestRequest,
    ) -> Result<DigestResponse> {
        req.validate()?;
        let client = self.client().await?;
        let broken = client.broken.clone();
        let canonical = scope.canonical();
        let mut answer = DigestResponse::default();
        if let Some(first) = req.prefixes.first() {
            let stmt = client
                .prepare_cached(&digest_sql(&self.sql.records))
                .await
                .map_err(|e| self.fail(&broken, &e))?;
            let (plen, glen) = (first.len() as i32, req.length as i32);
            let rows = client
                .query(&stmt, &[&canonical, &plen, &req.prefixes, &glen])
                .await
                .map_err(|e| self.fail(&broken, &e))?;
            for row in rows {
                let prefix: String = column(&row, "prefix")?;
                let n: i64 = column(&row, "n")?;
                let h: i64 = column(&row, "h")?;
                answer.buckets.push(BucketDigest {
                    prefix,
                    count: n.max(0) as u64,
                    hash: h as u64,
                });
            }
        }
        if let Some(first) = req.list.first() {
            let stmt = client
                .prepare_cached(&list_sql(&self.sql.records))
                .await
                .map_err(|e| self.fail(&broken, &e))?;
            let plen = first.len() as i32;
            let rows = client
                .query(&stmt, &[&canonical, &plen, &req.list])
                .await
                .map_err(|e| self.fail(&broken, &e))?;
            for row in rows {
                answer.rows.push(ListedRow {
                    id: column(&row, "id")?,
                    version: column(&row, "version")?,
                });
            }
        }
        Ok(answer.with_json_size())
    }
}
