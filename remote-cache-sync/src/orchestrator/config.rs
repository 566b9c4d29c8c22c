//! [`OrchestratorConfig`] and [`SyncReport`].

use std::time::Duration;

use super::background::Backoff;
use super::decide::ResolvedConflict;

/// Tunables for an [`Orchestrator`](super::Orchestrator).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OrchestratorConfig {
    /// Queued ops read and pushed per request.
    pub push_batch_size: usize,
    /// Changes requested per pull page.
    pub pull_page_size: usize,
    /// Rejections after which an op is parked (1: park at the first permanent rejection).
    pub max_rejections: u32,
    /// Start a background sync of the scope after every `enqueue_*`.
    pub sync_after_write: bool,
    /// Retry schedule for background syncs after transient failures.
    pub backoff: Backoff,
    /// Whether [`start_background_sync`](super::Orchestrator::start_background_sync) subscribes
    /// to the remote's realtime events when it offers them
    /// ([`RemoteStore::subscribe`](crate::RemoteStore::subscribe)). Default true.
    pub realtime: bool,
    /// How often a [`watch`](super::Orchestrator::watch) asks the local store whether another
    /// process changed it ([`LocalStore::change_token`](crate::LocalStore::change_token)),
    /// while at least one watch is alive.
    pub watch_poll_interval: Duration,
    /// How often the background sync ([`start_background_sync`](super::Orchestrator::start_background_sync))
    /// also [reconciles](super::Orchestrator::reconcile) each scope, right after a successful
    /// sync of it: the first time after the first sync, then whenever this long has passed
    /// since. `None` (the default): never. Reconciliation repairs what the change feed never
    /// carried (hard deletes, purges, edits behind the sequence) at the cost of one round of
    /// bucket digests for an unchanged scope; minutes to hours fit most apps.
    pub reconcile_every: Option<Duration>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            push_batch_size: 100,
            pull_page_size: 500,
            max_rejections: 1,
            sync_after_write: true,
            backoff: Backoff::default(),
            realtime: true,
            watch_poll_interval: Duration::from_millis(20),
            reconcile_every: None,
        }
    }
}

impl OrchestratorConfig {
    /// Sets `push_batch_size`.
    pub fn push_batch_size(mut self, n: usize) -> Self {
        self.push_batch_size = n.max(1);
        self
    }
    /// Sets `pull_page_size`.
    pub fn pull_page_size(mut self, n: usize) -> Self {
        self.pull_page_size = n.max(1);
        self
    }
    /// Sets `max_rejections`.
    pub fn max_rejections(mut self, n: u32) -> Self {
        self.max_rejections = n.max(1);
        self
    }
    /// Sets `sync_after_write`.
    pub fn sync_after_write(mut self, on: bool) -> Self {
        self.sync_after_write = on;
        self
    }
    /// Sets `realtime`.
    pub fn realtime(mut self, on: bool) -> Self {
        self.realtime = on;
        self
    }
    /// Sets the retry schedule.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets `reconcile_every` (`None`: the background sync never reconciles).
    pub fn reconcile_every(mut self, every: Option<Duration>) -> Self {
        self.reconcile_every = every;
        self
    }
    /// Sets `watch_poll_interval` (at least 1 ms).
    pub fn watch_poll_interval(mut self, every: Duration) -> Self {
        self.watch_poll_interval = every.max(Duration::from_millis(1));
        self
    }
}

/// What one [`Orchestrator::synchronize`](super::Orchestrator::synchronize) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Records whose queued ops the remote applied.
    pub pushed: usize,
    /// Changes received from the remote (re-deliveries included).
    pub pulled: usize,
    /// Conflicts settled by the resolver (details in [`resolved`](Self::resolved)).
    pub conflicts: usize,
    /// Every conflict the resolver settled: the record and what won, so an app can tell the
    /// user which edit lost.
    pub resolved: Vec<ResolvedConflict>,
    /// Ops parked after permanent rejections.
    pub parked: usize,
    /// Ops rejected but still queued for another attempt.
    pub rejected: usize,
    /// Pulled changes not applied because the record has a queued local write.
    pub skipped: usize,
    /// Pulled rows that did not decode and were quarantined (see
    /// [`Orchestrator::quarantined`](super::Orchestrator::quarantined)).
    pub quarantined: usize,
}
