//! The watching clients of `rcs bench live`: each a full app (its own SQLite cache,
//! [`Orchestrator`], background sync driven by the server's event stream, and a watch on the
//! scope), timing every change from the writer's enqueue to its watch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::orchestrator::BackgroundSync;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{LastWriteWins, Orchestrator, OrchestratorConfig, QuerySpec, SyncScope};
use tokio::sync::Notify;

/// The writer's changes: change `s` (1-based) sets `n = s` on record `k{s % records}`; the
/// records start at `n = 0` (the warm-up).
#[derive(Clone)]
pub(super) struct Plan {
    /// Records the changes rotate over.
    pub(super) records: usize,
    /// Timed changes.
    pub(super) changes: usize,
    /// When the writer enqueued change `s` (index `s`), set just before the enqueue.
    pub(super) enqueued: Arc<Vec<OnceLock<Instant>>>,
}

impl Plan {
    pub(super) fn new(records: usize, changes: usize) -> Self {
        Plan {
            records,
            changes,
            enqueued: Arc::new((0..=changes).map(|_| OnceLock::new()).collect()),
        }
    }

    /// The id of record `j`.
    pub(super) fn id(j: usize) -> String {
        format!("k{j}")
    }

    /// The first change after `n` (a change of record `j`, or 0) that record `j` receives.
    fn next_after(&self, j: usize, n: usize) -> usize {
        if n == 0 {
            if j == 0 { self.records } else { j }
        } else {
            n + self.records
        }
    }
}

/// Counts clients whose watch shows the warm-up records.
#[derive(Default)]
pub(super) struct Warm {
    pub(super) count: AtomicUsize,
    pub(super) notify: Notify,
}

/// One watching client.
pub(super) struct Client {
    orch: Orchestrator<TestRecord>,
    sync: BackgroundSync,
    /// Its watch task: the latencies it measured, in ms, once it saw every change.
    task: tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl Client {
    /// Starts client `i`: cache file in `dir`, background sync of `scope` through `remote`
    /// (a one-minute interval: only the event stream explains a prompt sync), and a watch.
    pub(super) async fn start(
        i: usize,
        dir: &Path,
        remote: HttpRemoteStore<TestRecord>,
        scope: &SyncScope,
        plan: Plan,
        warm: Arc<Warm>,
    ) -> anyhow::Result<Self> {
        let local = SqliteLocalStore::<TestRecord>::open(dir.join(format!("client{i}.sqlite")))
            .await
            .with_context(|| format!("cache of client {i}"))?;
        // Every client of this benchmark shares one machine, and nothing but the client itself
        // writes its cache: the cross-process change poller (20 ms by default, for apps whose
        // cache file other processes write) only needs to run rarely here.
        let orch = Orchestrator::with(
            Arc::new(local),
            Arc::new(remote),
            Arc::new(LastWriteWins::default()),
            OrchestratorConfig::default()
                .sync_after_write(false)
                .watch_poll_interval(Duration::from_secs(1)),
        );
        let watch = orch.watch(scope, QuerySpec::new());
        let sync = orch.start_background_sync(vec![scope.clone()], Duration::from_secs(60));
        let task = tokio::spawn(watch_changes(watch, plan, warm));
        Ok(Client { orch, sync, task })
    }

    /// Waits (at most `within`) for the client to have seen every change; stops it.
    pub(super) async fn finish(self, within: Duration) -> anyhow::Result<Vec<f64>> {
        let result = tokio::time::timeout(within, self.task).await;
        self.sync.stop();
        self.orch.shutdown().await;
        match result {
            Ok(joined) => joined?,
            Err(_) => anyhow::bail!("a client did not see every change within {within:?}"),
        }
    }
}

/// Reads the watch until every change showed; returns the latencies (ms), one per change.
async fn watch_changes(
    mut watch: remote_cache_sync::Watch<Vec<TestRecord>>,
    plan: Plan,
    warm: Arc<Warm>,
) -> anyhow::Result<Vec<f64>> {
    let k = plan.records;
    // The last change each record showed (0: the warm-up).
    let mut last = vec![0usize; k];
    let mut warmed = false;
    let mut latencies = Vec::with_capacity(plan.changes);
    while latencies.len() < plan.changes {
        let Some(rows) = watch.next().await else {
            anyhow::bail!("the watch ended early");
        };
        let rows = rows?;
        let now = Instant::now();
        if !warmed && rows.len() >= k {
            warmed = true;
            warm.count.fetch_add(1, Ordering::SeqCst);
            warm.notify.notify_waiters();
        }
        for row in &rows {
            let Some(j) = row
                .id
                .strip_prefix('k')
                .and_then(|j| j.parse::<usize>().ok())
            else {
                continue;
            };
            let n = usize::try_from(row.n).unwrap_or(0).min(plan.changes);
            if j >= k || n <= last[j] {
                continue;
            }
            // Every change of this record up to `n` is now visible (one overwritten before it
            // showed counts as visible when its successor did).
            let mut s = plan.next_after(j, last[j]);
            while s <= n {
                let at = plan.enqueued[s]
                    .get()
                    .context("a change showed before it was enqueued")?;
                latencies.push(now.saturating_duration_since(*at).as_secs_f64() * 1e3);
                s += k;
            }
            last[j] = n;
        }
    }
    Ok(latencies)
}
