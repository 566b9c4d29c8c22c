//! The JavaScript/TypeScript API of remote-cache-sync, for web developers who do not write Rust.
//!
//! In the browser (`wasm32-unknown-unknown`) this crate exports, through wasm-bindgen, a
//! `RemoteCache` class over [`JsonRecord`](remote_cache_sync::JsonRecord)s: a SQLite cache on
//! OPFS that syncs one scope with an HTTP remote (`rcs serve`). OPFS needs a dedicated worker,
//! so the npm package `rcs web-setup` writes runs the class in a worker (`worker.js`) and gives
//! the page a proxy with the same methods (`remote-cache.js`); every call returns a Promise that
//! rejects with `{ code, message, retryable }`, `code` being [`error_code`]'s answer.
//!
//! Encryption at rest: in the browser this crate builds the library with its `encryption`
//! feature, so SQLite is SQLite3 Multiple Ciphers (`sqlite-wasm-rs`'s `sqlite3mc`), used with
//! its SQLCipher scheme and SQLCipher 4's parameters (AES-256 pages with an HMAC-SHA512 each,
//! key by PBKDF2-HMAC-SHA512 with 256,000 iterations: the format of native SQLCipher).
//! `RemoteCache.open({ ..., key })` creates or opens the OPFS database encrypted with `key`; a
//! wrong key rejects with `wrong_key`, a missing one with `key_required`, and
//! `cache.rekey(newKey)` changes it.
//!
//! Natively only [`error_code`] is built (so the workspace builds and tests everywhere).

mod code;

pub use code::error_code;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod convert;
