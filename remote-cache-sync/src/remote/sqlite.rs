//! [`SqliteRemoteStore`]: a server-side remote in one SQLite file, with an exact sequence cursor.
//!
//! This is the embedded storage behind `rcs serve --db path.sqlite`. Every write transaction
//! (`BEGIN IMMEDIATE`, so there is one writer at a time, even across processes) reads the
//! sequence counter, gives each applied op the next value and stores it in the record's row; the
//! change feed is the records of a scope ordered by that sequence. Because sequences are
//! assigned inside the writer's transaction and transactions commit one after another, a reader
//! only ever sees a gap-free prefix of the sequence: a pull can never skip a row that commits
//! later with a smaller number. The cursor is the last sequence a page held.
//!
//! A record updated again moves to the end of the feed (its row takes the new sequence), so the
//! feed holds each record once, at its latest version. Deletes are tombstones. Applied op ids are
//! remembered per scope, so replaying a push changes nothing, and an op id reused in another scope
//! is another op there (applied on its own merits, never answered from a different scope's memory).
//!
//! # Schema versions
//! - 1: applied op ids were remembered globally (`rcs_remote_applied_ops(op_id)`).
//! - 2: they are remembered per scope (`rcs_remote_applied_ops(scope_id, op_id)`). Opening a
//!   version 1 database migrates it in place: its ids, whose scope is unknown, move to
//!   `rcs_remote_applied_ops_v1`, and a replay found only there counts as applied only when the
//!   record in the pushing scope holds exactly what the op wrote (same version, same
//!   deleted/live state); otherwise it is decided like a new op (as after
//!   [`prune_applied_ops`](SqliteRemoteStore::prune_applied_ops), which empties both tables).
//!
//! All SQLite work runs on tokio's blocking pool: one writer connection, and for file
//! databases a separate reader connection (WAL lets it read while the writer writes).

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result, StorageErrorKind};
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::reconcile::{DigestRequest, DigestResponse, digest_rows};
use crate::record::{Change, Record, Tombstone};
use crate::remote::{RemoteStore, applied_version, base_matches};
use crate::scope::SyncScope;

mod query;

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
const APPLIED_OPS_V2: &str = "
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

const SCHEMA_VERSION: i64 = 2;

