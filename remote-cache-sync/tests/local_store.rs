//! Runs the public LocalStore conformance suite against both local stores, plus SQLite-specific
//! tests (persistence across reopen, migrations, typed storage errors) and a property test that
//! checks SQL-compiled queries against `QuerySpec::apply`.
#![cfg(all(feature = "testing", feature = "sqlite"))]

use remote_cache_sync::InMemoryLocalStore;
use remote_cache_sync::testing::local;

#[tokio::test]
async fn memory_store_passes_the_suite() {
    local::run_all(async || InMemoryLocalStore::new()).await;
}

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::TestRecord;

#[tokio::test]
async fn sqlite_in_memory_passes_the_suite() {
    local::run_all(async || {
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn sqlite_file_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    local::run_all(async || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteLocalStore::<TestRecord>::builder(dir.path().join(format!("cache-{i}.db")))
            .index_field("title")
            .open()
            .await
            .unwrap()
    })
    .await;
}
