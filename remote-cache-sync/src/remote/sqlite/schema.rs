//! The storage's tables, their versions and the connection settings (see the parent module's
//! "Schema versions").

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::sql_err;
use crate::error::{Error, Result, StorageErrorKind};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rcs_remote_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO rcs_remote_meta (key, value) VALUES ('seq', 0);
CREATE TABLE IF NOT EXISTS rcs_remote_scopes (
    scope_id INTEGER PRIMARY KEY,
    canonical TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS rcs_remote_records (
    seq INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    kind INTEGER NOT NULL,     -- 0: upsert (body is the record), 1: delete (body is empty)
    deleted INTEGER NOT NULL,  -- 1 when the change removes the record (delete or payload tombstone)
    version TEXT NOT NULL,     -- RFC 3339, nanosecond exact
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rcs_remote_records_id ON rcs_remote_records (scope_id, id);
CREATE INDEX IF NOT EXISTS rcs_remote_records_feed ON rcs_remote_records (scope_id, seq);
";

/// The applied-op tables of schema version 2 (see the module docs).
pub(super) const APPLIED_OPS_V2: &str = "
CREATE TABLE IF NOT EXISTS rcs_remote_applied_ops (
    scope_id INTEGER NOT NULL,
    op_id TEXT NOT NULL,
    applied_at INTEGER NOT NULL,  -- unix milliseconds
    PRIMARY KEY (scope_id, op_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rcs_remote_applied_ops_at ON rcs_remote_applied_ops (applied_at);
-- Ids applied under schema version 1, scope unknown (empty in databases created at version 2).
CREATE TABLE IF NOT EXISTS rcs_remote_applied_ops_v1 (
    op_id TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;
";

pub(super) const SCHEMA_VERSION: i64 = 2;

pub(super) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql_err)?;
    // One plan per statement whatever its bound values: without the query planner stability
    // guarantee, rusqlite's STAT4 build re-parses a cached statement with `LIMIT ?` on every
    // new binding (see `local::sqlite::schema::stable_plans`).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sql_err)?;
    Ok(())
}

pub(super) fn init_schema(conn: &mut Connection, file: bool) -> Result<()> {
    if file {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    tx.execute_batch(SCHEMA).map_err(sql_err)?;
    let version: Option<i64> = tx
        .query_row(
            "SELECT value FROM rcs_remote_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    match version {
        // A new database.
        None => tx.execute_batch(APPLIED_OPS_V2).map_err(sql_err)?,
        // Version 1 kept op ids without their scope: set them aside (see the module docs).
        Some(1) => tx
            .execute_batch(
                "ALTER TABLE rcs_remote_applied_ops RENAME TO rcs_remote_applied_ops_v1;",
            )
            .and_then(|()| tx.execute_batch(APPLIED_OPS_V2))
            .map_err(sql_err)?,
        Some(SCHEMA_VERSION) => {}
        Some(v) if v > SCHEMA_VERSION => {
            return Err(Error::Storage {
                kind: StorageErrorKind::SchemaTooNew,
                message: format!("remote schema version {v} is newer than {SCHEMA_VERSION}"),
            });
        }
        Some(v) => {
            return Err(Error::Storage {
                kind: StorageErrorKind::Corrupt,
                message: format!("unknown remote schema version {v}"),
            });
        }
    }
    if version != Some(SCHEMA_VERSION) {
        tx.execute(
            "INSERT OR REPLACE INTO rcs_remote_meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}