/// A [`RemoteStore`] in a SQLite database with a monotonic, gap-free sequence cursor.
///
/// Cheap to clone (the connections are shared).
pub struct SqliteRemoteStore<T> {
    inner: Arc<Inner>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for SqliteRemoteStore<T> {
    fn clone(&self) -> Self {
        SqliteRemoteStore {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SqliteRemoteStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRemoteStore").finish_non_exhaustive()
    }
}

struct Inner {
    writer: Mutex<Connection>,
    /// A second connection for reads (file databases only).
    reader: Option<Mutex<Connection>>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a transaction rolls it back when the `Transaction` drops, so the connection
    // stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn sql_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let kind = match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => StorageErrorKind::Locked,
        Some(C::DatabaseCorrupt | C::NotADatabase) => StorageErrorKind::Corrupt,
        Some(C::DiskFull) => StorageErrorKind::Full,
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => StorageErrorKind::ReadOnly,
        _ => StorageErrorKind::Other,
    };
    Error::Storage {
        kind,
        message: e.to_string(),
    }
}

fn configure(conn: &Connection) -> Result<()> {
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

fn init_schema(conn: &mut Connection, file: bool) -> Result<()> {
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

fn parse_cursor(c: Option<&Cursor>) -> Result<i64> {
    match c {
        None => Ok(0),
        Some(c) => c
            .as_str()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::InvalidInput(format!("bad cursor {:?}", c.as_str()))),
    }
}

fn parse_version(s: &str) -> Result<Timestamp> {
    s.parse()
        .map_err(|e| Error::storage(format!("bad stored version {s:?}: {e}")))
}

/// One stored row, decoded lazily.
struct StoredRow {
    kind: i64,
    deleted: bool,
    version: String,
    body: String,
}

impl StoredRow {
    fn change<T: Record>(&self, id: &str) -> Result<Change<T>> {
        if self.kind == 1 {
            Ok(Change::Delete(Tombstone {
                id: id.to_owned(),
                deleted_at: parse_version(&self.version)?,
            }))
        } else {
            Ok(Change::Upsert(serde_json::from_str(&self.body)?))
        }
    }
}

impl<T: Record> SqliteRemoteStore<T> {
    /// Opens (creating when missing) a database file.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        crate::rt::spawn_blocking(move || {
            let mut writer = Connection::open(&path).map_err(sql_err)?;
            configure(&writer)?;
            init_schema(&mut writer, true)?;
            let reader = Connection::open(&path).map_err(sql_err)?;
            configure(&reader)?;
            reader
                .pragma_update(None, "query_only", "ON")
                .map_err(sql_err)?;
            Ok(Self::from_parts(writer, Some(reader)))
        })
        .await
        .map_err(join_err)?
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory().map_err(sql_err)?;
        configure(&conn)?;
        init_schema(&mut conn, false)?;
        Ok(Self::from_parts(conn, None))
    }

    fn from_parts(writer: Connection, reader: Option<Connection>) -> Self {
        SqliteRemoteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                reader: reader.map(Mutex::new),
            }),
            _t: PhantomData,
        }
    }

    /// The last sequence number handed out (0 for an empty database).
    pub async fn last_seq(&self) -> Result<u64> {
        self.read(|conn| {
            let v: i64 = conn
                .query_row(
                    "SELECT value FROM rcs_remote_meta WHERE key = 'seq'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            Ok(v as u64)
        })
        .await
    }

    /// Reads one page of the feed, turning each stored upsert body with `decode`.
    async fn walk_feed<U: Send + 'static>(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
        decode: impl Fn(&str) -> Result<U> + Send + 'static,
    ) -> Result<FeedPage<U>> {
        let from = parse_cursor(since)?;
        let limit = limit.clamp(1, 1 << 20);
        let (scope, since) = (scope.clone(), since.cloned());
        self.read(move |conn| {
            let mut page = FeedPage {
                upserts: Vec::new(),
                deletes: Vec::new(),
                quarantined: Vec::new(),
                server_time: Timestamp::now(),
                cursor: since,
                has_more: false,
            };
            let Some(sid) = scope_id(conn, &scope)? else {
                return Ok(page);
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, id, kind, version, body FROM rcs_remote_records
                     WHERE scope_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(sql_err)?;
            let mut rows = stmt
                .query(params![sid, from, limit as i64 + 1])
                .map_err(sql_err)?;
            let mut n = 0;
            let text = |r: &rusqlite::Row<'_>, i: usize| -> Result<String> {
                r.get::<_, String>(i).map_err(sql_err)
            };
            while let Some(r) = rows.next().map_err(sql_err)? {
                if n == limit {
                    page.has_more = true;
                    break;
                }
                n += 1;
                let seq: i64 = r.get(0).map_err(sql_err)?;
                let kind: i64 = r.get(2).map_err(sql_err)?;
                if kind == 1 {
                    page.deletes.push(Tombstone {
                        id: text(r, 1)?,
                        deleted_at: parse_version(&text(r, 3)?)?,
                    });
                } else {
                    let body = r
                        .get_ref(4)
                        .map_err(sql_err)?
                        .as_str()
                        .map_err(|e| sql_err(e.into()))?;
                    match decode(body) {
                        Ok(u) => page.upserts.push(u),
                        // One bad row never blocks the scope: it is handed over raw.
                        Err(e) => page.quarantined.push(QuarantinedRow::new(
                            text(r, 1)?,
                            body,
                            format!("does not decode: {e}"),
                        )),
                    }
                }
                page.cursor = Some(Cursor::new(seq.to_string()));
            }
            Ok(page)
        })
        .await
    }

    /// Forgets applied op ids recorded before `before` and returns how many. A push replayed
    /// after that is applied again (and checked against the current version again), so keep
    /// ids longer than any client may hold an unacknowledged op.
    pub async fn prune_applied_ops(&self, before: Timestamp) -> Result<u64> {
        let cutoff = before.as_millisecond();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(sql_err)?;
            let mut n = 0;
            for table in ["rcs_remote_applied_ops", "rcs_remote_applied_ops_v1"] {
                n += tx
                    .execute(
                        &format!("DELETE FROM {table} WHERE applied_at < ?1"),
                        [cutoff],
                    )
                    .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let inner = self.inner.clone();
        crate::rt::spawn_blocking(move || {
            let m = inner.reader.as_ref().unwrap_or(&inner.writer);
            f(&lock(m))
        })
        .await
        .map_err(join_err)?
    }

    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let inner = self.inner.clone();
        crate::rt::spawn_blocking(move || f(&mut lock(&inner.writer)))
            .await
            .map_err(join_err)?
    }
}

