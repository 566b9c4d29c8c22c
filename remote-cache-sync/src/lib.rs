//! # remote-cache-sync
//!
//! A local, persistent cache of remote data that works offline, never loses a write, and
//! converges with the remote source of truth.
//!
//! - Reads follow a [`CachePolicy`].
//! - Offline writes go to the [`LocalStore`] and its pending-op queue in one transaction;
//!   [`SqliteLocalStore`](local::sqlite::SqliteLocalStore) commits it with `synchronous = FULL`,
//!   so a write whose enqueue returned survives a process crash and a power loss.
//! - [`Orchestrator::synchronize`] pushes the queue, pulls [`Delta`] pages from the
//!   [`RemoteStore`], merges them through a [`ConflictResolver`] and saves the [`SyncPoint`],
//!   all per [`SyncScope`].
//!
//! Backends sit behind cargo features: `sqlite` (default) for [`SqliteLocalStore`](local::sqlite::SqliteLocalStore),
//! `http`, `postgres` and `pocketbase` for remotes, `server` for our sync server, and `testing`
//! for the public conformance suites.
//!
//! The library also builds for the browser (`wasm32-unknown-unknown`) with features `sqlite`
//! (in memory or on OPFS: `SqliteLocalStore::open_opfs`), `encryption` (SQLite3 Multiple
//! Ciphers in SQLCipher's format, where natively it is SQLCipher), `http`, `pocketbase` and
//! `testing`; `server`, `postgres` and `fault-proxy` are native-only. There, store futures are not `Send`
//! and tasks run on the browser's event loop (see the `rt` module source for the decisions).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(all(target_arch = "wasm32", feature = "server"))]
compile_error!("feature `server` is native-only: it does not build for wasm32");
#[cfg(all(target_arch = "wasm32", feature = "postgres"))]
compile_error!("feature `postgres` is native-only: it does not build for wasm32");
#[cfg(all(target_arch = "wasm32", feature = "fault-proxy"))]
compile_error!("feature `fault-proxy` is native-only: it does not build for wasm32");

pub mod conflict;
pub mod delta;
pub mod error;
pub mod json_record;
pub mod local;
pub mod op;
pub mod orchestrator;
pub mod policy;
pub mod query;
pub mod reconcile;
pub mod record;
pub mod remote;
mod rt;
pub mod scope;
#[cfg(feature = "server")]
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use conflict::{
    ClientWins, ConflictResolver, FnResolver, LastWriteWins, Resolution, ServerWins,
};
pub use delta::{Cursor, Delta, QuarantinedRow, SyncPoint};
pub use error::{Error, Result, StorageErrorKind};
pub use json_record::JsonRecord;
pub use local::memory::InMemoryLocalStore;
pub use local::{Ack, LocalStore, QueueStatus, ScopePause, Settlement};
pub use op::{OpId, OpKind, PendingOp, PushOutcome};
pub use orchestrator::{
    BackgroundSync, ConflictOutcome, Orchestrator, OrchestratorBuilder, OrchestratorConfig, Paused,
    ResolvedConflict, ScopeStatus, SyncPhase, SyncReport, SyncStatus, Watch,
};
pub use policy::CachePolicy;
pub use query::{Direction, Filter, FilterOp, OrderBy, QuerySpec};
pub use reconcile::ReconcileReport;
pub use record::{Change, Record, Tombstone};
pub use remote::RemoteStore;
pub use remote::memory::InMemoryRemoteStore;
pub use scope::SyncScope;

pub use jiff::Timestamp;

// The README's Rust example is `examples/quickstart.rs` verbatim (checked, and run against a real
// server, by `tests/readme_quickstart.rs`), so it carries no hidden doctest lines.
