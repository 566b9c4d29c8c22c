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
