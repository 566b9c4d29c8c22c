//! `PostgresRemoteStore` against a real PostgreSQL server: the RemoteStore conformance suite, the
//! exact-cursor proofs (out-of-order commits, concurrent writers), scope isolation, idempotent
//! replays and error mapping.
//!
//! Needs `RCS_TEST_PG_URL` (see `scripts/start-postgres.sh`); each test prints a line and returns
//! when it is unset. Run with:
//! `eval "$(scripts/start-postgres.sh)" && cargo test -p remote-cache-sync --features postgres --test remote_postgres`
#![cfg(feature = "postgres")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};
use remote_cache_sync::testing::{TestRecord, remote, require_env, ts, unique_scope};
use remote_cache_sync::{
    Cursor, Error, JsonRecord, OpId, OpKind, PendingOp, PushOutcome, RemoteStore, SyncScope,
};
use tokio_postgres::NoTls;

/// Table prefix for these tests (kept apart from other users of the test database).
const PREFIX: &str = "rcs_t_";

/// `RCS_TEST_PG_URL`, or `None` when the test should skip (a missing server fails the test
/// instead under `RCS_TEST_REQUIRE_SERVERS=1`, set by `scripts/test.sh`).
#[track_caller]
fn pg_url() -> Option<String> {
    require_env("RCS_TEST_PG_URL")
}

async fn store(url: &str) -> PostgresRemoteStore<TestRecord> {
    PostgresRemoteStore::connect(
        url,
        PostgresOptions::default()
            .table_prefix(PREFIX)
            .max_connections(16),
    )
    .await
    .expect("connect to the test PostgreSQL")
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("raw connection");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

fn assert_applied(outcomes: &[PushOutcome<TestRecord>]) {
    for o in outcomes {
        assert!(
            matches!(o, PushOutcome::Applied { .. }),
            "expected Applied, got {o:?}"
        );
    }
}

/// One page per call; records every id seen and checks the cursor only moves forward.
struct Puller {
    cursor: Option<Cursor>,
    seen: BTreeMap<String, Option<TestRecord>>,
    pulls: usize,
}

impl Puller {
    fn new() -> Self {
        Puller {
            cursor: None,
            seen: BTreeMap::new(),
            pulls: 0,
        }
    }

    fn cursor_value(c: &Option<Cursor>) -> i64 {
        c.as_ref()
            .map_or(0, |c| c.as_str().parse().expect("numeric cursor"))
    }

    /// Pulls until `has_more` is false; returns the ids received by this call.
    async fn pull(
        &mut self,
        store: &PostgresRemoteStore<TestRecord>,
        scope: &SyncScope,
        limit: usize,
    ) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        loop {
            let page = store
                .fetch_since(scope, self.cursor.as_ref(), limit)
                .await
                .expect("pull");
            self.pulls += 1;
            assert!(page.len() <= limit);
            if page.cursor.is_some() {
                assert!(
                    Self::cursor_value(&page.cursor) >= Self::cursor_value(&self.cursor),
                    "cursor went backwards: {:?} -> {:?}",
                    self.cursor,
                    page.cursor
                );
                self.cursor = page.cursor.clone();
            }
            let has_more = page.has_more;
            for r in page.upserts {
                got.insert(r.id.clone());
                self.seen.insert(r.id.clone(), Some(r));
            }
            for t in page.deletes {
                got.insert(t.id.clone());
                self.seen.insert(t.id, None);
            }
            if !has_more {
                return got;
            }
        }
    }
}

