//! Retry backoff never hammers the server: with our server answering 503 or 429 continuously
//! (through `testing::FaultProxy`), the background loops make a bounded number of requests per
//! time window, consistent with `OrchestratorConfig::backoff`; `Retry-After` is honoured, and
//! write-triggered retries stop.
#![cfg(all(
    feature = "fault-proxy",
    feature = "server",
    feature = "http",
    feature = "sqlite"
))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::orchestrator::Backoff;
use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault};
use remote_cache_sync::testing::{TestRecord, unique_scope};
use remote_cache_sync::{
    LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, RemoteStore, SyncScope, Timestamp,
};
use support::server::{TestServer, http_remote};

/// The most requests `backoff` allows within `window` when every attempt fails at once:
/// attempts follow each other after at least half the nominal delay (the jitter's floor).
fn backoff_bound(backoff: &Backoff, cap: Duration, window: Duration) -> usize {
    let mut at = Duration::ZERO;
    let mut n = 0;
    let mut attempt = 0;
    while at <= window {
        n += 1;
        let nominal = backoff
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(backoff.max)
            .min(cap);
        at += nominal / 2;
        attempt += 1;
    }
    n
}

async fn one_write(device: &Orchestrator<TestRecord>, scope: &SyncScope, id: &str) {
    device
        .enqueue_create(scope, TestRecord::new(id, "queued", Timestamp::now()))
        .await
        .unwrap();
}

