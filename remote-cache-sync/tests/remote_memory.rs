//! The RemoteStore conformance suite against the in-memory reference remote.

use remote_cache_sync::InMemoryRemoteStore;
use remote_cache_sync::testing::{TestRecord, remote, unique_scope};

#[tokio::test]
async fn in_memory_remote_passes_the_conformance_suite() {
    let store = InMemoryRemoteStore::<TestRecord>::new();
    remote::run_all(&store, || unique_scope("records")).await;
}

#[tokio::test]
async fn offline_remote_fails_with_a_retryable_error() {
    let store = InMemoryRemoteStore::<TestRecord>::new();
    store.set_offline(true);
    let err = remote_cache_sync::RemoteStore::fetch_since(&store, &unique_scope("r"), None, 10)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
