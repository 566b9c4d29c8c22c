//! The [`RemoteStore`] trait: the source of truth, reached over the network.
//!
//! Implementations: [`InMemoryRemoteStore`](memory::InMemoryRemoteStore) (tests, demos) and,
//! behind features, our HTTP protocol, PostgreSQL, PocketBase, Supabase and Appwrite. Every
//! implementation must pass [`testing::remote`](crate::testing). [`from_url`] picks the remote a
//! URL names (`http://`, `pocketbase://`, `supabase://`, `appwrite://`), for tools such as `rcs`.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::query::QuerySpec;
use crate::reconcile::{DigestRequest, DigestResponse};
use crate::record::{Record, Tombstone};
use crate::scope::SyncScope;

pub mod memory;
#[cfg(any(feature = "pocketbase", feature = "supabase", feature = "appwrite"))]
mod narrow;
mod parse;
pub mod realtime;

pub use parse::{RemoteOptions, from_url, from_url_with};
pub use realtime::{RealtimeOptions, RemoteEvent, RemoteEvents};

#[cfg(feature = "appwrite")]
pub mod appwrite;
#[cfg(feature = "http-base")]
mod client;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "pocketbase")]
pub mod pocketbase;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "http", feature = "server"))]
pub mod protocol;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "supabase")]
pub mod supabase;

/// The remote side of sync.
///
/// In the browser (`wasm32`) the methods' futures are not `Send` (`async_trait(?Send)`);
/// natively they are. Implement the trait with the same pair of attributes:
/// `#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]` and
/// `#[cfg_attr(not(target_arch = "wasm32"), async_trait)]`.
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
pub trait RemoteStore<T: Record>: Send + Sync + 'static {
    /// Short adapter name used in errors and logs (`"memory"`, `"http"`, `"pocketbase"`, ...).
    fn name(&self) -> &'static str;

    /// A live record by id (`None` when missing or deleted).
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>>;

    /// Up to `limit` changes (upserts and tombstones) of `scope` after `since` (`None`: from the
    /// beginning), in feed order, each record at most once, with the cursor to continue from.
    ///
    /// Contract: pulling repeatedly from the returned cursors until `has_more` is false sees
    /// every change committed before the first pull started, even under concurrent writers
    /// whose transactions commit out of order. A cursor must never be "server now".
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>>;

    /// Pushes ops; returns one outcome per op, in order. Each op is checked with [`base_matches`]
    /// against the remote's current version; idempotent by `(scope, op_id)` (an op applied before
    /// in this scope answers [`PushOutcome::Applied`] again and changes nothing; the same op id in
    /// another scope is another op). `Applied` carries [`applied_version`]. An `Err` means nothing
    /// can be said about any op (transport failure): the caller keeps them queued.
    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>>;

    /// The remote's clock.
    async fn server_time(&self) -> Result<Timestamp>;

    /// Unconditionally upserts records (the seed's `batchUpsert`).
    async fn batch_upsert(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        let ops = items
            .iter()
            .map(|r| PendingOp::upsert(scope.clone(), OpKind::Update, r.clone()))
            .collect();
        push_unconditionally(self, scope, ops).await
    }

    /// Unconditionally deletes records (tombstones; the seed's `batchDelete`).
    async fn batch_delete(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        let ops = tombstones
            .iter()
            .map(|t| PendingOp::<T>::delete(scope.clone(), t.id.clone(), t.deleted_at))
            .collect();
        push_unconditionally(self, scope, ops).await
    }

    /// How many changes of `scope`'s feed wait after `since`, when the remote can tell cheaply
    /// (the default: `Ok(None)`, it cannot). A progress hint only, never used to decide what
    /// to pull: the orchestrator asks it once per pull that spans several pages, to fill
    /// [`ScopeStatus::pull_total`](crate::ScopeStatus::pull_total), and ignores its errors.
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        let _ = (scope, since);
        Ok(None)
    }

    /// Answers one round of reconciliation ([`reconcile`](crate::reconcile)): the count and hash
    /// of the live rows of `scope` per bucket group, and the `(id, version)` rows of the listed
    /// buckets, computed where the data lives, with [`DigestResponse::bytes`] set to what the
    /// answer cost on the wire. The default, `Ok(None)`, means the remote cannot: the
    /// orchestrator then lists the scope's whole feed once and digests it itself.
    ///
    /// Contract: the same answer [`RowSet::answer`](crate::reconcile::RowSet::answer) gives over
    /// the scope's live rows (not deleted, decodable or not) with their canonical versions.
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<Option<DigestResponse>> {
        let _ = (scope, request);
        Ok(None)
    }

    /// Runs `query` on the remote over the live records of `scope` (tombstones never match),
    /// with exactly the semantics of [`QuerySpec::apply`] (see [`crate::query`]), when the remote
    /// can (the default: `Ok(None)`, it cannot, and
    /// [`Orchestrator::read`](crate::Orchestrator::read) falls back to syncing the whole scope
    /// and querying the cache).
    ///
    /// Contract: the answer is the same rows, in the same order, as the reference evaluation
    /// over the remote's live records, or an error: [`Error::InvalidQuery`] for a spec that
    /// fails [`QuerySpec::validate`] or compares an array field with a scalar in a returned
    /// record, [`Error::Unsupported`] naming the operator when the backend cannot express one.
    /// Never a wrong answer. Field names reach the backend only after
    /// [`validate_field`](crate::query::validate_field); values are bound or escaped. Nothing of
    /// another scope is ever considered. See [`crate::testing::query`] for the conformance case.
    async fn query(&self, scope: &SyncScope, query: &QuerySpec) -> Result<Option<Vec<T>>> {
        let _ = (scope, query);
        Ok(None)
    }

    /// Realtime change notifications for `scopes`, when the remote offers them (the default:
    /// `None`, and the background sync keeps polling).
    ///
    /// Contract: the stream yields [`RemoteEvent::Reconnected`] each time it starts listening
    /// (first connect and every reconnect) and [`RemoteEvent::Changed`] for a subscribed scope
    /// after a change to it commits; never data (see [`realtime`]). A change committed after
    /// the pull that answers a `Reconnected` started is always followed by an event. The
    /// implementation reconnects by itself; dropping the stream stops all its work. Refused
    /// credentials or scopes do not end it: the pulls it triggers report them.
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<RemoteEvents> {
        let _ = scopes;
        None
    }
}

