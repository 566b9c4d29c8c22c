//! [`OrchestratorBuilder`]: an orchestrator with the resolver and settings you choose.

use std::sync::Arc;

use super::{Backoff, Orchestrator, OrchestratorConfig};
use crate::conflict::{ConflictResolver, LastWriteWins};
use crate::local::LocalStore;
use crate::record::Record;
use crate::remote::RemoteStore;

/// Builds an [`Orchestrator`]; from [`Orchestrator::builder`].
///
/// ```
/// use remote_cache_sync::{InMemoryLocalStore, InMemoryRemoteStore, JsonRecord, Orchestrator, ServerWins};
/// let orch = Orchestrator::builder(InMemoryLocalStore::<JsonRecord>::new(), InMemoryRemoteStore::new())
///     .resolver(ServerWins)
///     .pull_page_size(1_000)
///     .sync_after_write(false)
///     .build();
/// # let _ = orch;
/// ```
#[must_use]
pub struct OrchestratorBuilder<T: Record> {
    local: Arc<dyn LocalStore<T>>,
    remote: Arc<dyn RemoteStore<T>>,
    resolver: Arc<dyn ConflictResolver<T>>,
    config: OrchestratorConfig,
}

impl<T: Record> OrchestratorBuilder<T> {
    pub(super) fn new(local: Arc<dyn LocalStore<T>>, remote: Arc<dyn RemoteStore<T>>) -> Self {
        OrchestratorBuilder {
            local,
            remote,
            resolver: Arc::new(LastWriteWins::new()),
            config: OrchestratorConfig::default(),
        }
    }

    /// The conflict resolver (default: [`LastWriteWins`]).
    pub fn resolver(mut self, resolver: impl ConflictResolver<T> + 'static) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// All settings at once.
    pub fn config(mut self, config: OrchestratorConfig) -> Self {
        self.config = config;
        self
    }

    /// Queued ops pushed per request (default 100).
    pub fn push_batch_size(mut self, n: usize) -> Self {
        self.config = self.config.push_batch_size(n);
        self
    }

    /// Changes requested per pull page (default 500).
    pub fn pull_page_size(mut self, n: usize) -> Self {
        self.config = self.config.pull_page_size(n);
        self
    }

    /// Refusals of one op (in separate syncs) after which it is parked (default 1).
    pub fn max_rejections(mut self, n: u32) -> Self {
        self.config = self.config.max_rejections(n);
        self
    }

    /// Whether every write starts a background sync of its scope (default true).
    pub fn sync_after_write(mut self, on: bool) -> Self {
        self.config = self.config.sync_after_write(on);
        self
    }

    /// The retry schedule of background syncs.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config = self.config.backoff(backoff);
        self
    }

    /// How often watches look for other processes' changes (default 20 ms; see
    /// [`OrchestratorConfig::watch_poll_interval`]).
    pub fn watch_poll_interval(mut self, every: std::time::Duration) -> Self {
        self.config = self.config.watch_poll_interval(every);
        self
    }

    /// The orchestrator.
    pub fn build(self) -> Orchestrator<T> {
        Orchestrator::from_parts(self.local, self.remote, self.resolver, self.config)
    }
}
