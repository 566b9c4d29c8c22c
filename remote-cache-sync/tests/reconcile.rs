//! `Orchestrator::reconcile` against real stores: rows deleted and edited behind the change feed
//! (by SQL in our server's SQLite storage, in PostgreSQL and in Supabase's database; through
//! PocketBase's API by a superuser) are repaired, queued local writes survive, and a scope never
//! sees another's rows. The remote without digests (in memory) is reconciled through a full
//! listing.
//!
//! PostgreSQL cases need `RCS_TEST_PG_URL` (`scripts/start-postgres.sh`), the others
//! `scripts/start-pocketbase.sh` and `scripts/start-supabase.sh`.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::remote::pull_all;
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    InMemoryRemoteStore, JsonRecord, LocalStore, OpKind, Orchestrator, PendingOp, QuerySpec,
    ReconcileReport, RemoteStore, SyncScope,
};

fn rec(i: usize) -> TestRecord {
    TestRecord::new(format!("rec{i:03}"), format!("title {i}"), ts(i as i64))
}

/// The live rows of the cache.
async fn cached(
    local: &SqliteLocalStore<TestRecord>,
    scope: &SyncScope,
) -> BTreeMap<String, TestRecord> {
    local
        .query(scope, &QuerySpec::new())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect()
}

/// The live rows of the remote: its feed, plus `sneaky`, which was inserted below every
/// cursor (so no feed shows it) and is read by id.
async fn remote_rows<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) -> BTreeMap<String, TestRecord> {
    let (state, _) = pull_all(remote, scope, None, 500).await;
    let mut rows: BTreeMap<String, TestRecord> = state
        .into_iter()
        .filter_map(|(id, r)| r.map(|r| (id, r)))
        .collect();
    if let Some(r) = remote.get_by_id(scope, "sneaky").await.unwrap() {
        rows.insert(r.id.clone(), r);
    }
    rows
}

fn without(mut m: BTreeMap<String, TestRecord>, ids: &[&str]) -> BTreeMap<String, TestRecord> {
    for id in ids {
        m.remove(*id);
    }
    m
}

/// What the tampering does to scope `a`: deletes rec000..=rec004, edits rec010 and rec011
/// (new title and version, same sequence), inserts `sneaky` below every cursor.
const DELETED: [&str; 5] = ["rec000", "rec001", "rec002", "rec003", "rec004"];

fn edited(i: usize) -> TestRecord {
    TestRecord::new(
        format!("rec{i:03}"),
        "edited behind the feed",
        ts(5_000 + i as i64),
    )
}

fn sneaky() -> TestRecord {
    TestRecord::new("sneaky", "inserted behind the feed", ts(6_000))
}

