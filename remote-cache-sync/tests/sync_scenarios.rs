//! End-to-end sync scenarios: devices with their own caches converging through one remote.
//! Every scenario runs with both local stores.

use std::sync::Arc;

use remote_cache_sync::testing::{Fault, FaultyRemote, TestRecord, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Change, ClientWins, ConflictResolver, FnResolver, InMemoryLocalStore,
    InMemoryRemoteStore, LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, QuerySpec,
    RemoteStore, Resolution, ServerWins, SyncScope,
};

type Remote = Arc<InMemoryRemoteStore<TestRecord>>;

/// Which local store a scenario runs on.
#[derive(Clone, Copy, Debug)]
enum Local {
    Memory,
    Sqlite,
}

struct Env {
    _dir: tempfile::TempDir,
    kind: Local,
    n: std::sync::atomic::AtomicUsize,
}

impl Env {
    fn new(kind: Local) -> Self {
        Env {
            _dir: tempfile::tempdir().unwrap(),
            kind,
            n: Default::default(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self._dir.path().join(name)
    }

    async fn local(&self) -> Arc<dyn LocalStore<TestRecord>> {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.kind {
            Local::Memory => Arc::new(InMemoryLocalStore::new()),
            Local::Sqlite => open_sqlite(&self.path(&format!("cache{n}.db"))).await,
        }
    }
}

async fn open_sqlite(path: &std::path::Path) -> Arc<dyn LocalStore<TestRecord>> {
    Arc::new(
        remote_cache_sync::local::sqlite::SqliteLocalStore::<TestRecord>::open(path)
            .await
            .expect("open sqlite cache"),
    )
}

fn quiet() -> OrchestratorConfig {
    // Scenarios drive syncs explicitly, so background syncs would only add nondeterminism.
    OrchestratorConfig::default()
        .sync_after_write(false)
        .push_batch_size(3)
        .pull_page_size(4)
}

fn device(
    local: Arc<dyn LocalStore<TestRecord>>,
    remote: Arc<dyn RemoteStore<TestRecord>>,
) -> Orchestrator<TestRecord> {
    Orchestrator::with(local, remote, Arc::new(LastWriteWins::new()), quiet())
}

async fn all(d: &Orchestrator<TestRecord>, scope: &SyncScope) -> Vec<TestRecord> {
    d.read(scope, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await
        .unwrap()
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $name() { super::$name(super::Local::Memory).await } )* }
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Local::Sqlite).await } )* }
    };
}

both_stores!(
    offline_writes_then_sync,
    two_devices_converge,
    last_write_wins_conflict,
    server_wins_and_client_wins,
    custom_merge_resolver,
    delete_propagates,
    remote_failing_mid_push_loses_nothing,
    remote_failing_mid_pull_loses_nothing,
    parked_op_does_not_block_others,
    discarded_parked_op_restores_remote_version,
    read_policies,
);

async fn offline_writes_then_sync(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let d = device(env.local().await, remote.clone());
    let scope = unique_scope("records");
    remote.set_offline(true);
    d.enqueue_create(&scope, TestRecord::new("a", "one", ts(1)))
        .await
        .unwrap();
    d.enqueue_create(&scope, TestRecord::new("b", "two", ts(2)))
        .await
        .unwrap();
    d.enqueue_update(&scope, TestRecord::new("a", "one v2", ts(3)))
        .await
        .unwrap();
    assert_eq!(
        all(&d, &scope).await.len(),
        2,
        "offline writes are readable at once"
    );
    assert!(d.synchronize(&scope).await.unwrap_err().is_retryable());
    assert_eq!(
        d.status(&scope).await.unwrap().pending,
        3,
        "a failed sync keeps the queue"
    );

    remote.set_offline(false);
    let report = d.synchronize(&scope).await.unwrap();
    assert_eq!(
        report.pushed, 2,
        "three ops on two records coalesce into two pushes"
    );
    assert_eq!(d.status(&scope).await.unwrap().pending, 0);
    assert_eq!(remote.snapshot(&scope), all(&d, &scope).await);
    assert_eq!(remote.snapshot(&scope)[0].title, "one v2");
}

