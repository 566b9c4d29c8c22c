//! [`CachePolicy`]: where reads come from.

/// How [`Orchestrator::read`](crate::Orchestrator::read) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CachePolicy {
    /// Sync first, then answer from the cache; when the remote is unreachable, answer from the
    /// cache anyway.
    #[default]
    RemoteFirst,
    /// Answer from the cache at once and sync in the background.
    LocalFirst,
    /// Answer from the cache; never touch the network.
    OfflineOnly,
    /// Sync, then answer from the cache; fail when the sync fails.
    OnlineOnly,
}
