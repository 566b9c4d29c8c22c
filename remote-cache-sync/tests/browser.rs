//! The SQLite local store in a real browser (headless Chromium, in a dedicated worker, where
//! OPFS sync access handles exist): the `LocalStore` conformance suite in memory and on OPFS,
//! and persistence across closing and reopening an OPFS database.
//!
//! Run with `scripts/test-web.sh` (it installs Chromium, the wasm target and the matching
//! `wasm-bindgen-cli`). Natively this file compiles to an empty test.
#![cfg(target_arch = "wasm32")]

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::{TestRecord, local, ts, unique_scope};
use remote_cache_sync::{LocalStore, QuerySpec, StorageErrorKind};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

type Store = SqliteLocalStore<TestRecord>;

/// A database name no earlier run used (OPFS keeps files across runs of the same profile).
fn fresh_name(what: &str) -> String {
    format!("{what}-{}.db", uuid::Uuid::now_v7().simple())
}

#[wasm_bindgen_test]
async fn conformance_in_memory() {
    local::run_all(async || Store::open_in_memory().await.expect("open in memory")).await;
}

#[wasm_bindgen_test]
async fn conformance_on_opfs() {
    // One database name, deleted and created again for each check (`make` must return an
    // empty store); the checks drop their store before the next `make`.
    let name = fresh_name("conformance");
    local::run_all(async || {
        Store::delete_opfs(&name).await.expect("delete");
        let store = Store::open_opfs(&name).await.expect("open on OPFS");
        assert!(
            store
                .path()
                .is_some_and(|p| p.to_string_lossy().contains("opfs-sahpool"))
        );
        store
    })
    .await;
    assert!(Store::delete_opfs(&name).await.expect("delete at the end"));
}

#[wasm_bindgen_test]
async fn opfs_data_survives_reopen() {
    let name = fresh_name("reopen");
    let scope = unique_scope("reopen");
    let record = TestRecord::new("r1", "kept", ts(1_000));
    {
        let store = Store::open_opfs(&name).await.expect("open");
        store
            .upsert_many(&scope, std::slice::from_ref(&record))
            .await
            .expect("write");
    } // closed: the last handle is dropped
    let store = Store::open_opfs(&name).await.expect("reopen");
    assert_eq!(
        store.get_by_id(&scope, "r1").await.expect("read"),
        Some(record)
    );
    assert_eq!(store.scopes().await.expect("scopes"), vec![scope.clone()]);
    let all = store.query(&scope, &QuerySpec::new()).await.expect("query");
    assert_eq!(all.len(), 1);
    drop(store);
    assert!(Store::delete_opfs(&name).await.expect("delete"));
}

#[wasm_bindgen_test]
async fn an_open_opfs_database_cannot_be_deleted() {
    let name = fresh_name("in-use");
    let store = Store::open_opfs(&name).await.expect("open");
    let err = Store::delete_opfs(&name).await.expect_err("in use");
    assert!(
        matches!(
            err,
            remote_cache_sync::Error::Storage {
                kind: StorageErrorKind::Locked,
                ..
            }
        ),
        "{err:?}"
    );
    drop(store);
    assert!(Store::delete_opfs(&name).await.expect("delete"));
}

#[wasm_bindgen_test]
async fn bad_opfs_names_are_refused() {
    for bad in ["", "a/b.db", "x?vfs=memdb", "../up.db"] {
        let err = Store::open_opfs(bad).await.expect_err(bad);
        assert!(
            matches!(err, remote_cache_sync::Error::InvalidInput(_)),
            "{bad:?}: {err:?}"
        );
    }
}