/// Waits until a backend of application `app` is blocked on a heavyweight lock of `kind`
/// (`advisory`, `transactionid`, ...) while running a statement containing `query_part`.
async fn wait_until_blocked(
    observer: &tokio_postgres::Client,
    app: &str,
    kind: &str,
    query_part: &str,
) {
    for _ in 0..500 {
        let n: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = $2
                   AND strpos(query, $3) > 0",
                &[&app, &kind, &query_part],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no backend became blocked on a {kind} lock running {query_part:?}");
}

async fn seq_of(observer: &tokio_postgres::Client, scope: &SyncScope, id: &str) -> i64 {
    observer
        .query_one(
            &format!("SELECT seq FROM {PREFIX}records WHERE scope = $1 AND id = $2"),
            &[&scope.canonical(), &id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_remote_passes_the_conformance_suite() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    remote::run_all(&store, || unique_scope("records")).await;
}

/// The out-of-order-commit proof. Push A takes the lower seq and is held before its commit (its
/// `applied_ops` insert waits for an uncommitted row of another connection). Push B, to the same
/// scope, starts later; without the scope lock it would commit first with a higher seq, a pull
/// would move the cursor past A's seq, and A's row would never be pulled. Pulls run at every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_commits_are_never_missed() {
    let Some(url) = pg_url() else {
        return;
    };
    // Its own application name, to watch only its own backends (tests run in parallel).
    let app = format!("rcs-ooo-{}", &uuid_ish()[..12]);
    let store = Arc::new(
        PostgresRemoteStore::<TestRecord>::connect(
            &format!("{url}?application_name={app}"),
            PostgresOptions::default().table_prefix(PREFIX),
        )
        .await
        .unwrap(),
    );
    let scope = unique_scope("records");
    let observer = raw(&url).await;
    let mut puller = Puller::new();

    let r0 = TestRecord::new("r0", "before", ts(0));
    assert_applied(&store.push(&scope, &[create(&scope, r0)]).await.unwrap());
    assert_eq!(
        puller.pull(&store, &scope, 10).await,
        BTreeSet::from(["r0".to_string()])
    );

    // A blocker connection holds an uncommitted applied_ops row with A's op id.
    let mut op_a = create(&scope, TestRecord::new("a", "earlier stamp", ts(1_000)));
    op_a.op_id = OpId::generate();
    let mut blocker = raw(&url).await;
    let btx = blocker.transaction().await.unwrap();
    btx.execute(
        &format!("INSERT INTO {PREFIX}applied_ops (scope, op_id) VALUES ($1, $2)"),
        &[&scope.canonical(), &op_a.op_id.as_str()],
    )
    .await
    .unwrap();

    let push_a = {
        let (store, scope, op) = (store.clone(), scope.clone(), op_a.clone());
        tokio::spawn(async move { store.push(&scope, &[op]).await })
    };
    // A has written its row (seq taken) and now waits on the blocker's uncommitted key.
    wait_until_blocked(
        &observer,
        &app,
        "transactionid",
        &format!("INSERT INTO {PREFIX}applied_ops"),
    )
    .await;
    let seq_after_a: i64 = observer
        .query_one(&format!("SELECT last_value FROM {PREFIX}seq"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        puller.pull(&store, &scope, 10).await.is_empty(),
        "A is not committed yet"
    );

    // B starts later and must not get a seq (let alone commit) before A commits.
    let push_b = {
        let (store, scope) = (store.clone(), scope.clone());
        let op = create(&scope, TestRecord::new("b", "later stamp", ts(2_000)));
        tokio::spawn(async move { store.push(&scope, &[op]).await })
    };
    wait_until_blocked(&observer, &app, "advisory", "pg_advisory_xact_lock").await;
    for _ in 0..3 {
        assert!(
            puller.pull(&store, &scope, 10).await.is_empty(),
            "nothing committed yet"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!push_b.is_finished(), "B must wait for A's commit");
    assert!(!push_a.is_finished());

    // Release A: the blocker's row disappears, A commits, then B.
    btx.rollback().await.unwrap();
    assert_applied(&push_a.await.unwrap().unwrap());
    assert_applied(&push_b.await.unwrap().unwrap());
    puller.pull(&store, &scope, 1).await;

    let (sa, sb) = (
        seq_of(&observer, &scope, "a").await,
        seq_of(&observer, &scope, "b").await,
    );
    assert!(
        sa <= seq_after_a,
        "A's seq {sa} was taken before it blocked"
    );
    assert!(
        sa < sb,
        "B ({sb}) must get a higher seq than A ({sa}): seqs follow commit order"
    );
    let ids: BTreeSet<_> = puller.seen.keys().cloned().collect();
    assert_eq!(
        ids,
        ["r0", "a", "b"].map(String::from).into_iter().collect(),
        "a pull missed a row"
    );
}

/// The hazard the scope lock closes, shown on the same server: a writer that takes a seq
/// *without* the lock and commits after a later one is missed by a cursor-following reader. This
/// is what makes the test above meaningful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_bypassing_the_scope_lock_would_be_missed() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    let mut puller = Puller::new();

    let mut naive = raw(&url).await;
    let ntx = naive.transaction().await.unwrap();
    let payload = serde_json::to_value(TestRecord::new(
        "naive",
        "lower seq, commits last",
        ts(1_000),
    ))
    .unwrap();
    ntx.execute(
        &format!(
            "INSERT INTO {PREFIX}records (scope, id, seq, version, updated_at, deleted, data)
             VALUES ($1, 'naive', nextval('{PREFIX}seq'), $2, now(), false, $3)"
        ),
        &[&scope.canonical(), &ts(1_000).to_string(), &payload],
    )
    .await
    .unwrap();

    assert_applied(
        &store
            .push(
                &scope,
                &[create(
                    &scope,
                    TestRecord::new("b", "higher seq", ts(2_000)),
                )],
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        puller.pull(&store, &scope, 10).await,
        BTreeSet::from(["b".to_string()])
    );
    ntx.commit().await.unwrap();
    assert!(
        puller.pull(&store, &scope, 10).await.is_empty(),
        "the row below the cursor is skipped: that is the hole"
    );
    assert!(
        store.get_by_id(&scope, "naive").await.unwrap().is_some(),
        "yet it is committed"
    );
}

/// Many concurrent pushers to one scope, a puller running all along: the union of everything
/// pulled through the cursor chain holds every row, at its final version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_a_puller_never_lose_a_row() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = Arc::new(store(&url).await);
    let scope = unique_scope("records");
    const WRITERS: usize = 8;
    const PUSHES: usize = 20;
    const OPS: usize = 3;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, scope, url) = (store.clone(), scope.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let mut last: BTreeMap<String, TestRecord> = BTreeMap::new();
            for p in 0..PUSHES {
                let ops: Vec<_> = (0..OPS)
                    .map(|o| {
                        // Each writer also keeps rewriting two records (on top of the version
                        // it wrote last), so rows move forward in the feed while being pulled.
                        let id = if o == 0 {
                            format!("w{w}-hot{}", p % 2)
                        } else {
                            format!("w{w}-{p}-{o}")
                        };
                        let base = last.get(&id).map(|r: &TestRecord| r.updated_at);
                        let r = TestRecord::new(id, format!("w{w} p{p}"), ts((p * 10 + w) as i64))
                            .with_n(w as i64);
                        let mut op = PendingOp::upsert(scope.clone(), OpKind::Update, r);
                        op.base_version = base;
                        op
                    })
                    .collect();
                let out = if p % 5 == 2 {
                    // Hold this push after it took its seqs and before it commits, for a while,
                    // like a slow transaction: the other writers must not overtake it.
                    let mut blocker = raw(&url).await;
                    let btx = blocker.transaction().await.unwrap();
                    btx.execute(
                        &format!("INSERT INTO {PREFIX}applied_ops (scope, op_id) VALUES ($1, $2)"),
                        &[&scope.canonical(), &ops[OPS - 1].op_id.as_str()],
                    )
                    .await
                    .unwrap();
                    let push = {
                        let (store, scope, ops) = (store.clone(), scope.clone(), ops.clone());
                        tokio::spawn(async move { store.push(&scope, &ops).await })
                    };
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    btx.rollback().await.unwrap();
                    push.await.unwrap().unwrap()
                } else {
                    store.push(&scope, &ops).await.unwrap()
                };
                assert_applied(&out);
                for op in ops {
                    last.insert(op.id.clone(), op.payload.unwrap());
                }
                if p % 3 == w % 3 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            last
        }));
    }
    let puller = {
        let (store, scope) = (store.clone(), scope.clone());
        let writers_done = Arc::new(tokio::sync::Notify::new());
        let done = writers_done.clone();
        let handle = tokio::spawn(async move {
            let mut puller = Puller::new();
            let mut finished = false;
            loop {
                puller.pull(&store, &scope, 7).await;
                if finished {
                    return puller;
                }
                tokio::select! {
                    _ = done.notified() => finished = true,
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                }
            }
        });
        (handle, writers_done)
    };
    let mut written = BTreeMap::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    puller.1.notify_one();
    let mut puller = puller.0.await.unwrap();
    puller.pull(&store, &scope, 7).await; // final drain from the last cursor
    let pulled: BTreeSet<_> = puller.seen.keys().cloned().collect();
    assert_eq!(written.len(), WRITERS * PUSHES * (OPS - 1) + WRITERS * 2);
    let written_ids: BTreeSet<_> = written.keys().cloned().collect();
    let missed: Vec<_> = written_ids.difference(&pulled).collect();
    assert!(
        missed.is_empty(),
        "{} rows missed by the cursor chain: {missed:?}",
        missed.len()
    );
    assert_eq!(pulled, written_ids, "pulled rows nobody wrote");
    for (id, r) in &written {
        assert_eq!(
            puller.seen[id].as_ref(),
            Some(r),
            "the pulled final version of {id} is stale"
        );
    }
    // The final state pulled equals the server's state.
    for (id, r) in &puller.seen {
        assert_eq!(
            &store.get_by_id(&scope, id).await.unwrap(),
            r,
            "stale final version of {id}"
        );
    }
    assert!(
        puller.pulls > 3,
        "the puller ran during the writes ({} pulls)",
        puller.pulls
    );
}

