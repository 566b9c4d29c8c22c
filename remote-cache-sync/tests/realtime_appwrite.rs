//! Appwrite realtime (the `/v1/realtime` WebSocket) driving the background sync of an
//! `AppwriteRemoteStore`, against the server of `RCS_TEST_APPWRITE_*` or the in-process stand-in:
//! a write by another device wakes it, a cut socket reconnects and the change made while it was
//! cut arrives, a delete (tombstone or hard delete) is only a trigger to pull, events follow
//! read permissions, and an API key polls.
//!
//! Every background sync here runs with a one-hour interval, so only realtime can explain a
//! prompt sync.
#![cfg(all(feature = "appwrite", feature = "appwrite-standin", feature = "sqlite"))]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_cache_sync::remote::appwrite::{AppwriteRemoteStore, Credential, document_id};
use remote_cache_sync::remote::{RealtimeOptions, RemoteEvent, RemoteEvents};
use remote_cache_sync::testing::{TestRecord, ts};
use remote_cache_sync::{
    InMemoryLocalStore, LastWriteWins, LocalStore, OpKind, Orchestrator, OrchestratorConfig,
    PendingOp, RemoteStore, SyncScope,
};
use support::appwrite::{DB, Env, Raw, env, keyed};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

const HOUR: Duration = Duration::from_secs(3600);

/// A TCP relay in front of the server that can cut every open connection and refuse new ones
/// (the HTTP `FaultProxy` does not carry WebSocket upgrades).
struct Relay {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    refuse: Arc<AtomicBool>,
    /// Realtime sockets opened through the relay.
    sockets: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(endpoint: &str) -> Relay {
        let url = reqwest::Url::parse(endpoint).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            conns: Arc::default(),
            refuse: Arc::default(),
            sockets: Arc::default(),
        };
        let (conns, refuse, sockets) = (
            relay.conns.clone(),
            relay.refuse.clone(),
            relay.sockets.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    continue; // Dropped: connection reset.
                }
                let (upstream, sockets) = (upstream.clone(), sockets.clone());
                let task = tokio::spawn(async move {
                    let mut head = [0u8; 32];
                    if let Ok(n) = inbound.peek(&mut head).await
                        && head[..n].starts_with(b"GET /v1/realtime")
                    {
                        sockets.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns.lock().unwrap().push(task.abort_handle());
            }
        });
        relay
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn sockets(&self) -> usize {
        self.sockets.load(Ordering::SeqCst)
    }