async fn two_devices_converge(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let (a, b) = (
        device(env.local().await, remote.clone()),
        device(env.local().await, remote.clone()),
    );
    let scope = unique_scope("records");
    for i in 0..10 {
        a.enqueue_create(&scope, TestRecord::new(format!("a{i}"), "from a", ts(i)))
            .await
            .unwrap();
        b.enqueue_create(&scope, TestRecord::new(format!("b{i}"), "from b", ts(i)))
            .await
            .unwrap();
    }
    a.synchronize(&scope).await.unwrap();
    b.synchronize(&scope).await.unwrap();
    a.synchronize(&scope).await.unwrap();
    assert_eq!(all(&a, &scope).await.len(), 20);
    assert_eq!(all(&a, &scope).await, all(&b, &scope).await);
    assert_eq!(all(&a, &scope).await, remote.snapshot(&scope));
}

/// Both devices edit the same synced record offline; returns (a, b, remote) after a full round.
async fn edit_both(
    env: &Env,
    resolver: impl Fn() -> Arc<dyn ConflictResolver<TestRecord>>,
    a_at: i64,
    b_at: i64,
) -> (Vec<TestRecord>, Vec<TestRecord>, Vec<TestRecord>, usize) {
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let a = Orchestrator::with(env.local().await, remote.clone(), resolver(), quiet());
    let b = Orchestrator::with(env.local().await, remote.clone(), resolver(), quiet());
    let scope = unique_scope("records");
    a.enqueue_create(&scope, TestRecord::new("x", "base", ts(0)))
        .await
        .unwrap();
    a.synchronize(&scope).await.unwrap();
    b.synchronize(&scope).await.unwrap();

    a.enqueue_update(&scope, TestRecord::new("x", "edited on a", ts(a_at)))
        .await
        .unwrap();
    b.enqueue_update(&scope, TestRecord::new("x", "edited on b", ts(b_at)))
        .await
        .unwrap();
    a.synchronize(&scope).await.unwrap();
    let report = b.synchronize(&scope).await.unwrap();
    a.synchronize(&scope).await.unwrap();
    (
        all(&a, &scope).await,
        all(&b, &scope).await,
        remote.snapshot(&scope),
        report.conflicts,
    )
}

async fn last_write_wins_conflict(kind: Local) {
    let env = Env::new(kind);
    // b's edit is older: the remote (a's) version wins on b.
    let (a, b, r, conflicts) = edit_both(&env, || Arc::new(LastWriteWins::new()), 20, 10).await;
    assert_eq!(conflicts, 1);
    assert_eq!(r[0].title, "edited on a");
    assert_eq!((a.clone(), b), (r.clone(), r));
    // b's edit is newer: it wins and reaches a.
    let (a, b, r, _) = edit_both(&env, || Arc::new(LastWriteWins::new()), 10, 20).await;
    assert_eq!(r[0].title, "edited on b");
    assert_eq!((a, b), (r.clone(), r));
}

async fn server_wins_and_client_wins(kind: Local) {
    let env = Env::new(kind);
    let (a, b, r, _) = edit_both(&env, || Arc::new(ServerWins), 10, 20).await;
    assert_eq!(
        r[0].title, "edited on a",
        "server wins keeps what reached the remote first"
    );
    assert_eq!((a, b), (r.clone(), r));
    let (a, b, r, _) = edit_both(&env, || Arc::new(ClientWins), 20, 10).await;
    assert_eq!(
        r[0].title, "edited on b",
        "client wins lets the later pusher overwrite"
    );
    assert_eq!((a, b), (r.clone(), r));
}

