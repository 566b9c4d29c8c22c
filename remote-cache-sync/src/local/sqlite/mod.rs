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
use crate::local::memory::{check_ids, check_op};
use crate::local::{Ack, LocalStore, QueueStatus, ScopePause, Settlement};
use crate::op::{OpId, PendingOp};
use crate::query::QuerySpec;
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

mod change;
mod db;
mod encryption;
mod error;
#[cfg(target_arch = "wasm32")]
mod opfs;
mod query;
mod schema;
mod scope_state;
#[cfg(test)]
mod tests;

use db::{EncodedOp, EncodedRows, EncodedSettlement};
pub use encryption::EncryptionKey;
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
    key: Mutex<Option<EncryptionKey>>,
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

/// Options for opening a [`SqliteLocalStore`].
#[derive(Debug, Clone)]
pub struct SqliteLocalStoreBuilder<T> {
    path: Option<PathBuf>,
    /// `path` is the name of a database in the browser's OPFS.
    #[cfg(target_arch = "wasm32")]
    opfs: bool,
    settings: schema::Settings,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> SqliteLocalStoreBuilder<T> {
    /// Adds an expression index on `(scope, json_extract(data, '$.field'))` over live records,
    /// created on open if missing. Filters on the field then use it. `field` is a dotted path
    /// validated like query fields (an invalid one fails the open with
    /// [`Error::InvalidQuery`]).
    pub fn index_field(mut self, field: impl Into<String>) -> Self {
        self.settings.index_fields.push(field.into());
        self
    }

    /// How long a write waits for another connection's lock before failing with
    /// [`StorageErrorKind::Locked`] (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.settings.busy_timeout = timeout;
        self
    }

    /// Caps the database at `pages` pages (SQLite's `max_page_count`; pages are 4 KiB by
    /// default). A write that would grow it further fails with [`StorageErrorKind::Full`] and
    /// commits nothing, as on a full disk. Unlimited by default.
    pub fn max_page_count(mut self, pages: u32) -> Self {
        self.settings.max_page_count = Some(pages);
        self
    }

    /// Encrypts the file with `key` (feature `encryption`, native only): a new file is created
    /// encrypted, an existing one must have been created with the same key. Every page, the
    /// WAL included, is encrypted (SQLCipher); see [`EncryptionKey`] for the derivation.
    ///
    /// A wrong key fails the open with [`StorageErrorKind::WrongKey`], opening an encrypted
    /// file without one with [`StorageErrorKind::KeyRequired`]; the file is never touched.
    /// An empty key is refused ([`Error::InvalidInput`]).
    #[cfg(feature = "encryption")]
    pub fn key(mut self, key: impl Into<EncryptionKey>) -> Self {
        self.settings.key = Some(key.into());
        self
    }

    /// Opens (creating and migrating as needed) on the blocking pool (in the browser: inline,
    /// after installing the OPFS VFS for an `opfs_builder`).
    pub async fn open(self) -> Result<SqliteLocalStore<T>> {
        #[cfg(target_arch = "wasm32")]
        {
            let name = self.path.as_ref().map(|p| p.to_string_lossy());
            match &name {
                Some(name) if self.opfs => {
                    opfs::uri(name)?;
                    if let Err(e) = opfs::install(name).await {
                        tracing::warn!(storage = "opfs", database = %name, error = %e,
                            "sqlite local store: OPFS unavailable");
                        return Err(e);
                    }
                    tracing::info!(storage = "opfs", vfs = opfs::VFS, database = %name,
                        "sqlite local store: persistent storage on OPFS");
                }
                _ => tracing::info!(
                    storage = "memory",
                    "sqlite local store: in memory (not persisted)"
                ),
            }
        }
        crate::rt::spawn_blocking(move || self.open_blocking())
            .await
            .map_err(join_error)?
    }

    /// Opens on the current thread, for synchronous callers (never call it on an async thread).
    pub fn open_blocking(self) -> Result<SqliteLocalStore<T>> {
        #[cfg(target_arch = "wasm32")]
        let path = self.opfs_uri()?.or(self.path);
        #[cfg(not(target_arch = "wasm32"))]
        let path = self.path;
        let conn = schema::open(path.as_deref(), &self.settings)?;
        let indexed = schema::indexed_fields(&conn)?;
        let reader = match &path {
            // In the browser one connection serves everything: there is one thread, and the
            // OPFS VFS has no shared memory for WAL.
            Some(p) if !schema::is_private(p) && cfg!(not(target_arch = "wasm32")) => {
                Some(Mutex::new(schema::open_reader(
                    p,
                    self.settings.busy_timeout,
                    self.settings.key.as_ref(),
                )?))
            }
            _ => None,
        };
        Ok(SqliteLocalStore {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                reader,
                indexed,
                path,
                key: Mutex::new(self.settings.key),
                busy_timeout: self.settings.busy_timeout,
                watcher: change::Watcher::default(),
            }),
            _t: PhantomData,
        })
    }
}

