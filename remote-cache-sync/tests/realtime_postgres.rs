//! Realtime over PostgreSQL `LISTEN/NOTIFY`: the PostgreSQL remote's own subscription (events
//! at commit, scope filtering, a killed listening session reconnects and resyncs), and two sync
//! servers sharing one database, where a write through server 1 wakes a client of server 2.
//!
//! Needs `RCS_TEST_PG_URL` (`scripts/start-postgres.sh`). Background syncs run with a one-hour
//! interval, so only realtime can explain a prompt sync.
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};
use remote_cache_sync::remote::{RealtimeOptions, RemoteEvent, RemoteEvents};
use remote_cache_sync::server::{AllowAll, Server, serve_server};
use remote_cache_sync::testing::{TestRecord, require_env, ts, unique_scope};
use remote_cache_sync::{
    InMemoryLocalStore, JsonRecord, LastWriteWins, LocalStore, OpKind, Orchestrator,
    OrchestratorConfig, PendingOp, RemoteStore, SyncScope,
};

/// Table prefix for these tests (kept apart from other users of the test database).
const PREFIX: &str = "rcs_rt_";
/// The prefix of the test that kills listening sessions (so it kills no other test's).
const KILL_PREFIX: &str = "rcs_rtk_";
const HOUR: Duration = Duration::from_secs(3600);

#[track_caller]
fn pg_url() -> Option<String> {
    require_env("RCS_TEST_PG_URL")
}

async fn store<T: remote_cache_sync::Record>(
    url: &str,
    prefix: &str,
    min_backoff: Duration,
) -> PostgresRemoteStore<T> {
    PostgresRemoteStore::connect(
        url,
        PostgresOptions::default().table_prefix(prefix).realtime(
            RealtimeOptions::default()
                .stall_timeout(Duration::from_secs(3))
                .backoff(min_backoff, min_backoff * 2),
        ),
    )
    .await
    .expect("connect to the test PostgreSQL")
}

fn create(scope: &SyncScope, id: &str, title: &str) -> PendingOp<TestRecord> {
    PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        TestRecord::new(id, title, ts(1)),
    )
}

async fn next(events: &mut RemoteEvents) -> RemoteEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("no event within 10 s")
        .expect("subscription ended")
}