async fn custom_merge_resolver(kind: Local) {
    let env = Env::new(kind);
    let merge = || -> Arc<dyn ConflictResolver<TestRecord>> {
        Arc::new(FnResolver::new(
            |local: &Change<TestRecord>, remote: Option<&Change<TestRecord>>| match (
                local.record(),
                remote.and_then(Change::record),
            ) {
                (Some(l), Some(r)) => {
                    let mut m = l.clone();
                    m.title = format!("{} + {}", r.title, l.title);
                    m.updated_at = l.updated_at.max(r.updated_at);
                    Resolution::Merged(m)
                }
                _ => Resolution::KeepLocal,
            },
        ))
    };
    let (a, b, r, conflicts) = edit_both(&env, merge, 10, 20).await;
    assert_eq!(conflicts, 1);
    assert_eq!(r[0].title, "edited on a + edited on b");
    assert_eq!((a, b), (r.clone(), r));
}

async fn delete_propagates(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let (a, b) = (
        device(env.local().await, remote.clone()),
        device(env.local().await, remote.clone()),
    );
    let scope = unique_scope("records");
    a.enqueue_create(&scope, TestRecord::new("x", "doomed", ts(0)))
        .await
        .unwrap();
    a.enqueue_create(&scope, TestRecord::new("y", "kept", ts(0)))
        .await
        .unwrap();
    a.synchronize(&scope).await.unwrap();
    b.synchronize(&scope).await.unwrap();
    assert_eq!(all(&b, &scope).await.len(), 2);
    a.enqueue_delete(&scope, "x").await.unwrap();
    assert_eq!(
        a.get(&scope, "x", CachePolicy::OfflineOnly).await.unwrap(),
        None
    );
    a.synchronize(&scope).await.unwrap();
    b.synchronize(&scope).await.unwrap();
    let titles: Vec<_> = all(&b, &scope).await.into_iter().map(|r| r.title).collect();
    assert_eq!(titles, ["kept"]);
    assert_eq!(
        b.get(&scope, "x", CachePolicy::OfflineOnly).await.unwrap(),
        None
    );
}

async fn remote_failing_mid_push_loses_nothing(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let faulty = Arc::new(FaultyRemote::new(remote.clone()));
    let d = device(env.local().await, faulty.clone());
    let scope = unique_scope("records");
    for i in 0..7 {
        d.enqueue_create(&scope, TestRecord::new(format!("r{i}"), "x", ts(i)))
            .await
            .unwrap();
    }
    // Second batch is applied remotely but its answer is lost; then a batch fails before applying.
    faulty.inject(Fault::PushAfterApply);
    assert!(d.synchronize(&scope).await.is_err());
    assert_eq!(
        d.status(&scope).await.unwrap().pending,
        7,
        "unacknowledged ops stay queued"
    );
    faulty.inject(Fault::PushBeforeApply);
    assert!(d.synchronize(&scope).await.is_err());
    let report = d.synchronize(&scope).await.unwrap();
    assert_eq!(
        report.conflicts, 0,
        "replaying our own applied ops is not a conflict"
    );
    assert_eq!(d.status(&scope).await.unwrap().pending, 0);
    assert_eq!(remote.snapshot(&scope).len(), 7);
    assert_eq!(remote.snapshot(&scope), all(&d, &scope).await);
}

async fn remote_failing_mid_pull_loses_nothing(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let writer = device(env.local().await, remote.clone());
    let scope = unique_scope("records");
    for i in 0..10 {
        writer
            .enqueue_create(&scope, TestRecord::new(format!("r{i}"), "x", ts(i)))
            .await
            .unwrap();
    }
    writer.synchronize(&scope).await.unwrap();

    let faulty = Arc::new(FaultyRemote::new(remote.clone()));
    let reader = device(env.local().await, faulty.clone());
    reader
        .enqueue_create(&scope, TestRecord::new("mine", "local", ts(50)))
        .await
        .unwrap();
    faulty.inject(Fault::Fetch);
    assert!(
        reader.synchronize(&scope).await.is_err(),
        "first pull page fails"
    );
    assert_eq!(
        all(&reader, &scope).await.len(),
        1,
        "the local write survives the failed pull"
    );
    assert_eq!(
        reader.status(&scope).await.unwrap().pending,
        0,
        "and was pushed before it"
    );
    reader.synchronize(&scope).await.unwrap();
    assert_eq!(all(&reader, &scope).await, remote.snapshot(&scope));
    assert_eq!(remote.snapshot(&scope).len(), 11);
}

