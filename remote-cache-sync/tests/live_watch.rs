//! Reactive queries and the sync-status stream (issue 12, local side): a watch yields the
//! current result, then every changed result after a local write, a pulled page, a settled
//! conflict or a discard; never for another scope or an unchanged result. The status stream
//! walks through a sync's phases with its progress.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    Cursor, Delta, Error, Filter, InMemoryLocalStore, InMemoryRemoteStore, LocalStore,
    Orchestrator, Paused, PendingOp, PushOutcome, QuerySpec, RemoteStore, Result, SyncPhase,
    SyncScope, Timestamp, Watch,
};

/// Long enough for a watch to have answered a change it should answer.
const QUIET: Duration = Duration::from_millis(300);

fn device(
    local: impl LocalStore<TestRecord>,
    remote: Arc<InMemoryRemoteStore<TestRecord>>,
) -> Orchestrator<TestRecord> {
    Orchestrator::builder(local, remote)
        .sync_after_write(false)
        .build()
}

async fn next<R>(w: &mut Watch<R>) -> R {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("the watch answers within 5 s")
        .expect("the watch goes on")
        .expect("the query succeeds")
}

async fn assert_quiet<R: std::fmt::Debug>(w: &mut Watch<R>, what: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET, w.next()).await {
        panic!("the watch yielded after {what}: {item:?}");
    }
}

fn titles(rows: &[TestRecord]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.id.clone(), r.title.clone()))
        .collect()
}

fn pair(id: &str, title: &str) -> (String, String) {
    (id.to_owned(), title.to_owned())
}

async fn watch_follows_every_local_change(local_a: impl LocalStore<TestRecord>) {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let a = device(local_a, remote.clone());
    let b = device(InMemoryLocalStore::new(), remote.clone());
    let scope = unique_scope("live");
    let other = unique_scope("live-other");

    let mut w = a.watch(&scope, QuerySpec::new());
    assert!(next(&mut w).await.is_empty(), "first the current result");

    // Another scope: nothing.
    a.enqueue_create(&other, TestRecord::new("x", "elsewhere", ts(1)))
        .await
        .unwrap();
    assert_quiet(&mut w, "a write in another scope").await;

    // A local write.
    a.enqueue_create(&scope, TestRecord::new("r1", "one", ts(10)))
        .await
        .unwrap();
    assert_eq!(titles(&next(&mut w).await), [pair("r1", "one")]);

    // Pushing it acknowledges the op but changes no row: nothing.
    assert_eq!(a.synchronize(&scope).await.unwrap().pushed, 1);
    assert_quiet(&mut w, "a sync that changed nothing visible").await;

    // A pulled page.
    b.synchronize(&scope).await.unwrap();
    b.enqueue_create(&scope, TestRecord::new("r2", "two", ts(20)))
        .await
        .unwrap();
    b.synchronize(&scope).await.unwrap();
    a.synchronize(&scope).await.unwrap();
    assert_eq!(
        titles(&next(&mut w).await),
        [pair("r1", "one"), pair("r2", "two")]
    );

    // A settled conflict: A edits r1 offline, B's newer edit reaches the remote first; the
    // resolver (last write wins) takes B's, and the watch shows it.
    a.enqueue_update(&scope, TestRecord::new("r1", "mine", ts(30)))
        .await
        .unwrap();
    assert_eq!(titles(&next(&mut w).await)[0], pair("r1", "mine"));
    b.synchronize(&scope).await.unwrap();
    b.enqueue_update(&scope, TestRecord::new("r1", "theirs", ts(40)))
        .await
        .unwrap();
    b.synchronize(&scope).await.unwrap();
    let report = a.synchronize(&scope).await.unwrap();
    assert_eq!(report.conflicts, 1, "{report:?}");
    assert_eq!(titles(&next(&mut w).await)[0], pair("r1", "theirs"));

    // A discarded write: the row goes back to the remote's.
    let op = a
        .enqueue_update(&scope, TestRecord::new("r2", "oops", ts(50)))
        .await
        .unwrap();
    assert_eq!(titles(&next(&mut w).await)[1], pair("r2", "oops"));
    a.discard_ops(&scope, &[op]).await.unwrap();
    assert_eq!(titles(&next(&mut w).await)[1], pair("r2", "two"));
    assert_quiet(&mut w, "the discard was shown").await;

    // A filtered watch ignores changes outside its result.
    let mut only_r1 = a.watch(&scope, QuerySpec::new().filter(Filter::eq("id", "r1")));
    assert_eq!(titles(&next(&mut only_r1).await), [pair("r1", "theirs")]);
    a.enqueue_update(&scope, TestRecord::new("r2", "again", ts(60)))
        .await
        .unwrap();
    assert_eq!(titles(&next(&mut w).await)[1], pair("r2", "again"));
    assert_quiet(&mut only_r1, "a change outside the result").await;

    // One record.
    let mut one = a.watch_record(&scope, "r3");
    assert!(next(&mut one).await.is_none());
    a.enqueue_create(&scope, TestRecord::new("r3", "three", ts(70)))
        .await
        .unwrap();
    assert_eq!(next(&mut one).await.unwrap().title, "three");
    a.enqueue_delete(&scope, "r3").await.unwrap();
    assert!(next(&mut one).await.is_none());

    a.shutdown().await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .is_none(),
        "shutdown ends the watches"
    );
}

