//! The orchestrator in a real browser (headless Chromium, in a dedicated worker, on OPFS)
//! against a real `rcs serve` on 127.0.0.1, which `scripts/test-web.sh` starts with
//! `--cors-origin` for the test page and passes in at build time:
//!
//! - `RCS_WEB_TEST_REMOTE`: the server's URL; `RCS_WEB_TEST_TOKEN`: a token granted
//!   `records,owner=*`;
//! - `RCS_WEB_TEST_GARBAGE`: a URL that answers every request with 200 and a body that is not
//!   our protocol (a bad remote answer).
//!
//! Without them each test fails under `RCS_TEST_REQUIRE_SERVERS=1` and is skipped otherwise.
//! Natively this file compiles to an empty test.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    CachePolicy, Error, JsonRecord, LocalStore, Orchestrator, QuerySpec, RemoteStore, SyncScope,
};
use serde_json::json;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// A URL given at build time, or `None` (and a skip) when the run does not require servers.
fn server(var: &str, value: Option<&'static str>) -> Option<&'static str> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if option_env!("RCS_TEST_REQUIRE_SERVERS") == Some("1") => {
            panic!("{var} is not set at build time: run scripts/test-web.sh")
        }
        None => {
            wasm_bindgen_test::console_log!("skipped: {var} not set (run scripts/test-web.sh)");
            None
        }
    }
}

fn remote_url() -> Option<&'static str> {
    server("RCS_WEB_TEST_REMOTE", option_env!("RCS_WEB_TEST_REMOTE"))
}

fn token() -> &'static str {
    option_env!("RCS_WEB_TEST_TOKEN").unwrap_or_default()
}

fn fresh(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::now_v7().simple())
}

fn note(id: &str, text: &str) -> JsonRecord {
    JsonRecord::from_value(json!({
        "id": id,
        "text": text,
        "updated_at": jiff::Timestamp::now().to_string(),
    }))
    .expect("valid record")
}

fn remote(url: &str, token: &str) -> HttpRemoteStore<JsonRecord> {
    HttpRemoteStore::builder(url)
        .token(token)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("remote")
}

#[wasm_bindgen_test]
async fn offline_writes_then_sync_reach_rcs_serve() {
    let Some(url) = remote_url() else { return };
    let db = format!("{}.db", fresh("offline"));
    let scope = SyncScope::new("records", [("owner", fresh("web").as_str())]).unwrap();

    // Offline: nothing listens on port 9 of this host; the writes are kept and queued.
    {
        let local = SqliteLocalStore::<JsonRecord>::open_opfs(&db)
            .await
            .expect("open");
        let app = Orchestrator::builder(local, remote("http://127.0.0.1:9", token()))
            .sync_after_write(false)
            .build();
        app.enqueue_create(&scope, note("n1", "written offline"))
            .await
            .expect("offline write");
        app.enqueue_create(&scope, note("n2", "also offline"))
            .await
            .expect("offline write");
        let err = app.synchronize(&scope).await.expect_err("offline");
        assert!(err.is_retryable(), "{err:?}");
        assert!(!err.pauses_scope(), "{err:?}");
        assert_eq!(app.status(&scope).await.expect("status").pending, 2);
        app.shutdown().await;
    } // the worker closes the database, as a page reload would

    // Online again: the same OPFS database, the real server.
    let local = SqliteLocalStore::<JsonRecord>::open_opfs(&db)
        .await
        .expect("reopen");
    let app = Orchestrator::builder(local, remote(url, token()))
        .sync_after_write(false)
        .build();
    assert_eq!(app.status(&scope).await.expect("status").pending, 2);
    let report = app.synchronize(&scope).await.expect("sync");
    assert_eq!(report.pushed, 2, "{report:?}");
    assert_eq!(app.status(&scope).await.expect("status").pending, 0);
    app.shutdown().await;
    drop(app); // closes the database (deleting an open one is refused)

    // A second device (a fresh cache) pulls both from the server.
    let other = Orchestrator::builder(
        SqliteLocalStore::<JsonRecord>::open_in_memory()
            .await
            .unwrap(),
        remote(url, token()),
    )
    .build();
    let report = other.synchronize(&scope).await.expect("pull");
    assert_eq!(report.pulled, 2, "{report:?}");
    let rows = other
        .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await
        .expect("read");
    let mut texts: Vec<_> = rows
        .iter()
        .map(|r| r.value()["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    assert_eq!(texts, ["also offline", "written offline"]);
    other.shutdown().await;
    assert!(
        SqliteLocalStore::<JsonRecord>::delete_opfs(&db)
            .await
            .unwrap()
    );
}

#[wasm_bindgen_test]
async fn a_bad_remote_answer_is_a_typed_error_and_loses_nothing() {
    let Some(garbage) = server("RCS_WEB_TEST_GARBAGE", option_env!("RCS_WEB_TEST_GARBAGE")) else {
        return;
    };
    let scope = SyncScope::new("records", [("owner", fresh("bad").as_str())]).unwrap();
    let local = SqliteLocalStore::<JsonRecord>::open_in_memory()
        .await
        .unwrap();
    let app = Orchestrator::builder(local, remote(garbage, token()))
        .sync_after_write(false)
        .build();
    app.enqueue_create(&scope, note("k1", "kept"))
        .await
        .expect("write");

    let err = app
        .remote()
        .fetch_since(&scope, None, 10)
        .await
        .expect_err("not our protocol");
    assert!(
        matches!(err, Error::MalformedResponse { .. }),
        "pull: {err:?}"
    );
    let err = app.synchronize(&scope).await.expect_err("bad answer");
    assert!(
        matches!(err, Error::MalformedResponse { .. }),
        "sync: {err:?}"
    );
    // The write is still queued and readable.
    assert_eq!(app.status(&scope).await.unwrap().pending, 1);
    assert!(app.local().get_by_id(&scope, "k1").await.unwrap().is_some());
    app.shutdown().await;
}

#[wasm_bindgen_test]
async fn a_wrong_token_pauses_the_scope_with_a_typed_error() {
    let Some(url) = remote_url() else { return };
    let scope = SyncScope::new("records", [("owner", fresh("401").as_str())]).unwrap();
    let local = SqliteLocalStore::<JsonRecord>::open_in_memory()
        .await
        .unwrap();
    let app = Orchestrator::builder(local, remote(url, "not-the-token"))
        .sync_after_write(false)
        .build();
    app.enqueue_create(&scope, note("w1", "kept"))
        .await
        .expect("write");
    let err = app.synchronize(&scope).await.expect_err("refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.pauses_scope());
    assert!(!format!("{err:?}{err}").contains("not-the-token"));
    assert!(app.pause(&scope).await.unwrap().is_some());
    assert_eq!(app.status(&scope).await.unwrap().pending, 1);
    app.shutdown().await;
}
