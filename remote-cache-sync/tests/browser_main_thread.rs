//! OPFS outside a worker (a page's main thread, where browsers offer no OPFS sync access
//! handles): opening fails with a typed `Unavailable` storage error, never a silent fall-back to
//! memory. Run with `scripts/test-web.sh`; natively this file compiles to an empty test.
#![cfg(target_arch = "wasm32")]

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{Error, StorageErrorKind};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn opfs_on_the_main_thread_is_unavailable() {
    let err = SqliteLocalStore::<TestRecord>::open_opfs("main-thread.db")
        .await
        .expect_err("OPFS sync access handles need a dedicated worker");
    assert!(
        matches!(
            &err,
            Error::Storage {
                kind: StorageErrorKind::Unavailable,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("dedicated worker"), "{err}");
}

#[wasm_bindgen_test]
async fn memory_works_on_the_main_thread() {
    SqliteLocalStore::<TestRecord>::open_in_memory()
        .await
        .expect("in memory");
}
