//! Background sync: realtime-driven when the remote offers
//! [`subscribe`](crate::RemoteStore::subscribe), periodic always (as the only trigger for a
//! remote without realtime, as a safety net otherwise), with exponential backoff, connectivity
//! hints and an auth pause.
//!
//! With realtime, a [`RemoteEvent::Changed`] syncs that scope at once, a
//! [`RemoteEvent::Reconnected`] syncs every scope (events sent while no connection listened are
//! lost, so only a pull catches up), and events that arrive while a sync runs are coalesced
//! into one more pass over the scopes they name. If the subscription ends, the loop goes on
//! polling.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use futures::{FutureExt, StreamExt};

use super::Orchestrator;
use crate::record::Record;
use crate::remote::{RemoteEvent, RemoteEvents};
use crate::scope::SyncScope;

/// Exponential backoff with jitter: attempt `n` waits a random time in
/// `[d/2, d]` where `d = min(base * 2^n, max)`, or the server's `Retry-After` when longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Retries before a background sync triggered by a write gives up (the periodic loop never
    /// gives up).
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(60),
            max_retries: 8,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)));
        let capped = exp.min(self.max);
        let jittered = capped / 2 + capped.mul_f64(rand::random::<f64>() / 2.0);
        retry_after.map_or(jittered, |r| r.max(jittered))
    }
}

/// Handle to a background sync started by [`Orchestrator::start_background_sync`]. Dropping it
/// stops the loop and closes its realtime subscription.
#[derive(Debug)]
pub struct BackgroundSync {
    cancel: CancellationToken,
    wake: Arc<Notify>,
    online: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    /// The hint's other reader: the scopes' sync status.
    status: (Arc<super::live::Live>, Vec<SyncScope>),
}