#[tokio::test]
async fn scopes_with_hostile_keys_stay_isolated() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let owner = uuid_ish();
    let a = SyncScope::new("records", [("owner", format!("{owner}' OR '1'='1"))]).unwrap();
    let b = SyncScope::new("records", [("owner", owner.clone())]).unwrap();
    let c = SyncScope::new("records", [("owner", format!("{owner}%"))]).unwrap();
    for (i, s) in [&a, &b, &c].into_iter().enumerate() {
        let r = TestRecord::new("same-id", format!("in scope {i}"), ts(i as i64));
        assert_applied(&store.push(s, &[create(s, r)]).await.unwrap());
    }
    for (i, s) in [&a, &b, &c].into_iter().enumerate() {
        let got = store.get_by_id(s, "same-id").await.unwrap().unwrap();
        assert_eq!(got.title, format!("in scope {i}"));
        let page = store.fetch_since(s, None, 100).await.unwrap();
        assert_eq!(page.upserts.len(), 1, "scope {i} sees exactly its own row");
        assert_eq!(page.upserts[0].title, format!("in scope {i}"));
    }
    // A push whose ops name another scope is refused as a whole.
    let op = create(&a, TestRecord::new("x", "x", ts(0)));
    assert!(matches!(
        store.push(&b, &[op]).await,
        Err(Error::InvalidInput(_))
    ));
}

fn uuid_ish() -> String {
    unique_scope("x").key("owner").unwrap().to_owned()
}

