//! A program that writes and returns from `main` at once (the write's background sync still in
//! flight) must exit cleanly: no panic from a runtime shutting down under the sync, and every
//! write either on the server or still queued in the cache. Run 100 times as separate processes
//! (this test binary re-runs itself as the child), against a real server on loopback.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{AllowAll, Server, serve};
use remote_cache_sync::{JsonRecord, LocalStore, Orchestrator, RemoteStore, SyncScope, Timestamp};

const CHILD: &str = "RCS_EXIT_TEST_CHILD";

fn scope() -> SyncScope {
    SyncScope::new("records", [("owner", "exit")]).unwrap()
}

/// The child: what a user's `#[tokio::main]` program does. Only runs when the parent says so.
#[test]
fn child_writes_and_returns_from_main() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (url, cache, id) = {
        let mut p = spec.splitn(3, '|');
        (
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let local = SqliteLocalStore::<JsonRecord>::open(&cache).await.unwrap();
        let remote = HttpRemoteStore::<JsonRecord>::builder(url).build().unwrap();
        let orch = Orchestrator::new(local, remote);
        let record = JsonRecord::from_value(serde_json::json!({
            "id": id, "updated_at": Timestamp::now().to_string()
        }))
        .unwrap();
        orch.enqueue_create(&scope(), record).await.unwrap();
        // Returns right away: the write's background sync is still running.
    });
    drop(rt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_and_exiting_100_times_never_panics_and_keeps_every_write() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteRemoteStore::<JsonRecord>::open(dir.path().join("server.db"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Server::new(storage.clone(), AllowAll).into_router();
    tokio::spawn(serve(listener, router, std::future::pending::<()>()));
    let cache = dir.path().join("cache.db");
    let exe = std::env::current_exe().unwrap();
    let n = 100;
    for i in 0..n {
        let out = tokio::process::Command::from({
            let mut c = Command::new(&exe);
            c.args([
                "--exact",
                "child_writes_and_returns_from_main",
                "--nocapture",
            ])
            .env(CHILD, format!("{url}|{}|r{i:03}", cache.display()))
            .env("RUST_BACKTRACE", "1");
            c
        })
        .output()
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "run {i} failed: {stdout}{stderr}");
        assert!(
            !stderr.contains("panicked") && !stdout.contains("panicked"),
            "run {i} panicked: {stdout}{stderr}"
        );
    }
    // Every write is on the server or still queued, never neither.
    let local = Arc::new(SqliteLocalStore::<JsonRecord>::open(&cache).await.unwrap());
    let s = scope();
    let queued: Vec<String> = local
        .pending_ops(&s, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    for i in 0..n {
        let id = format!("r{i:03}");
        let on_server = storage.get_by_id(&s, &id).await.unwrap().is_some();
        assert!(on_server || queued.contains(&id), "write {id} was lost");
    }
    // And the next run delivers what was left.
    let orch = Orchestrator::new(
        local.clone(),
        HttpRemoteStore::<JsonRecord>::builder(url).build().unwrap(),
    );
    orch.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(local.queue_status(&s).await.unwrap().pending, 0);
    for i in 0..n {
        let id = format!("r{i:03}");
        assert!(storage.get_by_id(&s, &id).await.unwrap().is_some(), "{id}");
    }
    orch.shutdown().await;
}
