//! Realtime on our server (`GET /v1/events` over SQLite storage) driving the background sync of
//! an `HttpRemoteStore` client: a write by another client wakes it, a cut stream reconnects and
//! the change made while it was cut arrives (a resync pull), a stalled stream is detected and
//! reopened, heartbeats keep an idle stream open, and the endpoint is authorized as a pull.
//!
//! Every background sync here runs with a one-hour interval, so only realtime can explain a
//! prompt sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use remote_cache_sync::remote::RealtimeOptions;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve_server};
use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault};
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    InMemoryLocalStore, LastWriteWins, LocalStore, OpKind, Orchestrator, OrchestratorConfig,
    PendingOp, RemoteStore, SyncScope,
};

const TOKEN: &str = "realtime-test-token";
const ALICE: &str = "alice-token";
const HOUR: Duration = Duration::from_secs(3600);

struct TestServer {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_server(heartbeat: Duration) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let storage =
        SqliteRemoteStore::<remote_cache_sync::JsonRecord>::open(dir.path().join("server.sqlite"))
            .await
            .unwrap();
    let mut tokens = StaticTokens::new();
    tokens.grant(TOKEN, ScopePattern::any()).unwrap();
    tokens
        .grant_spec(&format!("{ALICE}:records,owner=alice"))
        .unwrap();
    let server = Server::from_arcs(Arc::new(storage.clone()), Arc::new(tokens))
        .raw_feed(Arc::new(storage))
        .heartbeat(heartbeat);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve_server(listener, server, async {
        let _ = rx.await;
    }));
    TestServer {
        url,
        _stop: stop,
        _dir: dir,
    }
}

fn remote(url: &str, stall: Duration) -> HttpRemoteStore<TestRecord> {
    HttpRemoteStore::builder(url)
        .token(TOKEN)
        .realtime(
            RealtimeOptions::default()
                .stall_timeout(stall)
                .backoff(Duration::from_millis(20), Duration::from_millis(200)),
        )
        .build()
        .unwrap()
}

/// A client whose cache is kept in sync in the background, with a one-hour interval.
struct Device {
    local: Arc<InMemoryLocalStore<TestRecord>>,
    _bg: remote_cache_sync::orchestrator::BackgroundSync,
    _orch: Orchestrator<TestRecord>,
}

fn device(remote: HttpRemoteStore<TestRecord>, scope: &SyncScope) -> Device {
    let local = Arc::new(InMemoryLocalStore::new());
    let orch = Orchestrator::with(
        local.clone(),
        Arc::new(remote),
        Arc::new(LastWriteWins::new()),
        OrchestratorConfig::default().sync_after_write(false),
    );
    let bg = orch.start_background_sync(vec![scope.clone()], HOUR);
    Device {
        local,
        _bg: bg,
        _orch: orch,
    }
}

impl Device {
    async fn title(&self, scope: &SyncScope, id: &str) -> Option<String> {
        self.local
            .get_by_id(scope, id)
            .await
            .unwrap()
            .map(|r| r.title)
    }

    /// Waits until record `id` has `title`; the time it took.
    async fn wait_for(&self, scope: &SyncScope, id: &str, title: &str, what: &str) -> Duration {
        let start = Instant::now();
        while self.title(scope, id).await.as_deref() != Some(title) {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }
}

async fn write(writer: &HttpRemoteStore<TestRecord>, scope: &SyncScope, id: &str, title: &str) {
    let op = PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        TestRecord::new(id, title, ts(1)),
    );
    writer.push(scope, &[op]).await.unwrap();
}