#[cfg(target_arch = "wasm32")]
impl<T> SqliteLocalStoreBuilder<T> {
    /// The URI of an OPFS database (whose VFS must be installed), `None` for other databases.
    fn opfs_uri(&self) -> Result<Option<PathBuf>> {
        if !self.opfs {
            return Ok(None);
        }
        let name = self.path.as_ref().map(|p| p.to_string_lossy().into_owned());
        let uri = opfs::uri(name.as_deref().unwrap_or_default())?;
        if !opfs::installed() {
            return Err(Error::Storage {
                kind: StorageErrorKind::Unavailable,
                message: "OPFS: open the store with the async `open` (it installs the VFS)".into(),
            });
        }
        Ok(Some(PathBuf::from(uri)))
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

    /// Changes the key of an encrypted cache (feature `encryption`): every page is re-encrypted
    /// with `new_key` in one transaction, so a crash leaves the old key valid. This store's own
    /// connections follow; another process with the file open makes it fail with
    /// [`StorageErrorKind::Locked`] and the old key stays. A cache opened without a key is
    /// refused ([`Error::InvalidInput`]): encrypting a plain cache means syncing a new one.
    #[cfg(all(feature = "encryption", not(target_arch = "wasm32")))]
    pub async fn rekey(&self, new_key: impl Into<EncryptionKey>) -> Result<()> {
        let new_key = new_key.into();
        self.blocking(move |inner| {
            let Some(path) = inner.path.as_deref() else {
                return Err(Error::InvalidInput(
                    "an in-memory cache has no file to re-encrypt".into(),
                ));
            };
            // Lock order as elsewhere: writer, watcher, reader, key.
            let conn = inner.conn.lock().unwrap_or_else(|e| e.into_inner());
            let mut watcher = inner.watcher.0.lock().unwrap_or_else(|e| e.into_inner());
            let mut reader = inner
                .reader
                .as_ref()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()));
            let mut key = inner.key.lock().unwrap_or_else(|e| e.into_inner());
            if key.is_none() {
                return Err(Error::InvalidInput(
                    "the cache is not encrypted: rekey changes the key of a cache opened with one"
                        .into(),
                ));
            }
            // SQLCipher rekeys only with no other connection on the file: close ours.
            *watcher = None;
            if let Some(r) = reader.as_mut() {
                **r = Connection::open_in_memory().map_err(error::map_err)?;
            }
            let rekeyed = encryption::rekey(&conn, &new_key);
            if rekeyed.is_ok() {
                *key = Some(new_key);
            }
            if let Some(r) = reader.as_mut() {
                **r = schema::open_reader(path, inner.busy_timeout, key.as_ref())?;
            }
            rekeyed
        })
        .await
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

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> LocalStore<T> for SqliteLocalStore<T> {
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let (scope, id) = (scope.canonical(), id.to_owned());
        self.read(move |c| db::get(c, &scope, &id)).await
    }

    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>> {
        let (scope, id) = (scope.canonical(), id.to_owned());
        self.read(move |c| scope_state::version(c, &scope, &id))
            .await
    }

    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        let scope = scope.canonical();
        let compiled = query::compile(&scope, spec, &self.inner.indexed)?;
        let hinted = compiled.sql.contains(" INDEXED BY ");
        match self.read(move |c| db::query(c, &compiled)).await {
            // Should the planner ever refuse the index hint, run the query without it.
            Err(Error::Storage { message, .. })
                if hinted && message.contains("no query solution") =>
            {
                tracing::warn!(
                    ?spec,
                    "sqlite local store: index hint refused, querying without it"
                );
                let plain = query::compile(&scope, spec, &[])?;
                self.read(move |c| db::query(c, &plain)).await
            }
            other => other,
        }
    }

    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>> {
        let scope = scope.canonical();
        // Before the representable range: everything; after it: nothing.
        let since = ts_to_sql(since).unwrap_or(if since < Timestamp::UNIX_EPOCH {
            i64::MIN
        } else {
            i64::MAX
        });
        self.read(move |c| db::query_since(c, &scope, since)).await
    }

    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        let rows = encode_records(items.iter())?;
        let scope = scope.canonical();
        self.run(move |c| db::upsert_lww(c, &scope, &rows)).await
    }

    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        let mut rows = EncodedRows::with_capacity(tombstones.len());
        for t in tombstones {
            rows.push_tombstone(t)?;
        }
        let rows = rows.finish()?;
        let scope = scope.canonical();
        self.run(move |c| db::upsert_lww(c, &scope, &rows)).await
    }

    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>> {
        let scope = scope.canonical();
        self.read(move |c| db::sync_point(c, &scope)).await
    }

    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()> {
        let point = db::encode_point(point)?;
        let scope = scope.canonical();
        self.run(move |c| db::save_sync_point(c, &scope, &point))
            .await
    }

    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>> {
        let mut rows = EncodedRows::with_capacity(page.len());
        for r in &page.upserts {
            rows.push_record(r)?;
        }
        for t in &page.deletes {
            rows.push_tombstone(t)?;
        }
        let rows = rows.finish()?;
        let point = db::encode_point(point)?;
        let scope = scope.canonical();
        let quarantined = page.quarantined.clone();
        self.run(move |c| db::apply_remote(c, &scope, &rows, &quarantined, &point))
            .await
    }

    async fn enqueue(&self, op: PendingOp<T>) -> Result<()> {
        check_op(&op)?;
        let op = EncodedOp::new(op)?;
        self.run_durable(move |c| db::enqueue(c, &op)).await
    }

    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>> {
        let scope = scope.clone();
        self.read(move |c| db::ops(c, &scope, &scope.canonical(), false, limit))
            .await
    }

    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()> {
        let acks = acks
            .iter()
            .map(|a| {
                Ok((
                    a.id.clone(),
                    op_id_strings(&a.op_ids),
                    a.version.map(ts_to_sql).transpose()?,
                ))
            })
            .collect::<Result<Vec<db::EncodedAck>>>()?;
        let scope = scope.canonical();
        self.run(move |c| db::ack_ops(c, &scope, &acks)).await
    }

    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()> {
        let (scope, ids, error) = (scope.canonical(), op_id_strings(op_ids), error.to_owned());
        self.run(move |c| db::reject_ops(c, &scope, &ids, &error, park))
            .await
    }

    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        let scope = scope.clone();
        self.read(move |c| db::ops(c, &scope, &scope.canonical(), true, usize::MAX))
            .await
    }

    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let (scope, ids) = (scope.canonical(), op_id_strings(op_ids));
        self.run_durable(move |c| db::unpark_ops(c, &scope, &ids))
            .await
    }

    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let (scope, ids) = (scope.canonical(), op_id_strings(op_ids));
        self.run_durable(move |c| db::discard_ops(c, &scope, &ids))
            .await
    }

    async fn settle_conflict(&self, scope: &SyncScope, settlement: Settlement<T>) -> Result<()> {
        let Settlement {
            id,
            settled_ops,
            remote_version,
            local,
            requeue,
        } = settlement;
        check_ids([id.as_str()])?;
        let local = match &local {
            Some(change) if change.id() != id => {
                return Err(Error::InvalidInput(format!(
                    "settlement for {id:?} carries a change for {:?}",
                    change.id()
                )));
            }
            Some(change) => Some(encode_change(change)?),
            None => None,
        };
        let requeue = match requeue {
            Some(op) => {
                check_op(&op)?;
                if &op.scope != scope {
                    return Err(Error::InvalidInput(
                        "requeued op belongs to another scope".into(),
                    ));
                }
                Some(EncodedOp::new(op)?)
            }
            None => None,
        };
        let s = EncodedSettlement {
            id,
            settled_ops: op_id_strings(&settled_ops),
            remote_version: remote_version.map(ts_to_sql).transpose()?,
            local,
            requeue,
        };
        let scope = scope.canonical();
        // A requeued op is the user's kept write: as durable as its enqueue was. Without one
        // the settlement only replaces ops and rows that a replay would settle again.
        if s.requeue.is_some() {
            self.run_durable(move |c| db::settle_conflict(c, &scope, &s))
                .await
        } else {
            self.run(move |c| db::settle_conflict(c, &scope, &s)).await
        }
    }

    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        let scope = scope.canonical();
        let (pending, parked, quarantined) = self
            .read(move |c| {
                let (pending, parked) = db::queue_status(c, &scope)?;
                Ok((pending, parked, scope_state::quarantine_count(c, &scope)?))
            })
            .await?;
        let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(QueueStatus {
            pending: count(pending),
            parked: count(parked),
            quarantined: count(quarantined),
        })
    }

    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        let scope = scope.canonical();
        self.read(move |c| scope_state::quarantined(c, &scope))
            .await
    }

    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        let scope = scope.canonical();
        self.read(move |c| scope_state::pause(c, &scope)).await
    }

    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()> {
        let scope = scope.canonical();
        let pause = pause
            .map(|p| Ok::<_, Error>((p.reason.clone(), ts_to_sql(p.since)?)))
            .transpose()?;
        self.run(move |c| scope_state::set_pause(c, &scope, pause.as_ref()))
            .await
    }

    async fn scopes(&self) -> Result<Vec<SyncScope>> {
        self.read(db::scopes_mut).await
    }

    /// SQLite's `PRAGMA data_version` on a connection of its own: it changes whenever another
    /// connection (this store's writer, another store on the file, another process) committed.
    /// `None` for an in-memory database and in the browser, where no other connection writes.
    async fn change_token(&self) -> Result<Option<u64>> {
        change::token(self).await
    }
}