/// A page of the feed with upserts in any form.
struct FeedPage<U> {
    upserts: Vec<U>,
    deletes: Vec<Tombstone>,
    quarantined: Vec<QuarantinedRow>,
    server_time: Timestamp,
    cursor: Option<Cursor>,
    has_more: bool,
}

#[cfg(feature = "server")]
#[async_trait]
impl<T: Record> crate::server::RawFeed for SqliteRemoteStore<T> {
    async fn fetch_raw(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<crate::server::RawPage> {
        // Bodies are written by `serde_json::to_string` of a record, but the file may have been
        // edited by hand: a body that is not a JSON object would make the whole answer
        // unreadable, so it is checked (without building it) and handed over as quarantined.
        let page = self
            .walk_feed(scope, since, limit, |b| {
                let object = b.trim_start().starts_with('{')
                    && serde_json::from_str::<serde::de::IgnoredAny>(b).is_ok();
                if object {
                    Ok(b.to_owned())
                } else {
                    Err(Error::storage("the stored body is not a JSON object"))
                }
            })
            .await?;
        Ok(crate::server::RawPage {
            upserts: page.upserts,
            deletes: page.deletes,
            server_time: page.server_time,
            cursor: page.cursor,
            has_more: page.has_more,
            quarantined: page.quarantined,
        })
    }
}

fn join_err(e: crate::rt::JoinError) -> Error {
    Error::storage(format!("sqlite worker failed: {e}"))
}

fn scope_id(conn: &Connection, scope: &SyncScope) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT scope_id FROM rcs_remote_scopes WHERE canonical = ?1")
        .map_err(sql_err)?
        .query_row([scope.canonical()], |r| r.get(0))
        .optional()
        .map_err(sql_err)
}

fn read_row(conn: &Connection, scope_id: i64, id: &str) -> Result<Option<StoredRow>> {
    conn.prepare_cached(
        "SELECT kind, deleted, version, body FROM rcs_remote_records WHERE scope_id = ?1 AND id = ?2",
    )
    .map_err(sql_err)?
    .query_row(params![scope_id, id], |r| {
        Ok(StoredRow {
            kind: r.get(0)?,
            deleted: r.get::<_, i64>(1)? != 0,
            version: r.get(2)?,
            body: r.get(3)?,
        })
    })
    .optional()
    .map_err(sql_err)
}