#[tokio::test]
async fn replaying_the_same_op_ids_changes_nothing() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let observer = raw(&url).await;
    let scope = unique_scope("records");
    let v1 = TestRecord::new("a", "v1", ts(1_000));
    let ops = vec![
        create(&scope, v1.clone()),
        create(&scope, TestRecord::new("b", "b", ts(1_000))),
        PendingOp::delete(scope.clone(), "gone", ts(1_500)),
    ];
    assert_applied(&store.push(&scope, &ops).await.unwrap());
    let mut puller = Puller::new();
    assert_eq!(puller.pull(&store, &scope, 100).await.len(), 3);
    let seq_a = seq_of(&observer, &scope, "a").await;

    // Replays, alone and mixed with a new op, answer Applied and write nothing.
    for _ in 0..2 {
        assert_applied(&store.push(&scope, &ops).await.unwrap());
    }
    let v2 = TestRecord::new("a", "v2", ts(2_000));
    let mut upd = PendingOp::upsert(scope.clone(), OpKind::Update, v2.clone());
    upd.base_version = Some(v1.updated_at);
    let mut mixed = ops.clone();
    mixed.push(upd.clone());
    let out = store.push(&scope, &mixed).await.unwrap();
    assert_applied(&out);
    assert_eq!(out[0], PushOutcome::Applied { version: ts(1_000) });
    assert_eq!(
        seq_of(&observer, &scope, "b").await,
        seq_of(&observer, &scope, "b").await
    );
    assert!(
        seq_of(&observer, &scope, "a").await > seq_a,
        "the new update moved a"
    );
    assert_eq!(
        puller.pull(&store, &scope, 100).await,
        BTreeSet::from(["a".to_string()])
    );
    // Replaying the old create after the update reports the version it wrote back then (never a
    // later one the client has not seen) and does not revert the update.
    let out = store.push(&scope, &ops[..1]).await.unwrap();
    assert_eq!(out[0], PushOutcome::Applied { version: ts(1_000) });
    assert_eq!(store.get_by_id(&scope, "a").await.unwrap(), Some(v2));
    assert!(
        puller.pull(&store, &scope, 100).await.is_empty(),
        "replays must not bump seqs"
    );
    let n: i64 = observer
        .query_one(
            &format!("SELECT count(*) FROM {PREFIX}applied_ops WHERE scope = $1"),
            &[&scope.canonical()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

#[tokio::test]
async fn deleting_a_missing_record_writes_a_tombstone() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    let del = PendingOp::<TestRecord>::delete(scope.clone(), "never-existed", ts(5_000));
    assert_eq!(
        store.push(&scope, &[del]).await.unwrap(),
        vec![PushOutcome::Applied { version: ts(5_000) }]
    );
    let page = store.fetch_since(&scope, None, 10).await.unwrap();
    assert!(page.upserts.is_empty());
    assert_eq!(page.deletes.len(), 1);
    assert_eq!(page.deletes[0].id, "never-existed");
    assert_eq!(page.deletes[0].deleted_at, ts(5_000));
    // A blind create does not replace the unseen tombstone (base_matches); one made on top of
    // it applies.
    let r = TestRecord::new("never-existed", "back", ts(6_000));
    let out = store
        .push(&scope, &[create(&scope, r.clone())])
        .await
        .unwrap();
    assert!(
        matches!(out[0], PushOutcome::Conflict { current: Some(_) }),
        "{out:?}"
    );
    let mut on_top = create(&scope, r);
    on_top.base_version = Some(ts(5_000));
    assert_applied(&store.push(&scope, &[on_top]).await.unwrap());
}

#[tokio::test]
async fn nanosecond_versions_and_payload_tombstones_round_trip() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    let at: jiff::Timestamp = "2026-03-04T05:06:07.123456789Z".parse().unwrap();
    let r = TestRecord::new("ns", "ns", at);
    assert_applied(
        &store
            .push(&scope, &[create(&scope, r.clone())])
            .await
            .unwrap(),
    );
    let mut upd = PendingOp::upsert(
        scope.clone(),
        OpKind::Update,
        TestRecord::new("ns", "ns2", ts(1)),
    );
    upd.base_version = Some(at);
    assert_applied(&store.push(&scope, &[upd]).await.unwrap());

    // A payload tombstone (deleted_at in the record) is pulled as an upsert carrying it.
    let mut soft = TestRecord::new("soft", "soft", ts(10));
    soft.deleted_at = Some(ts(20));
    assert_applied(
        &store
            .push(&scope, &[create(&scope, soft.clone())])
            .await
            .unwrap(),
    );
    assert_eq!(
        store.get_by_id(&scope, "soft").await.unwrap(),
        None,
        "soft-deleted is not live"
    );
    let page = store.fetch_since(&scope, None, 10).await.unwrap();
    assert!(page.upserts.contains(&soft), "{:?}", page.upserts);
}

