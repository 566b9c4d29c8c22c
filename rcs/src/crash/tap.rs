//! [`Tap`]: the crash harness's storage under the real HTTP server. It forwards to a
//! [`SqliteRemoteStore`], logs every op the remote applies (to detect a write applied twice),
//! and, when armed, tells the harness that a push or pull reached a chosen point and holds the
//! request there so the harness can kill the client at exactly that moment.
//!
//! The killed client and the other device reach the storage through their own taps (two
//! servers on one storage) sharing one applied-op log, so only the killed client's requests
//! can fire a trigger.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::{
    Cursor, Delta, JsonRecord, PendingOp, PushOutcome, RemoteStore, Result, SyncScope, Timestamp,
};
use tokio::sync::{mpsc, watch};

/// A moment in a request at which the harness may kill the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A push arrived; held before the remote applies it.
    PushBeforeApply,
    /// A push was applied and committed; its answer is held (the client never learns).
    PushAfterApply,
    /// A push was applied and its answer is on its way (the client may be updating its queue).
    PushAnswered,
    /// A follow-up page of a pull was requested (earlier pages are committed locally); held.
    MidPull,
    /// A non-empty page was answered (the client may be applying it).
    PageAnswered,
}

/// Ops the remote applied, keyed by write version.
#[derive(Default)]
pub struct AppliedLog {
    op_ids: HashSet<String>,
    /// Write version (ns) → (record id, distinct op ids that applied it).
    pub by_version: HashMap<i64, (String, Vec<String>)>,
}

struct Armed {
    trigger: Trigger,
    /// Matching events to let pass before firing.
    skip: u32,
}

/// See the module docs.
pub struct Tap {
    inner: Arc<SqliteRemoteStore<JsonRecord>>,
    armed: Mutex<Option<Armed>>,
    events: mpsc::UnboundedSender<Trigger>,
    release: watch::Receiver<u64>,
    inflight: AtomicUsize,
    last_has_more: AtomicBool,
    applied: Arc<Mutex<AppliedLog>>,
    conflicts: AtomicUsize,
}

struct InflightGuard<'a>(&'a AtomicUsize);

impl<'a> InflightGuard<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        InflightGuard(n)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Nanoseconds since the epoch (the journal's write identity).
pub fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).expect("timestamp within i64 nanoseconds")
}

impl Tap {
    /// Wraps `inner`; events go to `events`; held requests continue when `release` changes;
    /// applied ops are logged into `applied`.
    pub fn new(
        inner: Arc<SqliteRemoteStore<JsonRecord>>,
        events: mpsc::UnboundedSender<Trigger>,
        release: watch::Receiver<u64>,
        applied: Arc<Mutex<AppliedLog>>,
    ) -> Self {
        Tap {
            inner,
            armed: Mutex::new(None),
            events,
            release,
            inflight: AtomicUsize::new(0),
            last_has_more: AtomicBool::new(false),
            applied,
            conflicts: AtomicUsize::new(0),
        }
    }

    /// Pushed ops the remote answered with a conflict so far.
    pub fn conflicts(&self) -> usize {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// Fires once at the `skip + 1`-th matching event.
    pub fn arm(&self, trigger: Trigger, skip: u32) {
        *self.armed.lock().unwrap() = Some(Armed { trigger, skip });
    }

    /// Disarms.
    pub fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }

    /// Requests being served right now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// The applied-op log.
    pub fn applied(&self) -> std::sync::MutexGuard<'_, AppliedLog> {
        self.applied.lock().unwrap()
    }

    fn fire(&self, trigger: Trigger) -> bool {
        let mut armed = self.armed.lock().unwrap();
        match armed.as_mut() {
            Some(a) if a.trigger == trigger => {
                if a.skip > 0 {
                    a.skip -= 1;
                    return false;
                }
                *armed = None;
                let _ = self.events.send(trigger);
                true
            }
            _ => false,
        }
    }

    /// Waits until the harness releases held requests (after the kill), at most 10 s.
    async fn hold(&self, epoch: u64) {
        let mut rx = self.release.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|e| *e != epoch)).await;
    }

    fn record_applied(&self, ops: &[PendingOp<JsonRecord>], outcomes: &[PushOutcome<JsonRecord>]) {
        let mut log = self.applied.lock().unwrap();
        let conflicts = outcomes
            .iter()
            .filter(|o| matches!(o, PushOutcome::Conflict { .. }))
            .count();
        self.conflicts.fetch_add(conflicts, Ordering::SeqCst);
        for (op, outcome) in ops.iter().zip(outcomes) {
            if matches!(outcome, PushOutcome::Applied { .. })
                && log.op_ids.insert(op.op_id.0.clone())
            {
                log.by_version
                    .entry(nanos(op.updated_at))
                    .or_insert_with(|| (op.id.clone(), Vec::new()))
                    .1
                    .push(op.op_id.0.clone());
            }
        }
    }
}

#[async_trait]
impl RemoteStore<JsonRecord> for Tap {
    fn name(&self) -> &'static str {
        "crash-tap"
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<JsonRecord>> {
        let _g = InflightGuard::new(&self.inflight);
        self.inner.get_by_id(scope, id).await
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<JsonRecord>> {
        let _g = InflightGuard::new(&self.inflight);
        let epoch = *self.release.borrow();
        if since.is_some()
            && self.last_has_more.load(Ordering::SeqCst)
            && self.fire(Trigger::MidPull)
        {
            self.hold(epoch).await;
        }
        let page = self.inner.fetch_since(scope, since, limit).await?;
        self.last_has_more.store(page.has_more, Ordering::SeqCst);
        if !page.is_empty() {
            self.fire(Trigger::PageAnswered);
        }
        Ok(page)
    }

    async fn push(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<JsonRecord>],
    ) -> Result<Vec<PushOutcome<JsonRecord>>> {
        let _g = InflightGuard::new(&self.inflight);
        let epoch = *self.release.borrow();
        if self.fire(Trigger::PushBeforeApply) {
            self.hold(epoch).await;
        }
        let outcomes = self.inner.push(scope, ops).await?;
        self.record_applied(ops, &outcomes);
        if self.fire(Trigger::PushAfterApply) {
            self.hold(epoch).await;
        } else {
            self.fire(Trigger::PushAnswered);
        }
        Ok(outcomes)
    }

    async fn server_time(&self) -> Result<Timestamp> {
        self.inner.server_time().await
    }

    fn subscribe(&self, scopes: &[SyncScope]) -> Option<remote_cache_sync::remote::RemoteEvents> {
        self.inner.subscribe(scopes)
    }
}
