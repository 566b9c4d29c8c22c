//! A row of our server's storage that is not a record (its text edited by hand into something
//! that is not a JSON object) never blocks a scope: the server hands it over as quarantined
//! (`PullResponse::quarantined`, with and without the raw pull fast path), the client keeps it
//! visible with its reason, the rest of the page syncs, and a later valid write releases it.

use std::sync::Arc;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{AllowAll, Server, serve};
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{CachePolicy, JsonRecord, Orchestrator, QuerySpec, RemoteStore};

/// Row `r1` of the scope bound to `?1`.
const ROW: &str = "WHERE id = 'r1' AND scope_id = \
                   (SELECT scope_id FROM rcs_remote_scopes WHERE canonical = ?1)";

async fn start(server: Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        server.into_router(),
        std::future::pending(),
    ));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_row_that_is_not_json_is_quarantined_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.sqlite");
    let storage = SqliteRemoteStore::<JsonRecord>::open(&file).await.unwrap();
    for raw_feed in [true, false] {
        let server = Server::new(storage.clone(), AllowAll);
        let server = if raw_feed {
            server.raw_feed(Arc::new(storage.clone()))
        } else {
            server
        };
        let http = HttpRemoteStore::<TestRecord>::builder(start(server).await)
            .build()
            .unwrap();
        let scope = unique_scope("records");
        let rows: Vec<_> = (0..3)
            .map(|i| TestRecord::new(format!("r{i}"), "ok", ts(i)))
            .collect();
        http.batch_upsert(&scope, &rows).await.unwrap();
        // Someone edits the storage by hand.
        let db = rusqlite::Connection::open(&file).unwrap();
        let edited = db
            .execute(
                &format!("UPDATE rcs_remote_records SET body = 'not json {{' {ROW}"),
                [scope.canonical()],
            )
            .unwrap();
        assert_eq!(edited, 1);

        let local = SqliteLocalStore::<TestRecord>::open(dir.path().join(format!("c{raw_feed}")))
            .await
            .unwrap();
        let app = Orchestrator::new(local, http.clone());
        let report = app.synchronize(&scope).await.unwrap();
        assert_eq!(report.quarantined, 1, "raw_feed={raw_feed}: {report:?}");
        let ids: Vec<String> = app
            .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            ids,
            ["r0", "r2"],
            "raw_feed={raw_feed}: the rest of the page syncs"
        );
        let q = app.quarantined(&scope).await.unwrap();
        assert_eq!(q.len(), 1, "raw_feed={raw_feed}: {q:?}");
        assert_eq!(q[0].id, "r1");
        assert_eq!(q[0].raw, "not json {");

        // The row is repaired (a valid body, and a new place in the feed as every change
        // gets): the next sync brings it and releases the quarantine.
        let body = serde_json::to_string(&TestRecord::new("r1", "fixed", ts(1))).unwrap();
        db.execute_batch("UPDATE rcs_remote_meta SET value = value + 1 WHERE key = 'seq'")
            .unwrap();
        db.execute(
            &format!(
                "UPDATE rcs_remote_records SET body = ?2, \
                 seq = (SELECT value FROM rcs_remote_meta WHERE key = 'seq') {ROW}"
            ),
            [scope.canonical(), body],
        )
        .unwrap();
        let report = app.synchronize(&scope).await.unwrap();
        assert_eq!(report.quarantined, 0, "{report:?}");
        assert!(app.quarantined(&scope).await.unwrap().is_empty());
        let fixed = app
            .get(&scope, "r1", CachePolicy::OfflineOnly)
            .await
            .unwrap()
            .expect("r1 synced once fixed");
        assert_eq!(fixed.title, "fixed");
    }
}