impl BackgroundSync {
    /// Connectivity hint from the app: while offline the loop does not try the network;
    /// coming back online syncs at once.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::SeqCst);
        self.status.0.set_online(&self.status.1, online);
        if online {
            self.wake.notify_one();
        }
    }

    /// Syncs now instead of waiting for the interval (e.g. when the app comes to the foreground).
    pub fn sync_now(&self) {
        self.wake.notify_one();
    }

    /// Whether the loop paused because the remote refused the credentials.
    pub fn is_paused_for_auth(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Resumes after an auth pause (call once the credentials were refreshed).
    pub fn credentials_refreshed(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the loop.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The scopes a batch of events asks to sync, as indexes into `scopes`.
fn mark(event: &RemoteEvent, scopes: &[SyncScope], dirty: &mut BTreeSet<usize>) {
    match event {
        RemoteEvent::Changed(scope) => {
            // A scope nobody subscribed to (a confused server) is ignored.
            if let Some(i) = scopes.iter().position(|s| s == scope) {
                dirty.insert(i);
            }
        }
        RemoteEvent::Reconnected => dirty.extend(0..scopes.len()),
    }
}

/// The next event, or never when there is no (more) subscription.
async fn next_event(events: &mut Option<RemoteEvents>) -> Option<RemoteEvent> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

pub(super) fn start<T: Record>(
    orch: Orchestrator<T>,
    scopes: Vec<SyncScope>,
    interval: Duration,
) -> BackgroundSync {
    let handle = BackgroundSync {
        // A child of the orchestrator's token: `shutdown` (or dropping the last handle of the
        // orchestrator) stops this loop too.
        cancel: orch.inner.cancel.child_token(),
        wake: Arc::new(Notify::new()),
        online: Arc::new(AtomicBool::new(true)),
        paused: Arc::new(AtomicBool::new(false)),
        status: (orch.inner.live.clone(), scopes.clone()),
    };
    let (cancel, wake, online, paused) = (
        handle.cancel.clone(),
        handle.wake.clone(),
        handle.online.clone(),
        handle.paused.clone(),
    );
    let orch = orch.task_handle();
    let tasks = orch.inner.tasks.clone();
    let mut events = if orch.inner.config.realtime {
        orch.inner.remote.subscribe(&scopes)
    } else {
        None
    };
    crate::rt::spawn_tracked(&tasks, async move {
        let backoff = orch.inner.config.backoff;
        let mut failures = 0u32;
        let mut delay = Duration::ZERO;
        // Scopes to sync in the next pass, as indexes into `scopes`.
        let mut dirty: BTreeSet<usize> = BTreeSet::new();
        // When each scope was last reconciled (`OrchestratorConfig::reconcile_every`).
        let mut reconciled: Vec<Option<jiff::Timestamp>> = vec![None; scopes.len()];
        loop {
            // Cancellation first: nothing is polled once the loop or the orchestrator stops.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                event = next_event(&mut events) => match event {
                    Some(event) => mark(&event, &scopes, &mut dirty),
                    None => {
                        tracing::debug!("realtime subscription ended; polling only");
                        events = None;
                        continue;
                    }
                },
                _ = crate::rt::sleep(delay) => {
                    dirty.extend(0..scopes.len());
                    delay = interval;
                }
                _ = wake.notified() => {
                    dirty.extend(0..scopes.len());
                    delay = interval;
                }
            }
            // Coalesce: everything already waiting joins this pass.
            while let Some(Some(event)) = events.as_mut().and_then(|e| e.next().now_or_never()) {
                mark(&event, &scopes, &mut dirty);
            }
            if !online.load(Ordering::SeqCst) || paused.load(Ordering::SeqCst) {
                // Offline or paused: coming back (a wake) syncs every scope anyway.
                dirty.clear();
                continue;
            }
            while let Some(i) = dirty.pop_first() {
                let scope = &scopes[i];
                let result = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    r = orch.synchronize(scope) => r,
                };
                match result {
                    Ok(_) => {
                        failures = 0;
                        let due = orch.inner.config.reconcile_every.is_some_and(|every| {
                            reconciled[i].is_none_or(|at| {
                                jiff::Timestamp::now().duration_since(at).unsigned_abs() >= every
                            })
                        });
                        if due {
                            let result = tokio::select! {
                                biased;
                                _ = cancel.cancelled() => return,
                                r = orch.reconcile(scope) => r,
                            };
                            reconciled[i] = Some(jiff::Timestamp::now());
                            if let Err(e) = result {
                                tracing::warn!(%scope, error = %e, "background reconcile failed");
                            }
                        }
                    }
                    Err(e) if e.is_auth() => {
                        tracing::warn!(%scope, "credentials refused; background sync paused");
                        paused.store(true, Ordering::SeqCst);
                        dirty.clear();
                        break;
                    }
                    Err(e) if e.is_retryable() => {
                        delay = backoff
                            .delay(failures, e.retry_after())
                            .min(interval.max(backoff.max));
                        failures = failures.saturating_add(1);
                        tracing::debug!(%scope, error = %e, ?delay, "background sync failed");
                        // The retry after `delay` syncs every scope.
                        dirty.clear();
                        break;
                    }
                    // A refusal of the scope (403, 404) is kept as its pause reason; the other
                    // scopes go on, and this one is tried again next interval.
                    Err(e) => tracing::warn!(%scope, error = %e, "background sync failed"),
                }
            }
        }
    });
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_mark_scopes() {
        let scopes: Vec<SyncScope> = ["a", "b", "c"]
            .iter()
            .map(|n| SyncScope::named(*n).unwrap())
            .collect();
        let mut dirty = BTreeSet::new();
        mark(
            &RemoteEvent::Changed(scopes[1].clone()),
            &scopes,
            &mut dirty,
        );
        mark(
            &RemoteEvent::Changed(scopes[1].clone()),
            &scopes,
            &mut dirty,
        );
        mark(
            &RemoteEvent::Changed(SyncScope::named("other").unwrap()),
            &scopes,
            &mut dirty,
        );
        assert_eq!(dirty, BTreeSet::from([1]));
        mark(&RemoteEvent::Reconnected, &scopes, &mut dirty);
        assert_eq!(dirty, BTreeSet::from([0, 1, 2]));
    }
}
