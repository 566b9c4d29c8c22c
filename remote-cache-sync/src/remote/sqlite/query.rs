//! [`RemoteStore::query`](crate::RemoteStore::query) for [`SqliteRemoteStore`](super::SqliteRemoteStore):
//! evaluated in SQL, by the same compiler as the local SQLite store (so with the same,
//! reference semantics: see `local::sqlite::query`), over a view of the scope's live rows.
//!
//! The compiled statement reads a table `items(scope, id, data, deleted_at)`; here `items` is
//! a common table expression over `rcs_remote_records` of one scope (`?1` is the scope's
//! numeric id instead of its canonical text). Field paths are validated before they reach
//! the SQL text (`json_extract(body, '$.path')`); every value is a bound parameter.
//!
//! A stored row that is not JSON reads as a record without fields (so the query never fails
//! on it in SQL); if such a row, or one that does not decode as a record, would be answered,
//! the query declines with [`Error::Unsupported`] and the client syncs instead (its pull
//! quarantines the row). A row it filters out is left out, as the client's cache, where it is
//! quarantined, leaves it out too.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde::de::DeserializeOwned;

use super::sql_err;
use crate::error::{Error, Result};
use crate::local::sqlite::query::compile;
use crate::query::QuerySpec;

/// The scope's live records matching `spec`, in its order; `scope_id` is `None` for a scope
/// nothing was ever written to.
pub(super) fn run<T: DeserializeOwned>(
    conn: &Connection,
    scope_id: Option<i64>,
    spec: &QuerySpec,
) -> Result<Vec<T>> {
    // Validates the spec (field names included) before anything else.
    let mut compiled = compile("", spec, &[])?;
    let Some(scope_id) = scope_id else {
        return Ok(Vec::new());
    };
    compiled.params[0] = SqlValue::Integer(scope_id);
    let sql = format!(
        "WITH items(scope, id, data, deleted_at) AS (\
         SELECT scope_id, id, CASE WHEN json_valid(body) THEN body END, \
         CASE WHEN deleted <> 0 OR kind <> 0 THEN 1 END \
         FROM rcs_remote_records WHERE scope_id = ?1) {}",
        compiled.sql
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(compiled.params.iter()))
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        if let Some(i) = row.get::<_, Option<i64>>(1).map_err(sql_err)? {
            let message = usize::try_from(i)
                .ok()
                .and_then(|i| compiled.errors.get(i).cloned())
                .unwrap_or_default();
            return Err(Error::InvalidQuery(message));
        }
        let body: Option<String> = row.get(0).map_err(sql_err)?;
        let body = body.ok_or_else(|| not_a_record("not JSON"))?;
        out.push(serde_json::from_str(&body).map_err(|e| not_a_record(&e.to_string()))?);
    }
    Ok(out)
}

/// A stored row of the answer that is not a record: the query cannot be answered here (a pull
/// quarantines that row instead), never answered without it.
fn not_a_record(e: &str) -> Error {
    Error::Unsupported {
        backend: "sqlite",
        message: format!("a stored row of the answer is not a record ({e}); sync instead"),
    }
}