async fn parked_op_does_not_block_others(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    remote.reject_record("poison");
    let d = device(env.local().await, remote.clone());
    let scope = unique_scope("records");
    let other = unique_scope("records");
    d.enqueue_create(&scope, TestRecord::new("poison", "bad", ts(0)))
        .await
        .unwrap();
    for i in 0..5 {
        d.enqueue_create(&scope, TestRecord::new(format!("ok{i}"), "fine", ts(i)))
            .await
            .unwrap();
    }
    d.enqueue_create(&other, TestRecord::new("o", "other scope", ts(0)))
        .await
        .unwrap();
    let report = d.synchronize(&scope).await.unwrap();
    assert_eq!(report.parked, 1);
    assert_eq!(report.pushed, 5);
    d.synchronize(&other).await.unwrap();
    assert_eq!(remote.snapshot(&scope).len(), 5);
    assert_eq!(remote.snapshot(&other).len(), 1);
    let parked = d.parked_ops(&scope).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(parked[0].last_error.as_deref().unwrap().contains("refused"));
    assert_eq!(d.status(&scope).await.unwrap().pending, 0);
    assert_eq!(d.status(&scope).await.unwrap().parked, 1);

    // Retrying keeps failing while the remote refuses it, without blocking newer writes.
    d.retry_parked(&scope, &[parked[0].op_id.clone()])
        .await
        .unwrap();
    d.enqueue_create(&scope, TestRecord::new("ok9", "later", ts(9)))
        .await
        .unwrap();
    let report = d.synchronize(&scope).await.unwrap();
    assert_eq!((report.parked, report.pushed), (1, 1));
}

async fn discarded_parked_op_restores_remote_version(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let d = device(env.local().await, remote.clone());
    let scope = unique_scope("records");
    d.enqueue_create(&scope, TestRecord::new("x", "good", ts(0)))
        .await
        .unwrap();
    d.enqueue_create(&scope, TestRecord::new("y", "never accepted", ts(0)))
        .await
        .unwrap();
    remote.reject_record("y");
    d.synchronize(&scope).await.unwrap();
    remote.reject_record("x");
    d.enqueue_update(&scope, TestRecord::new("x", "bad edit", ts(1)))
        .await
        .unwrap();
    d.synchronize(&scope).await.unwrap();
    let parked: Vec<_> = d
        .parked_ops(&scope)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.op_id)
        .collect();
    assert_eq!(parked.len(), 2);
    d.discard_parked(&scope, &parked).await.unwrap();
    assert_eq!(d.status(&scope).await.unwrap().parked, 0);
    let titles: Vec<_> = all(&d, &scope).await.into_iter().map(|r| r.title).collect();
    assert_eq!(titles, ["good"], "x back at the remote version, y gone");
}

