//! [`RemoteStore::query`](crate::RemoteStore::query) for [`SqliteRemoteStore`](super::SqliteRemoteStore):
//! evaluated in SQL, by the same compiler as the local SQLite store (so with the same,
//! reference semantics: see `local::sqlite::query`), over a view of the scope's live rows.
//!
//! The compiled statement reads a table `items(scope, id, data, deleted_at)`; here `items` is
//! a common table expression over `rcs_remote_records` of one scope (`?1` is the scope's
//! numeric id instead of its canonical text). Field paths are validated before they reach
//! the SQL text (`json_extract(body, '$.path')`); every value is a bound parameter.

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
         SELECT scope_id, id, body, CASE WHEN deleted <> 0 OR kind <> 0 THEN 1 END \
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
        let body: String = row.get(0).map_err(sql_err)?;
        out.push(serde_json::from_str(&body)?);
    }
    Ok(out)
}