#[tokio::test]
async fn watch_in_memory() {
    watch_follows_every_local_change(InMemoryLocalStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let local = SqliteLocalStore::open(dir.path().join("a.sqlite"))
        .await
        .unwrap();
    watch_follows_every_local_change(local).await;
}

#[tokio::test]
async fn a_write_burst_is_coalesced() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let a = device(InMemoryLocalStore::new(), remote);
    let scope = unique_scope("burst");
    let mut w = a.watch(&scope, QuerySpec::new());
    assert!(next(&mut w).await.is_empty());
    for i in 0..200 {
        a.enqueue_create(&scope, TestRecord::new(format!("r{i:03}"), "x", ts(i)))
            .await
            .unwrap();
    }
    // The watch was not polled during the burst: one result with all of it.
    assert_eq!(next(&mut w).await.len(), 200);
    assert_quiet(&mut w, "the burst was shown").await;
}

#[tokio::test]
async fn dropping_the_last_watch_stops_the_poller() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let a = device(InMemoryLocalStore::new(), remote);
    let scope = unique_scope("drop");
    let w1 = a.watch(&scope, QuerySpec::new());
    let w2 = a.watch_record(&scope, "x");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop((w1, w2));
    // Shutdown waits for every task: it returns only if the poller stopped on its own or at
    // the cancellation, and a fresh watch starts a new poller.
    let mut w3 = a.watch(&scope, QuerySpec::new());
    assert!(next(&mut w3).await.is_empty());
    a.enqueue_create(&scope, TestRecord::new("x", "y", ts(1)))
        .await
        .unwrap();
    assert_eq!(next(&mut w3).await.len(), 1);
    drop(w3);
    tokio::time::timeout(Duration::from_secs(5), a.shutdown())
        .await
        .expect("the tasks stop");
}

/// An in-memory remote that sleeps before every call (so a status receiver on the same thread
/// sees each step) and fails the next call with the error it is given.
struct Scripted {
    inner: Arc<InMemoryRemoteStore<TestRecord>>,
    latency: Duration,
    next_error: Mutex<Option<Error>>,
}

impl Scripted {
    fn new(inner: Arc<InMemoryRemoteStore<TestRecord>>, latency: Duration) -> Arc<Self> {
        Arc::new(Scripted {
            inner,
            latency,
            next_error: Mutex::new(None),
        })
    }

    fn fail_next(&self, e: Error) {
        *self.next_error.lock().unwrap() = Some(e);
    }

    async fn call(&self) -> Result<()> {
        tokio::time::sleep(self.latency).await;
        match self.next_error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl RemoteStore<TestRecord> for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<TestRecord>> {
        self.inner.get_by_id(scope, id).await
    }
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<TestRecord>> {
        self.call().await?;
        self.inner.fetch_since(scope, since, limit).await
    }
    async fn push(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<TestRecord>],
    ) -> Result<Vec<PushOutcome<TestRecord>>> {
        self.call().await?;
        self.inner.push(scope, ops).await
    }
    async fn server_time(&self) -> Result<Timestamp> {
        self.inner.server_time().await
    }
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        self.inner.count_since(scope, since).await
    }
}