/// The scenario shared by every remote; `tamper` changes scope `a` behind the feed.
async fn scenario<R, F, Fut>(remote: Arc<R>, tamper: F)
where
    R: RemoteStore<TestRecord>,
    F: FnOnce(SyncScope) -> Fut,
    Fut: Future<Output = ()>,
{
    let (a, b) = (unique_scope("records"), unique_scope("records"));
    let seeded: Vec<TestRecord> = (0..200).map(rec).collect();
    remote.batch_upsert(&a, &seeded).await.unwrap();
    remote.batch_upsert(&b, &seeded[..20]).await.unwrap();
    let local = Arc::new(
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap(),
    );
    let orch = Orchestrator::new(local.clone(), remote.clone());
    orch.synchronize(&a).await.unwrap();
    orch.synchronize(&b).await.unwrap();
    assert_eq!(cached(&local, &a).await, remote_rows(&*remote, &a).await);

    // An unchanged scope: one round, nothing to do.
    let r = orch.reconcile(&a).await.unwrap();
    assert_eq!(
        (r.checked, r.missing, r.extra, r.stale, r.rounds),
        (200, 0, 0, 0, 1),
        "{r:?}"
    );

    // Queued local writes, straight into the store (no sync starts): an update of a row the
    // remote will lose, an update of a row the remote will change, a create not yet pushed.
    let mine = |id: &str, base: i64| {
        let mut op = PendingOp::upsert(
            a.clone(),
            OpKind::Update,
            TestRecord::new(id, "my offline edit", ts(3_000)),
        );
        op.base_version = Some(ts(base));
        op
    };
    local.enqueue(mine("rec003", 3)).await.unwrap();
    local.enqueue(mine("rec011", 11)).await.unwrap();
    local
        .enqueue(PendingOp::upsert(
            a.clone(),
            OpKind::Create,
            TestRecord::new("mine-new", "offline", ts(3_001)),
        ))
        .await
        .unwrap();
    let before_b = cached(&local, &b).await;

    tamper(a.clone()).await;

    let r: ReconcileReport = orch.reconcile(&a).await.unwrap();
    assert_eq!(r.checked, 196, "{r:?}");
    assert_eq!(
        (r.missing, r.extra, r.stale, r.skipped),
        (1, 5, 2, 2),
        "{r:?}"
    );
    assert!(r.bytes_transferred > 0);
    let queued = ["rec003", "rec011", "mine-new"];
    let theirs = remote_rows(&*remote, &a).await;
    assert_eq!(theirs.len(), 196);
    assert_eq!(
        without(cached(&local, &a).await, &queued),
        without(theirs.clone(), &queued)
    );
    // The queued writes are untouched, still queued, and still what the cache shows.
    let now = cached(&local, &a).await;
    for id in queued {
        assert_eq!(
            now[id].title,
            if id == "mine-new" {
                "offline"
            } else {
                "my offline edit"
            }
        );
    }
    assert_eq!(local.queue_status(&a).await.unwrap().pending, 3);
    assert_eq!(now["rec010"], edited(10));
    assert_eq!(now["sneaky"], sneaky());
    // The other scope saw nothing.
    assert_eq!(cached(&local, &b).await, before_b);
    let r = orch.reconcile(&b).await.unwrap();
    assert_eq!(
        (r.checked, r.missing, r.extra, r.stale),
        (20, 0, 0, 0),
        "{r:?}"
    );

    // Once the queue is pushed (rec011 conflicts and is resolved), everything converges.
    orch.synchronize(&a).await.unwrap();
    let r = orch.reconcile(&a).await.unwrap();
    assert_eq!(
        (r.missing, r.extra, r.stale, r.skipped),
        (0, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(cached(&local, &a).await, remote_rows(&*remote, &a).await);
    assert_eq!(local.queue_status(&a).await.unwrap().pending, 0);
}

/// A real server on a loopback port over SQLite storage; returns its URL and the stop sender.
async fn server_over(
    storage: SqliteRemoteStore<JsonRecord>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut tokens = StaticTokens::new();
    tokens.grant("all-access", ScopePattern::any()).unwrap();
    tokens
        .grant_spec("alice-token:records,owner=alice")
        .unwrap();
    let router = Server::new(storage.clone(), tokens)
        .raw_feed(Arc::new(storage))
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), stop)
}

