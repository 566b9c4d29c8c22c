//! The browser's Origin Private File System, through the `opfs-sahpool` VFS of
//! `sqlite-wasm-vfs` (wasm32 only).
//!
//! The VFS is installed once per worker, on the first `SqliteLocalStore::open_opfs`; its pool of
//! OPFS files grows as databases are added. It needs OPFS *sync access handles*,
//! which browsers offer only in dedicated workers: on the main thread, in a browser without
//! OPFS or in a private window where it is disabled, opening fails with
//! [`StorageErrorKind::Unavailable`] and nothing falls back to memory.
//!
//! The pool holds an exclusive access handle on each of its files, so a second worker (another
//! tab) that opens the same pool is refused with [`StorageErrorKind::Locked`] until the first
//! releases it: one writer, never two connections writing one file.

use std::cell::RefCell;

use sqlite_wasm_rs::vfs::VfsFilesManager;
#[cfg(feature = "encryption")]
use sqlite_wasm_rs::vfs::transfer::{DbTransfer, ExportSource};
use sqlite_wasm_vfs::sahpool::{OpfsSAHError, OpfsSAHPoolCfg, OpfsSAHPoolUtil};

use crate::error::{Error, Result, StorageErrorKind};

/// The VFS name used in the database URI: the pool's.
#[cfg(not(feature = "encryption"))]
pub(crate) const VFS: &str = "opfs-sahpool";
/// The VFS name used in the database URI: with the `encryption` feature, the pool wrapped by
/// SQLite3 Multiple Ciphers' VFS, which encrypts the pages of a keyed database and passes those
/// of a plain one through (SQLite3 Multiple Ciphers creates it on the first open by that name).
#[cfg(feature = "encryption")]
pub(crate) const VFS: &str = "multipleciphers-opfs-sahpool";

thread_local! {
    /// The installed pool of this worker (the handle is worker-bound, hence thread-local).
    static POOL: RefCell<Option<OpfsSAHPoolUtil>> = const { RefCell::new(None) };
}

fn pool() -> Option<OpfsSAHPoolUtil> {
    POOL.with(|p| p.borrow().clone())
}

/// Installs the VFS (once per worker) and makes sure the pool has free slots for the database
/// `name` (its file and a rollback journal): the pool's capacity grows as databases are added.
pub(crate) async fn install(name: &str) -> Result<()> {
    let util = match pool() {
        Some(util) => util,
        None => {
            // Concurrent installs in one worker wait for each other and share the pool.
            let util = sqlite_wasm_vfs::sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(
                &OpfsSAHPoolCfg::default(),
                false,
            )
            .await
            .map_err(install_error)?;
            POOL.with(|p| *p.borrow_mut() = Some(util.clone()));
            util
        }
    };
    let files = util.len().map_err(pool_error)?;
    let new = usize::from(!util.contains(&file_name(name)).map_err(pool_error)?);
    util.ensure_capacity(files + 2 * new + 1)
        .await
        .map_err(pool_error)
}

/// Whether [`install`] succeeded in this worker.
pub(crate) fn installed() -> bool {
    pool().is_some()
}

/// Deletes the database `name` and its journal; `false` when there was none.
pub(crate) async fn delete(name: &str) -> Result<bool> {
    uri(name)?;
    install(name).await?;
    let util = pool().expect("installed");
    let _ = util
        .remove(&format!("{}-journal", file_name(name)))
        .map_err(pool_error)?;
    util.remove(&file_name(name)).map_err(pool_error)
}

/// The size and first 16 bytes of the database whose URI is `uri` (as [`uri`] makes it), read
/// through the pool; `None` when it is open, has a hot journal, or is not in the pool.
#[cfg(feature = "encryption")]
pub(crate) fn head(uri: &str) -> Option<(u64, [u8; 16])> {
    let name = uri.strip_prefix("file:")?.split('?').next()?;
    let util = pool()?;
    let mut source = util.open_export(name).ok()?;
    let mut first = [0u8; 16];
    let read = source.read_at(0, &mut first).ok()?;
    Some((source.size(), first)).filter(|_| read == first.len())
}

/// Without the `encryption` feature nothing asks what a file is.
#[cfg(not(feature = "encryption"))]
pub(crate) fn head(_uri: &str) -> Option<(u64, [u8; 16])> {
    None
}

fn file_name(name: &str) -> String {
    format!("/{name}")
}

fn pool_error(e: OpfsSAHError) -> Error {
    let kind = match &e {
        OpfsSAHError::FileInUse(_) | OpfsSAHError::FilesInUse | OpfsSAHError::Busy => {
            StorageErrorKind::Locked
        }
        OpfsSAHError::NoCapacity | OpfsSAHError::OutOfMemory => StorageErrorKind::Full,
        _ => StorageErrorKind::Other,
    };
    Error::Storage {
        kind,
        message: format!("OPFS pool: {e}"),
    }
}

fn install_error(e: OpfsSAHError) -> Error {
    let kind = match &e {
        // Another worker (tab) holds the pool's access handles.
        OpfsSAHError::Opfs { message, .. } if message.contains("NoModificationAllowed") => {
            StorageErrorKind::Locked
        }
        OpfsSAHError::Busy | OpfsSAHError::DirectoryInUse(_) => StorageErrorKind::Locked,
        _ => StorageErrorKind::Unavailable,
    };
    let message = match kind {
        StorageErrorKind::Locked => format!("OPFS is in use by another tab or worker: {e}"),
        _ => format!(
            "OPFS is not available here (it needs a dedicated worker, in a browser and window \
             that offer OPFS sync access handles): {e}"
        ),
    };
    Error::Storage { kind, message }
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
    Ok(format!("file:{}?vfs={VFS}", file_name(name)))
}
