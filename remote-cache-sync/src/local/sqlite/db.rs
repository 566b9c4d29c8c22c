//! The blocking half of the SQLite store: plain functions over a `Connection`, run on a
//! blocking thread by [`SqliteLocalStore`](super::SqliteLocalStore). Inputs arrive already
//! encoded (JSON text, nanosecond timestamps), so nothing here is generic over the record type
//! except decoding.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::de::DeserializeOwned;

pub(crate) use super::encode::{Encoded, EncodedOp, EncodedRows};
use super::encode::{decode, kind_from};
use super::error::{corrupt, is_unique_violation, map_err, ts_from_sql, ts_to_sql};
use super::query::Compiled;
use super::scope_state;
use crate::delta::{Cursor, QuarantinedRow, SyncPoint};
use crate::error::{Error, Result};
use crate::op::{OpId, PendingOp};
use crate::record::Record;
use crate::scope::SyncScope;

/// Live-record write keeping the synced version; last-write-wins on the version.
const UPSERT_LWW: &str = "INSERT INTO items (scope, id, data, updated_at, deleted_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, deleted_at = excluded.deleted_at \
     WHERE excluded.updated_at >= items.updated_at";

/// Unconditional local write (enqueue, settlement) keeping the synced version.
const WRITE_LOCAL: &str = "INSERT INTO items (scope, id, data, updated_at, deleted_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, deleted_at = excluded.deleted_at";

/// Local write of a queued op: unconditional, keeps the synced version, counts the op.
const ENQUEUE_ROW: &str = "INSERT INTO items (scope, id, data, updated_at, deleted_at, queued) \
     VALUES (?1, ?2, ?3, ?4, ?5, 1) \
     ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, queued = items.queued + 1";

/// Remote write: unconditional unless the record has queued ops (then no row changes); the
/// version becomes the synced version.
pub(super) const WRITE_REMOTE: &str = "INSERT INTO items (scope, id, data, updated_at, deleted_at, synced_version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?4) \
     ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, \
     synced_version = excluded.synced_version \
     WHERE items.queued = 0";

/// Removes one op of a scope, returning its queue position and record id.
const DELETE_OP: &str = "DELETE FROM pending_ops WHERE scope = ?1 AND op_id = ?2 RETURNING seq, id";

const UNCOUNT_OP: &str =
    "UPDATE items SET queued = queued - 1 WHERE scope = ?1 AND id = ?2 AND queued > 0";

const COUNT_OP: &str = "UPDATE items SET queued = queued + 1 WHERE scope = ?1 AND id = ?2";

const SAVE_POINT: &str = "INSERT INTO sync_points (scope, cursor, server_time) VALUES (?1, ?2, ?3) \
     ON CONFLICT (scope) DO UPDATE SET cursor = excluded.cursor, server_time = excluded.server_time";

const INSERT_OP: &str = "INSERT INTO pending_ops \
     (seq, op_id, scope, kind, id, payload, updated_at, attempts, last_error, parked) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)";

const QUEUED_FOR: &str = "SELECT queued FROM items WHERE scope = ?1 AND id = ?2";

const SET_SYNCED: &str = "UPDATE items SET synced_version = ?3 WHERE scope = ?1 AND id = ?2";

const SELECT_OPS: &str = "SELECT p.op_id, p.kind, p.id, p.payload, p.updated_at, p.attempts, \
     p.last_error, i.synced_version \
     FROM pending_ops p LEFT JOIN items i ON i.scope = p.scope AND i.id = p.id \
     WHERE p.scope = ?1 AND p.parked = ?2 ORDER BY p.seq LIMIT ?3";

/// Opens a write transaction: `BEGIN IMMEDIATE`, so it never has to upgrade a read lock;
/// rolled back when dropped uncommitted (rusqlite's [`Transaction`]).
pub(super) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)
}

/// Commits `tx`.
pub(super) fn commit(tx: Transaction<'_>) -> Result<()> {
    tx.commit().map_err(map_err)
}

