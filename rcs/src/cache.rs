//! Opening the local cache: the one place the CLI opens a [`SqliteLocalStore`], so every command
//! (the crash test's workers and checks included) honours `RCS_CACHE_KEY`.
//!
//! The key of an encrypted cache comes from the environment only, never from a flag (a flag
//! would show in `ps` and shell history). It needs an `rcs` built with the `encryption` feature;
//! without it, a set `RCS_CACHE_KEY` is an error rather than a cache silently left in clear.

use std::env::VarError;
use std::path::Path;

use anyhow::bail;
use remote_cache_sync::Record;
use remote_cache_sync::local::sqlite::{SqliteLocalStore, SqliteLocalStoreBuilder};

/// The environment variable holding the cache's encryption key.
pub const KEY_ENV: &str = "RCS_CACHE_KEY";

/// Opens (creating as needed) the cache at `path`, encrypted with `RCS_CACHE_KEY` when set.
pub async fn open<T: Record>(path: impl AsRef<Path>) -> anyhow::Result<SqliteLocalStore<T>> {
    let builder = SqliteLocalStore::builder(path);
    let builder = match std::env::var(KEY_ENV) {
        Ok(key) => with_key(builder, key)?,
        Err(VarError::NotPresent) => builder,
        Err(VarError::NotUnicode(_)) => bail!("{KEY_ENV} is not valid UTF-8"),
    };
    Ok(builder.open().await?)
}

#[cfg(feature = "encryption")]
fn with_key<T: Record>(
    builder: SqliteLocalStoreBuilder<T>,
    key: String,
) -> anyhow::Result<SqliteLocalStoreBuilder<T>> {
    Ok(builder.key(key))
}

#[cfg(not(feature = "encryption"))]
fn with_key<T: Record>(
    _builder: SqliteLocalStoreBuilder<T>,
    _key: String,
) -> anyhow::Result<SqliteLocalStoreBuilder<T>> {
    bail!(
        "{KEY_ENV} is set, but this rcs was built without the `encryption` feature: rebuild it \
         with `--features encryption` (it needs OpenSSL's libcrypto), or unset {KEY_ENV}"
    )
}