#[tokio::test]
async fn unstorable_data_is_rejected_per_op() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    let mut mismatched = create(&scope, TestRecord::new("p", "p", ts(0)));
    mismatched.id = "other".into();
    let ops = vec![
        create(&scope, TestRecord::new("ok1", "fine", ts(0))),
        create(&scope, TestRecord::new("nul", "bad \u{0} byte", ts(0))),
        mismatched,
        create(&scope, TestRecord::new("ok2", "fine", ts(0))),
    ];
    let out = store.push(&scope, &ops).await.unwrap();
    assert!(matches!(out[0], PushOutcome::Applied { .. }));
    assert!(
        matches!(&out[1], PushOutcome::Rejected { reason } if reason.contains("NUL")),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(out[2], PushOutcome::Rejected { .. }),
        "{:?}",
        out[2]
    );
    assert!(matches!(out[3], PushOutcome::Applied { .. }));
    assert!(store.get_by_id(&scope, "ok2").await.unwrap().is_some());
    assert!(store.get_by_id(&scope, "nul").await.unwrap().is_none());
    assert!(matches!(
        store
            .fetch_since(&scope, Some(&Cursor::new("-3")), 10)
            .await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn table_prefixes_keep_apps_apart_and_migrations_are_concurrent_safe() {
    let Some(url) = pg_url() else {
        return;
    };
    let suffix = &uuid_ish()[..12];
    let (p1, p2) = (format!("rcs_t_{suffix}_a_"), format!("rcs_t_{suffix}_b_"));
    let connects = (0..4).map(|i| {
        let prefix = if i % 2 == 0 { p1.clone() } else { p2.clone() };
        let url = url.clone();
        async move {
            PostgresRemoteStore::<JsonRecord>::connect(
                &url,
                PostgresOptions::default().table_prefix(prefix),
            )
            .await
        }
    });
    let stores: Vec<_> = futures::future::join_all(connects)
        .await
        .into_iter()
        .map(|r| r.expect("concurrent connect + migrate"))
        .collect();
    let scope = SyncScope::named("shared").unwrap();
    let rec = JsonRecord::from_value(serde_json::json!({
        "id": "j1", "updated_at": "2026-01-01T00:00:00Z", "nested": {"x": [1, 2.5, null, "s"]}
    }))
    .unwrap();
    stores[0]
        .batch_upsert(&scope, std::slice::from_ref(&rec))
        .await
        .unwrap();
    assert_eq!(
        stores[2].get_by_id(&scope, "j1").await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(
        stores[1].get_by_id(&scope, "j1").await.unwrap(),
        None,
        "other prefix, other app"
    );
    assert!(
        stores[3]
            .fetch_since(&scope, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let observer = raw(&url).await;
    for p in [&p1, &p2] {
        observer
            .batch_execute(&format!(
                "DROP TABLE {p}records, {p}applied_ops, {p}meta; DROP SEQUENCE {p}seq"
            ))
            .await
            .unwrap();
    }
    assert!(matches!(
        PostgresRemoteStore::<JsonRecord>::connect(
            &url,
            PostgresOptions::default().table_prefix("Bad-Prefix")
        )
        .await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn schema_from_a_newer_build_is_refused() {
    let Some(url) = pg_url() else {
        return;
    };
    let prefix = format!("rcs_t_{}_", &uuid_ish()[..12]);
    let s = PostgresRemoteStore::<TestRecord>::connect(
        &url,
        PostgresOptions::default().table_prefix(prefix.clone()),
    )
    .await
    .unwrap();
    let observer = raw(&url).await;
    observer
        .execute(
            &format!("UPDATE {prefix}meta SET value = '99' WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .unwrap();
    let err = s.migrate().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                kind: remote_cache_sync::StorageErrorKind::SchemaTooNew,
                ..
            }
        ),
        "{err}"
    );
    observer
        .batch_execute(&format!(
            "DROP TABLE {prefix}records, {prefix}applied_ops, {prefix}meta; DROP SEQUENCE {prefix}seq"
        ))
        .await
        .unwrap();
}

/// Rows another writer left malformed in the table give typed errors, never a panic: a NULL
/// where a value belongs, or a column retyped by hand. Pulls and reads of such a row fail with
/// `MalformedResponse` naming the record; a push rejects the ops on that record and applies
/// the others.
#[tokio::test]
async fn malformed_rows_give_typed_errors_not_panics() {
    let Some(url) = pg_url() else {
        return;
    };
    let prefix = format!("rcs_t_{}_", &uuid_ish()[..12]);
    let connect = || {
        PostgresRemoteStore::<TestRecord>::connect(
            &url,
            PostgresOptions::default().table_prefix(prefix.clone()),
        )
    };
    let s = connect().await.unwrap();
    let scope = unique_scope("records");
    let ok = TestRecord::new("ok", "fine", ts(1));
    assert_applied(&s.push(&scope, &[create(&scope, ok.clone())]).await.unwrap());
    let malformed = |e: &Error, id: &str| matches!(e, Error::MalformedResponse { backend: "postgres", message } if message.contains(id));

    // Another writer relaxes the schema and leaves a tombstone without a version.
    let observer = raw(&url).await;
    observer
        .batch_execute(&format!(
            "ALTER TABLE {prefix}records ALTER COLUMN version DROP NOT NULL, \
                                         ALTER COLUMN deleted DROP NOT NULL"
        ))
        .await
        .unwrap();
    let insert = format!(
        "INSERT INTO {prefix}records (scope, id, seq, version, updated_at, deleted, data) \
         VALUES ($1, $2, nextval('{prefix}seq'), $3, now(), $4, $5)"
    );
    let bad_body = serde_json::json!({"id": "nulldel", "title": "t", "updated_at": ts(2)});
    observer
        .execute(
            &insert,
            &[
                &scope.canonical(),
                &"nullver",
                &None::<String>,
                &Some(true),
                &None::<serde_json::Value>,
            ],
        )
        .await
        .unwrap();
    // ... and a row without a `deleted` flag.
    observer
        .execute(
            &insert,
            &[
                &scope.canonical(),
                &"nulldel",
                &Some(ts(2).to_string()),
                &None::<bool>,
                &Some(bad_body),
            ],
        )
        .await
        .unwrap();

    let page = s.fetch_since(&scope, None, 1).await.unwrap();
    assert_eq!(
        page.upserts,
        std::slice::from_ref(&ok),
        "rows before the bad one pull"
    );
    // Malformed rows never block the scope: they are quarantined with a typed reason.
    let rest = s
        .fetch_since(&scope, page.cursor.as_ref(), 10)
        .await
        .unwrap();
    let quarantined: Vec<_> = rest.quarantined.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(quarantined, ["nullver"], "{rest:?}");
    assert!(rest.quarantined[0].reason.contains("nullver"));
    // A pull does not read `deleted` (the payload decides), so that row still arrives.
    assert_eq!(rest.upserts.len(), 1);
    assert!(rest.deletes.is_empty() && !rest.has_more);
    assert_ne!(rest.cursor, page.cursor, "the cursor moves past them");

    let ops = [
        create(&scope, TestRecord::new("nullver", "over it", ts(3))),
        create(&scope, TestRecord::new("nulldel", "over it", ts(3))),
        create(&scope, TestRecord::new("fresh", "new", ts(3))),
    ];
    let out = s.push(&scope, &ops).await.unwrap();
    for (i, id) in [(0, "nullver"), (1, "nulldel")] {
        assert!(
            matches!(&out[i], PushOutcome::Rejected { reason } if reason.contains(id) && reason.contains("does not decode")),
            "an op on malformed row {id} must be rejected with the reason, got {:?}",
            out[i]
        );
    }
    assert_applied(&out[2..]);
    assert_eq!(s.get_by_id(&scope, "ok").await.unwrap(), Some(ok.clone()));

    // A column of the wrong type (retyped by hand): reads of any row fail, typed.
    observer
        .batch_execute(&format!(
            "ALTER TABLE {prefix}records ALTER COLUMN data TYPE text USING data::text"
        ))
        .await
        .unwrap();
    // A fresh store, so no statement prepared for the old column type is reused.
    let s = connect().await.unwrap();
    let err = s.get_by_id(&scope, "ok").await.unwrap_err();
    assert!(malformed(&err, "ok"), "{err:?}");
    let page = s.fetch_since(&scope, None, 10).await.unwrap();
    assert!(
        page.upserts.is_empty() && page.quarantined.iter().any(|q| q.id == "ok"),
        "{page:?}"
    );
    let out = s
        .push(
            &scope,
            &[create(&scope, TestRecord::new("ok", "again", ts(4)))],
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], PushOutcome::Rejected { reason } if reason.contains("does not decode")),
        "{out:?}"
    );

    observer
        .batch_execute(&format!(
            "DROP TABLE {prefix}records, {prefix}applied_ops, {prefix}meta; DROP SEQUENCE {prefix}seq"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    // Needs no server: nothing listens on port 1.
    let started = std::time::Instant::now();
    let err = PostgresRemoteStore::<TestRecord>::connect(
        "postgres://rcs:pw-not-shown@127.0.0.1:1/rcs_test",
        PostgresOptions::default().connect_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        !format!("{err} {err:?}").contains("pw-not-shown"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_password_is_unauthorized_and_never_echoed() {
    let Some(url) = pg_url() else {
        return;
    };
    let secret = "Wr0ng-but-Secret-pa55word";
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let bad = format!(
        "postgres://{}:{secret}@{host}:{}/{}",
        config.get_user().unwrap(),
        config.get_ports()[0],
        config.get_dbname().unwrap()
    );
    let err = PostgresRemoteStore::<TestRecord>::connect(&bad, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.is_auth() && !err.is_retryable());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(secret), "password leaked: {shown}");

    // A malformed URL carrying a password does not echo it either.
    let err = PostgresRemoteStore::<TestRecord>::connect(
        &format!("postgres://u:{secret}@127.0.0.1:notaport/db"),
        PostgresOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
}

#[tokio::test]
async fn a_killed_backend_is_unavailable_then_recovers() {
    let Some(url) = pg_url() else {
        return;
    };
    // Its own application name, so only its connection is terminated (tests run in parallel).
    let app = format!("rcs-kill-{}", &uuid_ish()[..12]);
    let store = Arc::new(
        PostgresRemoteStore::<TestRecord>::connect(
            &format!("{url}?application_name={app}"),
            PostgresOptions::default()
                .table_prefix(PREFIX)
                .max_connections(1),
        )
        .await
        .unwrap(),
    );
    let scope = unique_scope("records");
    // Park a push on its scope lock, then terminate its backend (57P01 admin_shutdown).
    let holder = raw(&url).await;
    let key = format!("{PREFIX}records\n{}", scope.canonical());
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1::text, 0))",
            &[&key],
        )
        .await
        .unwrap();
    let op = create(&scope, TestRecord::new("k", "k", ts(0)));
    let push = {
        let (store, scope, op) = (store.clone(), scope.clone(), op.clone());
        tokio::spawn(async move { store.push(&scope, &[op]).await })
    };
    wait_until_blocked(&holder, &app, "advisory", "pg_advisory_xact_lock").await;
    holder
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let err = push.await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(err.to_string().contains("57P01"), "{err}");
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))",
            &[&key],
        )
        .await
        .unwrap();
    // The pool drops the dead connection; the retried push goes through.
    assert_applied(&store.push(&scope, &[op]).await.unwrap());
    assert!(store.get_by_id(&scope, "k").await.unwrap().is_some());
}

#[tokio::test]
async fn sslmode_require_verifies_the_server_certificate() {
    let Some(url) = pg_url() else {
        return;
    };
    let Some(ca) = require_env("RCS_TEST_PG_CA") else {
        return;
    };
    let tls_url = format!("{url}?sslmode=require&application_name=rcs-tls-test");
    let store = PostgresRemoteStore::<TestRecord>::connect(
        &tls_url,
        PostgresOptions::default()
            .table_prefix(PREFIX)
            .tls_root_certificates(&ca),
    )
    .await
    .expect("TLS connect with the test CA");
    let scope = unique_scope("records");
    let r = TestRecord::new("tls", "over TLS", ts(0));
    assert_applied(
        &store
            .push(&scope, &[create(&scope, r.clone())])
            .await
            .unwrap(),
    );
    assert_eq!(store.get_by_id(&scope, "tls").await.unwrap(), Some(r));

    // The store's connections really are encrypted.
    let observer = raw(&url).await;
    let n: i64 = observer
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'rcs-tls-test'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n >= 1, "no TLS connection from the store");

    // Without the CA the self-signed certificate is refused, permanently, without the password.
    let err = PostgresRemoteStore::<TestRecord>::connect(
        &tls_url,
        PostgresOptions::default().table_prefix(PREFIX),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!format!("{err} {err:?}").contains(password), "{err:?}");

    // libpq's spelling in the URL works too (what `rcs serve --db` users will write).
    let libpq_url = format!(
        "{url}?sslmode=verify-full&sslrootcert={}&application_name=rcs-tls-test",
        ca.replace('/', "%2F")
    );
    let store2 = PostgresRemoteStore::<TestRecord>::connect(
        &libpq_url,
        PostgresOptions::default().table_prefix(PREFIX),
    )
    .await
    .expect("sslrootcert in the URL");
    assert!(store2.get_by_id(&scope, "tls").await.unwrap().is_some());

    // A missing CA file is a configuration error.
    let err = PostgresRemoteStore::<TestRecord>::connect(
        &tls_url,
        PostgresOptions::default().tls_root_certificates("/nonexistent/ca.pem"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

/// 20,000 rows pushed in batches of 500 and pulled in pages of 1,000: every row arrives exactly
/// once, and the rates are printed (`cargo test -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_push_and_pull_sees_every_row_once() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    const N: usize = 20_000;
    let started = std::time::Instant::now();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let ops: Vec<_> = chunk
            .iter()
            .map(|i| {
                create(
                    &scope,
                    TestRecord::new(format!("bulk{i:06}"), "x".repeat(64), ts(*i as i64)),
                )
            })
            .collect();
        assert_applied(&store.push(&scope, &ops).await.unwrap());
    }
    let push_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let mut cursor: Option<Cursor> = None;
    let mut ids = Vec::with_capacity(N);
    loop {
        let page = store
            .fetch_since(&scope, cursor.as_ref(), 1_000)
            .await
            .unwrap();
        ids.extend(page.upserts.iter().map(|r| r.id.clone()));
        cursor = page.cursor.clone();
        if !page.has_more {
            break;
        }
    }
    let pull_secs = started.elapsed().as_secs_f64();
    assert_eq!(ids.len(), N, "every row exactly once");
    let expected: BTreeSet<_> = (0..N).map(|i| format!("bulk{i:06}")).collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    println!(
        "postgres bulk: push {:.0} rows/s (batches of 500), pull {:.0} rows/s (pages of 1000)",
        N as f64 / push_secs,
        N as f64 / pull_secs
    );
}

/// A push that cannot get its scope's lock in time fails with a retryable error and writes
/// nothing; the same push succeeds once the lock is free.
#[tokio::test]
async fn a_push_waiting_too_long_for_its_scope_lock_is_unavailable() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = PostgresRemoteStore::<TestRecord>::connect(
        &url,
        PostgresOptions::default()
            .table_prefix(PREFIX)
            .lock_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let scope = unique_scope("records");
    let holder = raw(&url).await;
    let key = format!("{PREFIX}records\n{}", scope.canonical());
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1::text, 0))",
            &[&key],
        )
        .await
        .unwrap();
    let op = create(&scope, TestRecord::new("x", "x", ts(0)));
    let err = store
        .push(&scope, std::slice::from_ref(&op))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(store.get_by_id(&scope, "x").await.unwrap(), None);
    // Other scopes are not held up.
    let other = unique_scope("records");
    assert_applied(
        &store
            .push(&other, &[create(&other, TestRecord::new("y", "y", ts(0)))])
            .await
            .unwrap(),
    );
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))",
            &[&key],
        )
        .await
        .unwrap();
    assert_applied(&store.push(&scope, &[op]).await.unwrap());
}