/// Removes an op of `scope` and uncounts it on its record; returns its `seq` if it was queued.
fn remove_op(tx: &Connection, scope: &str, op_id: &str) -> Result<Option<i64>> {
    let removed: Option<(i64, String)> = tx
        .prepare_cached(DELETE_OP)
        .map_err(map_err)?
        .query_row(params![scope, op_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    let Some((seq, id)) = removed else {
        return Ok(None);
    };
    tx.prepare_cached(UNCOUNT_OP)
        .map_err(map_err)?
        .execute(params![scope, id])
        .map_err(map_err)?;
    Ok(Some(seq))
}

/// `get_by_id`.
pub(crate) fn get<T: DeserializeOwned>(
    conn: &Connection,
    scope: &str,
    id: &str,
) -> Result<Option<T>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM items WHERE scope = ?1 AND id = ?2 AND deleted_at IS NULL",
        )
        .map_err(map_err)?;
    let data: Option<Option<String>> = stmt
        .query_row(params![scope, id], |r| r.get(0))
        .optional()
        .map_err(map_err)?;
    match data {
        None => Ok(None),
        Some(Some(json)) => decode(&json).map(Some),
        Some(None) => Err(corrupt(format!("live record {id:?} has no data"))),
    }
}

fn collect_records<T: DeserializeOwned>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let data = row.get_ref(0).map_err(map_err)?;
        let json = data
            .as_str_or_null()
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("live record has no data"))?;
        out.push(decode(json)?);
    }
    Ok(out)
}

/// `query`, compiled by [`super::query::compile`].
/// A row whose `flag` is set fails the query with that flag's message.
pub(crate) fn query<T: DeserializeOwned>(conn: &Connection, q: &Compiled) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&q.sql).map_err(map_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(q.params.iter()))
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        if let Some(i) = row.get::<_, Option<i64>>(1).map_err(map_err)? {
            let message = usize::try_from(i)
                .ok()
                .and_then(|i| q.errors.get(i).cloned())
                .unwrap_or_default();
            return Err(Error::InvalidQuery(message));
        }
        let json: Option<String> = row.get(0).map_err(map_err)?;
        out.push(decode(
            &json.ok_or_else(|| corrupt("live record has no data"))?,
        )?);
    }
    Ok(out)
}

/// `EXPLAIN QUERY PLAN` of a compiled query.
pub(crate) fn explain(conn: &mut Connection, q: &Compiled) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", q.sql))
        .map_err(map_err)?;
    stmt.query_map(rusqlite::params_from_iter(q.params.iter()), |r| {
        r.get::<_, String>(3)
    })
    .map_err(map_err)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(map_err)
}

/// `query_since`.
pub(crate) fn query_since<T: DeserializeOwned>(
    conn: &Connection,
    scope: &str,
    since: i64,
) -> Result<Vec<T>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM items WHERE scope = ?1 AND deleted_at IS NULL AND updated_at >= ?2 \
             ORDER BY updated_at, id",
        )
        .map_err(map_err)?;
    collect_records(&mut stmt, params![scope, since])
}

/// `upsert_many` and `delete_many`: last-write-wins on the version, one transaction.
pub(crate) fn upsert_lww(conn: &mut Connection, scope: &str, rows: &Encoded) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tx = immediate(conn)?;
    {
        let mut stmt = tx.prepare_cached(UPSERT_LWW).map_err(map_err)?;
        for (id, data, version, deleted_at) in rows.iter() {
            stmt.execute(params![scope, id, data, version, deleted_at])
                .map_err(map_err)?;
        }
    }
    commit(tx)
}