async fn wait_for(
    local: &InMemoryLocalStore<TestRecord>,
    scope: &SyncScope,
    id: &str,
    title: &str,
    what: &str,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = local.get_by_id(scope, id).await.unwrap();
        if got.is_some_and(|r| r.title == title) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn device(
    remote: impl RemoteStore<TestRecord>,
    scope: &SyncScope,
) -> (
    Arc<InMemoryLocalStore<TestRecord>>,
    Orchestrator<TestRecord>,
    remote_cache_sync::orchestrator::BackgroundSync,
) {
    let local = Arc::new(InMemoryLocalStore::new());
    let orch = Orchestrator::with(
        local.clone(),
        Arc::new(remote),
        Arc::new(LastWriteWins::new()),
        OrchestratorConfig::default().sync_after_write(false),
    );
    let bg = orch.start_background_sync(vec![scope.clone()], HOUR);
    (local, orch, bg)
}

/// The PIDs of this prefix's listening sessions.
async fn listening_pids(url: &str) -> Vec<i32> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1",
            &[&format!("%-listen:{KILL_PREFIX}changes")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arrive_at_commit_for_subscribed_scopes_only() {
    let Some(url) = pg_url() else { return };
    let reader = store::<TestRecord>(&url, PREFIX, Duration::from_millis(50)).await;
    let writer = store::<TestRecord>(&url, PREFIX, Duration::from_millis(50)).await;
    let (watched, other) = (unique_scope("records"), unique_scope("records"));
    let mut events = reader.subscribe(std::slice::from_ref(&watched)).unwrap();
    assert_eq!(next(&mut events).await, RemoteEvent::Reconnected);
    writer
        .push(&other, &[create(&other, "o", "other")])
        .await
        .unwrap();
    writer
        .push(&watched, &[create(&watched, "w", "watched")])
        .await
        .unwrap();
    assert_eq!(
        next(&mut events).await,
        RemoteEvent::Changed(watched.clone())
    );
    // A push that changes nothing (a replayed op) may notify or not; an unrelated one never.
    let quiet = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(quiet.is_err(), "unexpected {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listening_session_reconnects_and_the_change_made_meanwhile_arrives() {
    let Some(url) = pg_url() else { return };
    let scope = unique_scope("records");
    // Reconnects wait 1-2 s, so the write below lands while nothing listens.
    let (local, _orch, _bg) = device(
        store::<TestRecord>(&url, KILL_PREFIX, Duration::from_secs(1)).await,
        &scope,
    );
    let writer = store::<TestRecord>(&url, KILL_PREFIX, Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer
        .push(&scope, &[create(&scope, "r1", "first")])
        .await
        .unwrap();
    let took = wait_for(&local, &scope, "r1", "first", "LISTEN never woke the sync").await;
    println!("postgres_write_to_local_ms: {}", took.as_millis());

    let before = listening_pids(&url).await;
    assert!(!before.is_empty());
    let (killer, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    for pid in &before {
        killer
            .execute("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .unwrap();
    }
    writer
        .push(&scope, &[create(&scope, "r2", "while cut")])
        .await
        .unwrap();
    let took = wait_for(
        &local,
        &scope,
        "r2",
        "while cut",
        "the change made while cut never arrived",
    )
    .await;
    println!("postgres_reconnect_resync_ms: {}", took.as_millis());
    assert!(
        took >= Duration::from_millis(900),
        "arrived before any reconnect could ({took:?})"
    );
    let after = listening_pids(&url).await;
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
}

async fn start_server(url: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let storage = Arc::new(store::<JsonRecord>(url, PREFIX, Duration::from_millis(50)).await);
    let server = Server::from_arcs(storage.clone(), Arc::new(AllowAll)).change_feed(storage);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve_server(listener, server, async {
        let _ = rx.await;
    }));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_server_one_wakes_a_client_of_server_two() {
    let Some(url) = pg_url() else { return };
    let (one, _stop1) = start_server(&url).await;
    let (two, _stop2) = start_server(&url).await;
    let scope = unique_scope("records");
    let client_of_two = HttpRemoteStore::<TestRecord>::builder(&two)
        .build()
        .unwrap();
    let (local, _orch, _bg) = device(client_of_two, &scope);
    let writer = HttpRemoteStore::<TestRecord>::builder(&one)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        let id = format!("r{i}");
        writer
            .push(&scope, &[create(&scope, &id, "via one")])
            .await
            .unwrap();
        let took = wait_for(
            &local,
            &scope,
            &id,
            "via one",
            "server two never announced server one's write",
        )
        .await;
        println!("two_servers_write_to_local_ms: {}", took.as_millis());
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

/// The prefixes of the flood tests (their notifications reach no other test's listeners).
const FLOOD_PREFIX: &str = "rcs_rtf_";
const FEED_PREFIX: &str = "rcs_rtg_";

/// Sends `payloads` on the flood channel, each in its own transaction (PostgreSQL folds
/// identical notifications of one transaction), and waits until they had time to arrive.
async fn flood(url: &str, payloads: impl Iterator<Item = String>) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let notify = client.prepare("SELECT pg_notify($1, $2)").await.unwrap();
    let channel = format!("{FLOOD_PREFIX}changes");
    for payload in payloads {
        client
            .execute(&notify, &[&channel, &payload])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Everything the subscription holds for its reader now.
async fn drain(events: &mut RemoteEvents) -> Vec<RemoteEvent> {
    let mut got = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), events.next()).await {
        got.push(e);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_gets_coalesced_events_not_a_backlog() {
    let Some(url) = pg_url() else { return };
    let reader = store::<TestRecord>(&url, FLOOD_PREFIX, Duration::from_millis(50)).await;
    let scope = unique_scope("records");
    let mut events = reader.subscribe(std::slice::from_ref(&scope)).unwrap();
    assert_eq!(next(&mut events).await, RemoteEvent::Reconnected);
    // 2,000 notifications of one scope while the subscriber reads nothing.
    flood(&url, std::iter::repeat_n(scope.canonical(), 2_000)).await;
    let got = drain(&mut events).await;
    // What waits is the subscription's small channel (64) plus one coalesced event, not the
    // 2,000 notifications.
    assert!(
        !got.is_empty() && got.len() <= 70,
        "{} events after 2,000 notifications",
        got.len()
    );
    assert!(
        got.iter()
            .all(|e| *e == RemoteEvent::Changed(scope.clone()))
    );
    // It still hears the next one.
    flood(&url, std::iter::once(scope.canonical())).await;
    assert_eq!(drain(&mut events).await, [RemoteEvent::Changed(scope)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_change_feed_turns_a_flood_of_scopes_into_a_resync() {
    /// The feed's bound on distinct waiting scopes (`MAX_PENDING_SCOPES`, crate-private).
    const MAX_PENDING: usize = 1_024;
    use remote_cache_sync::server::ChangeFeed;
    let Some(url) = pg_url() else { return };
    // A channel of its own: the other flood test's notifications would reach this feed.
    let feed = store::<JsonRecord>(&url, FEED_PREFIX, Duration::from_millis(50)).await;
    let mut events = feed.changes();
    assert_eq!(next(&mut events).await, RemoteEvent::Reconnected);
    // 3,000 distinct scopes while the server's feed reader is stuck, in one transaction, so
    // they all arrive at once at commit (distinct notifications are not folded).
    let scopes: Vec<String> = (0..3_000)
        .map(|_| unique_scope("flood").canonical())
        .collect();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            &[&format!("{FEED_PREFIX}changes"), &scopes],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let got = drain(&mut events).await;
    // On a loaded machine the last notifications may still be arriving when the subscriber
    // starts reading; those come as plain changes after the resync. What must hold: before the
    // resync only what the subscription's channel (64) held, and the overflow became a resync.
    let first_resync = got
        .iter()
        .position(|e| *e == RemoteEvent::Reconnected)
        .unwrap_or_else(|| panic!("the overflow must become a resync: {} events", got.len()));
    assert!(
        first_resync <= 70,
        "{first_resync} events before the resync ({} in all)",
        got.len()
    );
    assert!(
        got.len() < 3_000 - MAX_PENDING,
        "{} events after 3,000 scopes: not coalesced",
        got.len()
    );
    assert!(
        got.iter().all(|e| matches!(e, RemoteEvent::Reconnected)
            || matches!(e, RemoteEvent::Changed(s) if s.name() == "flood")),
        "{got:?}"
    );
}