/// Several ops on one record in one push are applied in order, each checked against the state the
/// previous ones left; the record is written once and pulled once.
#[tokio::test]
async fn ops_on_one_record_in_one_push_apply_in_order() {
    let Some(url) = pg_url() else {
        return;
    };
    let store = store(&url).await;
    let scope = unique_scope("records");
    let v1 = TestRecord::new("a", "v1", ts(1_000));
    let v2 = TestRecord::new("a", "v2", ts(2_000));
    let mut upd = PendingOp::upsert(scope.clone(), OpKind::Update, v2.clone());
    upd.base_version = Some(v1.updated_at);
    let mut stale = PendingOp::upsert(
        scope.clone(),
        OpKind::Update,
        TestRecord::new("a", "v3", ts(3_000)),
    );
    stale.base_version = Some(v1.updated_at);
    let mut del = PendingOp::<TestRecord>::delete(scope.clone(), "a", ts(4_000));
    del.base_version = Some(v2.updated_at);
    let out = store
        .push(
            &scope,
            &[
                create(&scope, v1.clone()),
                upd,
                stale,
                create(&scope, v1.clone()),
            ],
        )
        .await
        .unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(out[1], PushOutcome::Applied { .. }),
        "{:?}",
        out[1]
    );
    assert_eq!(
        out[2],
        PushOutcome::Conflict {
            current: Some(remote_cache_sync::Change::Upsert(v2.clone()))
        }
    );
    assert!(
        matches!(out[3], PushOutcome::Conflict { .. }),
        "a create on a live record: {:?}",
        out[3]
    );
    let page = store.fetch_since(&scope, None, 10).await.unwrap();
    assert_eq!(page.upserts, vec![v2.clone()]);
    // Delete then re-create in one push: the final state is the re-created record.
    let v5 = TestRecord::new("a", "v5", ts(5_000));
    let mut recreate = create(&scope, v5.clone());
    recreate.base_version = Some(ts(4_000));
    let out = store.push(&scope, &[del, recreate]).await.unwrap();
    assert_applied(&out);
    let page = store
        .fetch_since(&scope, page.cursor.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!((page.upserts, page.deletes.len()), (vec![v5], 0));
}