#[tokio::test]
async fn status_walks_through_a_sync() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let scope = unique_scope("status");
    let seed = device(InMemoryLocalStore::new(), remote.clone());
    for i in 0..1_200 {
        seed.enqueue_create(&scope, TestRecord::new(format!("s{i:04}"), "x", ts(i)))
            .await
            .unwrap();
    }
    seed.synchronize(&scope).await.unwrap();

    let a = Orchestrator::builder(
        InMemoryLocalStore::new(),
        Scripted::new(remote.clone(), Duration::from_millis(20)),
    )
    .sync_after_write(false)
    .pull_page_size(500)
    .build();
    a.enqueue_create(&scope, TestRecord::new("mine", "x", ts(5_000)))
        .await
        .unwrap();
    let mut rx = a.status_stream();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let observer = {
        let (seen, scope) = (seen.clone(), scope.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if let Some(s) = rx.borrow_and_update().scope(&scope) {
                    seen.lock().unwrap().push((
                        s.phase,
                        s.pulled,
                        s.queue.pending,
                        s.last_report.clone(),
                        s.pull_total,
                    ));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = a.synchronize(&scope).await.unwrap();
    assert_eq!((report.pushed, report.pulled), (1, 1_201));
    tokio::time::sleep(Duration::from_millis(20)).await;
    observer.abort();
    let seen = seen.lock().unwrap().clone();
    let phases: Vec<SyncPhase> = seen.iter().map(|s| s.0).collect();
    let first = |p| phases.iter().position(|x| *x == p).unwrap();
    assert!(
        first(SyncPhase::Pushing) < first(SyncPhase::Pulling),
        "{phases:?}"
    );
    // Progress: the pulled count grows page by page while pulling.
    let progress: Vec<usize> = seen
        .iter()
        .filter(|s| s.0 == SyncPhase::Pulling)
        .map(|s| s.1)
        .collect();
    for step in [0, 500, 1_000] {
        assert!(progress.contains(&step), "{progress:?}");
    }
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    // The remote counted the pull after its first page: the total is known from then on.
    let totals: Vec<(usize, Option<u64>)> = seen
        .iter()
        .filter(|s| s.0 == SyncPhase::Pulling)
        .map(|s| (s.1, s.4))
        .collect();
    assert!(
        totals.contains(&(500, Some(1_201))) && totals.contains(&(1_000, Some(1_201))),
        "{totals:?}"
    );
    assert!(
        totals.iter().all(|(_, t)| t.is_none() || *t == Some(1_201)),
        "{totals:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!((last.0, last.1), (SyncPhase::Idle, 1_201));
    assert_eq!(last.2, 0, "nothing pending at the end");
    assert_eq!(last.3.as_ref(), Some(&report));
    let now = a.status_stream().borrow().scope(&scope).cloned().unwrap();
    assert!(now.last_synced_at.is_some() && now.last_error.is_none() && now.online);
    assert_eq!(now.queue.pending, 0);
    a.shutdown().await;
}

#[tokio::test]
async fn status_shows_errors_and_pauses() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let scope = unique_scope("status-err");
    let faulty = Scripted::new(remote.clone(), Duration::ZERO);
    let a = Orchestrator::builder(InMemoryLocalStore::new(), faulty.clone())
        .sync_after_write(false)
        .build();
    let rx = a.status_stream();
    a.enqueue_create(&scope, TestRecord::new("r", "x", ts(1)))
        .await
        .unwrap();
    assert_eq!(rx.borrow().scope(&scope).unwrap().queue.pending, 1);

    faulty.fail_next(Error::Unavailable {
        backend: "scripted",
        message: "connection refused".into(),
        source: None,
    });
    assert!(a.synchronize(&scope).await.is_err());
    let s = rx.borrow().scope(&scope).cloned().unwrap();
    assert!(!s.online, "unreachable: offline");
    assert!(matches!(s.last_error, Some(Error::Unavailable { .. })));
    assert_eq!(s.phase, SyncPhase::Idle);

    faulty.fail_next(Error::Unauthorized {
        backend: "scripted",
        message: "token expired".into(),
    });
    assert!(a.synchronize(&scope).await.is_err());
    let s = rx.borrow().scope(&scope).cloned().unwrap();
    assert!(matches!(s.paused, Some(Paused::ForAuth(_))), "{s:?}");
    assert!(s.online, "the remote answered");
    assert_eq!(s.queue.pending, 1, "nothing charged");

    a.synchronize(&scope).await.unwrap();
    let s = rx.borrow().scope(&scope).cloned().unwrap();
    assert!(s.paused.is_none() && s.last_error.is_none());
    assert_eq!(s.queue.pending, 0);
    a.shutdown().await;
}
