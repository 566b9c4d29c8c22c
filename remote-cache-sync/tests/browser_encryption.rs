//! Encryption at rest in a real browser (feature `encryption`: SQLite3 Multiple Ciphers with
//! its SQLCipher scheme, on OPFS, in a dedicated worker of headless Chromium): no plaintext in
//! the OPFS file (its bytes read back through the pool, and a plain cache as the control that
//! does show them), reopening with the right key, typed errors for a wrong or missing key with
//! the file untouched, a key on a plain cache refused, and rekey.
//!
//! Run with `scripts/test-web.sh`. Natively, or without the feature, this file compiles to an
//! empty test.
#![cfg(all(target_arch = "wasm32", feature = "encryption"))]

use remote_cache_sync::local::sqlite::{SqliteLocalStore, is_plain_sqlite};
use remote_cache_sync::testing::{TestRecord, local, ts};
use remote_cache_sync::{
    Error, LocalStore, OpKind, PendingOp, QuerySpec, StorageErrorKind, SyncScope,
};
use sqlite_wasm_rs::vfs::transfer::DbTransfer;
use sqlite_wasm_vfs::sahpool::OpfsSAHPoolCfg;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

type Store = SqliteLocalStore<TestRecord>;

/// A string that appears in every record and nowhere else.
const MARKER: &str = "plaintext-marker-5b1e0d";

fn fresh_name(what: &str) -> String {
    format!("{what}-{}.db", uuid::Uuid::now_v7().simple())
}

fn scope() -> SyncScope {
    SyncScope::new("notes", [("owner", "alice")]).unwrap()
}

fn rec(i: usize) -> TestRecord {
    TestRecord::new(
        format!("note-{i}"),
        format!("{MARKER} number {i}"),
        ts(i as i64 + 1),
    )
}

fn kind<T>(r: Result<T, Error>) -> StorageErrorKind {
    match r {
        Err(Error::Storage { kind, .. }) => kind,
        Err(e) => panic!("expected a storage error, got {e:?}"),
        Ok(_) => panic!("expected a storage error, got success"),
    }
}

async fn open_keyed(name: &str, key: &str) -> Result<Store, Error> {
    Store::opfs_builder(name).key(key).open().await
}

/// Writes 100 pulled rows and 10 queued offline writes (110 records), all carrying [`MARKER`].
async fn fill(store: &Store) {
    let rows: Vec<_> = (0..100).map(rec).collect();
    store.upsert_many(&scope(), &rows).await.unwrap();
    for i in 100..110 {
        store
            .enqueue(PendingOp::upsert(scope(), OpKind::Create, rec(i)))
            .await
            .unwrap();
    }
}

async fn count(store: &Store) -> (usize, usize) {
    let rows = store.query(&scope(), &QuerySpec::new()).await.unwrap();
    let pending = store.pending_ops(&scope(), 100).await.unwrap();
    (rows.len(), pending.len())
}

