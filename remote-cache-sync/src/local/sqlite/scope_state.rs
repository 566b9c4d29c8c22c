//! Per-scope state beside the records: quarantined remote rows, the sync pause, and the
//! version lookup that enqueue checks new writes against.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::error::{map_err, ts_from_sql};
use crate::delta::QuarantinedRow;
use crate::error::Result;
use crate::local::ScopePause;

/// A row's version (`items.updated_at` holds `deleted_at` for tombstones) and whether it is a
/// tombstone.
pub(crate) fn version(
    conn: &mut Connection,
    scope: &str,
    id: &str,
) -> Result<Option<(Timestamp, bool)>> {
    let row: Option<(i64, bool)> = conn
        .prepare_cached(
            "SELECT updated_at, deleted_at IS NOT NULL FROM items WHERE scope = ?1 AND id = ?2",
        )
        .map_err(map_err)?
        .query_row([scope, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    row.map(|(ns, deleted)| Ok((ts_from_sql(ns)?, deleted)))
        .transpose()
}

/// Whether the scope has any quarantined row.
pub(crate) fn has_quarantine(conn: &Connection, scope: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM quarantine WHERE scope = ?1)")
        .map_err(map_err)?
        .query_row([scope], |r| r.get(0))
        .map_err(map_err)
}

/// Ends the quarantine of `ids` (the remote sent rows for them that decode).
pub(crate) fn release<'a>(
    conn: &Connection,
    scope: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM quarantine WHERE scope = ?1 AND id = ?2")
        .map_err(map_err)?;
    for id in ids {
        stmt.execute(params![scope, id]).map_err(map_err)?;
    }
    Ok(())
}

/// Keeps `rows` raw with their reasons, replacing earlier entries for the same ids.
pub(crate) fn quarantine(conn: &Connection, scope: &str, rows: &[QuarantinedRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO quarantine (scope, id, raw, reason) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (scope, id) DO UPDATE SET raw = excluded.raw, reason = excluded.reason",
        )
        .map_err(map_err)?;
    for q in rows {
        stmt.execute(params![scope, q.id, q.raw, q.reason])
            .map_err(map_err)?;
    }
    Ok(())
}

/// The scope's quarantined rows, by id.
pub(crate) fn quarantined(conn: &mut Connection, scope: &str) -> Result<Vec<QuarantinedRow>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, raw, reason FROM quarantine WHERE scope = ?1 ORDER BY id")
        .map_err(map_err)?;
    stmt.query_map([scope], |r| {
        Ok(QuarantinedRow::new(
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .map_err(map_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(map_err)
}

/// Number of quarantined rows of the scope.
pub(crate) fn quarantine_count(conn: &Connection, scope: &str) -> Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM quarantine WHERE scope = ?1")
        .map_err(map_err)?
        .query_row([scope], |r| r.get(0))
        .map_err(map_err)
}

/// The scope's pause, if any.
pub(crate) fn pause(conn: &mut Connection, scope: &str) -> Result<Option<ScopePause>> {
    let row: Option<(String, i64)> = conn
        .prepare_cached("SELECT reason, since FROM scope_pause WHERE scope = ?1")
        .map_err(map_err)?
        .query_row([scope], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    row.map(|(reason, since)| Ok(ScopePause::new(reason, ts_from_sql(since)?)))
        .transpose()
}

/// Sets or clears the scope's pause.
pub(crate) fn set_pause(
    conn: &mut Connection,
    scope: &str,
    pause: Option<&(String, i64)>,
) -> Result<()> {
    match pause {
        Some((reason, since)) => conn
            .prepare_cached(
                "INSERT INTO scope_pause (scope, reason, since) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, since = excluded.since",
            )
            .map_err(map_err)?
            .execute(params![scope, reason, since]),
        None => conn
            .prepare_cached("DELETE FROM scope_pause WHERE scope = ?1")
            .map_err(map_err)?
            .execute([scope]),
    }
    .map_err(map_err)?;
    Ok(())
}