fn config_with(backoff: Backoff) -> OrchestratorConfig {
    // These tests measure the polling loop's requests: no realtime stream in the log.
    OrchestratorConfig::default()
        .sync_after_write(false)
        .realtime(false)
        .backoff(backoff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_backs_off_while_the_server_answers_503_or_429() {
    let server = TestServer::start().await;
    let backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(800),
        max_retries: 8,
    };
    let interval = Duration::from_millis(200);
    let run = Duration::from_secs(4);
    for fault in [
        HttpFault::Status(503),
        HttpFault::RateLimited { retry_after: None },
    ] {
        let proxy = FaultProxy::start(server.url()).await.unwrap();
        proxy.set_always(Some(fault));
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(
            SqliteLocalStore::open(dir.path().join("c.db"))
                .await
                .unwrap(),
        );
        let device = Orchestrator::with(
            local.clone(),
            Arc::new(http_remote(&proxy.url(), Duration::from_secs(2))),
            Arc::new(LastWriteWins::new()),
            config_with(backoff),
        );
        let scope = unique_scope("records");
        one_write(&device, &scope, "r1").await;
        let bg = device.start_background_sync(vec![scope.clone()], interval);
        tokio::time::sleep(run).await;
        let log = proxy.requests();
        // The loop caps each delay at max(interval, backoff.max).
        let cap = interval.max(backoff.max);
        let bound = backoff_bound(&backoff, cap, run);
        let per_second = proxy.max_in_window(Duration::from_secs(1));
        let per_second_bound = backoff_bound(&backoff, cap, Duration::from_secs(1));
        println!(
            "{fault:?}: requests_in_{}s: {} (bound {bound}), max_per_1s_window: {per_second} \
             (bound {per_second_bound}), without backoff the interval alone would allow {}",
            run.as_secs(),
            log.len(),
            run.as_millis() / interval.as_millis() + 1,
        );
        assert!(
            log.len() <= bound,
            "{fault:?}: {} requests in {run:?}",
            log.len()
        );
        assert!(
            per_second <= per_second_bound,
            "{fault:?}: {per_second} in one second"
        );
        assert!(log.len() >= 4, "the loop must keep retrying: {}", log.len());
        // Steady state: spaced at least backoff.max / 2 apart once the delay reaches the cap.
        let gaps: Vec<_> = log.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(
            gaps.iter().skip(4).all(|g| *g >= backoff.max / 2),
            "{fault:?}: gaps {gaps:?}"
        );

        // The server heals: the loop's next attempt pushes the write.
        proxy.clear_faults();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while local.queue_status(&scope).await.unwrap().pending > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never synced after healing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bg.stop();
        let direct = http_remote(&server.url(), Duration::from_secs(5));
        assert!(direct.get_by_id(&scope, "r1").await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let server = TestServer::start().await;
    // Without Retry-After these settings would retry after 10-20 ms, 20-40 ms, ... (the loops cap
    // every delay, Retry-After included, at max = 2 s).
    let backoff = Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_secs(2),
        max_retries: 50,
    };
    let run = Duration::from_millis(3_500);
    let proxy = FaultProxy::start(server.url()).await.unwrap();
    proxy.set_always(Some(HttpFault::RateLimited {
        retry_after: Some(1),
    }));

    // The periodic loop (interval below Retry-After).
    let local = Arc::new(SqliteLocalStore::open_in_memory().await.unwrap());
    let device = Orchestrator::with(
        local.clone(),
        Arc::new(http_remote(&proxy.url(), Duration::from_secs(2))),
        Arc::new(LastWriteWins::new()),
        config_with(backoff),
    );
    let scope = unique_scope("records");
    one_write(&device, &scope, "r1").await;
    let bg = device.start_background_sync(vec![scope.clone()], Duration::from_millis(50));
    tokio::time::sleep(run).await;
    bg.stop();
    let log = proxy.requests();
    let gaps: Vec<_> = log.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!(
        "periodic loop under 429 + Retry-After: 1: {} requests in {run:?}, gaps {gaps:?}",
        log.len()
    );
    assert!(
        (2..=4).contains(&log.len()),
        "{} requests in {run:?}",
        log.len()
    );
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(990)),
        "Retry-After ignored: {gaps:?}"
    );

    // The write-triggered retry loop (sync_in_background) honours it too.
    proxy.reset_log();
    let start = proxy.elapsed();
    let device2 = Orchestrator::with(
        local.clone(),
        Arc::new(http_remote(&proxy.url(), Duration::from_secs(2))),
        Arc::new(LastWriteWins::new()),
        config_with(backoff).sync_after_write(true),
    );
    let scope2 = unique_scope("records");
    one_write(&device2, &scope2, "r2").await;
    tokio::time::sleep(run).await;
    let log: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.at >= start)
        .collect();
    let gaps: Vec<_> = log.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!(
        "write-triggered loop under 429 + Retry-After: 1: {} requests in {run:?}, gaps {gaps:?}",
        log.len()
    );
    assert!((2..=4).contains(&log.len()), "{} requests", log.len());
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(990)),
        "Retry-After ignored: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_triggered_retries_stop_after_max_retries() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.url()).await.unwrap();
    proxy.set_always(Some(HttpFault::Status(503)));
    let backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(400),
        max_retries: 4,
    };
    let local = Arc::new(SqliteLocalStore::open_in_memory().await.unwrap());
    let device = Orchestrator::with(
        local.clone(),
        Arc::new(http_remote(&proxy.url(), Duration::from_secs(2))),
        Arc::new(LastWriteWins::new()),
        config_with(backoff).sync_after_write(true),
    );
    let scope = unique_scope("records");
    // A burst of writes shares one retry loop.
    for i in 0..10 {
        one_write(&device, &scope, &format!("r{i}")).await;
    }
    // Worst case 50+100+200+400 ms of backoff plus round trips; wait for the last attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proxy.request_count() < backoff.max_retries as usize + 1
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_loop = proxy.request_count();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let later = proxy.request_count();
    println!(
        "10 writes under 503, max_retries {}: {after_loop} requests, then {} more in 1 s",
        backoff.max_retries,
        later - after_loop
    );
    assert_eq!(
        after_loop,
        backoff.max_retries as usize + 1,
        "one push per attempt: {:?}",
        proxy.requests()
    );
    assert_eq!(later, after_loop, "the loop must stop after max_retries");
    // Nothing was lost: the writes are still queued and sync once the server is back.
    assert_eq!(local.queue_status(&scope).await.unwrap().pending, 10);
    proxy.clear_faults();
    device.synchronize(&scope).await.unwrap();
    assert_eq!(local.queue_status(&scope).await.unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_does_not_stall_write_triggered_syncs() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.url()).await.unwrap();
    // One answer asks for an hour's pause; the server is fine afterwards.
    proxy.script([HttpFault::RateLimited {
        retry_after: Some(3600),
    }]);
    let backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(500),
        max_retries: 8,
    };
    let local = Arc::new(SqliteLocalStore::open_in_memory().await.unwrap());
    let device = Orchestrator::with(
        local.clone(),
        Arc::new(http_remote(&proxy.url(), Duration::from_secs(2))),
        Arc::new(LastWriteWins::new()),
        config_with(backoff).sync_after_write(true),
    );
    let scope = unique_scope("records");
    one_write(&device, &scope, "r1").await;
    // The retry waits at most backoff.max, not the hour.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while local.queue_status(&scope).await.unwrap().pending > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the write-triggered sync is parked behind Retry-After: 3600"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let direct = http_remote(&server.url(), Duration::from_secs(5));
    assert!(direct.get_by_id(&scope, "r1").await.unwrap().is_some());
}
