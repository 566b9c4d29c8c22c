//! Reconciliation on the SQLite cache: the synced `(id, version)` rows of a scope in one scan,
//! and fetched rows and removals applied in one transaction that leaves queued records alone.

use rusqlite::{Connection, params};

use super::db::{Encoded, WRITE_REMOTE, commit, immediate};
use super::error::map_err;
use super::scope_state;
use crate::error::Result;

/// Live rows without queued ops at their version; rows with queued ops at their synced
/// version (none for a local create not yet pushed).
const ROWS: &str = "SELECT id, CASE WHEN queued > 0 THEN synced_version ELSE updated_at END \
     FROM items WHERE scope = ?1 AND ((queued = 0 AND deleted_at IS NULL) \
     OR (queued > 0 AND synced_version IS NOT NULL))";

/// Removes a live row the remote no longer has, only while it has no queued op and still holds
/// the version reconciliation saw.
const REMOVE: &str = "DELETE FROM items WHERE scope = ?1 AND id = ?2 AND queued = 0 \
     AND deleted_at IS NULL AND updated_at = ?3";

/// Ids with queued ops among `ids`.
const QUEUED: &str = "SELECT 1 FROM items WHERE scope = ?1 AND id = ?2 AND queued > 0";

pub(super) fn rows(conn: &Connection, scope: &str) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(ROWS).map_err(map_err)?;
    let rows = stmt
        .query_map([scope], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(rows)
}

pub(super) fn apply(
    conn: &mut Connection,
    scope: &str,
    fetched: &Encoded,
    removed: &[(String, i64)],
) -> Result<Vec<String>> {
    let tx = immediate(conn)?;
    // A fetched row decodes: it is no longer quarantined (as in a pulled page).
    if scope_state::has_quarantine(&tx, scope)? {
        scope_state::release(&tx, scope, fetched.iter().map(|(id, ..)| id))?;
    }
    let mut skipped = Vec::new();
    {
        let mut write = tx.prepare_cached(WRITE_REMOTE).map_err(map_err)?;
        for (id, data, version, deleted_at) in fetched.iter() {
            let changed = write
                .execute(params![scope, id, data, version, deleted_at])
                .map_err(map_err)?;
            if changed == 0 {
                skipped.push(id.to_owned());
            }
        }
        let mut remove = tx.prepare_cached(REMOVE).map_err(map_err)?;
        let mut queued = tx.prepare_cached(QUEUED).map_err(map_err)?;
        for (id, version) in removed {
            let changed = remove
                .execute(params![scope, id, version])
                .map_err(map_err)?;
            if changed == 0 && queued.exists(params![scope, id]).map_err(map_err)? {
                skipped.push(id.clone());
            }
        }
    }
    commit(tx)?;
    Ok(skipped)
}