async fn read_policies(kind: Local) {
    let env = Env::new(kind);
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let writer = device(env.local().await, remote.clone());
    let reader = device(env.local().await, remote.clone());
    let scope = unique_scope("records");
    writer
        .enqueue_create(&scope, TestRecord::new("x", "remote", ts(0)))
        .await
        .unwrap();
    writer.synchronize(&scope).await.unwrap();
    let q = QuerySpec::new();
    assert!(
        reader
            .read(&scope, CachePolicy::OfflineOnly, &q)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reader
            .read(&scope, CachePolicy::RemoteFirst, &q)
            .await
            .unwrap()
            .len(),
        1
    );
    // The remote answered (the query runs there); the background sync it started fills the
    // cache that remote-first falls back on.
    let mut cached = 0;
    for _ in 0..200 {
        cached = reader
            .read(&scope, CachePolicy::OfflineOnly, &q)
            .await
            .unwrap()
            .len();
        if cached == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(cached, 1, "remote-first warms the cache in the background");
    remote.set_offline(true);
    assert_eq!(
        reader
            .read(&scope, CachePolicy::RemoteFirst, &q)
            .await
            .unwrap()
            .len(),
        1,
        "remote-first falls back to the cache when offline"
    );
    assert!(
        reader
            .read(&scope, CachePolicy::OnlineOnly, &q)
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert_eq!(
        reader
            .read(&scope, CachePolicy::LocalFirst, &q)
            .await
            .unwrap()
            .len(),
        1
    );
    let bad = QuerySpec::new().filter(remote_cache_sync::Filter::eq("bad field", 1));
    assert!(matches!(
        reader.read(&scope, CachePolicy::OfflineOnly, &bad).await,
        Err(remote_cache_sync::Error::InvalidQuery(_))
    ));
}

#[tokio::test]
async fn concurrent_synchronize_calls_share_one_run() {
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let slow = Arc::new(
        FaultyRemote::new(remote.clone()).with_latency(std::time::Duration::from_millis(20)),
    );
    let d = device(Arc::new(InMemoryLocalStore::new()), slow);
    let scope = unique_scope("records");
    for i in 0..20 {
        d.enqueue_create(&scope, TestRecord::new(format!("r{i}"), "x", ts(i)))
            .await
            .unwrap();
    }
    let (r1, r2) = tokio::join!(d.synchronize(&scope), d.synchronize(&scope));
    assert_eq!(
        r1.unwrap(),
        r2.unwrap(),
        "the second caller shares the first call's result"
    );
    assert_eq!(remote.applied_op_count(), 20);
}

#[tokio::test]
async fn writes_sync_in_the_background() {
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let d = Orchestrator::new(Arc::new(InMemoryLocalStore::new()), remote.clone());
    let scope = unique_scope("records");
    d.enqueue_create(&scope, TestRecord::new("x", "auto", ts(0)))
        .await
        .unwrap();
    for _ in 0..200 {
        if remote.snapshot(&scope).len() == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the write never reached the remote");
}

#[tokio::test]
async fn reopened_cache_keeps_data_sync_point_and_queue() {
    let env = Env::new(Local::Sqlite);
    let path = env.path("device.db");
    let remote: Remote = Arc::new(InMemoryRemoteStore::new());
    let scope = unique_scope("records");
    let writer = device(env.local().await, remote.clone());
    for i in 0..5 {
        writer
            .enqueue_create(&scope, TestRecord::new(format!("r{i}"), "remote", ts(i)))
            .await
            .unwrap();
    }
    writer.synchronize(&scope).await.unwrap();
    {
        let d = device(open_sqlite(&path).await, remote.clone());
        d.synchronize(&scope).await.unwrap();
        remote.set_offline(true);
        d.enqueue_create(&scope, TestRecord::new("offline", "queued", ts(10)))
            .await
            .unwrap();
        d.enqueue_delete_at(&scope, "r0", ts(11)).await.unwrap();
        assert!(d.synchronize(&scope).await.is_err());
        remote.set_offline(false);
    } // closed, like an app that quits

    let local = open_sqlite(&path).await;
    let point = local
        .sync_point(&scope)
        .await
        .unwrap()
        .expect("sync point survives a restart");
    assert!(point.cursor.is_some());
    assert_eq!(
        local.queue_status(&scope).await.unwrap().pending,
        2,
        "queued ops survive a restart"
    );
    let d = device(local, remote.clone());
    assert_eq!(
        all(&d, &scope).await.len(),
        5,
        "4 synced records + 1 offline create"
    );
    let report = d.synchronize(&scope).await.unwrap();
    assert_eq!(report.pushed, 2);
    assert!(
        report.pulled <= 2,
        "the pull resumes from the saved cursor, not from scratch"
    );
    assert_eq!(all(&d, &scope).await, remote.snapshot(&scope));
    assert!(remote.snapshot(&scope).iter().all(|r| r.id != "r0"));
}
