//! The browser's Origin Private File System, through the `opfs-sahpool` VFS of
//! `sqlite-wasm-vfs` (wasm32 only).
//!
//! The VFS is installed once per worker, on the first [`SqliteLocalStore::open_opfs`]
//! (crate::local::sqlite::SqliteLocalStore::open_opfs). It needs OPFS *sync access handles*,
//! which browsers offer only in dedicated workers: on the main thread, in a browser without
//! OPFS or in a private window where it is disabled, opening fails with
//! [`StorageErrorKind::Unavailable`] and nothing falls back to memory.
//!
//! The pool holds an exclusive access handle on each of its files, so a second worker (another
//! tab) that opens the same pool is refused with [`StorageErrorKind::Locked`] until the first
//! releases it: one writer, never two connections writing one file.

use crate::error::{Error, Result, StorageErrorKind};

/// The VFS name used in the database URI.
pub(crate) const VFS: &str = "opfs-sahpool";

static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Installs the VFS (once per worker).
pub(crate) async fn install() -> Result<()> {
    INSTALLED
        .get_or_try_init(|| async {
            let cfg = sqlite_wasm_vfs::sahpool::OpfsSAHPoolCfg::default();
            sqlite_wasm_vfs::sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false)
                .await
                .map(|_| ())
                .map_err(install_error)
        })
        .await
        .map(|_| ())
}

fn install_error(e: impl std::fmt::Debug) -> Error {
    let message = format!("{e:?}");
    // Another worker (tab) holds the pool's access handles.
    let kind = if message.contains("NoModificationAllowed") || message.contains("InvalidState") {
        StorageErrorKind::Locked
    } else {
        StorageErrorKind::Unavailable
    };
    Error::Storage {
        kind,
        message: format!(
            "OPFS is not available here (it needs a dedicated worker, and a browser that \
             offers OPFS sync access handles): {message}"
        ),
    }
}

/// Whether [`install`] succeeded in this worker.
pub(crate) fn installed() -> bool {
    INSTALLED.initialized()
}

/// The SQLite URI of the OPFS database `name` (a plain file name, e.g. `notes.db`).
pub(crate) fn uri(name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid {
        return Err(Error::InvalidInput(format!(
            "OPFS database name {name:?}: use 1-200 ASCII letters, digits, '.', '-' or '_'"
        )));
    }
    Ok(format!("file:/{name}?vfs={VFS}"))
}
