//! Our sync server and HTTP adapter, end to end over real loopback HTTP:
//! - the RemoteStore conformance suite against `SqliteRemoteStore` directly, and against
//!   `HttpRemoteStore` → a real server on 127.0.0.1:0 over SQLite storage (and over PostgreSQL
//!   when `RCS_TEST_PG_URL` is set);
//! - auth (no/wrong token 401, other scope 403), bad JSON/scope/cursor 400, oversized body 413,
//!   a replayed push batch changes nothing, error mapping of the adapter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{AllowAll, Authorizer, ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{TestRecord, remote, ts, unique_scope};
use remote_cache_sync::{
    Error, JsonRecord, OpKind, PendingOp, PushOutcome, RemoteStore, SyncScope,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A real server on an ephemeral loopback port; shut down gracefully on drop.
struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    async fn start(server: Server) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, server.into_router(), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn tokens() -> StaticTokens {
    let mut t = StaticTokens::new();
    t.grant("all-access", ScopePattern::any()).unwrap();
    t.grant_spec("alice-token:records,owner=alice").unwrap();
    t
}

async fn sqlite_storage(dir: &tempfile::TempDir) -> SqliteRemoteStore<JsonRecord> {
    SqliteRemoteStore::open(dir.path().join("remote.sqlite"))
        .await
        .unwrap()
}

/// A server over SQLite storage with the raw pull fast path, as `rcs serve` runs it.
fn sqlite_server(storage: SqliteRemoteStore<JsonRecord>, auth: impl Authorizer) -> Server {
    Server::new(storage.clone(), auth).raw_feed(Arc::new(storage))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_remote_passes_the_conformance_suite() {
    let mem = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
    remote::run_all(&mem, || unique_scope("records")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteRemoteStore::<TestRecord>::open(dir.path().join("r.sqlite"))
        .await
        .unwrap();
    remote::run_all(&file, || unique_scope("records")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_remote_survives_reopen_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let scope = unique_scope("records");
    let cursor = {
        let s = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
        s.batch_upsert(&scope, &[TestRecord::new("a", "1", ts(1))])
            .await
            .unwrap();
        s.fetch_since(&scope, None, 10).await.unwrap().cursor
    };
    let s = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
    s.batch_upsert(&scope, &[TestRecord::new("b", "1", ts(2))])
        .await
        .unwrap();
    let page = s.fetch_since(&scope, cursor.as_ref(), 10).await.unwrap();
    assert_eq!(page.upserts.len(), 1);
    assert_eq!(page.upserts[0].id, "b");
    assert_eq!(s.last_seq().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remote_over_sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sqlite_server(sqlite_storage(&dir).await, tokens())).await;
    let http = HttpRemoteStore::<TestRecord>::builder(server.url())
        .token("all-access")
        .build()
        .unwrap();
    remote::run_all(&http, || unique_scope("records")).await;
    server.shutdown().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remote_over_postgres_passes_the_conformance_suite() {
    use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};
    let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
        return;
    };
    let storage = PostgresRemoteStore::<JsonRecord>::connect(
        &url,
        PostgresOptions::default().table_prefix("rcs_http_t_"),
    )
    .await
    .unwrap();
    let server = TestServer::start(Server::new(storage, tokens())).await;
    let http = HttpRemoteStore::<TestRecord>::builder(server.url())
        .token("all-access")
        .build()
        .unwrap();
    remote::run_all(&http, || unique_scope("records")).await;
    // A second server process sharing the database sees the same feed (load-balanced setup).
    let storage2 = PostgresRemoteStore::<JsonRecord>::connect(
        &url,
        PostgresOptions::default().table_prefix("rcs_http_t_"),
    )
    .await
    .unwrap();
    let server2 = TestServer::start(Server::new(storage2, tokens())).await;
    let http2 = HttpRemoteStore::<TestRecord>::builder(server2.url())
        .token("all-access")
        .build()
        .unwrap();
    let scope = unique_scope("records");
    http.batch_upsert(&scope, &[TestRecord::new("a", "via 1", ts(1))])
        .await
        .unwrap();
    let page = http2.fetch_since(&scope, None, 10).await.unwrap();
    assert_eq!(page.upserts.len(), 1);
    http2
        .batch_upsert(&scope, &[TestRecord::new("b", "via 2", ts(2))])
        .await
        .unwrap();
    let page = http
        .fetch_since(&scope, page.cursor.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!(
        page.upserts
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    server.shutdown().await;
    server2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remote_over_sqlite_without_raw_feed_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(Server::new(sqlite_storage(&dir).await, AllowAll)).await;
    let http = HttpRemoteStore::<TestRecord>::new(server.url()).unwrap();
    remote::run_all(&http, || unique_scope("records")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remote_over_memory_passes_the_conformance_suite() {
    let server = TestServer::start(Server::new(
        remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
        AllowAll,
    ))
    .await;
    let http = HttpRemoteStore::<TestRecord>::new(server.url()).unwrap();
    remote::run_all(&http, || unique_scope("records")).await;
}

/// Raw HTTP helper: (status, parsed body).
async fn raw(
    url: &str,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer {text:?}: {e}"));
    (status, value)
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error body without a code: {v}"))
}

fn alice() -> SyncScope {
    SyncScope::new("records", [("owner", "alice")]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_enforced_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sqlite_server(sqlite_storage(&dir).await, tokens())).await;
    let url = server.url();
    let pull = |scope: SyncScope| json!({"scope": scope, "cursor": null, "limit": 10}).to_string();

    let (s, v) = raw(&url, "/v1/pull", None, pull(alice())).await;
    assert_eq!((s, error_code(&v)), (401, "unauthorized"));
    let (s, v) = raw(&url, "/v1/pull", Some("wrong"), pull(alice())).await;
    assert_eq!((s, error_code(&v)), (401, "unauthorized"));
    assert!(
        !v.to_string().contains("wrong"),
        "the token must not be echoed"
    );
    let (s, _) = raw(&url, "/v1/pull", Some("alice-token"), pull(alice())).await;
    assert_eq!(s, 200);
    let bad_cursor = json!({"scope": alice(), "cursor": "-1", "limit": 10}).to_string();
    let (s, v) = raw(&url, "/v1/pull", Some("alice-token"), bad_cursor).await;
    assert_eq!((s, error_code(&v)), (400, "invalid_cursor"));
    let bob = SyncScope::new("records", [("owner", "bob")]).unwrap();
    let (s, v) = raw(&url, "/v1/pull", Some("alice-token"), pull(bob.clone())).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
    let push = json!({"scope": bob, "ops": []}).to_string();
    let (s, v) = raw(&url, "/v1/push", Some("alice-token"), push).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));

    // Through the adapter: 401 → Unauthorized, 403 → Refused (the request, not an op); alice's
    // own scope works.
    let wrong = HttpRemoteStore::<TestRecord>::builder(&url)
        .token("wrong")
        .build()
        .unwrap();
    let err = wrong.fetch_since(&alice(), None, 10).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"));
    let err = wrong.server_time().await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let a = HttpRemoteStore::<TestRecord>::builder(&url)
        .token("alice-token")
        .build()
        .unwrap();
    let err = a.fetch_since(&bob, None, 10).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
    let err = a
        .batch_upsert(&bob, &[TestRecord::new("x", "x", ts(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
    a.batch_upsert(&alice(), &[TestRecord::new("x", "x", ts(1))])
        .await
        .unwrap();
    assert_eq!(
        a.get_by_id(&alice(), "x").await.unwrap().unwrap().title,
        "x"
    );
    a.server_time().await.unwrap();
    // The all-access token sees alice's record; nothing leaked into bob's scope.
    let all = HttpRemoteStore::<TestRecord>::builder(&url)
        .token("all-access")
        .build()
        .unwrap();
    assert!(all.fetch_since(&bob, None, 10).await.unwrap().is_empty());
    assert_eq!(all.fetch_since(&alice(), None, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx() {
    let server = TestServer::start(
        Server::new(
            remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
            AllowAll,
        )
        .max_body_bytes(64 * 1024),
    )
    .await;
    let url = server.url();
    let t = Some("any");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/pull", "{not json".into(), 400, "invalid_json"),
        ("/v1/pull", "".into(), 400, "invalid_json"),
        (
            "/v1/pull",
            json!({"scope": {"name": ""}, "limit": 5}).to_string(),
            400,
            "invalid_scope",
        ),
        (
            "/v1/pull",
            json!({"scope": "records", "limit": 5}).to_string(),
            400,
            "invalid_scope",
        ),
        (
            "/v1/pull",
            json!({"limit": 5}).to_string(),
            400,
            "invalid_json",
        ),
        (
            "/v1/pull",
            json!({"scope": {"name": "r"}, "cursor": "abc", "limit": 5}).to_string(),
            400,
            "invalid_cursor",
        ),
        (
            "/v1/pull",
            json!({"scope": {"name": "r"}, "limit": 0}).to_string(),
            422,
            "invalid_request",
        ),
        (
            "/v1/push",
            json!({"scope": {"name": "r"}, "ops": [{"op_id": 1}]}).to_string(),
            400,
            "invalid_json",
        ),
        ("/v1/nope", "{}".into(), 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = raw(&url, path, t, body.clone()).await;
        assert_eq!((s, error_code(&v)), (status, code), "{path} {body}");
        assert!(v["error"]["message"].is_string());
    }
    // Wrong method.
    let resp = reqwest::get(format!("{url}/v1/pull")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    // Oversized body.
    let big = json!({"scope": {"name": "r"}, "ops": [], "pad": "x".repeat(100 * 1024)}).to_string();
    let (s, v) = raw(&url, "/v1/push", t, big).await;
    assert_eq!((s, error_code(&v)), (413, "payload_too_large"));
    // Too many ops.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"op_id": format!("o{i}"), "kind": "delete", "id": "x", "updated_at": "2026-01-01T00:00:00Z"}))
        .collect();
    let server2 = TestServer::start(Server::new(
        remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
        AllowAll,
    ))
    .await;
    let (s, v) = raw(
        &server2.url(),
        "/v1/push",
        t,
        json!({"scope": {"name": "r"}, "ops": many}).to_string(),
    )
    .await;
    assert_eq!((s, error_code(&v)), (422, "invalid_request"));
    // Health needs no token.
    let h: Value = reqwest::get(format!("{url}/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    HttpRemoteStore::<TestRecord>::new(&url)
        .unwrap()
        .health()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ops_are_rejected_one_by_one() {
    let server = TestServer::start(Server::new(
        remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
        AllowAll,
    ))
    .await;
    let url = server.url();
    let body = json!({"scope": {"name": "r"}, "ops": [
        {"op_id": "1", "kind": "create", "id": "a", "payload": {"id": "a", "updated_at": "2026-01-01T00:00:00Z"}, "updated_at": "2026-01-01T00:00:00Z"},
        {"op_id": "2", "kind": "create", "id": "b", "payload": {"id": "b"}, "updated_at": "2026-01-01T00:00:00Z"},
        {"op_id": "3", "kind": "create", "id": "c", "payload": {"id": "not-c", "updated_at": "2026-01-01T00:00:00Z"}, "updated_at": "2026-01-01T00:00:00Z"},
        {"op_id": "4", "kind": "update", "id": "d", "updated_at": "2026-01-01T00:00:00Z"},
        {"op_id": "5", "kind": "delete", "id": "e", "updated_at": "2026-01-01T00:00:00Z"}
    ]});
    let (s, v) = raw(&url, "/v1/push", None, body.to_string()).await;
    assert_eq!(s, 200, "{v}");
    let statuses: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["applied", "rejected", "rejected", "rejected", "applied"]
    );
    assert!(
        v["results"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("updated_at")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_push_batch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = sqlite_storage(&dir).await;
    let server = TestServer::start(sqlite_server(storage.clone(), AllowAll)).await;
    let http = HttpRemoteStore::<TestRecord>::new(server.url()).unwrap();
    let scope = unique_scope("records");
    let a = TestRecord::new("a", "a1", ts(1_000));
    let mut ops = vec![
        PendingOp::upsert(scope.clone(), OpKind::Create, a.clone()),
        PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("b", "b1", ts(1_000)),
        ),
        PendingOp::delete(scope.clone(), "c", ts(1_000)),
    ];
    let first = http.push(&scope, &ops).await.unwrap();
    assert!(
        first
            .iter()
            .all(|o| matches!(o, PushOutcome::Applied { .. })),
        "{first:?}"
    );
    let seq = storage.last_seq().await.unwrap();
    let feed = http.fetch_since(&scope, None, 100).await.unwrap();

    // Replay the whole batch: same answers, same sequence, same feed.
    let again = http.push(&scope, &ops).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        storage.last_seq().await.unwrap(),
        seq,
        "a replay must not write"
    );
    let feed2 = http.fetch_since(&scope, None, 100).await.unwrap();
    assert_eq!(feed2.upserts, feed.upserts);
    assert_eq!(feed2.deletes, feed.deletes);
    assert_eq!(feed2.cursor, feed.cursor);

    // After a later write, replaying the old batch still does not revert it.
    let mut upd = PendingOp::upsert(
        scope.clone(),
        OpKind::Update,
        TestRecord::new("a", "a2", ts(2_000)),
    );
    upd.base_version = Some(a.updated_at);
    http.push(&scope, &[upd]).await.unwrap();
    ops.truncate(1);
    let replay = http.push(&scope, &ops).await.unwrap();
    assert!(
        matches!(replay[0], PushOutcome::Applied { .. }),
        "{replay:?}"
    );
    assert_eq!(
        http.get_by_id(&scope, "a").await.unwrap().unwrap().title,
        "a2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_malformed_servers_map_to_typed_errors() {
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    // A deliberately broken server: each path answers one failure mode.
    let app = axum::Router::new()
        .route(
            "/a/v1/pull",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down").into_response() }),
        )
        .route(
            "/b/v1/pull",
            post(|| async {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "{}").into_response();
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("3"));
                r
            }),
        )
        .route(
            "/c/v1/pull",
            post(|| async { (StatusCode::OK, "{\"upserts\": 5}").into_response() }),
        )
        .route(
            "/d/v1/pull",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        )
        .route(
            "/e/v1/pull",
            post(|| async { (StatusCode::UNPROCESSABLE_ENTITY, "{}").into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let scope = unique_scope("r");
    let store = |p: &str| {
        HttpRemoteStore::<TestRecord>::builder(format!("http://{addr}/{p}"))
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let err = store("a").fetch_since(&scope, None, 5).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let err = store("b").fetch_since(&scope, None, 5).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)), "{err:?}");
    let err = store("c").fetch_since(&scope, None, 5).await.unwrap_err();
    assert!(matches!(err, Error::MalformedResponse { .. }), "{err:?}");
    let err = store("d").fetch_since(&scope, None, 5).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    let err = store("e").fetch_since(&scope, None, 5).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                status: Some(422),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_the_server() {
    let server = TestServer::start(Server::new(
        remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
        Arc::new(AllowAll) as Arc<dyn Authorizer>,
    ))
    .await;
    let url = server.url();
    let http = HttpRemoteStore::<TestRecord>::new(&url).unwrap();
    http.server_time().await.unwrap();
    server.shutdown().await;
    let err = http.server_time().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetched_pages_never_hide_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sqlite_server(sqlite_storage(&dir).await, AllowAll)).await;
    for prefetch in [true, false] {
        let http = HttpRemoteStore::<TestRecord>::builder(server.url())
            .prefetch(prefetch)
            .build()
            .unwrap();
        let scope = unique_scope("records");
        let first: Vec<_> = (0..3)
            .map(|i| TestRecord::new(format!("r{i}"), "x", ts(i)))
            .collect();
        http.batch_upsert(&scope, &first).await.unwrap();
        let page1 = http.fetch_since(&scope, None, 2).await.unwrap();
        assert!(page1.has_more);
        // Let the background fetch of page 2 finish, then write after it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        http.batch_upsert(&scope, &[TestRecord::new("late", "x", ts(10))])
            .await
            .unwrap();
        let (state, _) = remote::pull_all(&http, &scope, page1.cursor.clone(), 2).await;
        assert!(
            state.contains_key("r2") && state.contains_key("late"),
            "prefetch={prefetch}: a pass started after a write must see it: {state:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_are_split_and_only_an_oversized_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let storage = sqlite_storage(&dir).await;
    let server =
        TestServer::start(sqlite_server(storage, AllowAll).max_body_bytes(16 * 1024)).await;
    let http = HttpRemoteStore::<TestRecord>::new(server.url()).unwrap();
    let scope = unique_scope("records");
    // 40 records of ~1 KiB: no single push of all of them fits in 16 KiB.
    let mut ops: Vec<_> = (0..40)
        .map(|i| {
            let r = TestRecord::new(format!("r{i:02}"), "x".repeat(1000), ts(i));
            PendingOp::upsert(scope.clone(), OpKind::Create, r)
        })
        .collect();
    ops.insert(
        17,
        PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("huge", "y".repeat(20_000), ts(1)),
        ),
    );
    let out = http.push(&scope, &ops).await.unwrap();
    assert_eq!(out.len(), ops.len());
    for (op, o) in ops.iter().zip(&out) {
        if op.id == "huge" {
            assert!(
                matches!(o, PushOutcome::Rejected { reason } if reason.contains("larger")),
                "{o:?}"
            );
        } else {
            assert!(matches!(o, PushOutcome::Applied { .. }), "{} {o:?}", op.id);
        }
    }
    let (state, _) = remote::pull_all(&http, &scope, None, 100).await;
    assert_eq!(state.len(), 40);
    assert!(!state.contains_key("huge"));
}

/// Writers on separate connections (as separate server processes would be) race while a reader
/// pulls continuously with a small page: every row is seen exactly once, none is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_remote_cursor_is_exact_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let scope = unique_scope("records");
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 150;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let r = TestRecord::new(format!("w{w}-{i:03}"), "x", ts(i as i64));
                store.batch_upsert(&scope, &[r]).await.unwrap();
            }
        }));
    }
    let reader = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    let mut cursor = None;
    let mut last_seq = 0u64;
    let mut pulls = 0;
    loop {
        let done = tasks.iter().all(|t| t.is_finished());
        let page = reader
            .fetch_since(&scope, cursor.as_ref(), 7)
            .await
            .unwrap();
        pulls += 1;
        for r in &page.upserts {
            *seen.entry(r.id.clone()).or_insert(0) += 1;
        }
        if let Some(c) = &page.cursor {
            let seq: u64 = c.as_str().parse().unwrap();
            assert!(seq >= last_seq, "cursor went backwards");
            last_seq = seq;
        }
        cursor = page.cursor.clone();
        if done && !page.has_more {
            break;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(pulls > 10, "the reader should interleave with the writers");
    assert_eq!(seen.len(), WRITERS * PER_WRITER, "a pull skipped rows");
    assert!(
        seen.values().all(|n| *n == 1),
        "rows are written once, so each is pulled once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_with_a_json_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(
        Server::new(
            remote_cache_sync::InMemoryRemoteStore::<JsonRecord>::new(),
            AllowAll,
        )
        .request_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(
        b"POST /v1/pull HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"scope\":",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the server must answer a stalled upload")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"unavailable\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
