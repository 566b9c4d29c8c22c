//! "Every write decided, nothing stuck" (issue 8), end to end through a real sync server on
//! loopback (SQLite storage, as `rcs serve` runs it) and through the in-memory remote:
//! 1. a newer delete after a lost create acknowledgement goes through the resolver;
//! 2. a refusal of the whole request pauses the scope, parks nothing, and the first sync after
//!    the cause is fixed pushes everything;
//! 3. a remote row that does not decode is quarantined, never blocks the scope, and is retried
//!    when it changes;
//! 5. a write that does not move its version past the record's cannot silently overwrite a
//!    concurrent write.
//!
//! (Case 4, idempotency per scope, is a conformance check every remote runs.)

use std::sync::Arc;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{Fault, FaultProxy, FaultyRemote, HttpFault, TestRecord, ts};
use remote_cache_sync::{
    CachePolicy, ConflictOutcome, ConflictResolver, Error, InMemoryLocalStore, InMemoryRemoteStore,
    JsonRecord, LastWriteWins, LocalStore, OpKind, Orchestrator, OrchestratorConfig, PendingOp,
    QuerySpec, Record, RemoteStore, ServerWins, SyncScope, Timestamp,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// A real server on an ephemeral loopback port over a SQLite storage file.
struct TestServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    async fn start(db: &std::path::Path, tokens: StaticTokens) -> Self {
        let storage = SqliteRemoteStore::<JsonRecord>::open(db).await.unwrap();
        let server = Server::new(storage.clone(), tokens).raw_feed(Arc::new(storage));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = oneshot::channel();
        tokio::spawn(serve(listener, server.into_router(), async {
            let _ = rx.await;
        }));
        TestServer {
            url,
            stop: Some(stop),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn all_access() -> StaticTokens {
    let mut t = StaticTokens::new();
    t.grant("t", ScopePattern::any()).unwrap();
    t
}

fn http<T: Record>(url: &str, token: &str) -> Arc<dyn RemoteStore<T>> {
    Arc::new(
        HttpRemoteStore::<T>::builder(url)
            .token(token)
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

fn config() -> OrchestratorConfig {
    OrchestratorConfig::default().sync_after_write(false)
}

fn device<T: Record>(
    local: Arc<dyn LocalStore<T>>,
    remote: Arc<dyn RemoteStore<T>>,
    resolver: Arc<dyn ConflictResolver<T>>,
) -> Orchestrator<T> {
    Orchestrator::with(local, remote, resolver, config())
}

async fn sqlite_cache<T: Record>(path: &std::path::Path) -> Arc<dyn LocalStore<T>> {
    Arc::new(SqliteLocalStore::<T>::open(path).await.unwrap())
}

fn scope(owner: &str) -> SyncScope {
    SyncScope::new("records", [("owner", owner)]).unwrap()
}

async fn titles(d: &Orchestrator<TestRecord>, s: &SyncScope) -> Vec<(String, String)> {
    d.read(s, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.title))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Case 1: a newer delete is never dropped without the resolver.

/// A creates r1 through a proxy that drops the answer after the server applied it; B pulls r1
/// and edits it at `b_at`; A deletes r1 at `a_del_at` and syncs. Returns A's report and what the
/// server, A and B hold afterwards.
async fn lost_create_then_delete(
    resolver: Arc<dyn ConflictResolver<TestRecord>>,
    b_at: i64,
    a_del_at: i64,
    extra_update: bool,
) -> (
    remote_cache_sync::SyncReport,
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("remote.db"), all_access()).await;
    let proxy = FaultProxy::start(server.url.clone()).await.unwrap();
    let s = scope("u1");
    let a = device(
        sqlite_cache(&dir.path().join("a.db")).await,
        http(&proxy.url(), "t"),
        resolver.clone(),
    );
    let b = device(
        sqlite_cache(&dir.path().join("b.db")).await,
        http(&server.url, "t"),
        resolver,
    );
    a.enqueue_create(&s, TestRecord::new("r1", "A's create", ts(10)))
        .await
        .unwrap();
    if extra_update {
        a.enqueue_update(&s, TestRecord::new("r1", "A's update", ts(12)))
            .await
            .unwrap();
    }
    proxy.script([HttpFault::DropAfterForward]);
    assert!(a.synchronize(&s).await.is_err(), "the answer was lost");
    b.synchronize(&s).await.unwrap();
    b.enqueue_update(&s, TestRecord::new("r1", "B's edit", ts(b_at)))
        .await
        .unwrap();
    b.synchronize(&s).await.unwrap();
    a.enqueue_delete_at(&s, "r1", ts(a_del_at)).await.unwrap();
    let report = a.synchronize(&s).await.unwrap();
    b.synchronize(&s).await.unwrap();
    a.synchronize(&s).await.unwrap();
    let truth = device(
        Arc::new(InMemoryLocalStore::new()),
        http(&server.url, "t"),
        Arc::new(LastWriteWins::new()),
    );
    truth.synchronize(&s).await.unwrap();
    (
        report,
        titles(&truth, &s).await,
        titles(&a, &s).await,
        titles(&b, &s).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_delete_after_a_lost_create_ack_wins_under_lww() {
    for extra_update in [false, true] {
        let (report, server, a, b) =
            lost_create_then_delete(Arc::new(LastWriteWins::new()), 20, 30, extra_update).await;
        assert_eq!(report.conflicts, 1, "the resolver was asked and counted");
        assert_eq!(report.resolved[0].outcome, ConflictOutcome::KeptLocal);
        assert!(
            server.is_empty(),
            "A's newer delete won on the server: {server:?}"
        );
        assert!(a.is_empty() && b.is_empty(), "A: {a:?}, B: {b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_delete_after_a_lost_create_ack_loses_and_is_counted() {
    let (report, server, a, b) =
        lost_create_then_delete(Arc::new(LastWriteWins::new()), 40, 30, false).await;
    assert_eq!(report.conflicts, 1);
    assert_eq!(report.resolved[0].outcome, ConflictOutcome::TookRemote);
    let expected = vec![("r1".to_owned(), "B's edit".to_owned())];
    assert_eq!(
        (server, a, b),
        (expected.clone(), expected.clone(), expected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wins_is_asked_too() {
    let (report, server, ..) = lost_create_then_delete(Arc::new(ServerWins), 20, 30, false).await;
    assert_eq!(
        report.conflicts, 1,
        "server-wins still decides, and it is counted"
    );
    assert_eq!(server, vec![("r1".to_owned(), "B's edit".to_owned())]);
}

/// The same history through the in-memory remote with an injected lost answer.
#[tokio::test]
async fn newer_delete_wins_through_the_in_memory_remote() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let faulty = Arc::new(FaultyRemote::new(remote.clone()));
    let s = scope("u1");
    let lww = || Arc::new(LastWriteWins::new());
    let a = device(Arc::new(InMemoryLocalStore::new()), faulty.clone(), lww());
    let b = device(Arc::new(InMemoryLocalStore::new()), remote.clone(), lww());
    a.enqueue_create(&s, TestRecord::new("r1", "A", ts(10)))
        .await
        .unwrap();
    faulty.inject(Fault::PushAfterApply);
    assert!(a.synchronize(&s).await.is_err());
    b.synchronize(&s).await.unwrap();
    b.enqueue_update(&s, TestRecord::new("r1", "B", ts(20)))
        .await
        .unwrap();
    b.synchronize(&s).await.unwrap();
    a.enqueue_delete_at(&s, "r1", ts(30)).await.unwrap();
    let report = a.synchronize(&s).await.unwrap();
    assert_eq!(report.conflicts, 1);
    assert!(remote.snapshot(&s).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Case 2: a refusal of the request pauses the scope and parks nothing.

async fn assert_paused_untouched(d: &Orchestrator<TestRecord>, s: &SyncScope, n: usize) {
    let status = d.status(s).await.unwrap();
    assert_eq!((status.pending, status.parked), (n, 0), "nothing parked");
    let ops = d.local().pending_ops(s, usize::MAX).await.unwrap();
    assert!(
        ops.iter()
            .all(|o| o.attempts == 0 && o.last_error.is_none()),
        "attempt counts untouched: {ops:?}"
    );
    assert!(d.pause(s).await.unwrap().is_some(), "the pause is visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_scope_pauses_and_the_first_sync_after_the_grant_pushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("remote.db");
    let cache = dir.path().join("cache.db");
    let s = scope("bob");
    let mut only_alice = StaticTokens::new();
    only_alice.grant_spec("t:records,owner=alice").unwrap();
    {
        let server = TestServer::start(&db, only_alice).await;
        let d = device::<TestRecord>(
            sqlite_cache(&cache).await,
            http(&server.url, "t"),
            Arc::new(LastWriteWins::new()),
        );
        for i in 0..3 {
            d.enqueue_create(&s, TestRecord::new(format!("r{i}"), "w", ts(i)))
                .await
                .unwrap();
        }
        for _ in 0..3 {
            let err = d.synchronize(&s).await.unwrap_err();
            assert!(
                matches!(&err, Error::Refused { status: Some(403), code: Some(c), .. } if c == "forbidden"),
                "{err:?}"
            );
        }
        assert_paused_untouched(&d, &s, 3).await;
        let pause = d.pause(&s).await.unwrap().unwrap();
        assert!(pause.reason.contains("403"), "{}", pause.reason);
    }
    // The grant is fixed (a new server process on the same storage); a new process on the cache.
    let server = TestServer::start(&db, all_access()).await;
    let d = device::<TestRecord>(
        sqlite_cache(&cache).await,
        http(&server.url, "t"),
        Arc::new(LastWriteWins::new()),
    );
    assert!(
        d.pause(&s).await.unwrap().is_some(),
        "the pause survived the restart"
    );
    let report = d.synchronize(&s).await.unwrap();
    assert_eq!(report.pushed, 3, "3 of 3 writes arrive");
    assert_eq!(d.status(&s).await.unwrap().pending, 0);
    assert!(d.pause(&s).await.unwrap().is_none(), "the pause is cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_endpoint_or_a_bad_token_pauses_without_parking() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("remote.db"), all_access()).await;
    let cache = dir.path().join("cache.db");
    let s = scope("u1");
    for (url, token, want) in [
        (format!("{}/not-here", server.url), "t", "404"),
        (server.url.clone(), "wrong", "401"),
    ] {
        let d = device::<TestRecord>(
            sqlite_cache(&cache).await,
            http(&url, token),
            Arc::new(LastWriteWins::new()),
        );
        d.enqueue_create(
            &s,
            TestRecord::new(format!("x{want}"), "w", Timestamp::now()),
        )
        .await
        .unwrap();
        let err = d.synchronize(&s).await.unwrap_err();
        assert!(err.pauses_scope(), "{want}: {err:?}");
        assert!(err.to_string().contains(want) || err.is_auth(), "{err}");
    }
    let d = device::<TestRecord>(
        sqlite_cache(&cache).await,
        http(&server.url, "t"),
        Arc::new(LastWriteWins::new()),
    );
    assert_paused_untouched(&d, &s, 2).await;
    assert_eq!(d.synchronize(&s).await.unwrap().pushed, 2);
    assert!(d.pause(&s).await.unwrap().is_none());
}

/// A verdict on one op still counts: the server rejects one op of a batch, only that op parks.
#[tokio::test]
async fn a_verdict_on_one_op_parks_only_that_op() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    remote.reject_record("bad");
    let s = scope("u1");
    let d = device(
        Arc::new(InMemoryLocalStore::new()),
        remote.clone(),
        Arc::new(LastWriteWins::new()),
    );
    for id in ["a", "bad", "b"] {
        d.enqueue_create(&s, TestRecord::new(id, "w", ts(1)))
            .await
            .unwrap();
    }
    let report = d.synchronize(&s).await.unwrap();
    assert_eq!((report.pushed, report.parked), (2, 1));
    assert!(d.pause(&s).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Case 3: one bad remote row never blocks a scope.

fn json(v: serde_json::Value) -> JsonRecord {
    JsonRecord::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_decode_is_quarantined_and_retried_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("remote.db"), all_access()).await;
    let s = scope("u1");
    // Another app writes through the same server with its own idea of the schema.
    let other = device::<JsonRecord>(
        Arc::new(InMemoryLocalStore::new()),
        http(&server.url, "t"),
        Arc::new(LastWriteWins::new()),
    );
    other
        .enqueue_create(
            &s,
            json(
                serde_json::json!({"id": "good1", "title": "ok", "updated_at": ts(1).to_string()}),
            ),
        )
        .await
        .unwrap();
    other
        .enqueue_create(
            &s,
            json(serde_json::json!({"id": "bad1", "title": 5, "updated_at": ts(2).to_string()})),
        )
        .await
        .unwrap();
    other
        .enqueue_create(
            &s,
            json(
                serde_json::json!({"id": "good2", "title": "ok", "updated_at": ts(3).to_string()}),
            ),
        )
        .await
        .unwrap();
    other.synchronize(&s).await.unwrap();

    let d = device::<TestRecord>(
        sqlite_cache(&dir.path().join("cache.db")).await,
        http(&server.url, "t"),
        Arc::new(LastWriteWins::new()),
    );
    let report = d.synchronize(&s).await.unwrap();
    assert_eq!(report.quarantined, 1);
    let ids: Vec<_> = titles(&d, &s).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["good1", "good2"], "the rows after the bad one arrive");
    assert_eq!(d.status(&s).await.unwrap().quarantined, 1);
    let q = d.quarantined(&s).await.unwrap();
    assert_eq!(q[0].id, "bad1");
    assert!(q[0].raw.contains("\"title\":5"), "kept raw: {}", q[0].raw);
    assert!(q[0].reason.contains("does not decode"), "{}", q[0].reason);
    // The next sync does not fail or re-deliver it: the cursor moved on.
    assert_eq!(d.synchronize(&s).await.unwrap().quarantined, 0);

    // A write of ours on the bad row: a verdict on that op alone; the other op lands.
    d.enqueue_create(&s, TestRecord::new("bad1", "mine", ts(4)))
        .await
        .unwrap();
    d.enqueue_create(&s, TestRecord::new("good3", "mine", ts(4)))
        .await
        .unwrap();
    let report = d.synchronize(&s).await.unwrap();
    assert_eq!((report.pushed, report.parked), (1, 1), "{report:?}");
    let parked = d.parked_ops(&s).await.unwrap();
    assert!(
        parked[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("does not decode"),
        "{parked:?}"
    );
    d.discard_parked(&s, &[parked[0].op_id.clone()])
        .await
        .unwrap();

    // The other app fixes the row: it arrives and leaves quarantine.
    other
        .enqueue_update(&s, json(serde_json::json!({"id": "bad1", "title": "fixed", "updated_at": ts(5).to_string()})))
        .await
        .unwrap();
    other.synchronize(&s).await.unwrap();
    d.synchronize(&s).await.unwrap();
    assert_eq!(d.status(&s).await.unwrap().quarantined, 0);
    assert!(
        titles(&d, &s)
            .await
            .contains(&("bad1".into(), "fixed".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Case 5: versions never depend on the app bumping `updated_at`.

#[tokio::test]
async fn an_unbumped_write_cannot_silently_overwrite_a_concurrent_one() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let s = scope("u1");
    let lww = || Arc::new(LastWriteWins::new());
    let a = device(Arc::new(InMemoryLocalStore::new()), remote.clone(), lww());
    let b = device(Arc::new(InMemoryLocalStore::new()), remote.clone(), lww());
    a.enqueue_create(&s, TestRecord::new("r1", "v0", ts(10)))
        .await
        .unwrap();
    a.synchronize(&s).await.unwrap();
    b.synchronize(&s).await.unwrap();
    // Both edit without moving updated_at (or with one coarse clock tick: the same stamp).
    a.enqueue_update(&s, TestRecord::new("r1", "A", ts(10)))
        .await
        .unwrap();
    b.enqueue_update(&s, TestRecord::new("r1", "B", ts(10)))
        .await
        .unwrap();
    assert!(
        a.get(&s, "r1", CachePolicy::OfflineOnly)
            .await
            .unwrap()
            .unwrap()
            .updated_at
            > ts(10),
        "restamped past the version it was made on"
    );
    assert_eq!(a.synchronize(&s).await.unwrap().pushed, 1);
    let report = b.synchronize(&s).await.unwrap();
    assert_eq!(
        report.conflicts, 1,
        "B's write met A's: decided, not overwritten"
    );
    a.synchronize(&s).await.unwrap();
    assert_eq!(titles(&a, &s).await, titles(&b, &s).await);
}

/// A record type whose `updated_at` lives under another name and that does not say how to
/// restamp it: a stale write is refused with a typed error and nothing is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
    modified: Timestamp,
}

impl Record for Note {
    fn id(&self) -> &str {
        &self.id
    }
    fn updated_at(&self) -> Timestamp {
        self.modified
    }
}

#[tokio::test]
async fn a_stale_write_that_cannot_be_restamped_is_refused() {
    let remote = Arc::new(InMemoryRemoteStore::<Note>::new());
    let s = scope("u1");
    let d = device::<Note>(
        Arc::new(InMemoryLocalStore::new()),
        remote,
        Arc::new(LastWriteWins::new()),
    );
    let note = |text: &str| Note {
        id: "n1".into(),
        text: text.into(),
        modified: ts(10),
    };
    d.enqueue_create(&s, note("first")).await.unwrap();
    let err = d.enqueue_update(&s, note("second")).await.unwrap_err();
    assert!(matches!(err, Error::StaleVersion { .. }), "{err:?}");
    assert_eq!(d.status(&s).await.unwrap().pending, 1, "nothing queued");
    let kept = d
        .get(&s, "n1", CachePolicy::OfflineOnly)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.text, "first", "nothing written");
    // Deletes are stamped by us and always move past.
    d.enqueue_delete_at(&s, "n1", ts(5)).await.unwrap();
    let ops = d.local().pending_ops(&s, 10).await.unwrap();
    assert!(ops[1].kind == OpKind::Delete && ops[1].updated_at > ts(10));
    let _ = PendingOp::<Note>::delete(s.clone(), "n1", ts(1));
}