fn events_requests(proxy: &FaultProxy) -> Vec<Option<HttpFault>> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/events"))
        .map(|r| r.fault)
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_elsewhere_wakes_the_background_sync_and_heartbeats_keep_the_stream() {
    let server = start_server(Duration::from_millis(100)).await;
    let proxy = FaultProxy::start(&server.url).await.unwrap();
    let scope = unique_scope("records");
    let other = unique_scope("records");
    let b = device(remote(&proxy.url(), Duration::from_millis(600)), &scope);
    let writer = remote(&server.url, Duration::from_secs(45));
    wait_until("the event stream never opened", || {
        events_requests(&proxy).len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A write to another scope wakes nothing; one to the scope arrives at once.
    proxy.reset_log();
    write(&writer, &other, "x", "elsewhere").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        proxy.requests().is_empty(),
        "an unrelated write triggered {:?}",
        proxy.requests()
    );
    write(&writer, &scope, "r1", "hello").await;
    let took = b
        .wait_for(&scope, "r1", "hello", "realtime never woke the sync")
        .await;
    println!("write_to_local_ms: {}", took.as_millis());
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Idle for several stall timeouts: heartbeats keep the one stream open.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        events_requests(&proxy).is_empty(),
        "the stream was reopened while heartbeats flowed: {:?}",
        proxy.requests()
    );
    write(&writer, &scope, "r2", "still live").await;
    b.wait_for(&scope, "r2", "still live", "the stream went deaf")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_reconnects_and_the_change_made_while_cut_arrives() {
    let server = start_server(Duration::from_millis(200)).await;
    let proxy = FaultProxy::start(&server.url).await.unwrap();
    let scope = unique_scope("records");
    let b = device(remote(&proxy.url(), Duration::from_secs(5)), &scope);
    let writer = remote(&server.url, Duration::from_secs(45));
    wait_until("the event stream never opened", || {
        events_requests(&proxy).len() == 1
    })
    .await;
    write(&writer, &scope, "r1", "before").await;
    b.wait_for(&scope, "r1", "before", "realtime never woke the sync")
        .await;

    // Cut the stream and refuse reconnects, so nothing listens while the write happens.
    proxy.only_paths(["/v1/events"]);
    proxy.set_always(Some(HttpFault::Status(503)));
    proxy.reset_log();
    proxy.cut_streams();
    wait_until("no reconnect attempt after the cut", || {
        events_requests(&proxy).contains(&Some(HttpFault::Status(503)))
    })
    .await;
    write(&writer, &scope, "r2", "while cut").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.title(&scope, "r2").await,
        None,
        "nothing listens, and the interval is an hour: nothing may have synced yet"
    );

    // Let it reconnect: the resync pull brings the change made while it was cut.
    proxy.clear_faults();
    let took = b
        .wait_for(
            &scope,
            "r2",
            "while cut",
            "the change made while cut never arrived",
        )
        .await;
    println!("reconnect_resync_ms: {}", took.as_millis());
    // And the new stream carries new events.
    write(&writer, &scope, "r3", "after").await;
    b.wait_for(&scope, "r3", "after", "the reopened stream is deaf")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_detected_and_reopened() {
    let server = start_server(Duration::from_millis(100)).await;
    let proxy = FaultProxy::builder(&server.url)
        .hang(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    proxy.only_paths(["/v1/events"]);
    // The first stream answers 200 and then nothing: no `ready`, no heartbeat.
    proxy.script([HttpFault::StallBody]);
    let scope = unique_scope("records");
    let writer = remote(&server.url, Duration::from_secs(45));
    let start = Instant::now();
    let b = device(remote(&proxy.url(), Duration::from_millis(700)), &scope);
    wait_until("the event stream never opened", || {
        !events_requests(&proxy).is_empty()
    })
    .await;
    // Written after the first pass, while the only stream is stalled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    write(&writer, &scope, "r1", "during the stall").await;
    b.wait_for(
        &scope,
        "r1",
        "during the stall",
        "the stalled stream was never reopened",
    )
    .await;
    let took = start.elapsed();
    let events = events_requests(&proxy);
    println!(
        "stall_detected_and_resynced_ms: {} (stall timeout 700 ms)",
        took.as_millis()
    );
    assert_eq!(events.first(), Some(&Some(HttpFault::StallBody)));
    assert!(events.len() >= 2, "{events:?}");
    assert!(
        took >= Duration::from_millis(700),
        "synced before the stall could be detected ({took:?}): something else woke it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_authorized_exactly_as_pulls() {
    let server = start_server(Duration::from_secs(15)).await;
    let http = reqwest::Client::new();
    let url = |owner: &str| {
        let scope = SyncScope::new("records", [("owner", owner)]).unwrap();
        let mut u = reqwest::Url::parse(&format!("{}/v1/events", server.url)).unwrap();
        u.query_pairs_mut()
            .append_pair("scope", &serde_json::to_string(&scope).unwrap());
        u
    };
    let status = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status() };
    assert_eq!(status(http.get(url("alice"))).await, 401);
    assert_eq!(
        status(http.get(url("alice")).bearer_auth("wrong")).await,
        401
    );
    assert_eq!(status(http.get(url("bob")).bearer_auth(ALICE)).await, 403);
    // The pull answers the same.
    let pull = |owner: &str, token: &str| {
        let body = serde_json::json!({
            "scope": SyncScope::new("records", [("owner", owner)]).unwrap(),
            "limit": 10,
        });
        http.post(format!("{}/v1/pull", server.url))
            .bearer_auth(token)
            .json(&body)
    };
    assert_eq!(status(pull("bob", ALICE)).await, 403);
    assert_eq!(status(pull("alice", ALICE)).await, 200);
    // Missing or malformed scopes are refused with clear errors.
    let bare = format!("{}/v1/events", server.url);
    assert_eq!(status(http.get(&bare).bearer_auth(ALICE)).await, 422);
    assert_eq!(
        status(http.get(format!("{bare}?scope=%7B")).bearer_auth(ALICE)).await,
        400
    );
    // Granted: an event stream that starts with `ready`.
    let mut resp = http
        .get(url("alice"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("event: ready"), "{text:?}");
}
