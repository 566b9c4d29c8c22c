//! Conflict resolution: what happens when a local write meets a different remote version.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::record::{Change, Record};

/// The outcome of resolving one conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<T> {
    /// Keep the local change; it is pushed again on top of the remote version.
    KeepLocal,
    /// Take the remote version; the local change is dropped.
    TakeRemote,
    /// Replace both with this record, which is pushed on top of the remote version.
    Merged(T),
}

/// Decides between a local pending change and the remote's current version of the same record.
///
/// `remote` is `None` when the record does not exist on the remote.
pub trait ConflictResolver<T: Record>: Send + Sync {
    /// Picks the winner.
    fn resolve(&self, local: &Change<T>, remote: Option<&Change<T>>) -> Resolution<T>;
}

impl<T: Record, R: ConflictResolver<T> + ?Sized> ConflictResolver<T> for Arc<R> {
    fn resolve(&self, local: &Change<T>, remote: Option<&Change<T>>) -> Resolution<T> {
        (**self).resolve(local, remote)
    }
}

/// Last write wins by version timestamp (`updated_at`, or `deleted_at` for deletions).
/// The remote wins ties, because the remote is the source of truth. The default.
#[derive(Debug)]
pub struct LastWriteWins<T>(PhantomData<fn() -> T>);

impl<T> Default for LastWriteWins<T> {
    fn default() -> Self {
        LastWriteWins(PhantomData)
    }
}

impl<T> LastWriteWins<T> {
    /// The resolver.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: Record> ConflictResolver<T> for LastWriteWins<T> {
    fn resolve(&self, local: &Change<T>, remote: Option<&Change<T>>) -> Resolution<T> {
        match remote {
            Some(remote) if remote.version() >= local.version() => Resolution::TakeRemote,
            _ => Resolution::KeepLocal,
        }
    }
}

/// The remote always wins.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerWins;

impl<T: Record> ConflictResolver<T> for ServerWins {
    fn resolve(&self, _local: &Change<T>, remote: Option<&Change<T>>) -> Resolution<T> {
        match remote {
            Some(_) => Resolution::TakeRemote,
            None => Resolution::KeepLocal,
        }
    }
}

/// The local change always wins.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientWins;

impl<T: Record> ConflictResolver<T> for ClientWins {
    fn resolve(&self, _local: &Change<T>, _remote: Option<&Change<T>>) -> Resolution<T> {
        Resolution::KeepLocal
    }
}

/// A resolver built from a closure, for merges that know the record's fields.
///
/// ```
/// use remote_cache_sync::{Change, FnResolver, Resolution};
/// use remote_cache_sync::testing::TestRecord;
/// let keep_longer_title = FnResolver::new(|local: &Change<TestRecord>, remote: Option<&Change<TestRecord>>| {
///     match (local.record(), remote.and_then(Change::record)) {
///         (Some(l), Some(r)) if r.title.len() > l.title.len() => Resolution::TakeRemote,
///         _ => Resolution::KeepLocal,
///     }
/// });
/// # let _ = keep_longer_title;
/// ```
pub struct FnResolver<T> {
    f: Arc<ResolveFn<T>>,
}

type ResolveFn<T> = dyn Fn(&Change<T>, Option<&Change<T>>) -> Resolution<T> + Send + Sync;

impl<T> FnResolver<T> {
    /// Wraps `f`.
    pub fn new(
        f: impl Fn(&Change<T>, Option<&Change<T>>) -> Resolution<T> + Send + Sync + 'static,
    ) -> Self {
        FnResolver { f: Arc::new(f) }
    }
}

impl<T: Record> ConflictResolver<T> for FnResolver<T> {
    fn resolve(&self, local: &Change<T>, remote: Option<&Change<T>>) -> Resolution<T> {
        (self.f)(local, remote)
    }
}