fn http(url: &str, token: &str) -> HttpRemoteStore<TestRecord> {
    HttpRemoteStore::builder(url).token(token).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_over_sqlite_storage_edited_by_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sqlite");
    let storage = SqliteRemoteStore::<JsonRecord>::open(&path).await.unwrap();
    let (url, _stop) = server_over(storage).await;
    let remote = Arc::new(http(&url, "all-access"));
    scenario(remote, |scope| async move {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let sid: i64 = conn
            .query_row(
                "SELECT scope_id FROM rcs_remote_scopes WHERE canonical = ?1",
                [scope.canonical()],
                |r| r.get(0),
            )
            .unwrap();
        for id in DELETED {
            let n = conn
                .execute("DELETE FROM rcs_remote_records WHERE scope_id = ?1 AND id = ?2", rusqlite::params![sid, id])
                .unwrap();
            assert_eq!(n, 1);
        }
        for i in [10, 11] {
            let r = edited(i);
            let n = conn
                .execute(
                    "UPDATE rcs_remote_records SET body = ?1, version = ?2 WHERE scope_id = ?3 AND id = ?4",
                    rusqlite::params![serde_json::to_string(&r).unwrap(), r.updated_at.to_string(), sid, r.id],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        let s = sneaky();
        conn.execute(
            "INSERT INTO rcs_remote_records (seq, scope_id, id, kind, deleted, version, body) \
             VALUES (-1, ?1, ?2, 0, 0, ?3, ?4)",
            rusqlite::params![sid, s.id, s.updated_at.to_string(), serde_json::to_string(&s).unwrap()],
        )
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_is_authorized_as_a_pull_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteRemoteStore::<JsonRecord>::open(dir.path().join("s.sqlite"))
        .await
        .unwrap();
    let (url, _stop) = server_over(storage).await;
    let alice = http(&url, "alice-token");
    let hers = SyncScope::new("records", [("owner", "alice")]).unwrap();
    let bobs = SyncScope::new("records", [("owner", "bob")]).unwrap();
    let req = remote_cache_sync::reconcile::DigestRequest::top();
    assert!(alice.digest(&hers, &req).await.unwrap().is_some());
    let refused = alice.digest(&bobs, &req).await.unwrap_err();
    assert!(refused.pauses_scope(), "{refused:?}");
    let anonymous = HttpRemoteStore::<TestRecord>::builder(&url)
        .build()
        .unwrap();
    assert!(anonymous.digest(&hers, &req).await.is_err());
    // Invalid bodies get a 400 with the stable error body.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{url}/v1/digest"))
        .bearer_auth("alice-token")
        .json(&serde_json::json!({"scope": hers, "prefixes": ["zz"], "length": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_without_digests_is_reconciled_by_listing() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let a = unique_scope("records");
    remote
        .batch_upsert(&a, &(0..50).map(rec).collect::<Vec<_>>())
        .await
        .unwrap();
    let local = Arc::new(
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap(),
    );
    let orch = Orchestrator::new(local.clone(), remote.clone());
    orch.synchronize(&a).await.unwrap();
    // A row only the cache has (as if the remote purged it): removed by reconcile.
    local
        .apply_reconciled(&a, &[TestRecord::new("ghost", "gone remotely", ts(1))], &[])
        .await
        .unwrap();
    assert!(cached(&local, &a).await.contains_key("ghost"));
    let r = orch.reconcile(&a).await.unwrap();
    assert_eq!(
        (r.checked, r.extra, r.missing, r.stale),
        (50, 1, 0, 0),
        "{r:?}"
    );
    assert!(r.bytes_transferred > 0, "the listing is counted");
    assert_eq!(cached(&local, &a).await, remote_rows(&*remote, &a).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_waits_for_a_running_sync_of_its_scope() {
    use remote_cache_sync::testing::FaultyRemote;
    use std::time::{Duration, Instant};
    // Every remote call takes 300 ms. A reconciliation started while a sync runs must start its
    // calls only once the sync is done: it ends a whole reconciliation's time after the sync.
    let latency = Duration::from_millis(300);
    let remote =
        Arc::new(FaultyRemote::new(InMemoryRemoteStore::<TestRecord>::new()).with_latency(latency));
    let a = unique_scope("records");
    remote
        .inner()
        .batch_upsert(&a, &(0..5).map(rec).collect::<Vec<_>>())
        .await
        .unwrap();
    let local = Arc::new(
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap(),
    );
    let orch = Orchestrator::new(local.clone(), remote.clone());
    orch.synchronize(&a).await.unwrap();
    let alone = Instant::now();
    orch.reconcile(&a).await.unwrap();
    let alone = alone.elapsed();
    assert!(alone >= latency);
    let started = Instant::now();
    let sync = {
        let (orch, a) = (orch.clone(), a.clone());
        tokio::spawn(async move {
            orch.synchronize(&a).await.unwrap();
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    orch.reconcile(&a).await.unwrap();
    let reconciled = started.elapsed();
    let synced = sync.await.unwrap();
    assert!(
        reconciled >= synced + alone - Duration::from_millis(100),
        "the reconciliation ran beside the sync: sync done at {synced:?}, reconcile at \
         {reconciled:?} (alone it takes {alone:?})"
    );
    assert_eq!(
        cached(&local, &a).await,
        remote_rows(remote.inner(), &a).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sync_reconciles_on_its_interval() {
    use std::time::Duration;
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let a = unique_scope("records");
    remote.batch_upsert(&a, &[rec(1)]).await.unwrap();
    let local = Arc::new(
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap(),
    );
    local
        .apply_reconciled(&a, &[TestRecord::new("ghost", "gone remotely", ts(1))], &[])
        .await
        .unwrap();
    let config = remote_cache_sync::OrchestratorConfig::default()
        .reconcile_every(Some(Duration::from_millis(50)));
    let orch = Orchestrator::builder(local.clone(), remote.clone())
        .config(config)
        .build();
    let bg = orch.start_background_sync(vec![a.clone()], Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cached(&local, &a).await.contains_key("ghost") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background sync never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cached(&local, &a).await, remote_rows(&*remote, &a).await);
    drop(bg);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_edited_by_sql() {
    use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};
    let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
        return;
    };
    let store = PostgresRemoteStore::<TestRecord>::connect(
        &url,
        PostgresOptions::default().table_prefix("rcs_rec_t_"),
    )
    .await
    .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    scenario(Arc::new(store), |scope| async move {
        let canonical = scope.canonical();
        let ids: Vec<String> = DELETED.iter().map(|s| s.to_string()).collect();
        let n = client
            .execute("DELETE FROM rcs_rec_t_records WHERE scope = $1 AND id = ANY($2)", &[&canonical, &ids])
            .await
            .unwrap();
        assert_eq!(n, 5);
        for i in [10, 11] {
            let r = edited(i);
            let n = client
                .execute(
                    "UPDATE rcs_rec_t_records SET data = $1, version = $2, updated_at = $3 \
                     WHERE scope = $4 AND id = $5",
                    &[&serde_json::to_value(&r).unwrap(), &r.updated_at.to_string(), &r.updated_at, &canonical, &r.id],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        let s = sneaky();
        client
            .execute(
                "INSERT INTO rcs_rec_t_records (scope, id, seq, version, updated_at, deleted, data) \
                 VALUES ($1, $2, -1, $3, $4, false, $5)",
                &[&canonical, &s.id, &s.updated_at.to_string(), &s.updated_at, &serde_json::to_value(&s).unwrap()],
            )
            .await
            .unwrap();
    })
    .await;
}

/// PocketBase: rows hard-deleted by a superuser through PocketBase's own API (as from its
/// dashboard) never reach a cursor-based pull; reconciliation, over a listing of ids and
/// versions only, removes them. Needs `scripts/start-pocketbase.sh`.
#[cfg(feature = "pocketbase")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pocketbase_rows_deleted_by_a_superuser() {
    use remote_cache_sync::remote::pocketbase::{
        Credentials, PocketBaseRemoteStore, pocketbase_id,
    };
    let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_POCKETBASE_URL") else {
        return;
    };
    let email = std::env::var("RCS_TEST_POCKETBASE_EMAIL").expect("RCS_TEST_POCKETBASE_EMAIL");
    let password =
        std::env::var("RCS_TEST_POCKETBASE_PASSWORD").expect("RCS_TEST_POCKETBASE_PASSWORD");
    let store = PocketBaseRemoteStore::<TestRecord>::new(
        &url,
        Credentials::superuser(email.clone(), password.clone()),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!(
            "{url}/api/collections/_superusers/auth-with-password"
        ))
        .json(&serde_json::json!({"identity": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("superuser token").to_owned();
    let writer = store.clone();
    scenario(Arc::new(store), |scope| async move {
        for id in DELETED {
            let resp = http
                .delete(format!(
                    "{url}/api/collections/{}/records/{}",
                    scope.name(),
                    pocketbase_id(&scope, id)
                ))
                .header("Authorization", &token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204, "hard delete of {id}");
        }
        // Edits and an insert made by another writer: the pull would bring them, but
        // reconciliation runs before any pull and must find them by itself.
        writer
            .batch_upsert(&scope, &[edited(10), edited(11), sneaky()])
            .await
            .unwrap();
    })
    .await;
}

/// Supabase (exact mode, a user's session, row-level security): rows deleted and edited straight
/// in the database (SQL, as from the dashboard's SQL editor) are repaired through `rcs_digest`.
/// Needs `scripts/start-supabase.sh`.
#[cfg(feature = "supabase")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_edited_by_sql() {
    use remote_cache_sync::remote::supabase::{Credentials, SupabaseRemoteStore};
    let Some(e) = support::supabase::env() else {
        return;
    };
    let db = std::env::var("RCS_TEST_SUPABASE_DB_URL").expect("RCS_TEST_SUPABASE_DB_URL");
    let (access, refresh) = support::supabase::signup(&e).await;
    let store = SupabaseRemoteStore::<TestRecord>::builder(&e.url)
        .anon_key(&e.anon)
        .credentials(Credentials::session(&access, &refresh))
        .build()
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    scenario(Arc::new(store), |scope| async move {
        let canonical = scope.canonical();
        let ids: Vec<String> = DELETED.iter().map(|s| s.to_string()).collect();
        let n = client
            .execute(
                "DELETE FROM rcs_records WHERE scope = $1 AND id = ANY($2)",
                &[&canonical, &ids],
            )
            .await
            .unwrap();
        assert_eq!(n, 5);
        // Edits that keep their feed position (`seq` untouched): no pull would bring them.
        for i in [10, 11] {
            let r = edited(i);
            let n = client
                .execute(
                    "UPDATE rcs_records SET data = $1, version = $2 WHERE scope = $3 AND id = $4",
                    &[
                        &serde_json::to_value(&r).unwrap(),
                        &r.updated_at.to_string(),
                        &canonical,
                        &r.id,
                    ],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        // A row inserted below every cursor, owned by the same user.
        let s = sneaky();
        let n = client
            .execute(
                "INSERT INTO rcs_records (scope, id, seq, version, deleted, data, user_id) \
                 SELECT $1, $2, -1, $3, false, $4, user_id FROM rcs_records \
                 WHERE scope = $1 LIMIT 1",
                &[
                    &canonical,
                    &s.id,
                    &s.updated_at.to_string(),
                    &serde_json::to_value(&s).unwrap(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    })
    .await;
}
