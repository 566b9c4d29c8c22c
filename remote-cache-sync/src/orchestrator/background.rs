//! Periodic background sync with exponential backoff, connectivity hints and an auth pause.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use crate::record::Record;
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

/// Handle to a periodic background sync started by
/// [`Orchestrator::start_background_sync`]. Dropping it stops the loop.
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
    crate::rt::spawn_tracked(&tasks, async move {
        let backoff = orch.inner.config.backoff;
        let mut failures = 0u32;
        let mut delay = Duration::ZERO;
        loop {
            // Cancellation first: nothing is polled once the loop or the orchestrator stops.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = crate::rt::sleep(delay) => {}
                _ = wake.notified() => {}
            }
            delay = interval;
            if !online.load(Ordering::SeqCst) || paused.load(Ordering::SeqCst) {
                continue;
            }
            for scope in &scopes {
                let result = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    r = orch.synchronize(scope) => r,
                };
                match result {
                    Ok(_) => failures = 0,
                    Err(e) if e.is_auth() => {
                        tracing::warn!(%scope, "credentials refused; background sync paused");
                        paused.store(true, Ordering::SeqCst);
                        break;
                    }
                    Err(e) if e.is_retryable() => {
                        delay = backoff
                            .delay(failures, e.retry_after())
                            .min(interval.max(backoff.max));
                        failures = failures.saturating_add(1);
                        tracing::debug!(%scope, error = %e, ?delay, "background sync failed");
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
