//! The sync status of every scope: [`SyncStatus`], published through
//! [`Orchestrator::status_stream`](crate::Orchestrator::status_stream).

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Live;
use crate::error::{Error, Result};
use crate::local::{LocalStore, QueueStatus, ScopePause};
use crate::orchestrator::SyncReport;
use crate::record::Record;
use crate::scope::SyncScope;

/// What a scope's sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPhase {
    /// No sync is running.
    #[default]
    Idle,
    /// Pushing queued writes.
    Pushing,
    /// Pulling remote changes.
    Pulling,
}

/// Why a scope's sync is paused (see [`Orchestrator::pause`](crate::Orchestrator::pause)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Paused {
    /// The remote refused the credentials: refresh them
    /// ([`BackgroundSync::credentials_refreshed`](crate::BackgroundSync::credentials_refreshed)).
    ForAuth(ScopePause),
    /// The remote refused the request itself (no permission for the scope, a missing endpoint,
    /// a disabled feature).
    ByRefusal(ScopePause),
}

impl Paused {
    /// The pause's reason and start.
    pub fn pause(&self) -> &ScopePause {
        match self {
            Paused::ForAuth(p) | Paused::ByRefusal(p) => p,
        }
    }
}

/// The sync status of one scope.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScopeStatus {
    /// What the scope's sync is doing now.
    pub phase: SyncPhase,
    /// Records pushed by the running sync (by the last one when idle).
    pub pushed: usize,
    /// Changes pulled by the running sync so far (by the last one when idle).
    pub pulled: usize,
    /// Changes the running pull expects in all (those pulled so far included), when the remote
    /// can tell ([`RemoteStore::count_since`](crate::RemoteStore::count_since): our HTTP
    /// server, SQLite and in-memory remotes); asked once per pull that spans several pages,
    /// while someone listens to the status. `None` otherwise.
    pub pull_total: Option<u64>,
    /// Pending, parked and quarantined counts.
    pub queue: QueueStatus,
    /// When a sync of the scope last succeeded in this process; before the first one, the
    /// server time of the last pull saved in the cache.
    pub last_synced_at: Option<Timestamp>,
    /// The error of the last sync, when it failed (cleared by a successful one).
    pub last_error: Option<Error>,
    /// What the last sync did, also when it failed: a sync that settled conflicts and then
    /// failed reports them here (its `Err` carries only the error).
    pub last_report: Option<SyncReport>,
    /// Whether the scope's sync is paused, and why.
    pub paused: Option<Paused>,
    /// Whether the remote is reachable as far as this scope knows: `false` after a sync failed
    /// to reach it or the app said it is offline
    /// ([`BackgroundSync::set_online`](crate::BackgroundSync::set_online)), `true` again after
    /// a sync reached it or the app said so.
    pub online: bool,
}

impl Default for ScopeStatus {
    fn default() -> Self {
        ScopeStatus {
            phase: SyncPhase::Idle,
            pushed: 0,
            pulled: 0,
            pull_total: None,
            queue: QueueStatus::default(),
            last_synced_at: None,
            last_error: None,
            last_report: None,
            paused: None,
            online: true,
        }
    }
}

/// The sync status of every scope the orchestrator has synced or written to (and, once
/// [`status_stream`](crate::Orchestrator::status_stream) was called, every scope in the cache).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SyncStatus {
    /// Per scope.
    pub scopes: BTreeMap<SyncScope, ScopeStatus>,
}

impl SyncStatus {
    /// The status of `scope`, if the orchestrator has seen it.
    pub fn scope(&self, scope: &SyncScope) -> Option<&ScopeStatus> {
        self.scopes.get(scope)
    }

    /// Whether any scope is syncing.
    pub fn busy(&self) -> bool {
        self.scopes.values().any(|s| s.phase != SyncPhase::Idle)
    }
}

impl Live {
    /// Changes the status of `scope` (adding it when new) and tells the listeners.
    pub(crate) fn update_status(&self, scope: &SyncScope, f: impl FnOnce(&mut ScopeStatus)) {
        self.status
            .send_modify(|all| match all.scopes.get_mut(scope) {
                Some(s) => f(s),
                None => f(all.scopes.entry(scope.clone()).or_default()),
            });
    }

    /// Whether anyone listens to the status (counts are refreshed only then).
    #[inline]
    pub(crate) fn status_listened(&self) -> bool {
        self.status.receiver_count() > 0
    }

    /// A new listener.
    pub(crate) fn status_receiver(&self) -> tokio::sync::watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    /// Scopes in the status.
    pub(crate) fn status_scopes(&self) -> Vec<SyncScope> {
        self.status.borrow().scopes.keys().cloned().collect()
    }

    /// A sync of `scope` starts pushing.
    pub(crate) fn sync_started(&self, scope: &SyncScope) {
        self.update_status(scope, |s| {
            s.phase = SyncPhase::Pushing;
            s.pushed = 0;
            s.pulled = 0;
            s.pull_total = None;
        });
    }

    /// A sync of `scope` ended with `result`, having done `report`.
    pub(crate) fn sync_finished<R>(
        &self,
        scope: &SyncScope,
        report: &SyncReport,
        result: &Result<R>,
        pause: Option<&ScopePause>,
    ) {
        self.update_status(scope, |s| {
            s.phase = SyncPhase::Idle;
            s.pushed = report.pushed;
            s.pulled = report.pulled;
            s.last_report = Some(report.clone());
            match result {
                Ok(_) => {
                    s.last_synced_at = Some(Timestamp::now());
                    s.last_error = None;
                    s.paused = None;
                    s.online = true;
                }
                Err(e) => {
                    // Any answer from the remote means it was reached.
                    s.online = !matches!(e, Error::Unavailable { .. });
                    if let Some(p) = pause {
                        s.paused = Some(if e.is_auth() {
                            Paused::ForAuth(p.clone())
                        } else {
                            Paused::ByRefusal(p.clone())
                        });
                    }
                    s.last_error = Some(e.clone());
                }
            }
        });
    }

    /// Reads the scope's queue counts into the status.
    pub(crate) async fn refresh_counts<T: Record>(
        &self,
        store: &dyn LocalStore<T>,
        scope: &SyncScope,
    ) {
        match store.queue_status(scope).await {
            Ok(q) => self.update_status(scope, |s| s.queue = q),
            Err(e) => tracing::debug!(%scope, error = %e, "cannot read the queue counts"),
        }
    }

    /// The app's connectivity hint for `scopes`.
    pub(crate) fn set_online(&self, scopes: &[SyncScope], online: bool) {
        for scope in scopes {
            self.update_status(scope, |s| s.online = online);
        }
    }
}