/// `sync_point`.
pub(crate) fn sync_point(conn: &Connection, scope: &str) -> Result<Option<SyncPoint>> {
    let mut stmt = conn
        .prepare_cached("SELECT cursor, server_time FROM sync_points WHERE scope = ?1")
        .map_err(map_err)?;
    let row: Option<(Option<String>, i64)> = stmt
        .query_row([scope], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    row.map(|(cursor, t)| {
        Ok(SyncPoint {
            cursor: cursor.map(Cursor),
            server_time: ts_from_sql(t)?,
        })
    })
    .transpose()
}

/// Encoded sync point: `(cursor, server_time)`.
pub(crate) type EncodedPoint = (Option<String>, i64);

pub(crate) fn encode_point(p: &SyncPoint) -> Result<EncodedPoint> {
    Ok((
        p.cursor.as_ref().map(|c| c.0.clone()),
        ts_to_sql(p.server_time)?,
    ))
}

fn save_point_in(conn: &Connection, scope: &str, point: &EncodedPoint) -> Result<()> {
    conn.prepare_cached(SAVE_POINT)
        .map_err(map_err)?
        .execute(params![scope, point.0, point.1])
        .map_err(map_err)?;
    Ok(())
}

/// `save_sync_point`.
pub(crate) fn save_sync_point(
    conn: &mut Connection,
    scope: &str,
    point: &EncodedPoint,
) -> Result<()> {
    let tx = immediate(conn)?;
    save_point_in(&tx, scope, point)?;
    commit(tx)
}

/// `apply_remote`: the page and the sync point in one transaction; ids with queued ops are
/// skipped and returned (once each, in page order).
pub(crate) fn apply_remote(
    conn: &mut Connection,
    scope: &str,
    rows: &Encoded,
    quarantined: &[QuarantinedRow],
    point: &EncodedPoint,
) -> Result<Vec<String>> {
    let tx = immediate(conn)?;
    // Quarantine bookkeeping costs nothing on the common path: one indexed probe per page.
    if scope_state::has_quarantine(&tx, scope)? {
        scope_state::release(&tx, scope, rows.iter().map(|(id, ..)| id))?;
    }
    scope_state::quarantine(&tx, scope, quarantined)?;
    let mut skipped: Vec<String> = Vec::new();
    {
        let mut write = tx.prepare_cached(WRITE_REMOTE).map_err(map_err)?;
        let mut seen_skipped: HashSet<&str> = HashSet::new();
        for (id, data, version, deleted_at) in rows.iter() {
            let changed = write
                .execute(params![scope, id, data, version, deleted_at])
                .map_err(map_err)?;
            // No change: the record has queued ops (`WHERE items.queued = 0` failed).
            if changed == 0 && seen_skipped.insert(id) {
                skipped.push(id.to_owned());
            }
        }
    }
    save_point_in(&tx, scope, point)?;
    commit(tx)?;
    Ok(skipped)
}

fn insert_op(conn: &Connection, seq: Option<i64>, op: &EncodedOp) -> Result<()> {
    let result = conn
        .prepare_cached(INSERT_OP)
        .map_err(map_err)?
        .execute(params![
            seq,
            op.op_id,
            op.scope,
            op.kind,
            op.id,
            op.payload,
            op.updated_at,
            op.attempts,
            op.last_error,
        ]);
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::InvalidInput(format!(
            "op {} is already queued",
            op.op_id
        ))),
        Err(e) => Err(map_err(e)),
    }
}

/// Writes the op's change to its row and counts the op there.
fn write_queued_row(conn: &Connection, scope: &str, op: &EncodedOp) -> Result<()> {
    let data = if op.row_has_data {
        op.payload.as_deref()
    } else {
        None
    };
    conn.prepare_cached(ENQUEUE_ROW)
        .map_err(map_err)?
        .execute(params![
            scope,
            op.id,
            data,
            op.row_version,
            op.row_deleted_at
        ])
        .map_err(map_err)?;
    Ok(())
}

/// `enqueue`: the local row and the op in one transaction.
pub(crate) fn enqueue(conn: &mut Connection, op: &EncodedOp) -> Result<()> {
    let tx = immediate(conn)?;
    write_queued_row(&tx, &op.scope, op)?;
    insert_op(&tx, None, op)?;
    commit(tx)
}

