//! Encryption at rest (feature `encryption`): the LocalStore suite on an encrypted file, no
//! plaintext on disk (the bytes of the file, its WAL and shared memory are searched), reopening
//! with the right key, typed errors for a wrong or missing key with the file untouched, rekey,
//! and the change watcher on an encrypted file.
#![cfg(all(feature = "encryption", feature = "testing"))]

use std::path::{Path, PathBuf};

use remote_cache_sync::local::sqlite::{EncryptionKey, SqliteLocalStore};
use remote_cache_sync::testing::{TestRecord, local, ts};
use remote_cache_sync::{
    Error, LocalStore, OpKind, PendingOp, QuerySpec, StorageErrorKind, SyncScope,
};

/// A string that appears in every record and nowhere else.
const MARKER: &str = "plaintext-marker-7f3a9c";

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

/// The bytes of the database and of its `-wal` and `-shm` files, while the store is open.
fn disk_bytes(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(b) = std::fs::read(PathBuf::from(p)) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Writes 200 pulled rows and 20 queued offline writes, all carrying [`MARKER`].
async fn fill(store: &SqliteLocalStore<TestRecord>) {
    let rows: Vec<_> = (0..200).map(rec).collect();
    store.upsert_many(&scope(), &rows).await.unwrap();
    for i in 200..220 {
        store
            .enqueue(PendingOp::upsert(scope(), OpKind::Create, rec(i)))
            .await
            .unwrap();
    }
}

async fn open_keyed(path: &Path, key: &str) -> Result<SqliteLocalStore<TestRecord>, Error> {
    SqliteLocalStore::builder(path).key(key).open().await
}

#[tokio::test]
async fn an_encrypted_file_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    local::run_all(async || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open_keyed(&dir.path().join(format!("cache-{i}.db")), "suite key")
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    // The search can fail: without a key the marker is on disk.
    let plain = dir.path().join("plain.db");
    let store = SqliteLocalStore::<TestRecord>::open(&plain).await.unwrap();
    fill(&store).await;
    assert!(
        contains(&disk_bytes(&plain), MARKER),
        "the control cache holds the marker"
    );
    drop(store);

    let path = dir.path().join("secret.db");
    let store = open_keyed(&path, "correct horse").await.unwrap();
    fill(&store).await;
    // Open (WAL not checkpointed) and after closing (checkpointed into the main file).
    let open_bytes = disk_bytes(&path);
    assert!(
        open_bytes.len() > 16 * 1024,
        "{} bytes on disk",
        open_bytes.len()
    );
    assert!(
        !contains(&open_bytes, MARKER),
        "plaintext in the open cache's files"
    );
    assert!(!contains(&open_bytes, "note-1"), "an id in clear");
    assert!(
        !contains(&open_bytes, "SQLite format 3"),
        "a plain SQLite header"
    );
    drop(store);
    let closed = disk_bytes(&path);
    assert!(!contains(&closed, MARKER), "plaintext in the closed cache");

    // The right key reads everything back, the queue included.
    let store = open_keyed(&path, "correct horse").await.unwrap();
    let all = store.query(&scope(), &QuerySpec::new()).await.unwrap();
    assert_eq!(all.len(), 220);
    assert_eq!(store.pending_ops(&scope(), 100).await.unwrap().len(), 20);
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_a_typed_error_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    {
        let store = open_keyed(&path, "right").await.unwrap();
        fill(&store).await;
    }
    let before = std::fs::read(&path).unwrap();

    let wrong = open_keyed(&path, "wrong").await;
    assert_eq!(kind(wrong), StorageErrorKind::WrongKey);
    let missing = SqliteLocalStore::<TestRecord>::open(&path).await;
    assert_eq!(kind(missing), StorageErrorKind::KeyRequired);
    let empty = open_keyed(&path, "").await;
    assert!(matches!(empty, Err(Error::InvalidInput(_))), "{empty:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a failed open changed the file"
    );

    // The messages never carry the key.
    let err = open_keyed(&path, "hunter2-secret").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let builder = SqliteLocalStore::<TestRecord>::builder(&path).key("hunter2-secret");
    assert!(!format!("{builder:?}").contains("hunter2"));
    assert!(!format!("{:?}", EncryptionKey::new("hunter2-secret")).contains("hunter2"));

    // Still opens with the right key, with everything in it.
    let store = open_keyed(&path, "right").await.unwrap();
    assert_eq!(
        store
            .query(&scope(), &QuerySpec::new())
            .await
            .unwrap()
            .len(),
        220
    );
}

#[tokio::test]
async fn a_key_on_a_plain_cache_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    {
        let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
        fill(&store).await;
    }
    let before = std::fs::read(&path).unwrap();
    assert_eq!(
        kind(open_keyed(&path, "k").await),
        StorageErrorKind::WrongKey
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // And the plain cache still opens without one.
    let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
    assert_eq!(
        store
            .query(&scope(), &QuerySpec::new())
            .await
            .unwrap()
            .len(),
        220
    );
}

#[tokio::test]
async fn rekey_changes_the_key_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let store = open_keyed(&path, "old key").await.unwrap();
    fill(&store).await;
    store.rekey("new key").await.unwrap();
    // The same store keeps working on both of its connections (writer and reader).
    store
        .enqueue(PendingOp::upsert(scope(), OpKind::Create, rec(999)))
        .await
        .unwrap();
    assert_eq!(
        store
            .query(&scope(), &QuerySpec::new())
            .await
            .unwrap()
            .len(),
        221
    );
    assert!(store.change_token().await.unwrap().is_some());
    drop(store);

    assert_eq!(
        kind(open_keyed(&path, "old key").await),
        StorageErrorKind::WrongKey
    );
    let store = open_keyed(&path, "new key").await.unwrap();
    assert_eq!(
        store
            .query(&scope(), &QuerySpec::new())
            .await
            .unwrap()
            .len(),
        221
    );
    assert_eq!(store.pending_ops(&scope(), 100).await.unwrap().len(), 21);
    assert!(!contains(&disk_bytes(&path), MARKER));

    // A plain cache has no key to change.
    let plain = SqliteLocalStore::<TestRecord>::open(dir.path().join("plain.db"))
        .await
        .unwrap();
    assert!(matches!(
        plain.rekey("k").await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn rekey_while_another_connection_holds_the_file_keeps_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let a = open_keyed(&path, "old").await.unwrap();
    fill(&a).await;
    let b = open_keyed(&path, "old").await.unwrap();
    let err = a.rekey("new").await;
    assert_eq!(kind(err), StorageErrorKind::Locked);
    // Both still work with the old key.
    assert_eq!(
        a.query(&scope(), &QuerySpec::new()).await.unwrap().len(),
        220
    );
    assert_eq!(
        b.query(&scope(), &QuerySpec::new()).await.unwrap().len(),
        220
    );
    drop((a, b));
    assert!(open_keyed(&path, "old").await.is_ok());
}

#[tokio::test]
async fn the_change_watcher_sees_another_connection_on_an_encrypted_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let a = open_keyed(&path, "k").await.unwrap();
    let b = open_keyed(&path, "k").await.unwrap();
    let before = a.change_token().await.unwrap().expect("a file has a token");
    b.upsert_many(&scope(), &[rec(1)]).await.unwrap();
    let after = a.change_token().await.unwrap().unwrap();
    assert_ne!(
        before, after,
        "another connection's commit changes the token"
    );
}

/// A cache the browser encrypted (SQLite3 Multiple Ciphers, SQLCipher scheme, through
/// `RemoteCache.open({ key: "browser fixture key" })` in headless Chromium, its bytes read
/// from OPFS), opened here by SQLCipher: the two builds write one format.
#[tokio::test]
async fn a_cache_encrypted_in_the_browser_opens_natively() {
    use remote_cache_sync::JsonRecord;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("browser.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/browser-encrypted.db");
    std::fs::copy(&fixture, &path).unwrap();
    assert!(!contains(
        &std::fs::read(&path).unwrap(),
        "from the browser"
    ));
    let notes = SyncScope::new("notes", Vec::<(String, String)>::new()).unwrap();

    let wrong = SqliteLocalStore::<JsonRecord>::builder(&path)
        .key("another key")
        .open()
        .await;
    assert_eq!(kind(wrong), StorageErrorKind::WrongKey);
    let store = SqliteLocalStore::<JsonRecord>::builder(&path)
        .key("browser fixture key")
        .open()
        .await
        .unwrap();
    let rows = store.query(&notes, &QuerySpec::new()).await.unwrap();
    let titles: Vec<_> = rows
        .iter()
        .map(|r| r.value()["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        titles,
        [
            "from the browser 0",
            "from the browser 1",
            "from the browser 2"
        ]
    );
    // The browser's writes are still queued for the remote.
    assert_eq!(store.pending_ops(&notes, 10).await.unwrap().len(), 3);
}
