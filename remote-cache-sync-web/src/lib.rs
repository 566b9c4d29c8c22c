//! The JavaScript/TypeScript API of remote-cache-sync, for web developers who do not write Rust.
//!
//! In the browser (`wasm32-unknown-unknown`) this crate exports, through wasm-bindgen, a
//! `RemoteCache` class over [`JsonRecord`](remote_cache_sync::JsonRecord)s: a SQLite cache on
//! OPFS that syncs one scope with an HTTP remote (`rcs serve`). OPFS needs a dedicated worker,
//! so the npm package `rcs web-setup` writes runs the class in a worker (`worker.js`) and gives
//! the page a proxy with the same methods (`remote-cache.js`); every call returns a Promise that
//! rejects with `{ code, message, retryable }`, `code` being [`error_code`]'s answer.
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
