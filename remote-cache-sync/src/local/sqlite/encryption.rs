//! Encryption at rest: a cache file encrypted with SQLCipher (feature `encryption`).
//!
//! With the feature, the bundled SQLite is SQLCipher natively (rusqlite's `bundled-sqlcipher`,
//! AES-256 pages with an HMAC each, OpenSSL's libcrypto). In the browser (wasm32) it is
//! SQLite3 Multiple Ciphers (`sqlite-wasm-rs`'s `sqlite3mc`), set to its SQLCipher scheme with
//! SQLCipher 4's parameters (`cipher = 'sqlcipher'`, `legacy = 4`): the same file format and key
//! derivation, so both run the one code path below (`PRAGMA key`, `PRAGMA rekey`, the same
//! typed errors), and a cache exported from the browser opens natively with its key. A store
//! opened with
//! [`SqliteLocalStoreBuilder::key`](super::SqliteLocalStoreBuilder::key) keys every connection
//! it opens (writer, reader, change watcher) before its first statement, so nothing of the
//! records, the queue or the WAL reaches the disk in clear. Without a key the file is plain
//! SQLite, as without the feature.
//!
//! Opening fails closed, with a typed error and the file untouched:
//! - an encrypted file without a key: [`StorageErrorKind::KeyRequired`];
//! - a wrong key, or a key for a file that is not encrypted: [`StorageErrorKind::WrongKey`];
//! - a key on a build whose SQLite cannot encrypt: [`StorageErrorKind::Unavailable`] (never a
//!   plaintext file the app believes encrypted).
//!
//! An encrypted file is recognised without its key by its first bytes: a plain SQLite file
//! starts with the text `SQLite format 3\0`, a SQLCipher file with a random salt, and its size
//! is a whole number of pages. (In the browser the bytes are read through the OPFS pool, see
//! `opfs::head`.) Random bytes of such a size look the same: a build with the
//! feature reports them as `KeyRequired` (the message says "or it is not a database"), one
//! without it as [`StorageErrorKind::Corrupt`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::error::map_err;
use crate::error::{Error, Result, StorageErrorKind};

/// The secret that opens an encrypted cache: a passphrase from which SQLCipher derives the page
/// key (PBKDF2-HMAC-SHA512, 256,000 iterations: each connection pays that once, when it opens;
/// in the browser, SQLite3 Multiple Ciphers' SQLCipher scheme derives it the same way).
///
/// Its `Debug` never shows it, and no error message contains it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(Arc<str>);

