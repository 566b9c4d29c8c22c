//! Queries answered by the remote (`RemoteStore::query`, `POST /v1/query`):
//! - the query conformance case (`testing::query`) against the in-memory remote, the SQLite
//!   storage, our server over SQLite and over PostgreSQL storage (through `HttpRemoteStore`),
//!   and `PostgresRemoteStore` directly (PostgreSQL from `RCS_TEST_PG_URL`);
//! - `/v1/query` is authorized exactly as a pull and sees nothing of another scope;
//! - `Orchestrator::read` with `OnlineOnly`/`RemoteFirst`: pushes the queue first, does not pull
//!   the scope, keeps local pending writes in the answer, falls back where it must.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{AllowAll, ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{TestRecord, query, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Cursor, Delta, Error, Filter, InMemoryLocalStore, InMemoryRemoteStore, JsonRecord,
    LocalStore, Orchestrator, PendingOp, PushOutcome, QuerySpec, RemoteStore, SyncScope, Timestamp,
};
use tokio::sync::oneshot;

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    async fn start(server: Server) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel();
        tokio::spawn(serve(listener, server.into_router(), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn conformance<R: RemoteStore<JsonRecord> + ?Sized>(remote: &R) {
    let refused = query::run(remote, &unique_scope("q"), &unique_scope("q")).await;
    assert!(refused.is_empty(), "{} refused {refused:?}", remote.name());
}

fn http(url: String, token: &str) -> HttpRemoteStore<JsonRecord> {
    HttpRemoteStore::<JsonRecord>::builder(url)
        .token(token)
        .build()
        .unwrap()
}

#[tokio::test]
async fn memory_remote_answers_queries_like_the_reference() {
    conformance(&InMemoryRemoteStore::<JsonRecord>::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_storage_answers_queries_like_the_reference() {
    conformance(&SqliteRemoteStore::<JsonRecord>::in_memory().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteRemoteStore::<JsonRecord>::open(dir.path().join("r.sqlite"))
        .await
        .unwrap();
    conformance(&file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_over_sqlite_answers_queries_like_the_reference() {
    let storage = SqliteRemoteStore::<JsonRecord>::in_memory().unwrap();
    let server = TestServer::start(Server::new(storage, AllowAll)).await;
    conformance(&http(server.url(), "any")).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};

    async fn store(url: &str, prefix: &str) -> PostgresRemoteStore<JsonRecord> {
        PostgresRemoteStore::connect(url, PostgresOptions::default().table_prefix(prefix))
            .await
            .expect("connect to the test PostgreSQL")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_remote_answers_queries_like_the_reference() {
        let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
            return;
        };
        conformance(&store(&url, "rcs_q_t_").await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_server_over_postgres_answers_queries_like_the_reference() {
        let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
            return;
        };
        let server =
            TestServer::start(Server::new(store(&url, "rcs_q_http_t_").await, AllowAll)).await;
        conformance(&http(server.url(), "any")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_endpoint_is_authorized_as_a_pull_and_bound_to_its_scope() {
    let storage = SqliteRemoteStore::<JsonRecord>::in_memory().unwrap();
    let mut tokens = StaticTokens::new();
    tokens.grant("all-access", ScopePattern::any()).unwrap();
    tokens
        .grant_spec("alice-token:records,owner=alice")
        .unwrap();
    let server = TestServer::start(Server::new(storage, tokens)).await;
    let alice = SyncScope::new("records", [("owner", "alice")]).unwrap();
    let bob = SyncScope::new("records", [("owner", "bob")]).unwrap();
    let admin = http(server.url(), "all-access");
    let record = |id: &str| {
        JsonRecord::from_value(serde_json::json!({
            "id": id, "updated_at": "2026-01-01T00:00:00Z", "title": "same"
        }))
        .unwrap()
    };
    admin.batch_upsert(&alice, &[record("a1")]).await.unwrap();
    admin.batch_upsert(&bob, &[record("b1")]).await.unwrap();
    let q = QuerySpec::new().filter(Filter::eq("title", "same"));
    let as_alice = http(server.url(), "alice-token");
    let got = as_alice.query(&alice, &q).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value()["id"], "a1");
    match as_alice.query(&bob, &q).await {
        Err(Error::Refused {
            status: Some(403), ..
        }) => {}
        other => panic!("another scope must be refused: {other:?}"),
    }
    match http(server.url(), "wrong").query(&alice, &q).await {
        Err(Error::Unauthorized { .. }) => {}
        other => panic!("a wrong token must be refused: {other:?}"),
    }
    // A bad field name is a typed error from the server too (sent raw, bypassing the client's
    // own validation).
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/query", server.url()))
        .bearer_auth("all-access")
        .json(&serde_json::json!({
            "scope": alice,
            "query": {"filters": [{"field": "x') OR 1=1 --", "op": "eq", "value": 1}]}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_query");
}

/// A remote that counts pulls and can hide its query support.
struct Counting {
    inner: Arc<InMemoryRemoteStore<TestRecord>>,
    pulls: std::sync::atomic::AtomicUsize,
    queries: bool,
}

#[async_trait]
impl RemoteStore<TestRecord> for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn get_by_id(
        &self,
        scope: &SyncScope,
        id: &str,
    ) -> remote_cache_sync::Result<Option<TestRecord>> {
        self.inner.get_by_id(scope, id).await
    }
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> remote_cache_sync::Result<Delta<TestRecord>> {
        self.pulls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.fetch_since(scope, since, limit).await
    }
    async fn push(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<TestRecord>],
    ) -> remote_cache_sync::Result<Vec<PushOutcome<TestRecord>>> {
        self.inner.push(scope, ops).await
    }
    async fn server_time(&self) -> remote_cache_sync::Result<Timestamp> {
        self.inner.server_time().await
    }
    async fn query(
        &self,
        scope: &SyncScope,
        q: &QuerySpec,
    ) -> remote_cache_sync::Result<Option<Vec<TestRecord>>> {
        if self.queries {
            self.inner.query(scope, q).await
        } else {
            Ok(None)
        }
    }
}

fn counting(queries: bool) -> Arc<Counting> {
    Arc::new(Counting {
        inner: Arc::new(InMemoryRemoteStore::new()),
        pulls: Default::default(),
        queries,
    })
}

fn ids(rows: &[TestRecord]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test]
async fn online_reads_push_first_and_run_on_the_remote_without_pulling() {
    let remote = counting(true);
    let scope = unique_scope("notes");
    remote
        .inner
        .batch_upsert(
            &scope,
            &[
                TestRecord::new("r1", "remote", ts(1)).with_n(1),
                TestRecord::new("r2", "remote", ts(1)).with_n(5),
            ],
        )
        .await
        .unwrap();
    let local = InMemoryLocalStore::<TestRecord>::new();
    let device = Orchestrator::builder(local, remote.clone())
        .sync_after_write(false)
        .build();
    device
        .enqueue_create(&scope, TestRecord::new("mine", "local", ts(2)).with_n(3))
        .await
        .unwrap();
    let q = QuerySpec::new()
        .filter(Filter::gt("n", 2))
        .order_by("n", remote_cache_sync::Direction::Asc);
    let rows = device
        .read(&scope, CachePolicy::OnlineOnly, &q)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["mine", "r2"]);
    assert_eq!(device.status(&scope).await.unwrap().pending, 0, "pushed");
    assert_eq!(
        remote.pulls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the scope was not pulled"
    );
    // The answer was not written into the cache.
    let all = QuerySpec::new();
    let cached = device
        .read(&scope, CachePolicy::OfflineOnly, &all)
        .await
        .unwrap();
    assert_eq!(ids(&cached), ["mine"]);
    // RemoteFirst answers from the remote too, then warms the cache in the background.
    let rows = device
        .read(&scope, CachePolicy::RemoteFirst, &q)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["mine", "r2"]);
    let mut cached = Vec::new();
    for _ in 0..200 {
        cached = device
            .read(&scope, CachePolicy::OfflineOnly, &all)
            .await
            .unwrap();
        if cached.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ids(&cached), ["mine", "r1", "r2"]);
    device.shutdown().await;
}

#[tokio::test]
async fn online_gets_read_the_record_from_the_remote_without_pulling() {
    let remote = counting(false);
    let scope = unique_scope("notes");
    remote
        .inner
        .batch_upsert(&scope, &[TestRecord::new("r1", "remote", ts(1))])
        .await
        .unwrap();
    let device = Orchestrator::builder(InMemoryLocalStore::<TestRecord>::new(), remote.clone())
        .sync_after_write(false)
        .build();
    let got = device
        .get(&scope, "r1", CachePolicy::OnlineOnly)
        .await
        .unwrap();
    assert_eq!(got.map(|r| r.title), Some("remote".into()));
    assert_eq!(
        device
            .get(&scope, "nope", CachePolicy::OnlineOnly)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        remote.pulls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the scope was not pulled"
    );
    assert_eq!(
        device
            .get(&scope, "r1", CachePolicy::OfflineOnly)
            .await
            .unwrap(),
        None,
        "the answer was not written into the cache"
    );
    // The app's queued write is pushed first, so the remote's answer holds it.
    device
        .enqueue_create(&scope, TestRecord::new("mine", "local", ts(2)))
        .await
        .unwrap();
    let got = device
        .get(&scope, "mine", CachePolicy::OnlineOnly)
        .await
        .unwrap();
    assert_eq!(got.map(|r| r.title), Some("local".into()));
    assert_eq!(device.status(&scope).await.unwrap().pending, 0, "pushed");
    assert_eq!(
        remote
            .inner
            .get_by_id(&scope, "mine")
            .await
            .unwrap()
            .map(|r| r.title),
        Some("local".into())
    );
    device.shutdown().await;
}

#[tokio::test]
async fn local_writes_the_remote_has_not_taken_stay_in_the_answer() {
    let remote = counting(true);
    let scope = unique_scope("notes");
    remote
        .inner
        .batch_upsert(
            &scope,
            &[
                TestRecord::new("a", "remote", ts(1)).with_n(1),
                TestRecord::new("b", "remote", ts(1)).with_n(2),
                TestRecord::new("c", "remote", ts(1)).with_n(3),
            ],
        )
        .await
        .unwrap();
    let local = Arc::new(InMemoryLocalStore::<TestRecord>::new());
    let device = Orchestrator::builder(local.clone(), remote.clone())
        .sync_after_write(false)
        .build();
    device.synchronize(&scope).await.unwrap();
    // The remote refuses writes to "b": the local update is parked, not lost.
    remote.inner.reject_record("b");
    let mut b = TestRecord::new("b", "local edit", ts(5)).with_n(10);
    b.updated_at = ts(5);
    device.enqueue_update(&scope, b).await.unwrap();
    // And "c" is deleted locally while the remote refuses it too.
    remote.inner.reject_record("c");
    device.enqueue_delete(&scope, "c").await.unwrap();
    for _ in 0..10 {
        let _ = device.synchronize(&scope).await;
    }
    assert!(!device.parked_ops(&scope).await.unwrap().is_empty());
    let q = QuerySpec::new()
        .order_by("n", remote_cache_sync::Direction::Desc)
        .limit(2);
    let rows = device
        .read(&scope, CachePolicy::OnlineOnly, &q)
        .await
        .unwrap();
    assert_eq!(
        ids(&rows),
        ["b", "a"],
        "local b (n=10) first, c deleted locally"
    );
    assert_eq!(rows[0].title, "local edit");
    let cache = local.query(&scope, &q).await.unwrap();
    assert_eq!(ids(&rows), ids(&cache), "same answer as the cache");
    device.shutdown().await;
}

#[tokio::test]
async fn reads_fall_back_where_the_remote_cannot_answer() {
    // No query support: today's path (sync, then the cache).
    let remote = counting(false);
    let scope = unique_scope("notes");
    remote
        .inner
        .batch_upsert(&scope, &[TestRecord::new("r1", "remote", ts(1))])
        .await
        .unwrap();
    let device = Orchestrator::new(InMemoryLocalStore::<TestRecord>::new(), remote.clone());
    let rows = device
        .read(&scope, CachePolicy::OnlineOnly, &QuerySpec::new())
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["r1"]);
    assert!(remote.pulls.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // Unreachable remote: RemoteFirst answers from the cache, OnlineOnly fails.
    remote.inner.set_offline(true);
    let q = QuerySpec::new();
    let rows = device
        .read(&scope, CachePolicy::RemoteFirst, &q)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["r1"]);
    let with_queries = counting(true);
    with_queries.inner.set_offline(true);
    let device2 = Orchestrator::new(InMemoryLocalStore::<TestRecord>::new(), with_queries);
    assert!(
        device2
            .read(&scope, CachePolicy::RemoteFirst, &q)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        device2.read(&scope, CachePolicy::OnlineOnly, &q).await,
        Err(Error::Unavailable { .. })
    ));
    device.shutdown().await;
    device2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_too_large_for_one_answer_is_unsupported_and_reads_fall_back_to_sync() {
    let storage = SqliteRemoteStore::<JsonRecord>::in_memory().unwrap();
    let scope = unique_scope("big");
    let n = remote_cache_sync::remote::protocol::MAX_QUERY_ROWS + 1;
    let rows: Vec<JsonRecord> = (0..n)
        .map(|i| {
            JsonRecord::from_value(serde_json::json!({
                "id": format!("r{i:05}"), "updated_at": "2026-01-01T00:00:00Z", "n": i
            }))
            .unwrap()
        })
        .collect();
    storage.batch_upsert(&scope, &rows).await.unwrap();
    let server = TestServer::start(Server::new(storage, AllowAll)).await;
    let remote = http(server.url(), "any");
    match remote.query(&scope, &QuerySpec::new()).await {
        Err(Error::Unsupported { message, .. }) => assert!(message.contains("limit"), "{message}"),
        other => panic!(
            "expected Unsupported, got {:?}",
            other.map(|r| r.map(|r| r.len()))
        ),
    }
    let page = QuerySpec::new()
        .filter(Filter::ge("n", 10))
        .order_by("n", remote_cache_sync::Direction::Desc)
        .limit(2);
    let got = remote.query(&scope, &page).await.unwrap().unwrap();
    assert_eq!(got[0].value()["n"], n - 1);
    // The orchestrator answers the unbounded read by syncing and querying its cache.
    let device = Orchestrator::new(InMemoryLocalStore::<JsonRecord>::new(), remote);
    let all = device
        .read(&scope, CachePolicy::OnlineOnly, &QuerySpec::new())
        .await
        .unwrap();
    assert_eq!(all.len(), n);
    device.shutdown().await;
}

/// A server from before `/v1/query`: its 404 means "no query support", not a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_endpoint_means_no_query_support() {
    let storage = SqliteRemoteStore::<JsonRecord>::in_memory().unwrap();
    let scope = unique_scope("old");
    let record = JsonRecord::from_value(
        serde_json::json!({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "n": 1}),
    )
    .unwrap();
    storage.batch_upsert(&scope, &[record]).await.unwrap();
    let old = |req: axum::extract::Request, next: axum::middleware::Next| async move {
        if req.uri().path() == "/v1/query" {
            use axum::response::IntoResponse;
            return (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "error": {"code": "not_found", "message": "no such endpoint"}
                })),
            )
                .into_response();
        }
        next.run(req).await
    };
    let router = Server::new(storage, AllowAll)
        .into_router()
        .layer(axum::middleware::from_fn(old));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, async {
        let _ = rx.await;
    }));
    let remote = http(url, "any");
    assert!(
        remote
            .query(&scope, &QuerySpec::new())
            .await
            .unwrap()
            .is_none()
    );
    let device = Orchestrator::new(InMemoryLocalStore::<JsonRecord>::new(), remote);
    let rows = device
        .read(&scope, CachePolicy::OnlineOnly, &QuerySpec::new())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(device.pause(&scope).await.unwrap().is_none(), "not paused");
    device.shutdown().await;
    let _ = stop.send(());
}

/// A stored row that is not a record never gets a wrong answer and never blocks: the query
/// declines when it would answer that row, and the read falls back to a sync that quarantines it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_row_that_is_not_a_record_declines_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.sqlite");
    let storage = SqliteRemoteStore::<JsonRecord>::open(&file).await.unwrap();
    let scope = unique_scope("bad");
    let rows: Vec<JsonRecord> = (1..=2)
        .map(|i| {
            JsonRecord::from_value(serde_json::json!({
                "id": format!("r{i}"), "updated_at": "2026-01-01T00:00:00Z", "n": i
            }))
            .unwrap()
        })
        .collect();
    storage.batch_upsert(&scope, &rows).await.unwrap();
    let db = rusqlite::Connection::open(&file).unwrap();
    let changed = db
        .execute(
            "UPDATE rcs_remote_records SET body = 'not json' WHERE id = 'r1' AND scope_id = \
             (SELECT scope_id FROM rcs_remote_scopes WHERE canonical = ?1)",
            [scope.canonical()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let server = TestServer::start(Server::new(storage, AllowAll)).await;
    let remote = http(server.url(), "any");
    match remote.query(&scope, &QuerySpec::new()).await {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let two = QuerySpec::new().filter(Filter::eq("n", 2));
    let got = remote.query(&scope, &two).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    let device = Orchestrator::new(InMemoryLocalStore::<JsonRecord>::new(), remote);
    let all = device
        .read(&scope, CachePolicy::OnlineOnly, &QuerySpec::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the readable record");
    let quarantined = device.quarantined(&scope).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].id, "r1");
    device.shutdown().await;
}