    /// Cuts every open connection; with `refuse`, new ones are dropped too.
    fn cut(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn allow(&self) {
        self.refuse.store(false, Ordering::SeqCst);
    }
}

fn options() -> RealtimeOptions {
    RealtimeOptions::default()
        .stall_timeout(Duration::from_secs(3))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn store(e: &Env, endpoint: &str, jwt: &str) -> AppwriteRemoteStore<TestRecord> {
    AppwriteRemoteStore::builder(endpoint, &e.project, DB)
        .credential(Credential::jwt(jwt))
        .realtime(options())
        .build()
        .unwrap()
}

/// A user, a JWT for it and a scope of its own in the guide's collection.
async fn user(e: &Env) -> (String, String, SyncScope) {
    let (id, jwt) = Raw::new(e).user_with_jwt(900).await;
    let scope = SyncScope::new("records", [("owner", id.as_str())]).unwrap();
    (id, jwt, scope)
}

/// A device whose cache is kept in sync in the background, with a one-hour interval.
struct Device {
    local: Arc<InMemoryLocalStore<TestRecord>>,
    _bg: remote_cache_sync::orchestrator::BackgroundSync,
    _orch: Orchestrator<TestRecord>,
}

fn device(remote: AppwriteRemoteStore<TestRecord>, scope: &SyncScope) -> Device {
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

    /// Waits until record `id` has `title` (`None`: is gone); the time it took.
    async fn wait_for(
        &self,
        scope: &SyncScope,
        id: &str,
        title: Option<&str>,
        what: &str,
    ) -> Duration {
        let start = Instant::now();
        while self.title(scope, id).await.as_deref() != title {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }
}

async fn write(
    writer: &AppwriteRemoteStore<TestRecord>,
    scope: &SyncScope,
    kind: OpKind,
    r: TestRecord,
) {
    // Updates and deletes are made on top of the version before (`ts(n)` over `ts(n - 1)`).
    let base = Some(ts(r.updated_at.as_millisecond()
        - ts(0).as_millisecond()
        - 1));
    let mut op = match kind {
        OpKind::Delete => PendingOp::delete(scope.clone(), r.id.clone(), r.updated_at),
        k => PendingOp::upsert(scope.clone(), k, r),
    };
    if kind != OpKind::Create {
        op.base_version = base;
    }
    let out = writer.push(scope, &[op]).await.unwrap();
    assert!(
        matches!(out[0], remote_cache_sync::PushOutcome::Applied { .. }),
        "{out:?}"
    );
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event within `d`, if any.
async fn next_event(events: &mut RemoteEvents, d: Duration) -> Option<RemoteEvent> {
    tokio::time::timeout(d, events.next()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_another_device_wakes_the_background_sync() {
    let e = env().unwrap();
    let relay = Relay::start(&e.endpoint).await;
    let (_, jwt, scope) = user(&e).await;
    let b = device(store(&e, &relay.endpoint(), &jwt), &scope);
    let writer = store(&e, &e.endpoint, &jwt);
    wait_until("the realtime socket never opened", || relay.sockets() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Pushed in an Appwrite transaction: its commit's event wakes the other device.
    write(
        &writer,
        &scope,
        OpKind::Create,
        TestRecord::new("r1", "hello", ts(1)),
    )
    .await;
    let took = b
        .wait_for(&scope, "r1", Some("hello"), "realtime never woke the sync")
        .await;
    println!("write_to_local_ms: {}", took.as_millis());
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Idle for longer than the stall timeout: pings and pongs keep the one socket open.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(
        relay.sockets(),
        1,
        "the socket was reopened while pongs flowed"
    );
    write(
        &writer,
        &scope,
        OpKind::Update,
        TestRecord::new("r1", "still live", ts(2)),
    )
    .await;
    b.wait_for(&scope, "r1", Some("still live"), "the socket went deaf")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_socket_reconnects_and_the_change_made_while_cut_arrives() {
    let e = env().unwrap();
    let relay = Relay::start(&e.endpoint).await;
    let (_, jwt, scope) = user(&e).await;
    let b = device(store(&e, &relay.endpoint(), &jwt), &scope);
    let writer = store(&e, &e.endpoint, &jwt);
    wait_until("the realtime socket never opened", || relay.sockets() == 1).await;
    write(
        &writer,
        &scope,
        OpKind::Create,
        TestRecord::new("r1", "before", ts(1)),
    )
    .await;
    b.wait_for(&scope, "r1", Some("before"), "realtime never woke the sync")
        .await;

    // Cut the socket and refuse reconnects, so nothing listens while the write happens.
    relay.cut(true);
    write(
        &writer,
        &scope,
        OpKind::Create,
        TestRecord::new("r2", "while cut", ts(2)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.title(&scope, "r2").await,
        None,
        "nothing listens, and the interval is an hour: nothing may have synced yet"
    );

    // Let it reconnect: the resync pull brings the change made while it was cut.
    relay.allow();
    let took = b
        .wait_for(
            &scope,
            "r2",
            Some("while cut"),
            "the change made while cut never arrived",
        )
        .await;
    println!("reconnect_resync_ms: {}", took.as_millis());
    assert_eq!(relay.sockets(), 2);
    // And the new socket carries new events.
    write(
        &writer,
        &scope,
        OpKind::Create,
        TestRecord::new("r3", "after", ts(3)),
    )
    .await;
    b.wait_for(&scope, "r3", Some("after"), "the reopened socket is deaf")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_triggers_to_pull_never_data() {
    let e = env().unwrap();
    let (_, jwt, scope) = user(&e).await;
    let writer = store(&e, &e.endpoint, &jwt);

    // A tombstone (an update on Appwrite) wakes the device, whose pull removes the record.
    let b = device(store(&e, &e.endpoint, &jwt), &scope);
    write(
        &writer,
        &scope,
        OpKind::Create,
        TestRecord::new("gone", "here", ts(1)),
    )
    .await;
    b.wait_for(&scope, "gone", Some("here"), "the create never arrived")
        .await;
    write(
        &writer,
        &scope,
        OpKind::Delete,
        TestRecord::new("gone", "", ts(2)),
    )
    .await;
    let took = b
        .wait_for(&scope, "gone", None, "the tombstone never arrived")
        .await;
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // A hard delete by another app: Appwrite sends a `delete` event carrying the document. It
    // is only `Changed(scope)`: a trigger, never data (the event type is not even read).
    let kept = TestRecord::new("kept", "alive", ts(3));
    write(&writer, &scope, OpKind::Create, kept.clone()).await;
    let mut events = writer.subscribe(std::slice::from_ref(&scope)).unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        Some(RemoteEvent::Reconnected)
    );
    let path = format!(
        "/databases/{DB}/collections/records/documents/{}",
        document_id(&scope, "kept")
    );
    let (status, body) = Raw::new(&e)
        .call(reqwest::Method::DELETE, &path, &[], None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        next_event(&mut events, Duration::from_secs(2)).await,
        Some(RemoteEvent::Changed(scope.clone()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_read_permissions() {
    let e = env().unwrap();
    let (_, jwt_a, scope_a) = user(&e).await;
    let (_, jwt_b, scope_b) = user(&e).await;
    let a = store(&e, &e.endpoint, &jwt_a);
    let b = store(&e, &e.endpoint, &jwt_b);
    // Both listen on the same collection's channel; b's documents are readable by b only.
    let mut events = a.subscribe(std::slice::from_ref(&scope_a)).unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        Some(RemoteEvent::Reconnected)
    );
    write(
        &b,
        &scope_b,
        OpKind::Create,
        TestRecord::new("b1", "b's", ts(1)),
    )
    .await;
    assert_eq!(
        next_event(&mut events, Duration::from_millis(500)).await,
        None,
        "a was told of a document it cannot read"
    );
    write(
        &a,
        &scope_a,
        OpKind::Create,
        TestRecord::new("a1", "a's", ts(1)),
    )
    .await;
    assert_eq!(
        next_event(&mut events, Duration::from_secs(2)).await,
        Some(RemoteEvent::Changed(scope_a.clone()))
    );
}

#[tokio::test]
async fn an_api_key_store_polls() {
    let e = env().unwrap();
    let s = SyncScope::new("records", [("owner", "x")]).unwrap();
    // Appwrite's realtime does not read API keys: the socket would be a guest's.
    assert!(keyed(&e).subscribe(&[s]).is_none());
}
