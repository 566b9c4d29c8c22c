//! [`SqliteLocalStore`]: the persistent local cache on SQLite (feature `sqlite`).
//!
//! - **Schema** (versioned by `PRAGMA user_version`, migrated on open; a newer on-disk version is
//!   refused with [`StorageErrorKind::SchemaTooNew`], a negative one, which only another
//!   application writes, with [`StorageErrorKind::Foreign`]): `items (scope, id, data, updated_at,
//!   deleted_at, synced_version, queued)` keyed by `(scope, id)` (`WITHOUT ROWID`) with an
//!   index on `(scope, updated_at, id)` over live rows; `sync_points (scope, cursor,
//!   server_time)`; `pending_ops (seq, op_id UNIQUE, scope, kind, id, payload, updated_at,
//!   attempts, last_error, parked)` ordered by `seq`. `items.queued` counts each record's
//!   queued ops, so a pull skips such records inside its upsert. `scope` is
//!   [`SyncScope::canonical`]; records are JSON text; timestamps are integer **nanoseconds**
//!   since the Unix epoch, exact (they become base versions that remotes compare for
//!   equality; microseconds would truncate jiff's nanosecond clock), which limits them to the
//!   years 1677–2262 (others are refused with [`Error::InvalidInput`]).
//! - **Pragmas**: WAL, a busy timeout (5 s unless set), and `synchronous = NORMAL` except around
//!   the user's own writes and decisions: `enqueue`, `unpark_ops`, `discard_ops` and a
//!   `settle_conflict` that requeues an op commit with `synchronous = FULL` (WAL mode then
//!   fsyncs the WAL at the commit), so once they return they survive a power loss, not just a
//!   process crash. The rest (pulled pages with their sync point, acks, rejections,
//!   `upsert_many`, `delete_many`, `save_sync_point`, settlements without a requeue) commits with
//!   NORMAL: it survives a process crash, and a power loss may roll back the latest such commits
//!   (up to the last FULL commit or checkpoint; the file stays consistent) — all of which the
//!   next sync redoes: a pulled page is fetched again from the saved cursor, an op whose ack is
//!   lost is pushed again (remotes apply an op id once).
//! - **Queries**: a [`QuerySpec`] is compiled to SQL over `json_extract` with bound parameters and
//!   the exact semantics of [`QuerySpec::apply`] (see the `query` module source for the mapping).
//!   Declare the fields you filter on with [`SqliteLocalStoreBuilder::index_field`] to get an
//!   expression index on `(scope, json_extract(data, '$.field'))`.
//! - **Connections**: a file gets a writer and a `query_only` reader, each behind a mutex (WAL
//!   lets reads run while a write is in progress, so a long query never delays an offline
//!   write); an in-memory database has one connection.
//! - **Threads**: on a multi-thread tokio runtime each call runs
//!   under `block_in_place` (the worker hands its queued tasks to another thread first, so other
//!   tasks keep running and the call pays no thread hop); on a current-thread runtime it runs on
//!   the blocking pool (`spawn_blocking`). A call whose future is dropped still runs to
//!   completion or rolls back, never half-way.
//! - **Errors**: SQLite failures become [`Error::Storage`] with a [`StorageErrorKind`]: busy or
//!   locked → `Locked`, corrupt or not a database → `Corrupt`, disk full → `Full`, read-only →
//!   `ReadOnly`.
//!
//! See [`SqliteLocalStore`] for how to open one and use it with an
//! [`Orchestrator`](crate::Orchestrator).

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::Connection;

use crate::delta::{Delta, QuarantinedRow, SyncPoint};
#[allow(unused_imports)] // linked from the docs above
use crate::error::StorageErrorKind;
use crate::error::{Error, Result};
use crate::local::check::{check_ids, check_op};
use crate::local::{Ack, LocalStore, QueueStatus, ScopePause, Settlement};
use crate::op::{OpId, PendingOp};
use crate::query::QuerySpec;
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

mod builder;
mod change;
mod db;
mod encode;
mod encryption;
mod error;
#[cfg(target_arch = "wasm32")]
mod opfs;
pub(crate) mod query;
mod reconcile;
mod schema;
mod scope_state;
#[cfg(test)]
mod tests;
mod trait_impl;

