//! [`AppwriteRemoteStore`]: a [`RemoteStore`](crate::RemoteStore) over Appwrite's Databases REST
//! API (the documents API of Appwrite 1.8, with its transactions; TablesDB's `rows` API is the
//! same engine under other names). Attributes, indexes, permissions and settings are in
//! `docs/backends/appwrite.md`.
//!
//! # Mapping
//! - A [`SyncScope`](crate::SyncScope) is a collection (the scope name) plus `equal` queries
//!   on string attributes (the scope keys, e.g. `owner`). Queries are JSON, so scope values are
//!   always JSON string values, never query syntax.
//! - A record's top-level JSON fields are attributes of the same name; its id is in
//!   `record_id`. The document id is the record id when the scope has no keys and the id fits
//!   Appwrite's id rules, else a UUID v5 of (scope, id): see [`document_id`].
//! - `updated_at` / `deleted_at` are string attributes holding our exact versions. A delete
//!   writes a tombstone (`deleted_at` set) instead of removing the document, so pulls see it.
//!   Documents hard-deleted by other apps are not seen by pulls; reconciliation finds them.
//! - Fields listed in [`AppwriteConfig::json_attributes`] are string attributes holding the
//!   field's JSON text, for values of mixed types (module `decode`).
//!
//! # Queries and reconciliation
//! [`query`](crate::RemoteStore::query) lists the live documents of the scope that pass
//! Appwrite `equal` (and, on JSON attributes, `contains`) queries built from the spec, and
//! answers the spec exactly over them (module `search`; a spec Appwrite cannot narrow is
//! [`Unsupported`](crate::Error::Unsupported), and the orchestrator syncs instead).
//! [`digest`](crate::RemoteStore::digest) lists the scope with `select` (ids and versions
//! only) and digests it on the client (module `digest`).
//!
//! # Pulls
//! `listDocuments` with `equal` on the scope keys, `orderAsc("$updatedAt")`, `orderAsc("$id")`,
//! `limit`, `total=false`, and an explicit keyset (`$updatedAt > u OR ($updatedAt = u AND $id >
//! i)`) rather than `cursorAfter`: Appwrite resolves `cursorAfter(<id>)` with the cursor
//! document's *current* values, so a cursor document updated (or deleted) between two pages
//! would skip rows (or fail with `general_cursor_not_found`). `$updatedAt` is stamped before the
//! write commits, so the cursor keeps an overlap window and a seen-set ([`cursor`]).
//! `$sequence` is assigned at creation and never changes on update: it cannot order changes.
//! While the caller applies a page that has more, the next one is already being fetched
//! ([`AppwriteConfig::prefetch`], on by default; the shared prefetcher of every HTTP adapter).
//!
//! # Pushes: compare-and-set through transactions
//! Each push (≤ [`AppwriteConfig::batch_size`] ops) is one Appwrite transaction:
//! 1. `createTransaction`, then `createOperations` stages one `upsert` per op. Appwrite stamps
//!    every staged operation with the time it was staged (`S`);
//! 2. the documents are read (after `S`), and each op is checked with
//!    [`base_matches`](crate::remote::base_matches) against them, in order. Ops that conflict,
//!    are rejected, or are replays already applied are answered and the transaction is rolled
//!    back and staged again without them;
//! 3. otherwise `updateTransaction(commit)`: Appwrite replays the staged operations inside one
//!    database transaction and fails the commit with `409 transaction_conflict` when a document
//!    was updated after its operation's `S`; the adapter then reads and decides again.
//!
//! A concurrent write is thus caught either by the read (it committed before the read) or by
//! the commit (it was stamped after `S`). **Remaining race window**: a write stamped before `S`
//! whose own commit becomes visible only after our read (its request was in flight across our
//! staging and our read, a few milliseconds on a healthy server) is neither seen nor detected,
//! and our commit overwrites it. Appwrite offers no conditional write that would close it.
//!
//! Replays are idempotent: an op whose version is already stored with the same content is
//! answered `Applied` without a write. Outcomes are per op; a commit refused for one op's data
//! (`400`) is retried op by op so only that op is rejected.
//!
//! # Realtime
//! [`subscribe`](crate::RemoteStore::subscribe) listens on Appwrite's realtime WebSocket, one
//! channel `databases.<db>.collections.<collection>.documents` per scope collection, with the
//! store's JWT; every event is only a trigger to pull (module `realtime`). Native only, and only
//! with a [`Credential::Jwt`]: Appwrite's realtime does not read API keys (the connection would
//! be a guest's, deaf to documents readable by users only), and a browser WebSocket cannot send
//! the JWT header. Otherwise `subscribe` returns `None` and the orchestrator polls.
//!
//! # Auth and failures
//! [`Credential::ApiKey`] or [`Credential::Jwt`], always with `X-Appwrite-Project`. An expired
//! JWT fails with [`Error::Unauthorized`](crate::Error) before any request is sent, so no empty
//! page is ever trusted from it. Statuses go through the shared status table: 401 unauthorized,
//! 403/404 refused (pauses the scope; a 404 naming the collection or database is
//! [`NotFound`](crate::Error::NotFound)), 429 rate limited, 408/5xx unavailable, other 4xx
//! rejected. Secrets never appear in `Debug`, errors or logs.

mod builder;
mod client;
mod credential;
pub mod cursor;
mod decode;
mod digest;
mod push;
mod query;
#[cfg(not(target_arch = "wasm32"))]
mod realtime;
mod search;
mod store;

pub(crate) use builder::from_url_config;
pub use builder::{AppwriteBuilder, AppwriteConfig, from_url, from_url_with};
pub use credential::Credential;
pub use decode::{RECORD_ID_ATTR, document_id, fits_id_rules};
pub use store::AppwriteRemoteStore;