/// Pushes ops, rebasing each conflicting op on the remote's current version and retrying, so
/// the writes land whatever the remote held.
async fn push_unconditionally<T: Record, R: RemoteStore<T> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    mut ops: Vec<PendingOp<T>>,
) -> Result<()> {
    for _ in 0..5 {
        let outcomes = remote.push(scope, &ops).await?;
        let mut retry = Vec::new();
        for (mut op, outcome) in ops.into_iter().zip(outcomes) {
            match outcome {
                PushOutcome::Applied { .. } => {}
                PushOutcome::Conflict { current } => {
                    op.base_version = current.map(|c| c.version());
                    op.op_id = crate::op::OpId::generate();
                    retry.push(op);
                }
                PushOutcome::Rejected { reason } => {
                    return Err(Error::Rejected {
                        backend: remote.name(),
                        status: None,
                        message: reason,
                    });
                }
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        ops = retry;
    }
    Err(Error::Conflict {
        id: ops.first().map(|o| o.id.clone()).unwrap_or_default(),
    })
}

/// The optimistic-concurrency rule every remote applies to a pushed op, given the remote's
/// current state of the record: `None` when absent, else `(version, is_tombstone)`.
///
/// An op applies when the record is absent, or when the op was made on top of exactly the
/// remote's current version (`base_version == Some(current version)`), tombstones included.
/// Every kind follows the same rule, so a blind write never replaces a version its writer has
/// not seen, not even a deletion: it conflicts and the client's resolver decides (a create over
/// a newer, unseen delete must not resurrect the record silently).
pub fn base_matches(
    kind: OpKind,
    base_version: Option<Timestamp>,
    current: Option<(Timestamp, bool)>,
) -> bool {
    let _ = kind; // Same rule for creates, updates and deletes.
    match (base_version, current) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(base), Some((version, _))) => base == version,
    }
}

/// The version a remote stores when it applies `op`, and so what it answers in
/// [`PushOutcome::Applied`]: [`Change::version`](crate::record::Change::version) of the op's
/// change, i.e. the payload's `deleted_at` for a payload tombstone, its `updated_at` otherwise,
/// and the tombstone time for a delete. The writer bases its next op on this version, so
/// answering anything else makes that op conflict with the writer's own write.
pub fn applied_version<T: Record>(op: &PendingOp<T>) -> Timestamp {
    match (&op.payload, op.kind) {
        (Some(p), OpKind::Create | OpKind::Update) => {
            p.deleted_at().unwrap_or_else(|| p.updated_at())
        }
        _ => op.updated_at,
    }
}

/// A shared, type-erased remote.
pub type DynRemoteStore<T> = dyn RemoteStore<T>;

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record, R: RemoteStore<T> + ?Sized> RemoteStore<T> for std::sync::Arc<R> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        (**self).get_by_id(scope, id).await
    }
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        (**self).fetch_since(scope, since, limit).await
    }
    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        (**self).push(scope, ops).await
    }
    async fn server_time(&self) -> Result<Timestamp> {
        (**self).server_time().await
    }
    async fn batch_upsert(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        (**self).batch_upsert(scope, items).await
    }
    async fn batch_delete(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        (**self).batch_delete(scope, tombstones).await
    }
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        (**self).count_since(scope, since).await
    }
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &DigestRequest,
    ) -> Result<Option<DigestResponse>> {
        (**self).digest(scope, request).await
    }
    async fn query(&self, scope: &SyncScope, query: &QuerySpec) -> Result<Option<Vec<T>>> {
        (**self).query(scope, query).await
    }
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<RemoteEvents> {
        (**self).subscribe(scopes)
    }
}