pub use builder::SqliteLocalStoreBuilder;
use db::{EncodedOp, EncodedRows, EncodedSettlement};
pub use encryption::{EncryptionKey, is_plain_sqlite};
use error::ts_to_sql;

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

struct Inner {
    /// The writer; also serves reads for in-memory databases.
    conn: Mutex<Connection>,
    /// A `query_only` connection for reads of a file (WAL lets it read while the writer
    /// writes, so a long query never delays an offline write).
    reader: Option<Mutex<Connection>>,
    /// Fields with an expression index, which the query compiler may name in `INDEXED BY`.
    indexed: Vec<String>,
    path: Option<PathBuf>,
    /// The key every connection to an encrypted file is opened with (changed by `rekey`).
    #[cfg_attr(
        all(target_arch = "wasm32", not(feature = "encryption")),
        allow(dead_code)
    )]
    key: Mutex<Option<EncryptionKey>>,
    /// For reopening the reader after a rekey.
    #[cfg_attr(not(feature = "encryption"), allow(dead_code))]
    busy_timeout: Duration,
    /// The connection [`change_token`](LocalStore::change_token) asks (opened on first use;
    /// unused in the browser, where no other connection writes).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    watcher: change::Watcher,
}

/// The persistent local cache: a [`LocalStore`] on a SQLite file (or in memory), feature
/// `sqlite` (on by default). Cloning is cheap and shares the connections.
///
/// It holds, per [`SyncScope`], the cached records, the queue of offline writes not yet
/// pushed, and the sync point of the last pull, all in one file that survives restarts: a
/// write the app made offline is pushed by the next sync after a restart.
///
/// # Opening
///
/// [`SqliteLocalStore::open`] (a file, created and migrated as needed),
/// [`SqliteLocalStore::open_in_memory`] (tests), or [`SqliteLocalStore::builder`] for options:
/// [`index_field`](SqliteLocalStoreBuilder::index_field) for fields you filter on,
/// [`busy_timeout`](SqliteLocalStoreBuilder::busy_timeout) for files shared between processes,
/// [`max_page_count`](SqliteLocalStoreBuilder::max_page_count) to cap its size. The constructors
/// are `async` (migrations run on the blocking pool);
/// [`open_blocking`](SqliteLocalStoreBuilder::open_blocking) serves synchronous callers. Opening
/// fails with [`Error::Storage`]: [`StorageErrorKind::SchemaTooNew`] for a file written by a
/// newer version of this crate, [`StorageErrorKind::Foreign`] for another application's
/// database, [`StorageErrorKind::Corrupt`] for a damaged file; none of them is modified.
///
/// # Using it
///
/// Hand it to an [`Orchestrator`](crate::Orchestrator) and go through that: its writes
/// (`enqueue_create`, `enqueue_update`, `enqueue_delete`) update the cache **and** queue the
/// op in one transaction, and its `read` answers queries by a
/// [`CachePolicy`](crate::CachePolicy). The [`LocalStore`] methods (`upsert_many`,
/// `delete_many`, ...) are the orchestrator's building blocks: writing with them bypasses the
/// queue, so the remote never hears of the change.
///
/// ```
/// use std::sync::Arc;
/// use remote_cache_sync::local::sqlite::SqliteLocalStore;
/// use remote_cache_sync::{
///     CachePolicy, Filter, InMemoryRemoteStore, Orchestrator, QuerySpec, Record, SyncScope,
///     Timestamp,
/// };
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Note {
///     id: String,
///     title: String,
///     updated_at: Timestamp,
/// }
///
/// impl Record for Note {
///     fn id(&self) -> &str {
///         &self.id
///     }
///     fn updated_at(&self) -> Timestamp {
///         self.updated_at
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("notes.db");
/// let local = SqliteLocalStore::<Note>::builder(&path) // e.g. "<app data dir>/notes.db"
///     .index_field("title")
///     .open()
///     .await?;
/// // In an app: an `HttpRemoteStore` (feature `http`), PocketBase or PostgreSQL remote.
/// let remote = InMemoryRemoteStore::<Note>::new();
/// let notes = Orchestrator::new(Arc::new(local), Arc::new(remote));
///
/// let scope = SyncScope::new("notes", [("user", "u1")])?;
/// let note = Note { id: "n1".into(), title: "groceries".into(), updated_at: Timestamp::now() };
/// notes.enqueue_create(&scope, note).await?; // cached and queued, offline or not
/// notes.synchronize(&scope).await?; // push the queue, pull remote changes
///
/// let query = QuerySpec::new().filter(Filter::eq("title", "groceries"));
/// let found = notes.read(&scope, CachePolicy::OfflineOnly, &query).await?;
/// assert_eq!(found.len(), 1);
/// # Ok::<(), remote_cache_sync::Error>(())
/// # }).unwrap();
/// ```
///
/// # Concurrency
///
/// A file gets a writer and a read-only connection (WAL), so a long query never delays a
/// write. Several processes may open the same file; a write waiting too long for another's
/// lock fails with [`StorageErrorKind::Locked`], which is retryable. See the
/// [module docs](self) for the schema, pragmas and threading.
pub struct SqliteLocalStore<T> {
    inner: Arc<Inner>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for SqliteLocalStore<T> {
    fn clone(&self) -> Self {
        SqliteLocalStore {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SqliteLocalStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLocalStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn join_error(e: crate::rt::JoinError) -> Error {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Error::Cancelled,
    }
}

#[cfg(target_arch = "wasm32")]
fn join_error(e: crate::rt::JoinError) -> Error {
    match e {}
}

impl<T: Record> SqliteLocalStore<T> {
    /// A builder for the database file at `path` (created if missing).
    pub fn builder(path: impl AsRef<Path>) -> SqliteLocalStoreBuilder<T> {
        SqliteLocalStoreBuilder {
            path: Some(path.as_ref().to_owned()),
            settings: schema::Settings {
                busy_timeout: Duration::from_secs(5),
                key: None,
                max_page_count: None,
                index_fields: Vec::new(),
            },
            #[cfg(target_arch = "wasm32")]
            opfs: false,
            _t: PhantomData,
        }
    }

    /// A builder for the database `name` (e.g. `notes.db`: ASCII letters, digits, `.`, `-`,
    /// `_`) in the browser's Origin Private File System, which keeps it across page reloads
    /// (wasm32 only). OPFS needs a dedicated worker: elsewhere `open` fails with
    /// [`StorageErrorKind::Unavailable`] (no fall-back to memory), and while another worker
    /// (tab) has the database open, with [`StorageErrorKind::Locked`]. The chosen storage is
    /// logged (`tracing`, target `remote_cache_sync`).
    #[cfg(target_arch = "wasm32")]
    pub fn opfs_builder(name: &str) -> SqliteLocalStoreBuilder<T> {
        SqliteLocalStoreBuilder {
            opfs: true,
            ..Self::builder(name)
        }
    }

    /// Opens (creating and migrating as needed) the OPFS database `name`: see
    /// [`opfs_builder`](Self::opfs_builder).
    #[cfg(target_arch = "wasm32")]
    pub async fn open_opfs(name: &str) -> Result<Self> {
        Self::opfs_builder(name).open().await
    }

    /// Deletes the OPFS database `name` (see [`opfs_builder`](Self::opfs_builder)); `false`
    /// when there was none. Fails with [`StorageErrorKind::Locked`] while a store has it open.
    #[cfg(target_arch = "wasm32")]
    pub async fn delete_opfs(name: &str) -> Result<bool> {
        opfs::delete(name).await
    }

    /// A builder for a private in-memory database (gone when the store is dropped).
    pub fn in_memory_builder() -> SqliteLocalStoreBuilder<T> {
        SqliteLocalStoreBuilder {
            path: None,
            ..Self::builder("")
        }
    }

    /// Opens (creating and migrating as needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open().await
    }

    /// Opens a private in-memory database.
    pub async fn open_in_memory() -> Result<Self> {
        Self::in_memory_builder().open().await
    }

    /// SQLite's query plan for `spec` in `scope` (one line per plan step), to check that a
    /// filter uses an index declared with [`SqliteLocalStoreBuilder::index_field`].
    pub async fn explain(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<String>> {
        let compiled = query::compile(&scope.canonical(), spec, &self.inner.indexed)?;
        self.read(move |c| db::explain(c, &compiled)).await
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Runs `f` with the connection, off the async worker threads:
    /// - on a multi-thread runtime, under [`tokio::task::block_in_place`]: the worker first hands
    ///   its other tasks to the pool, then runs `f` itself, with no thread hop on the latency
    ///   path (a hop costs a wake-up, which on a loaded machine can take a scheduler slice);
    /// - on a current-thread runtime, on the blocking pool (`spawn_blocking`);
    /// - outside any tokio runtime, inline;
    /// - in the browser (`wasm32`), inline: one thread, and SQLite is single-threaded there.
    ///
    /// Either way `f` runs to completion (commit or rollback) even if the caller's future is
    /// dropped while it waits.
    async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.run_on(false, f).await
    }

    /// [`run`](Self::run) for reads: on the reader connection when there is one.
    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.run_on(true, f).await
    }

    /// [`read`](Self::read) for a point lookup (an indexed row or a count, microseconds): when
    /// the connection is free it runs right here on the async worker, which saves the hand-off
    /// of [`block_in_place`](tokio::task::block_in_place) (a thread wake-up per call: a fifth of
    /// a busy client's CPU in `rcs bench live`); when another call holds the connection it waits
    /// off the worker as `read` does, so a worker never blocks behind a long query.
    async fn lookup<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let conn = self.inner.reader.as_ref().unwrap_or(&self.inner.conn);
            let guard = match conn.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut guard) = guard {
                return f(&mut guard);
            }
        }
        self.read(f).await
    }

    /// [`run`](Self::run) for a write that must survive power loss once it returns (a user's
    /// write or decision): see [`durably`].
    async fn run_durable<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.run_on(false, move |c| durably(c, f)).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn run_on<R, F>(&self, read: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.blocking(move |inner| {
            let conn = match (&inner.reader, read) {
                (Some(reader), true) => reader,
                _ => &inner.conn,
            };
            // A panic inside `f` drops its transaction (rolled back), so the connection is
            // consistent even when the mutex is poisoned.
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` off the async worker threads, as [`run`](Self::run) describes.
    #[cfg(not(target_arch = "wasm32"))]
    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Inner) -> Result<R> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| f(&self.inner))
            }
            Ok(_) => {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || f(&inner))
                    .await
                    .map_err(join_error)?
            }
            Err(_) => f(&self.inner),
        }
    }

    /// In the browser `f` runs inline, as [`run_on`](Self::run_on) says.
    #[cfg(all(target_arch = "wasm32", feature = "encryption"))]
    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Inner) -> Result<R> + Send + 'static,
    {
        f(&self.inner)
    }

    /// In the browser there is one thread (and SQLite is single-threaded there): `f` runs
    /// inline, to completion, before the future first returns.
    #[cfg(target_arch = "wasm32")]
    async fn run_on<R, F>(&self, read: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let conn = match (&self.inner.reader, read) {
            (Some(reader), true) => reader,
            _ => &self.inner.conn,
        };
        f(&mut conn.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs `f` (one write transaction) with `synchronous = FULL`, then sets the connection back to
/// `NORMAL`. In WAL mode FULL fsyncs the WAL at the commit, so the transaction survives a power
/// loss once `f` returns; under NORMAL a commit reaches the disk at the next FULL commit or
/// checkpoint and only a process crash is survived (a power loss may roll back the latest
/// commits, never corrupt the file).
///
/// SQLite refuses to change the level inside a transaction and applies it when the pragma is
/// prepared, so each switch is its own (uncached) statement, outside `f`'s transaction. Should
/// switching back fail, the connection stays at FULL: slower, never less durable.
fn durably<R>(conn: &mut Connection, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(error::map_err)?;
    let result = f(conn);
    if let Err(e) = conn.execute_batch("PRAGMA synchronous = NORMAL") {
        tracing::warn!(error = %e, "sqlite local store: synchronous stays FULL");
    }
    result
}

fn encode_records<'a, T: Record>(
    items: impl ExactSizeIterator<Item = &'a T>,
) -> Result<db::Encoded> {
    let mut rows = EncodedRows::with_capacity(items.len());
    for r in items {
        rows.push_record(r)?;
    }
    rows.finish()
}

fn encode_change<T: Record>(change: &Change<T>) -> Result<db::Encoded> {
    let mut rows = EncodedRows::with_capacity(1);
    match change {
        Change::Upsert(r) => rows.push_record(r)?,
        Change::Delete(t) => rows.push_tombstone(t)?,
    }
    rows.finish()
}

fn op_id_strings(ids: &[OpId]) -> Vec<String> {
    ids.iter().map(|o| o.0.clone()).collect()
}
