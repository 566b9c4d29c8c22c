//! [`CachePolicy`]: where reads come from.

/// How [`Orchestrator::read`](crate::Orchestrator::read) and
/// [`Orchestrator::get`](crate::Orchestrator::get) answer.
///
/// Every policy answers from the local cache in the end; they differ in whether a sync of the
/// scope (push the queue, then pull) runs first and what happens when it fails. Local writes
/// are always visible, whatever the policy: they are in the cache before they are pushed.
///
/// | policy | syncs first | remote unreachable | other sync failures |
/// |---|---|---|---|
/// | [`RemoteFirst`](Self::RemoteFirst) (default) | yes, and waits | answers from the cache, **possibly stale** | returned as the error |
/// | [`LocalFirst`](Self::LocalFirst) | no: starts one in the background | answers from the cache | logged, not returned |
/// | [`OfflineOnly`](Self::OfflineOnly) | never | answers from the cache | — |
/// | [`OnlineOnly`](Self::OnlineOnly) | yes, and waits | returned as the error | returned as the error |
///
/// ## Stale answers from `RemoteFirst`
///
/// When the sync fails with a retryable error ([`Error::is_retryable`](crate::Error::is_retryable):
/// [`Unavailable`](crate::Error::Unavailable), [`RateLimited`](crate::Error::RateLimited), a
/// locked cache file), `RemoteFirst` answers from the cache as it is: what was pulled last time
/// plus local writes. **The answer does not say that it fell back** (only a `debug` trace
/// event does). To know, either
/// - read with [`OnlineOnly`](Self::OnlineOnly) and, on a retryable error, read again with
///   [`OfflineOnly`](Self::OfflineOnly), which is exactly what `RemoteFirst` does, made
///   visible to you; or
/// - call [`Orchestrator::synchronize`](crate::Orchestrator::synchronize) yourself and keep its
///   result, then read with [`OfflineOnly`](Self::OfflineOnly);
/// - [`LocalStore::sync_point`](crate::LocalStore::sync_point) gives the server time of the
///   last successful pull of the scope: how old the cache may be.
///
/// ## Queries answered by the remote
///
/// With `RemoteFirst` and `OnlineOnly`, [`Orchestrator::read`](crate::Orchestrator::read) runs
/// its [`QuerySpec`](crate::QuerySpec) on the remote when the remote can
/// ([`RemoteStore::query`](crate::RemoteStore::query)) instead of syncing the whole scope:
/// 1. the scope's queue is pushed (no pull), so the app's own writes are on the remote;
/// 2. the remote evaluates the filters, order, limit and offset;
/// 3. records that still have a queued or parked op (a requeued conflict, a refused write, a
///    write made meanwhile) are answered as the cache holds them, exactly as a cache read
///    would: a local write never disappears from an answer;
/// 4. the answer is **not** written into the cache (it carries no cursor, and a row written
///    outside the pull could overwrite a newer one a concurrent pull applied); the cache
///    catches up on the next sync, which `RemoteFirst` starts in the background after each
///    remote answer (`OnlineOnly` does not).
///
/// A remote without query support, or one that cannot express an operator
/// ([`Error::Unsupported`](crate::Error::Unsupported)), gets the sync-then-cache path.
/// [`Orchestrator::get`](crate::Orchestrator::get) does the same with the record's id
/// ([`RemoteStore::get_by_id`](crate::RemoteStore::get_by_id), which every remote has): push,
/// read one record, overlay a queued local write, nothing written into the cache.
///
/// ## Hung networks
///
/// A sync that cannot reach the remote fails only when a request times out, so on a network
/// that drops packets instead of refusing connections, `RemoteFirst` and `OnlineOnly` wait a
/// whole request timeout before answering (the remote's setting: 30 s by default for
/// `HttpRemoteStore` and PocketBase, connecting limited
/// to 10 s for HTTP). Lower the remote's timeout, or read with `LocalFirst` or `OfflineOnly`
/// where a user is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CachePolicy {
    /// Sync first, then answer from the cache; when the sync fails with a retryable error
    /// (remote unreachable), answer from the cache anyway, which may be stale, without saying
    /// so (see above). Other errors (credentials, a refused scope, a broken cache) are returned.
    #[default]
    RemoteFirst,
    /// Answer from the cache at once and start a sync of the scope in the background (a task
    /// on the current Tokio runtime; its failures are logged, and the next read sees its
    /// result).
    LocalFirst,
    /// Answer from the cache; never touch the network.
    OfflineOnly,
    /// Sync, then answer from the cache; fail with the sync's error when it fails.
    OnlineOnly,
}