impl EncryptionKey {
    /// A key from a passphrase. An empty one is refused when the store opens (SQLCipher would
    /// take it as "no encryption").
    pub fn new(passphrase: impl Into<String>) -> Self {
        EncryptionKey(passphrase.into().into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for EncryptionKey {
    fn from(s: &str) -> Self {
        EncryptionKey::new(s)
    }
}

impl From<String> for EncryptionKey {
    fn from(s: String) -> Self {
        EncryptionKey::new(s)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// The first 16 bytes of every plain SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Pragmas that pick the cipher before `PRAGMA key`, and the pragma that answers only when this
/// SQLite can encrypt. SQLCipher: silence its diagnostics on stderr (e.g. "hmac check failed"
/// on a wrong key: the typed error says it all), `cipher_version`.
#[cfg(not(target_arch = "wasm32"))]
const SCHEME: (&[(&str, &str)], &str) = (&[("cipher_log_level", "NONE")], "cipher_version");
/// SQLite3 Multiple Ciphers (the browser): its SQLCipher scheme with SQLCipher 4's parameters
/// (4 KiB pages, PBKDF2-HMAC-SHA512 with 256,000 iterations, HMAC-SHA512), as natively; `cipher`
/// then answers `sqlcipher`.
#[cfg(target_arch = "wasm32")]
const SCHEME: (&[(&str, &str)], &str) = (&[("cipher", "sqlcipher"), ("legacy", "4")], "cipher");

/// Keys a freshly opened connection (before its first statement), and checks that this SQLite
/// can encrypt at all.
pub(super) fn apply(conn: &Connection, key: &EncryptionKey) -> Result<()> {
    if key.expose().is_empty() {
        return Err(Error::InvalidInput(
            "the encryption key is empty (SQLCipher would leave the cache in clear)".into(),
        ));
    }
    let (setup, probe) = SCHEME;
    for (name, value) in setup {
        // Some answer with the value set (a row), which `pragma_update` accepts.
        conn.pragma_update(None, name, value).map_err(map_err)?;
    }
    conn.pragma_update(None, "key", key.expose())
        .map_err(|e| keyless(map_err(e)))?;
    // Plain SQLite ignores `PRAGMA key` and the probe; an encrypting one answers it.
    let cipher: Option<String> = conn
        .query_row(&format!("PRAGMA {probe}"), [], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(map_err(e)),
        })?;
    if cipher.is_none() {
        return Err(Error::Storage {
            kind: StorageErrorKind::Unavailable,
            message: "this build's SQLite cannot encrypt: enable remote-cache-sync's \
                      `encryption` feature"
                .into(),
        });
    }
    Ok(())
}

/// Changes the key of the open, encrypted database behind `conn` (which must be the only
/// connection this process has open on it). WAL is switched off around SQLCipher's `rekey`,
/// which rewrites every page in one rollback-journal transaction (a crash leaves the old key
/// valid), then on again (SQLite3 Multiple Ciphers, in the browser, needs the same: it cannot
/// rekey in WAL mode). Another process holding the file fails it with
/// [`StorageErrorKind::Locked`], leaving the old key in place.
#[cfg(feature = "encryption")]
pub(super) fn rekey(conn: &Connection, new: &EncryptionKey) -> Result<()> {
    if new.expose().is_empty() {
        return Err(Error::InvalidInput(
            "the new encryption key is empty (SQLCipher would decrypt the cache)".into(),
        ));
    }
    let mode = |m: &str| -> Result<String> {
        conn.query_row(&format!("PRAGMA journal_mode = {m}"), [], |r| r.get(0))
            .map_err(map_err)
    };
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(map_err)?;
    let left = mode("DELETE")?;
    if !left.eq_ignore_ascii_case("delete") {
        let _ = mode("WAL");
        return Err(Error::Storage {
            kind: StorageErrorKind::Locked,
            message: "cannot rekey: another connection has the cache open".into(),
        });
    }
    let rekeyed = conn
        .pragma_update(None, "rekey", new.expose())
        .map_err(|e| keyless(map_err(e)));
    let back = mode("WAL");
    rekeyed?;
    back.map(|_| ())
}

/// Classifies a failed open of `path` ("file is not a database" and the like) by what the file
/// is: encrypted without a key given, keyed wrongly, or really not a database.
pub(super) fn classify_open_error(e: Error, path: &Path, keyed: bool) -> Error {
    let Error::Storage {
        kind: StorageErrorKind::Corrupt,
        message,
    } = e
    else {
        return e;
    };
    match (looks_encrypted(path), keyed) {
        // Random bytes look the same: only a build that can encrypt calls them a key matter.
        (Some(true), false) if cfg!(feature = "encryption") => Error::Storage {
            kind: StorageErrorKind::KeyRequired,
            message: format!(
                "{}: the cache is encrypted (or it is not a database at all); open it with its \
                 key ({message})",
                path.display()
            ),
        },
        (Some(true), false) => Error::Storage {
            kind: StorageErrorKind::Corrupt,
            message: format!(
                "{}: not a database, or an encrypted cache (which needs the `encryption` \
                 feature and its key) ({message})",
                path.display()
            ),
        },
        (Some(true), true) => Error::Storage {
            kind: StorageErrorKind::WrongKey,
            message: format!(
                "{}: the key does not open this encrypted cache ({message})",
                path.display()
            ),
        },
        (Some(false), true) if is_plain_sqlite(path) => Error::Storage {
            kind: StorageErrorKind::WrongKey,
            message: format!(
                "{}: the cache is not encrypted; open it without a key",
                path.display()
            ),
        },
        _ => Error::Storage {
            kind: StorageErrorKind::Corrupt,
            message,
        },
    }
}

/// Whether the file at `path` looks like a SQLCipher database: no SQLite header, and a size
/// that is a whole, non-zero number of 4 KiB pages (`None` when it cannot be read).
fn looks_encrypted(path: &Path) -> Option<bool> {
    let (len, first) = head(path)?;
    Some(len >= 4096 && len % 4096 == 0 && &first != SQLITE_HEADER)
}

/// Whether the file at `path` starts with SQLite's header, i.e. is a plain (unencrypted)
/// database: an encrypted cache's first bytes are ciphertext. `false` when it cannot be read.
/// In the browser `path` is a store's [`path`](super::SqliteLocalStore::path) on OPFS, read
/// while no store has it open.
pub fn is_plain_sqlite(path: &Path) -> bool {
    head(path).is_some_and(|(_, first)| &first == SQLITE_HEADER)
}

/// The size and first 16 bytes of the database file at `path`.
#[cfg(not(target_arch = "wasm32"))]
fn head(path: &Path) -> Option<(u64, [u8; 16])> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut first = [0u8; 16];
    file.read_exact(&mut first).ok()?;
    Some((len, first))
}

/// The size and first 16 bytes of the OPFS database whose URI is `path` (not while open).
#[cfg(target_arch = "wasm32")]
fn head(path: &Path) -> Option<(u64, [u8; 16])> {
    super::opfs::head(&path.to_string_lossy())
}

/// SQLCipher's messages never contain the key, but keep it that way if one ever did: errors of
/// keying are reported without the engine's text.
fn keyless(e: Error) -> Error {
    match e {
        Error::Storage { kind, .. } => Error::Storage {
            kind,
            message: "setting the encryption key failed".into(),
        },
        other => other,
    }
}

#[cfg(feature = "encryption")]
impl<T: crate::record::Record> super::SqliteLocalStore<T> {
    /// Changes the key of an encrypted cache (feature `encryption`): every page is re-encrypted
    /// with `new_key` in one transaction, so a crash leaves the old key valid. This store's own
    /// connections follow; another process with the file open makes it fail with
    /// [`StorageErrorKind::Locked`] and the old key stays. A cache opened without a key is
    /// refused ([`Error::InvalidInput`]): encrypting a plain cache means syncing a new one.
    /// In the browser it works the same on an OPFS cache.
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
                **r = Connection::open_in_memory().map_err(map_err)?;
            }
            let rekeyed = rekey(&conn, &new_key);
            if rekeyed.is_ok() {
                *key = Some(new_key);
            }
            if let Some(r) = reader.as_mut() {
                **r = super::schema::open_reader(path, inner.busy_timeout, key.as_ref())?;
            }
            rekeyed
        })
        .await
    }
}
