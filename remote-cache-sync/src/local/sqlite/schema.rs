//! Opening a database: pragmas, versioned migrations (`PRAGMA user_version`) and expression
//! indexes on declared fields.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::encryption::{self, EncryptionKey};
use super::error::map_err;
use crate::error::{Error, Result, StorageErrorKind};
use crate::query::validate_field;

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`. Append only: never
/// edit a released migration.
///
/// Timestamps are `INTEGER` nanoseconds since the Unix epoch. `items.updated_at` is the row's
/// version (`deleted_at` for tombstones). `items.data` is the record's JSON (`NULL` for a
/// tombstone that came without a payload). `items.queued` counts the record's queued ops
/// (pending or parked), maintained with every queue change, so a pull can skip such records
/// without an index on `pending_ops (scope, id)` (one b-tree less to write per offline write).
const MIGRATIONS: &[&str] = &[
    // 1: items, sync points, pending ops.
    "
    CREATE TABLE items (
        scope          TEXT    NOT NULL,
        id             TEXT    NOT NULL,
        data           TEXT,
        updated_at     INTEGER NOT NULL,
        deleted_at     INTEGER,
        synced_version INTEGER,
        queued         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, id)
    ) WITHOUT ROWID;
    CREATE INDEX items_since ON items (scope, updated_at, id) WHERE deleted_at IS NULL;

    CREATE TABLE sync_points (
        scope       TEXT    NOT NULL PRIMARY KEY,
        cursor      TEXT,
        server_time INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- `seq` orders the queue: SQLite assigns max + 1, so a new op sorts after every queued
    -- one (AUTOINCREMENT would only add a write to sqlite_sequence per op).
    CREATE TABLE pending_ops (
        seq        INTEGER PRIMARY KEY,
        op_id      TEXT    NOT NULL UNIQUE,
        scope      TEXT    NOT NULL,
        kind       TEXT    NOT NULL CHECK (kind IN ('create', 'update', 'delete')),
        id         TEXT    NOT NULL,
        payload    TEXT,
        updated_at INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        parked     INTEGER NOT NULL DEFAULT 0
    );
    ",
    // 2: remote rows that do not decode, and paused scopes.
    "
    CREATE TABLE quarantine (
        scope  TEXT NOT NULL,
        id     TEXT NOT NULL,
        raw    TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (scope, id)
    ) WITHOUT ROWID;

    CREATE TABLE scope_pause (
        scope  TEXT    NOT NULL PRIMARY KEY,
        reason TEXT    NOT NULL,
        since  INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Connection settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub busy_timeout: Duration,
    /// The key of an encrypted file (feature `encryption`).
    pub key: Option<EncryptionKey>,
    pub max_page_count: Option<u32>,
    pub index_fields: Vec<String>,
}

/// Fields with an expression index in the database (declared now or on an earlier open).
pub(crate) fn indexed_fields(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'items' \
             AND name LIKE 'items_json:%'",
        )
        .map_err(map_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(names
        .into_iter()
        .filter_map(|n| n.strip_prefix("items_json:").map(str::to_owned))
        .filter(|f| validate_field(f).is_ok())
        .collect())
}

/// Opens (creating if needed) and migrates a database file, or an in-memory one for `None`.
pub(crate) fn open(path: Option<&Path>, settings: &Settings) -> Result<Connection> {
    for f in &settings.index_fields {
        validate_field(f)?;
    }
    let conn = match path {
        Some(p) => Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| open_error(e, p))?,
        None => Connection::open_in_memory().map_err(map_err)?,
    };
    let setup = || -> Result<()> {
        if let Some(key) = &settings.key {
            encryption::apply(&conn, key)?;
        }
        configure(&conn, settings.busy_timeout)?;
        if let Some(pages) = settings.max_page_count {
            // Per connection, not stored in the file. Reading it back returns the effective cap.
            let _: i64 = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })
                .map_err(map_err)?;
        }
        migrate(&conn)?;
        create_field_indexes(&conn, &settings.index_fields)
    };
    // SQLite opens the file lazily: the first statement is where an unwritable file or folder
    // shows up (as CANTOPEN when the WAL files cannot be created).
    match (setup(), path) {
        (Ok(()), _) => Ok(conn),
        (
            Err(
                e @ Error::Storage {
                    kind: StorageErrorKind::Corrupt,
                    ..
                },
            ),
            Some(p),
        ) => {
            // Closed first: the browser's OPFS pool shows a file's bytes only while it is not
            // open.
            drop(conn);
            Err(encryption::classify_open_error(
                e,
                p,
                settings.key.is_some(),
            ))
        }
        (
            Err(
                e @ Error::Storage {
                    kind: StorageErrorKind::Other,
                    ..
                },
            ),
            Some(p),
        ) => Err(read_only_if_unwritable(e, p)),
        (Err(e), _) => Err(e),
    }
}

/// Whether `path` (or its folder) cannot be written, judged by permission bits and, since those
/// do not tell for root, immutable files or read-only mounts, by trying.
fn unwritable(path: &Path) -> bool {
    // The browser has no file system to probe (OPFS files are reached through the VFS only).
    if cfg!(target_arch = "wasm32") {
        return false;
    }
    let denied = |e: std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        )
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let bits = |p: &Path| p.metadata().is_ok_and(|m| m.permissions().readonly());
    if bits(path) || dir.is_some_and(bits) {
        return true;
    }
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return denied(e);
    }
    // Only reached on a failed open: probe the folder with a file of our own.
    let Some(dir) = dir else { return false };
    let probe = dir.join(format!(".rcs-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => denied(e),
    }
}

fn read_only_if_unwritable(e: Error, path: &Path) -> Error {
    match e {
        Error::Storage { message, .. } if unwritable(path) => Error::Storage {
            kind: StorageErrorKind::ReadOnly,
            message,
        },
        other => other,
    }
}

/// `CANTOPEN` on a file or folder we may not write is a read-only failure; otherwise keep the
/// engine's classification.
fn open_error(e: rusqlite::Error, path: &Path) -> Error {
    let mapped = map_err(e);
    let read_only = unwritable(path);
    match mapped {
        Error::Storage { message, .. } if read_only => Error::Storage {
            kind: StorageErrorKind::ReadOnly,
            message,
        },
        other => other,
    }
}

/// Pragmas: WAL (readers never block the writer), `synchronous=NORMAL` (a commit survives a
/// process crash; a power loss may roll back commits since the last FULL commit or checkpoint,
/// never corrupt the file; the user's writes switch to FULL around their transaction, see
/// `durably` in the module root), a busy timeout, and a statement cache.
pub(crate) fn configure(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    conn.busy_timeout(busy_timeout).map_err(map_err)?;
    // Reading the mode touches the file: a non-database fails here with NOTADB.
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(map_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    stable_plans(conn)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Turns on SQLite's query planner stability guarantee. Without it, SQLite (built with
/// `STAT4`, as rusqlite's bundled build is) marks a cached statement whose plan might depend on
/// a bound value (`LIMIT ?`, a term compared with a partial index's condition) as expired on
/// every new binding, and re-parses it on the next step: a tenth of a busy client's CPU in
/// `rcs bench live`. Our statements use one plan whatever their values.
pub(crate) fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(map_err)?;
    Ok(())
}

/// Whether `path` names a database another connection cannot share: `""` (a private temporary
/// file) or an in-memory one (`:memory:`, `file::memory:`, `mode=memory` URIs).
pub(crate) fn is_private(path: &Path) -> bool {
    let p = path.to_string_lossy();
    p.is_empty() || p == ":memory:" || p.starts_with("file::memory:") || p.contains("mode=memory")
}

/// A second, read-only (`query_only`) connection to an opened and migrated file.
pub(crate) fn open_reader(
    path: &Path,
    busy_timeout: Duration,
    key: Option<&EncryptionKey>,
) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(map_err)?;
    if let Some(key) = key {
        encryption::apply(&conn, key)?;
    }
    conn.busy_timeout(busy_timeout).map_err(map_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(map_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    stable_plans(&conn)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)
}

fn too_new(found: i64) -> Error {
    Error::Storage {
        kind: StorageErrorKind::SchemaTooNew,
        message: format!(
            "the database has schema version {found}, this build understands up to {SCHEMA_VERSION}; \
             open it with a newer version of remote-cache-sync"
        ),
    }
}

/// A negative `user_version`: another application's file (ours are 0 when new, then 1..).
fn foreign(found: i64) -> Error {
    Error::Storage {
        kind: StorageErrorKind::Foreign,
        message: format!(
            "the database has schema version {found} (PRAGMA user_version), which \
             remote-cache-sync never writes: it is not a cache file of this crate; check the path"
        ),
    }
}

/// Applies every missing migration, each in its own immediate transaction (re-checking the
/// version inside it, so two processes opening a new file at once do not both migrate).
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    if found < 0 {
        return Err(foreign(found));
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    // `Connection::transaction_with_behavior` needs `&mut`; drive the transaction by hand.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    let result = (|| {
        let mut current = user_version(conn)?;
        if current > SCHEMA_VERSION {
            return Err(too_new(current));
        }
        let mut next = usize::try_from(current).map_err(|_| foreign(current))?;
        while current < SCHEMA_VERSION {
            let sql = MIGRATIONS[next];
            next += 1;
            conn.execute_batch(sql).map_err(map_err)?;
            current += 1;
            conn.pragma_update(None, "user_version", current)
                .map_err(map_err)?;
            tracing::debug!(version = current, "sqlite local store: migrated schema");
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(map_err),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Name of the expression index on a field (quoted identifier; fields are validated, so they
/// hold only `[A-Za-z0-9_.]`).
pub(crate) fn field_index_name(field: &str) -> String {
    format!("\"items_json:{field}\"")
}

/// `json_extract(data, '$.a.b')` for a validated field path. This is the only place a field
/// reaches SQL text; the path is re-checked here so nothing else can slip through.
pub(crate) fn json_expr(field: &str) -> String {
    assert!(
        validate_field(field).is_ok()
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
        "unvalidated field path reached the SQL compiler"
    );
    format!("json_extract(data, '$.{field}')")
}

/// Creates (if missing) an index on `(scope, json_extract(data, '$.field'))` over live rows for
/// each declared field, so equality and range filters on it use the index.
fn create_field_indexes(conn: &Connection, fields: &[String]) -> Result<()> {
    for f in fields {
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON items (scope, {}) WHERE deleted_at IS NULL",
            field_index_name(f),
            json_expr(f)
        );
        conn.execute_batch(&sql).map_err(map_err)?;
    }
    Ok(())
}