/// Every byte of the closed OPFS database `name`, read through the pool's export.
async fn opfs_bytes(name: &str) -> Vec<u8> {
    // Installing again returns this worker's pool (the store installed it).
    let util = sqlite_wasm_vfs::sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(
        &OpfsSAHPoolCfg::default(),
        false,
    )
    .await
    .unwrap();
    util.export_db(&format!("/{name}")).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[wasm_bindgen_test]
async fn no_plaintext_on_opfs_and_the_key_reads_it_back() {
    // The control: without a key the marker is in the file, so the search below can fail.
    let plain = fresh_name("plain");
    let store = Store::open_opfs(&plain).await.unwrap();
    fill(&store).await;
    let path = store.path().unwrap().to_path_buf();
    drop(store);
    let bytes = opfs_bytes(&plain).await;
    assert!(
        contains(&bytes, MARKER),
        "the control cache holds the marker"
    );
    assert!(is_plain_sqlite(&path), "the control is a plain SQLite file");
    assert!(Store::delete_opfs(&plain).await.unwrap());

    let name = fresh_name("secret");
    let store = open_keyed(&name, "correct horse").await.unwrap();
    fill(&store).await;
    let path = store.path().unwrap().to_path_buf();
    drop(store);
    let bytes = opfs_bytes(&name).await;
    assert!(bytes.len() >= 16 * 1024, "{} bytes on OPFS", bytes.len());
    assert_eq!(bytes.len() % 4096, 0, "whole SQLCipher pages");
    assert!(
        !contains(&bytes, MARKER),
        "plaintext in the encrypted cache"
    );
    assert!(!contains(&bytes, "note-1"), "an id in clear");
    assert!(
        !contains(&bytes, "SQLite format 3"),
        "a plain SQLite header"
    );
    assert!(!is_plain_sqlite(&path));

    let store = open_keyed(&name, "correct horse").await.unwrap();
    assert_eq!(count(&store).await, (110, 10));
    drop(store);
    assert!(Store::delete_opfs(&name).await.unwrap());
}

#[wasm_bindgen_test]
async fn a_wrong_or_missing_key_is_a_typed_error_and_the_file_is_untouched() {
    let name = fresh_name("keys");
    {
        let store = open_keyed(&name, "right").await.unwrap();
        fill(&store).await;
    }
    let before = opfs_bytes(&name).await;

    let wrong = open_keyed(&name, "wrong").await;
    assert_eq!(kind(wrong), StorageErrorKind::WrongKey);
    let missing = Store::open_opfs(&name).await;
    assert_eq!(kind(missing), StorageErrorKind::KeyRequired);
    let empty = open_keyed(&name, "").await;
    assert!(matches!(empty, Err(Error::InvalidInput(_))), "{empty:?}");
    let err = open_keyed(&name, "hunter2-secret").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(
        opfs_bytes(&name).await,
        before,
        "a failed open changed the file"
    );

    let store = open_keyed(&name, "right").await.unwrap();
    assert_eq!(count(&store).await, (110, 10));
    drop(store);
    assert!(Store::delete_opfs(&name).await.unwrap());
}

#[wasm_bindgen_test]
async fn a_key_on_a_plain_cache_is_refused() {
    let name = fresh_name("plain-keyed");
    {
        let store = Store::open_opfs(&name).await.unwrap();
        fill(&store).await;
    }
    let before = opfs_bytes(&name).await;
    assert_eq!(
        kind(open_keyed(&name, "k").await),
        StorageErrorKind::WrongKey
    );
    assert_eq!(opfs_bytes(&name).await, before);
    let store = Store::open_opfs(&name).await.unwrap();
    assert_eq!(count(&store).await, (110, 10));
    drop(store);
    assert!(Store::delete_opfs(&name).await.unwrap());
}

#[wasm_bindgen_test]
async fn rekey_changes_the_key_and_keeps_the_data() {
    let name = fresh_name("rekey");
    let store = open_keyed(&name, "old key").await.unwrap();
    fill(&store).await;
    store.rekey("new key").await.unwrap();
    // The store goes on with the new key.
    store.upsert_many(&scope(), &[rec(500)]).await.unwrap();
    assert_eq!(count(&store).await, (111, 10));
    let err = store.rekey("").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    drop(store);
    assert!(!contains(&opfs_bytes(&name).await, MARKER));

    assert_eq!(
        kind(open_keyed(&name, "old key").await),
        StorageErrorKind::WrongKey
    );
    let store = open_keyed(&name, "new key").await.unwrap();
    assert_eq!(count(&store).await, (111, 10));
    drop(store);

    // A plain cache has no key to change.
    let plain = fresh_name("rekey-plain");
    let store = Store::open_opfs(&plain).await.unwrap();
    let err = store.rekey("k").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    drop(store);
    assert!(Store::delete_opfs(&plain).await.unwrap());
    assert!(Store::delete_opfs(&name).await.unwrap());
}

#[wasm_bindgen_test]
async fn an_encrypted_opfs_cache_passes_the_suite() {
    let name = fresh_name("conformance-keyed");
    local::run_all(async || {
        Store::delete_opfs(&name).await.expect("delete");
        open_keyed(&name, "suite key").await.expect("open keyed")
    })
    .await;
    assert!(Store::delete_opfs(&name).await.expect("delete at the end"));
}