/// `pending_ops` (`parked = false`) and `parked_ops` (`parked = true`), with base versions.
pub(crate) fn ops<T: DeserializeOwned + Record>(
    conn: &Connection,
    scope: &SyncScope,
    canonical: &str,
    parked: bool,
    limit: usize,
) -> Result<Vec<PendingOp<T>>> {
    let mut stmt = conn.prepare_cached(SELECT_OPS).map_err(map_err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt
        .query(params![canonical, parked, limit])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(map_err)? {
        let payload: Option<String> = r.get(3).map_err(map_err)?;
        let attempts: i64 = r.get(5).map_err(map_err)?;
        let synced: Option<i64> = r.get(7).map_err(map_err)?;
        out.push(PendingOp {
            op_id: OpId(r.get(0).map_err(map_err)?),
            scope: scope.clone(),
            kind: kind_from(
                r.get_ref(1)
                    .map_err(map_err)?
                    .as_str()
                    .map_err(|e| corrupt(e.to_string()))?,
            )?,
            id: r.get(2).map_err(map_err)?,
            payload: payload.as_deref().map(decode).transpose()?,
            updated_at: ts_from_sql(r.get(4).map_err(map_err)?)?,
            base_version: synced.map(ts_from_sql).transpose()?,
            attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts out of range"))?,
            last_error: r.get(6).map_err(map_err)?,
        });
    }
    Ok(out)
}

/// Encoded [`Ack`](crate::local::Ack): `(id, op_ids, version)`.
pub(crate) type EncodedAck = (String, Vec<String>, Option<i64>);

/// `ack_ops`.
pub(crate) fn ack_ops(conn: &mut Connection, scope: &str, acks: &[EncodedAck]) -> Result<()> {
    let tx = immediate(conn)?;
    for (id, op_ids, version) in acks {
        let mut removed = false;
        for op_id in op_ids {
            removed |= remove_op(&tx, scope, op_id)?.is_some();
        }
        if let (true, Some(v)) = (removed, version) {
            tx.prepare_cached(SET_SYNCED)
                .map_err(map_err)?
                .execute(params![scope, id, v])
                .map_err(map_err)?;
        }
    }
    commit(tx)
}

/// Runs one statement per op id, in one transaction.
pub(crate) fn for_each_op(
    conn: &mut Connection,
    sql: &str,
    scope: &str,
    op_ids: &[String],
    extra: impl Fn(&mut rusqlite::CachedStatement<'_>, &str, &str) -> rusqlite::Result<usize>,
) -> Result<()> {
    let tx = immediate(conn)?;
    {
        let mut stmt = tx.prepare_cached(sql).map_err(map_err)?;
        for op_id in op_ids {
            extra(&mut stmt, scope, op_id).map_err(map_err)?;
        }
    }
    commit(tx)
}

/// `reject_ops`.
pub(crate) fn reject_ops(
    conn: &mut Connection,
    scope: &str,
    op_ids: &[String],
    error: &str,
    park: bool,
) -> Result<()> {
    for_each_op(
        conn,
        "UPDATE pending_ops SET attempts = min(attempts + 1, 4294967295), last_error = ?3, \
         parked = (parked OR ?4) WHERE scope = ?1 AND op_id = ?2",
        scope,
        op_ids,
        |stmt, scope, op_id| stmt.execute(params![scope, op_id, error, park]),
    )
}

/// `unpark_ops`.
pub(crate) fn unpark_ops(conn: &mut Connection, scope: &str, op_ids: &[String]) -> Result<()> {
    for_each_op(
        conn,
        "UPDATE pending_ops SET parked = 0, attempts = 0 WHERE scope = ?1 AND op_id = ?2 AND parked = 1",
        scope,
        op_ids,
        |stmt, scope, op_id| stmt.execute(params![scope, op_id]),
    )
}

/// `discard_ops`.
pub(crate) fn discard_ops(conn: &mut Connection, scope: &str, op_ids: &[String]) -> Result<()> {
    let tx = immediate(conn)?;
    for op_id in op_ids {
        remove_op(&tx, scope, op_id)?;
    }
    commit(tx)
}

/// An encoded [`Settlement`](crate::local::Settlement).
#[derive(Debug)]
pub(crate) struct EncodedSettlement {
    pub id: String,
    pub settled_ops: Vec<String>,
    pub remote_version: Option<i64>,
    /// The local row, as a one-row batch.
    pub local: Option<Encoded>,
    pub requeue: Option<EncodedOp>,
}

/// `settle_conflict`, in one transaction.
pub(crate) fn settle_conflict(
    conn: &mut Connection,
    scope: &str,
    s: &EncodedSettlement,
) -> Result<()> {
    let tx = immediate(conn)?;
    let mut first_seq: Option<i64> = None;
    for op_id in &s.settled_ops {
        if let Some(seq) = remove_op(&tx, scope, op_id)? {
            first_seq = Some(first_seq.map_or(seq, |f| f.min(seq)));
        }
    }
    if let Some(local) = &s.local {
        let queued: Option<i64> = tx
            .prepare_cached(QUEUED_FOR)
            .map_err(map_err)?
            .query_row(params![scope, s.id], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        // Newer writes for the record are still queued: they stay visible.
        if queued.unwrap_or(0) == 0 {
            let mut write = tx.prepare_cached(WRITE_LOCAL).map_err(map_err)?;
            for (id, data, version, deleted_at) in local.iter() {
                write
                    .execute(params![scope, id, data, version, deleted_at])
                    .map_err(map_err)?;
            }
        }
    }
    tx.prepare_cached(SET_SYNCED)
        .map_err(map_err)?
        .execute(params![scope, s.id, s.remote_version])
        .map_err(map_err)?;
    if let Some(op) = &s.requeue {
        insert_op(&tx, first_seq, op)?;
        let counted = tx
            .prepare_cached(COUNT_OP)
            .map_err(map_err)?
            .execute(params![scope, op.id])
            .map_err(map_err)?;
        if counted == 0 {
            // No local row yet: the op's change becomes it.
            write_queued_row(&tx, scope, op)?;
        }
    }
    commit(tx)
}

/// `queue_status`: `(pending, parked)`.
pub(crate) fn queue_status(conn: &Connection, scope: &str) -> Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT coalesce(sum(parked = 0), 0), coalesce(sum(parked <> 0), 0) FROM pending_ops WHERE scope = ?1",
    )
    .map_err(map_err)?
    .query_row([scope], |r| Ok((r.get(0)?, r.get(1)?)))
    .map_err(map_err)
}

/// `scopes`: distinct scopes of the three tables. Items are walked with index seeks (one per
/// scope), so this stays fast with millions of rows.
pub(crate) fn scopes(conn: &Connection) -> Result<Vec<SyncScope>> {
    let mut stmt = conn
        .prepare_cached(
            "WITH RECURSIVE s(scope) AS ( \
                 SELECT min(scope) FROM items \
                 UNION ALL \
                 SELECT (SELECT min(scope) FROM items WHERE scope > s.scope) FROM s WHERE s.scope IS NOT NULL \
             ) \
             SELECT scope FROM s WHERE scope IS NOT NULL \
             UNION SELECT scope FROM sync_points \
             UNION SELECT scope FROM pending_ops \
             UNION SELECT scope FROM quarantine \
             UNION SELECT scope FROM scope_pause",
        )
        .map_err(map_err)?;
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_err)?;
    keys.iter()
        .map(|k| {
            SyncScope::from_canonical(k).map_err(|e| corrupt(format!("stored scope {k:?}: {e}")))
        })
        .collect()
}

/// [`scopes`] with the signature [`SqliteLocalStore::run`](super::SqliteLocalStore) expects.
pub(crate) fn scopes_mut(conn: &mut Connection) -> Result<Vec<SyncScope>> {
    scopes(conn)
}
