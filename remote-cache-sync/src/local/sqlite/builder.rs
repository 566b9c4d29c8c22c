//! [`SqliteLocalStoreBuilder`]: the options of a [`SqliteLocalStore`] and opening it.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "encryption")]
use super::encryption::EncryptionKey;
#[cfg(target_arch = "wasm32")]
use super::opfs;
use super::{Inner, SqliteLocalStore, change, join_error, schema};
#[allow(unused_imports)] // linked from the docs
use crate::error::StorageErrorKind;
#[allow(unused_imports)]
use crate::error::{Error, Result};
use crate::record::Record;

/// Options for opening a [`SqliteLocalStore`].
#[derive(Debug, Clone)]
pub struct SqliteLocalStoreBuilder<T> {
    pub(super) path: Option<PathBuf>,
    /// `path` is the name of a database in the browser's OPFS.
    #[cfg(target_arch = "wasm32")]
    pub(super) opfs: bool,
    pub(super) settings: schema::Settings,
    pub(super) _t: PhantomData<fn() -> T>,
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

    /// Encrypts the file with `key` (feature `encryption`): a new file is created encrypted, an
    /// existing one must have been created with the same key. Every page, the WAL and journal
    /// included, is encrypted (SQLCipher natively; in the browser, on OPFS, SQLite3 Multiple
    /// Ciphers' SQLCipher scheme, the same format); see [`EncryptionKey`] for the derivation.
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
