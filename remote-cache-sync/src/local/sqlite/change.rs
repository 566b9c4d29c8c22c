//! [`LocalStore::change_token`](crate::LocalStore::change_token) for SQLite: `PRAGMA
//! data_version` on a connection of its own.
//!
//! SQLite changes a connection's `data_version` whenever *another* connection committed to the
//! file: this store's writer, another store opened on it, another process. Asking costs a read
//! of the WAL index header (microseconds), and the dedicated connection never waits for a long
//! query on the reader. It is opened on first use, so a store nobody watches pays nothing.

use std::sync::Mutex;

use rusqlite::Connection;

use super::SqliteLocalStore;
use crate::error::Result;

/// The lazily opened connection behind [`token`].
#[derive(Default)]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(super) struct Watcher(pub(super) Mutex<Option<Connection>>);

/// How long asking waits for another connection's lock (it takes none in WAL mode; a
/// checkpoint restarting the log may hold one briefly).
#[cfg(not(target_arch = "wasm32"))]
const BUSY: std::time::Duration = std::time::Duration::from_secs(1);

/// The store's `data_version`, `None` for an in-memory database.
#[cfg(not(target_arch = "wasm32"))]
pub(super) async fn token<T: crate::record::Record>(
    store: &SqliteLocalStore<T>,
) -> Result<Option<u64>> {
    use super::error::map_err;
    use super::schema;
    // A private in-memory database has no reader and no other connection.
    if store.inner.reader.is_none() {
        return Ok(None);
    }
    store
        .blocking(|inner| {
            let Some(path) = inner.path.as_deref() else {
                return Ok(None);
            };
            let mut slot = inner.watcher.0.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                let key = inner.key.lock().unwrap_or_else(|e| e.into_inner()).clone();
                *slot = Some(schema::open_reader(path, BUSY, key.as_ref())?);
            }
            let conn = slot.as_ref().expect("opened above");
            let version: i64 = conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .map_err(map_err)?;
            Ok(Some(version as u64))
        })
        .await
}

/// In the browser one connection serves a database that no other connection writes (OPFS
/// databases are locked to one worker): nothing to watch for.
#[cfg(target_arch = "wasm32")]
pub(super) async fn token<T>(_store: &SqliteLocalStore<T>) -> Result<Option<u64>> {
    Ok(None)
}