/// `remote::from_url` (the CLI's entry point) opens a `postgres://` or `postgresql://` URL with
/// its `table_prefix`, and a wrong password fails as `Unauthorized` without showing any
/// password, the given one or the real one.
#[tokio::test]
async fn from_url_opens_postgres_urls_and_hides_the_password() {
    let Some(url) = pg_url() else { return };
    let with_prefix = format!(
        "{url}{}table_prefix={PREFIX}",
        if url.contains('?') { "&" } else { "?" }
    );
    for u in [
        with_prefix.clone(),
        with_prefix.replacen("postgres://", "postgresql://", 1),
    ] {
        let remote = remote_cache_sync::remote::from_url::<TestRecord>(&u)
            .await
            .expect("from_url connects");
        assert_eq!(remote.name(), "postgres");
        let scope = unique_scope("from_url");
        let out = remote
            .push(
                &scope,
                &[remote_cache_sync::op::PendingOp::upsert(
                    scope.clone(),
                    remote_cache_sync::op::OpKind::Create,
                    TestRecord::new("a", "t", ts(1)),
                )],
            )
            .await
            .unwrap();
        assert!(matches!(
            out[0],
            remote_cache_sync::op::PushOutcome::Applied { .. }
        ));
        assert_eq!(remote.fetch_since(&scope, None, 10).await.unwrap().len(), 1);
    }
    let real = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .expect("the test URL carries a password");
    let wrong = url.replacen(&format!(":{real}@"), ":wrong-pw-s3cret@", 1);
    let e = match remote_cache_sync::remote::from_url::<TestRecord>(&wrong).await {
        Ok(_) => panic!("a wrong password connected"),
        Err(e) => e,
    };
    let shown = format!("{e} {e:?}");
    assert!(e.is_auth(), "{shown}");
    assert!(
        !shown.contains("wrong-pw-s3cret") && !shown.contains(&real),
        "{shown}"
    );
}
