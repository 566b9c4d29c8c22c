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
use rusqlite::{Connection, OptionalExtension, params};

use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result, StorageErrorKind};
use crate::op::{PendingOp, PushOutcome};
use crate::reconcile::{DigestRequest, DigestResponse, digest_rows};
use crate::record::{Change, Record, Tombstone};
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

mod push;
mod query;
mod schema;

use schema::{configure, init_schema};

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
        self.push_ops(scope, ops).await
    }

    async fn server_time(&self) -> Result<Timestamp> {
        Ok(Timestamp::now())
    }
}

#[cfg(test)]
mod tests;