/// Checks an op's shape before applying it; `Some(reason)` rejects it.
fn validate_op<T: Record>(op: &PendingOp<T>) -> Option<String> {
    match (op.kind, &op.payload) {
        (OpKind::Create | OpKind::Update, None) => {
            Some(format!("{:?} op for {} carries no record", op.kind, op.id))
        }
        (OpKind::Create | OpKind::Update, Some(p)) if p.id() != op.id => Some(format!(
            "op targets id {:?} but its record has id {:?}",
            op.id,
            p.id()
        )),
        _ => None,
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for SqliteRemoteStore<T> {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.read(move |conn| {
            let Some(sid) = scope_id(conn, &scope)? else {
                return Ok(None);
            };
            match read_row(conn, sid, &id)? {
                Some(row) if row.kind == 0 && !row.deleted => {
                    Ok(Some(serde_json::from_str(&row.body)?))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    /// Evaluated in SQL over the scope's live rows (see the `query` submodule).
    async fn query(
        &self,
        scope: &SyncScope,
        spec: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        let (scope, spec) = (scope.clone(), spec.clone());
        self.read(move |conn| query::run(conn, scope_id(conn, &scope)?, &spec))
            .await
            .map(Some)
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let page = self
            .walk_feed(scope, since, limit, |body| {
                Ok(serde_json::from_str::<T>(body)?)
            })
            .await?;
        Ok(Delta {
            upserts: page.upserts,
            deletes: page.deletes,
            server_time: page.server_time,
            cursor: page.cursor,
            has_more: page.has_more,
            quarantined: page.quarantined,
        })
    }

    /// One scan of the scope's live rows, digested in Rust. Stored versions are hashed as
    /// stored: the store writes them in canonical form (a version edited by hand in another
    /// RFC 3339 form digests as different, and is fetched again by each reconciliation).
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<Option<DigestResponse>> {
        request.validate()?;
        let (scope, request) = (scope.clone(), request.clone());
        self.read(move |conn| {
            let Some(sid) = scope_id(conn, &scope)? else {
                return Ok(Some(DigestResponse::default().with_json_size()));
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, version FROM rcs_remote_records \
                     WHERE scope_id = ?1 AND deleted = 0 AND kind = 0",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([sid], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)?;
            let answer = digest_rows(rows.iter().map(|(a, b)| (a.as_str(), b.as_str())), &request);
            Ok(Some(answer.with_json_size()))
        })
        .await
    }

    /// A count over the feed index `(scope_id, seq)` from the cursor on.
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        let from = parse_cursor(since)?;
        let scope = scope.clone();
        self.read(move |conn| {
            let Some(sid) = scope_id(conn, &scope)? else {
                return Ok(Some(0));
            };
            let n: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM rcs_remote_records WHERE scope_id = ?1 AND seq > ?2",
                )
                .map_err(sql_err)?
                .query_row(params![sid, from], |r| r.get(0))
                .map_err(sql_err)?;
            Ok(Some(n as u64))
        })
        .await
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // Encode outside the lock.
        let mut prepared = Vec::with_capacity(ops.len());
        for op in ops {
            let body = match (&op.payload, op.kind) {
                (Some(p), OpKind::Create | OpKind::Update) => serde_json::to_string(p)?,
                _ => String::new(),
            };
            prepared.push((op.clone(), body));
        }
        let scope = scope.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let canonical = scope.canonical();
            tx.prepare_cached("INSERT OR IGNORE INTO rcs_remote_scopes (canonical) VALUES (?1)")
                .map_err(sql_err)?
                .execute([&canonical])
                .map_err(sql_err)?;
            let sid = scope_id(&tx, &scope)?.ok_or_else(|| Error::storage("scope row vanished"))?;
            let mut seq: i64 = tx
                .query_row("SELECT value FROM rcs_remote_meta WHERE key = 'seq'", [], |r| r.get(0))
                .map_err(sql_err)?;
            let start_seq = seq;
            let now_ms = Timestamp::now().as_millisecond();
            let mut outcomes = Vec::with_capacity(prepared.len());
            {
                let mut seen = tx
                    .prepare_cached(
                        "SELECT 1 FROM rcs_remote_applied_ops WHERE scope_id = ?1 AND op_id = ?2",
                    )
                    .map_err(sql_err)?;
                let mut seen_v1 = tx
                    .prepare_cached("SELECT 1 FROM rcs_remote_applied_ops_v1 WHERE op_id = ?1")
                    .map_err(sql_err)?;
                let mut mark = tx
                    .prepare_cached(
                        "INSERT INTO rcs_remote_applied_ops (scope_id, op_id, applied_at)
                         VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_err)?;
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO rcs_remote_records (seq, scope_id, id, kind, deleted, version, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (scope_id, id) DO UPDATE SET
                           seq = excluded.seq, kind = excluded.kind, deleted = excluded.deleted,
                           version = excluded.version, body = excluded.body",
                    )
                    .map_err(sql_err)?;
                for (op, body) in &prepared {
                    let current = read_row(&tx, sid, &op.id)?;
                    let version = applied_version(op);
                    if seen.exists(params![sid, op.op_id.as_str()]).map_err(sql_err)? {
                        // The version this op wrote back then, not whatever superseded it since.
                        outcomes.push(PushOutcome::Applied { version });
                        continue;
                    }
                    // An id remembered by schema version 1 (scope unknown) counts only where
                    // the record still holds exactly what the op wrote.
                    if let Some(row) = &current
                        && parse_version(&row.version)? == version
                        && row.deleted == op.change().is_delete()
                        && seen_v1.exists([op.op_id.as_str()]).map_err(sql_err)?
                    {
                        outcomes.push(PushOutcome::Applied { version });
                        continue;
                    }
                    if let Some(reason) = validate_op(op) {
                        outcomes.push(PushOutcome::Rejected { reason });
                        continue;
                    }
                    let cur = match &current {
                        Some(row) => Some((parse_version(&row.version)?, row.deleted)),
                        None => None,
                    };
                    if !base_matches(op.kind, op.base_version, cur) {
                        // A stored version that does not decode is a verdict on this op only.
                        outcomes.push(match current.as_ref().map(|row| row.change::<T>(&op.id)) {
                            None => PushOutcome::Conflict { current: None },
                            Some(Ok(c)) => PushOutcome::Conflict { current: Some(c) },
                            Some(Err(e)) => PushOutcome::undecodable_current(e),
                        });
                        continue;
                    }
                    let change = op.change();
                    let kind = i64::from(matches!(change, Change::Delete(_)));
                    seq += 1;
                    upsert
                        .execute(params![
                            seq,
                            sid,
                            op.id,
                            kind,
                            i64::from(change.is_delete()),
                            version.to_string(),
                            body
                        ])
                        .map_err(sql_err)?;
                    mark.execute(params![sid, op.op_id.as_str(), now_ms])
                        .map_err(sql_err)?;
                    outcomes.push(PushOutcome::Applied { version });
                }
            }
            if seq != start_seq {
                tx.execute("UPDATE rcs_remote_meta SET value = ?1 WHERE key = 'seq'", [seq])
                    .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)?;
            Ok(outcomes)
        })
        .await
    }

    async fn server_time(&self) -> Result<Timestamp> {
        Ok(Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestRecord, ts, unique_scope};

    #[tokio::test]
    async fn feed_is_ordered_by_sequence_and_holds_each_record_once() {
        let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
        let scope = unique_scope("r");
        remote
            .batch_upsert(
                &scope,
                &[
                    TestRecord::new("a", "1", ts(1)),
                    TestRecord::new("b", "1", ts(1)),
                ],
            )
            .await
            .unwrap();
        remote
            .batch_upsert(&scope, &[TestRecord::new("a", "2", ts(2))])
            .await
            .unwrap();
        let page = remote.fetch_since(&scope, None, 10).await.unwrap();
        let ids: Vec<_> = page.upserts.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(page.upserts[1].title, "2");
        assert_eq!(page.cursor, Some(Cursor::new("3")));
        assert!(!page.has_more);
        assert_eq!(remote.last_seq().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn prunes_old_applied_op_ids() {
        let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
        let scope = unique_scope("r");
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "x", ts(1)),
        );
        remote
            .push(&scope, std::slice::from_ref(&op))
            .await
            .unwrap();
        let past = Timestamp::now() - jiff::SignedDuration::from_secs(60);
        assert_eq!(remote.prune_applied_ops(past).await.unwrap(), 0);
        let future = Timestamp::now() + jiff::SignedDuration::from_secs(60);
        assert_eq!(remote.prune_applied_ops(future).await.unwrap(), 1);
        // Forgotten: the replayed create is checked again and conflicts with the live record.
        let out = remote.push(&scope, &[op]).await.unwrap();
        assert!(matches!(out[0], PushOutcome::Conflict { .. }), "{out:?}");
    }

    /// The schema of version 1, as that build created it.
    const SCHEMA_V1: &str = "
        CREATE TABLE rcs_remote_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO rcs_remote_meta (key, value) VALUES ('schema_version', 1), ('seq', 0);
        CREATE TABLE rcs_remote_scopes (
            scope_id INTEGER PRIMARY KEY,
            canonical TEXT NOT NULL UNIQUE
        );
        CREATE TABLE rcs_remote_records (
            seq INTEGER PRIMARY KEY,
            scope_id INTEGER NOT NULL,
            id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            version TEXT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE UNIQUE INDEX rcs_remote_records_id ON rcs_remote_records (scope_id, id);
        CREATE INDEX rcs_remote_records_feed ON rcs_remote_records (scope_id, seq);
        CREATE TABLE rcs_remote_applied_ops (
            op_id TEXT PRIMARY KEY,
            applied_at INTEGER NOT NULL
        ) WITHOUT ROWID;
    ";

    #[tokio::test]
    async fn migrates_a_version_1_database_to_per_scope_op_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        let (alice, bob) = (unique_scope("r"), unique_scope("r"));
        let v1 = TestRecord::new("a", "by alice", ts(1));
        let op = PendingOp::upsert(alice.clone(), OpKind::Create, v1.clone());
        let old_at = (Timestamp::now() - jiff::SignedDuration::from_secs(60)).as_millisecond();
        {
            // What version 1 left after applying `op` in alice's scope.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute(
                "INSERT INTO rcs_remote_scopes (scope_id, canonical) VALUES (1, ?1)",
                [alice.canonical()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO rcs_remote_records VALUES (1, 1, 'a', 0, 0, ?1, ?2)",
                params![
                    v1.updated_at.to_string(),
                    serde_json::to_string(&v1).unwrap()
                ],
            )
            .unwrap();
            conn.execute("UPDATE rcs_remote_meta SET value = 1 WHERE key = 'seq'", [])
                .unwrap();
            conn.execute(
                "INSERT INTO rcs_remote_applied_ops VALUES (?1, ?2)",
                params![op.op_id.as_str(), old_at],
            )
            .unwrap();
        }
        let remote = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
        let version: i64 = remote
            .read(|c| {
                c.query_row(
                    "SELECT value FROM rcs_remote_meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);

        // The replay in its own scope is still recognised: applied, nothing written.
        let out = remote
            .push(&alice, std::slice::from_ref(&op))
            .await
            .unwrap();
        assert_eq!(
            out,
            [PushOutcome::Applied {
                version: v1.updated_at
            }]
        );
        assert_eq!(remote.last_seq().await.unwrap(), 1);

        // The same op id in another scope is another op: applied there, for real.
        let mut theirs = PendingOp::upsert(
            bob.clone(),
            OpKind::Create,
            TestRecord::new("b", "by bob", ts(2)),
        );
        theirs.op_id = op.op_id.clone();
        let out = remote
            .push(&bob, std::slice::from_ref(&theirs))
            .await
            .unwrap();
        assert_eq!(out, [PushOutcome::Applied { version: ts(2) }]);
        assert_eq!(
            remote.get_by_id(&bob, "b").await.unwrap().map(|r| r.title),
            Some("by bob".to_owned())
        );
        // A legacy id does not vouch for a scope whose record differs from what the op wrote:
        // the op is decided on its merits (here: a create on a live record conflicts).
        let carol = unique_scope("r");
        let carols = TestRecord::new("a", "carol's a", ts(3));
        let fresh = PendingOp::upsert(carol.clone(), OpKind::Create, carols.clone());
        remote.push(&carol, &[fresh]).await.unwrap();
        let mut again = op.clone();
        again.scope = carol.clone();
        let out = remote
            .push(&carol, std::slice::from_ref(&again))
            .await
            .unwrap();
        assert_eq!(
            out,
            [PushOutcome::Conflict {
                current: Some(Change::Upsert(carols))
            }]
        );
        assert_eq!(
            remote.get_by_id(&alice, "a").await.unwrap(),
            Some(v1),
            "alice's record is untouched"
        );

        // Pruning covers the legacy ids too.
        let future = Timestamp::now() + jiff::SignedDuration::from_secs(60);
        assert_eq!(remote.prune_applied_ops(future).await.unwrap(), 3);
        drop(remote);
        // Reopening a migrated database changes nothing.
        let remote = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
        assert_eq!(remote.last_seq().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn rejects_malformed_ops_and_cursors() {
        let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
        let scope = unique_scope("r");
        let mut op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "x", ts(1)),
        );
        op.id = "b".into();
        let out = remote.push(&scope, &[op]).await.unwrap();
        assert!(matches!(&out[0], PushOutcome::Rejected { .. }), "{out:?}");
        let bad = Cursor::new("nope");
        assert!(matches!(
            remote.fetch_since(&scope, Some(&bad), 10).await,
            Err(Error::InvalidInput(_))
        ));
    }
}
