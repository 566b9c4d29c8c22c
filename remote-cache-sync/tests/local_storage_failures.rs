//! `SqliteLocalStore` when storage misbehaves: a read-only file, a full disk (`max_page_count`),
//! a database locked by another process, a corrupt file, and several processes opening the same
//! cache file at once. Each gives a typed `Error::Storage { kind, .. }` or works, and nothing
//! already committed is lost: every test reopens the file and checks the records and queued ops.
//!
//! "Another process" is this test binary run again (`storage_child`, ignored in normal runs).
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    Cursor, Delta, Error, LocalStore, OpKind, PendingOp, QuerySpec, StorageErrorKind, SyncPoint,
    SyncScope,
};

type Store = SqliteLocalStore<TestRecord>;

const CHILD_ENV: &str = "RCS_STORAGE_CHILD";

fn kind_of(e: &Error) -> Option<StorageErrorKind> {
    match e {
        Error::Storage { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[track_caller]
fn assert_kind<T: std::fmt::Debug>(r: remote_cache_sync::Result<T>, want: StorageErrorKind) {
    match r {
        Err(e) => assert_eq!(kind_of(&e), Some(want), "wrong error: {e:?}"),
        Ok(v) => panic!("expected a {want:?} storage error, got Ok({v:?})"),
    }
}

fn record(id: &str, n: i64, pad: usize) -> TestRecord {
    TestRecord::new(id, "x".repeat(pad), ts(n)).with_n(n)
}

/// What a test committed: synced records and queued writes.
struct Committed {
    scope: SyncScope,
    synced: Vec<String>,
    queued: Vec<String>,
}

/// Commits `synced` records straight into the cache and `queued` writes through the queue.
async fn commit(store: &Store, scope: &SyncScope, synced: usize, queued: usize) -> Committed {
    let mut c = Committed {
        scope: scope.clone(),
        synced: Vec::new(),
        queued: Vec::new(),
    };
    let rows: Vec<_> = (0..synced)
        .map(|i| record(&format!("s{i}"), i as i64, 50))
        .collect();
    store.upsert_many(scope, &rows).await.unwrap();
    c.synced = rows.iter().map(|r| r.id.clone()).collect();
    for i in 0..queued {
        let id = format!("q{i}");
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            record(&id, 1000 + i as i64, 50),
        );
        store.enqueue(op).await.unwrap();
        c.queued.push(id);
    }
    c
}

/// Reopens the file and checks every committed record and queued op is there, in order.
async fn assert_intact(path: &Path, c: &Committed) {
    let store = Store::open(path).await.expect("reopen the cache");
    for id in c.synced.iter().chain(&c.queued) {
        assert!(
            store.get_by_id(&c.scope, id).await.unwrap().is_some(),
            "committed record {id} is gone"
        );
    }
    let queued: Vec<_> = store
        .pending_ops(&c.scope, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(queued, c.queued, "queued ops changed");
}

// ---------------------------------------------------------------------------------------------
// Read-only file

/// How [`ReadOnly`] made the paths unwritable.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    /// `chattr +i`: the immutable attribute, which binds root too. Needs a file system that
    /// supports it (ext4, xfs, btrfs; tmpfs and overlayfs since Linux 6.0).
    Immutable,
    /// A read-only bind mount of each path over itself (`mount --bind P P`, then
    /// `mount -o remount,bind,ro P`): the kernel answers EROFS to everyone, root included, on
    /// any file system. Needs CAP_SYS_ADMIN (root outside a user namespace, or a privileged
    /// container).
    BindMount,
    /// Permission bits (`chmod a-w`): enough for a non-root user, ignored by root.
    Mode,
}

/// Makes `paths` unwritable and undoes it on drop. Only returned once the paths are checked to
/// really refuse writes (an existing file cannot be opened for writing, nothing can be created
/// in a folder), so the tests never pass without having tested anything.
///
/// As root (how CI runs) the immutable attribute is tried first, then a read-only bind mount;
/// as another user, permission bits. `RCS_TEST_READ_ONLY_METHOD=immutable|mount|mode` forces
/// one method (to exercise each on one machine). When no method works, the test skips, or
/// fails under `RCS_TEST_REQUIRE_SERVERS=1`.
struct ReadOnly {
    /// Paths made read-only, in order (undone in reverse).
    done: Vec<PathBuf>,
    method: Method,
}

impl ReadOnly {
    fn apply(paths: &[&Path]) -> Option<ReadOnly> {
        let methods = match std::env::var("RCS_TEST_READ_ONLY_METHOD").as_deref() {
            Ok("immutable") => vec![Method::Immutable],
            Ok("mount") => vec![Method::BindMount],
            Ok("mode") => vec![Method::Mode],
            Ok(other) => {
                panic!("RCS_TEST_READ_ONLY_METHOD={other:?}: use immutable, mount or mode")
            }
            Err(_) if is_root() => vec![Method::Immutable, Method::BindMount],
            Err(_) => vec![Method::Mode],
        };
        for method in methods {
            let mut guard = ReadOnly {
                done: Vec::new(),
                method,
            };
            let all = paths.iter().all(|p| {
                let ok = guard.protect(p);
                if ok {
                    guard.done.push(p.to_path_buf());
                }
                ok
            });
            if all && paths.iter().all(|p| refuses_writes(p)) {
                println!("read-only by {method:?}");
                return Some(guard);
            }
            println!("read-only by {method:?} does not work here");
            // Dropping the guard undoes what was done.
        }
        None
    }

    fn protect(&self, p: &Path) -> bool {
        match self.method {
            Method::Immutable => run("chattr", &["+i".as_ref(), p.as_os_str()]),
            Method::BindMount => {
                if !run("mount", &["--bind".as_ref(), p.as_os_str(), p.as_os_str()]) {
                    return false;
                }
                let ro = run(
                    "mount",
                    &["-o".as_ref(), "remount,bind,ro".as_ref(), p.as_os_str()],
                );
                if !ro {
                    unmount(p);
                }
                ro
            }
            Method::Mode => {
                let mut perm = std::fs::metadata(p).unwrap().permissions();
                perm.set_readonly(true);
                std::fs::set_permissions(p, perm).is_ok()
            }
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for p in self.done.iter().rev() {
            match self.method {
                Method::Immutable => {
                    run("chattr", &["-i".as_ref(), p.as_os_str()]);
                }
                Method::BindMount => unmount(p),
                Method::Mode => {
                    if let Ok(m) = std::fs::metadata(p) {
                        let mut perm = m.permissions();
                        #[allow(clippy::permissions_set_readonly_false)]
                        perm.set_readonly(false);
                        let _ = std::fs::set_permissions(p, perm);
                    }
                }
            }
        }
    }
}

/// Whether writing to `p` fails: opening it for writing (a file), creating a file in it (a
/// folder).
fn refuses_writes(p: &Path) -> bool {
    if p.is_dir() {
        let probe = p.join(".rcs-write-probe");
        let created = std::fs::File::create(&probe).is_ok();
        if created {
            let _ = std::fs::remove_file(&probe);
        }
        !created
    } else {
        std::fs::OpenOptions::new().append(true).open(p).is_err()
    }
}

fn unmount(p: &Path) {
    // Lazily when busy (a file the test still holds open): detached now, gone once closed.
    if !run("umount", &[p.as_os_str()]) {
        run("umount", &["-l".as_ref(), p.as_os_str()]);
    }
}

/// Runs a command quietly; whether it succeeded.
fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    // No libc dependency: ask the OS through `id -u`.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Opening a read-only cache either fails with `ReadOnly` or serves reads and refuses writes
/// with `ReadOnly`; afterwards (writable again) everything is still there.
async fn read_only_case(dir_too: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = unique_scope("notes");
    let committed = {
        let store = Store::open(&path).await.unwrap();
        commit(&store, &scope, 5, 5).await
    };
    let targets: Vec<&Path> = if dir_too {
        vec![path.as_path(), dir.path()]
    } else {
        vec![path.as_path()]
    };
    let Some(guard) = ReadOnly::apply(&targets) else {
        remote_cache_sync::testing::skip_unless_required(
            "no way to make a file read-only on this machine (see ReadOnly)",
        );
        return;
    };
    match Store::open(&path).await {
        Err(e) => {
            println!("read-only (folder too: {dir_too}): open refused: {e}");
            assert_eq!(kind_of(&e), Some(StorageErrorKind::ReadOnly), "{e:?}");
        }
        Ok(store) => {
            println!("read-only (folder too: {dir_too}): opened; reads work, writes refused");
            assert!(store.get_by_id(&scope, "s0").await.unwrap().is_some());
            assert_eq!(store.pending_ops(&scope, 100).await.unwrap().len(), 5);
            let op = PendingOp::upsert(scope.clone(), OpKind::Create, record("new", 9, 10));
            assert_kind(store.enqueue(op).await, StorageErrorKind::ReadOnly);
            assert_kind(
                store.upsert_many(&scope, &[record("new2", 9, 10)]).await,
                StorageErrorKind::ReadOnly,
            );
            assert!(store.get_by_id(&scope, "new").await.unwrap().is_none());
        }
    }
    drop(guard);
    assert_intact(&path, &committed).await;
}

#[tokio::test]
async fn a_read_only_cache_file_refuses_writes_with_read_only() {
    read_only_case(false).await;
}

#[tokio::test]
async fn a_cache_in_a_read_only_folder_refuses_writes_with_read_only() {
    read_only_case(true).await;
}

// ---------------------------------------------------------------------------------------------
// Full disk

#[tokio::test]
async fn a_full_disk_fails_with_full_and_commits_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = unique_scope("notes");
    let mut committed = {
        let store = Store::open(&path).await.unwrap();
        commit(&store, &scope, 3, 3).await
    };
    let store = Store::builder(&path)
        .max_page_count(40)
        .open()
        .await
        .unwrap();
    // Queue writes until the disk is "full".
    let mut full = None;
    for i in 0..1000 {
        let id = format!("big{i}");
        let op = PendingOp::upsert(scope.clone(), OpKind::Create, record(&id, 2000 + i, 3000));
        match store.enqueue(op).await {
            Ok(()) => committed.queued.push(id),
            Err(e) => {
                full = Some((id, e));
                break;
            }
        }
    }
    let (failed_id, e) = full.expect("the page cap was never reached");
    assert_eq!(kind_of(&e), Some(StorageErrorKind::Full), "{e:?}");
    assert!(!e.is_retryable());
    assert!(committed.queued.len() > 5, "some writes fit before the cap");
    // The failed write left nothing: no row, no op.
    assert!(store.get_by_id(&scope, &failed_id).await.unwrap().is_none());
    assert_eq!(
        store.pending_ops(&scope, usize::MAX).await.unwrap().len(),
        committed.queued.len()
    );
    // A pulled page that does not fit is not half-applied, and its cursor is not saved.
    let page = Delta {
        quarantined: Vec::new(),
        upserts: (0..50)
            .map(|i| record(&format!("pulled{i}"), 5000 + i, 3000))
            .collect(),
        deletes: Vec::new(),
        server_time: ts(9000),
        cursor: Some(Cursor::new("c1")),
        has_more: false,
    };
    let point = SyncPoint {
        cursor: page.cursor.clone(),
        server_time: page.server_time,
    };
    assert_kind(
        store.apply_remote(&scope, &page, &point).await,
        StorageErrorKind::Full,
    );
    assert!(store.get_by_id(&scope, "pulled0").await.unwrap().is_none());
    assert_eq!(store.sync_point(&scope).await.unwrap(), None);
    // Reads and deletes of what is there keep working; the store is not wedged.
    assert_eq!(
        store.query(&scope, &QuerySpec::new()).await.unwrap().len(),
        committed.synced.len() + committed.queued.len()
    );
    drop(store);
    assert_intact(&path, &committed).await;
    // With room again, writes go through.
    let store = Store::open(&path).await.unwrap();
    let op = PendingOp::upsert(scope.clone(), OpKind::Create, record(&failed_id, 1, 3000));
    store.enqueue(op).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Another process: this binary, re-run as a helper.

/// A helper process (see `storage_child`). Dropping it closes its stdin, which ends it.
struct Helper {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Helper {
    fn start(task: &str) -> Helper {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, task)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start helper process");
        let out = BufReader::new(child.stdout.take().unwrap());
        Helper { child, out }
    }

    /// Waits for a line starting with `prefix` (the test harness prints its own lines too).
    fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "helper ended before {prefix:?}"
            );
            // libtest may print `test storage_child ... ` on the same line.
            if let Some(pos) = line.find(prefix) {
                return line[pos + prefix.len()..].trim().to_owned();
            }
        }
    }

    fn finish(mut self) -> bool {
        drop(self.child.stdin.take());
        self.child.wait().unwrap().success()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Helper process body, selected by `RCS_STORAGE_CHILD`:
/// - `hold-write <path>`: holds the write lock (`BEGIN IMMEDIATE`) until stdin closes;
/// - `hold-exclusive <path>`: holds an exclusive lock on the whole file (locking_mode
///   EXCLUSIVE: nobody else may even read) until stdin closes;
/// - `write <path> <scope json> <prefix> <n>`: opens the store and queues `n` writes.
#[test]
#[ignore = "helper process for the other tests"]
fn storage_child() {
    let task = std::env::var(CHILD_ENV).expect("run by the other tests only");
    let args: Vec<&str> = task.splitn(5, ' ').collect();
    let wait_for_stdin_close = || {
        let mut s = String::new();
        while std::io::stdin().read_line(&mut s).unwrap_or(0) > 0 {}
    };
    let say = |m: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{m}").unwrap();
        out.flush().unwrap();
    };
    match args[0] {
        "hold-write" => {
            let conn = rusqlite::Connection::open(args[1]).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS other_process (x);")
                .unwrap();
            say("LOCKED");
            wait_for_stdin_close();
            conn.execute_batch("ROLLBACK").unwrap();
        }
        "hold-exclusive" => {
            let conn = rusqlite::Connection::open(args[1]).unwrap();
            let _: String = conn
                .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))
                .unwrap();
            conn.execute_batch(
                "BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS other_process (x); COMMIT;",
            )
            .unwrap();
            say("LOCKED");
            wait_for_stdin_close();
        }
        "write" => {
            let scope: SyncScope = serde_json::from_str(args[2]).unwrap();
            let (prefix, n): (&str, usize) = (args[3], args[4].parse().unwrap());
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let store = Store::open(args[1]).await.expect("open shared cache");
                for i in 0..n {
                    let id = format!("{prefix}{i}");
                    let op = PendingOp::upsert(
                        scope.clone(),
                        OpKind::Create,
                        record(&id, i as i64, 100),
                    );
                    store.enqueue(op).await.expect("queue a write");
                }
            });
            say("DONE");
        }
        other => panic!("unknown helper task {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_by_another_process_gives_locked_then_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = unique_scope("notes");
    let mut committed = {
        let store = Store::open(&path).await.unwrap();
        commit(&store, &scope, 3, 3).await
    };
    let store = Store::builder(&path)
        .busy_timeout(Duration::from_millis(300))
        .open()
        .await
        .unwrap();
    let mut helper = Helper::start(&format!("hold-write {}", path.display()));
    helper.expect("LOCKED");
    let op = PendingOp::upsert(scope.clone(), OpKind::Create, record("during", 7, 10));
    let err = store.enqueue(op.clone()).await.unwrap_err();
    assert_eq!(kind_of(&err), Some(StorageErrorKind::Locked), "{err:?}");
    assert!(err.is_retryable(), "a lock is worth retrying");
    // WAL: reads go on while the other process holds the write lock.
    assert!(store.get_by_id(&scope, "s0").await.unwrap().is_some());
    assert_eq!(store.pending_ops(&scope, 100).await.unwrap().len(), 3);
    assert!(store.get_by_id(&scope, "during").await.unwrap().is_none());
    assert!(helper.finish());
    // The same write, retried once the lock is gone, goes through exactly once.
    store.enqueue(op).await.unwrap();
    committed.queued.push("during".into());
    drop(store);
    assert_intact(&path, &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_exclusively_by_another_process_gives_locked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = unique_scope("notes");
    let committed = {
        let store = Store::open(&path).await.unwrap();
        commit(&store, &scope, 3, 3).await
    };
    let mut helper = Helper::start(&format!("hold-exclusive {}", path.display()));
    helper.expect("LOCKED");
    let opened = Store::builder(&path)
        .busy_timeout(Duration::from_millis(300))
        .open()
        .await;
    match opened {
        Err(e) => {
            println!("exclusive lock: open refused: {e}");
            assert_eq!(kind_of(&e), Some(StorageErrorKind::Locked), "{e:?}");
        }
        // Opening may succeed lazily; then the first access reports the lock.
        Ok(store) => assert_kind(
            store.pending_ops(&scope, 10).await,
            StorageErrorKind::Locked,
        ),
    }
    assert!(helper.finish());
    assert_intact(&path, &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_one_cache_file_at_once_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh file: the processes also race to create the schema.
    let path = dir.path().join("shared.db");
    let scope = unique_scope("notes");
    let scope_json = serde_json::to_string(&scope).unwrap();
    const N: usize = 60;
    let helpers: Vec<_> = ["a", "b"]
        .iter()
        .map(|p| Helper::start(&format!("write {} {scope_json} {p} {N}", path.display())))
        .collect();
    // This process writes too, through its own store instance, and so does a second instance.
    let (s1, s2) = (
        Store::open(&path).await.unwrap(),
        Store::open(&path).await.unwrap(),
    );
    let write = |store: Store, prefix: &'static str| {
        let scope = scope.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let id = format!("{prefix}{i}");
                let op =
                    PendingOp::upsert(scope.clone(), OpKind::Create, record(&id, i as i64, 100));
                store.enqueue(op).await.unwrap();
            }
        })
    };
    let (t1, t2) = (write(s1, "c"), write(s2, "d"));
    t1.await.unwrap();
    t2.await.unwrap();
    for mut h in helpers {
        h.expect("DONE");
        assert!(h.finish());
    }
    let store = Store::open(&path).await.unwrap();
    let queued: Vec<String> = store
        .pending_ops(&scope, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(
        queued.len(),
        4 * N,
        "every write of every process is queued once"
    );
    for prefix in ["a", "b", "c", "d"] {
        // Each writer's ops keep their order.
        let mine: Vec<_> = queued
            .iter()
            .filter(|id| id.starts_with(prefix))
            .cloned()
            .collect();
        let want: Vec<_> = (0..N).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(mine, want);
        for id in &want {
            assert!(store.get_by_id(&scope, id).await.unwrap().is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupt files

#[tokio::test]
async fn a_file_that_is_not_a_database_gives_corrupt_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let junk: Vec<u8> = b"this is a text file, not a database\n".repeat(300);
    std::fs::write(&path, &junk).unwrap();
    assert_kind(Store::open(&path).await, StorageErrorKind::Corrupt);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        junk,
        "the store must not overwrite the file"
    );
}

/// Every call on a damaged store either works or fails with a typed storage error; at least one
/// reports `Corrupt`. Nothing panics, and the store does not replace the file.
async fn damaged_case(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = unique_scope("notes");
    {
        let store = Store::open(&path).await.unwrap();
        commit(&store, &scope, 300, 100).await;
    }
    damage(&path);
    let damaged = std::fs::read(&path).unwrap();
    let mut corrupt_seen = 0;
    let mut check = |r: Result<(), Error>| match r {
        Ok(()) => {}
        Err(e) => {
            let kind = kind_of(&e).unwrap_or_else(|| panic!("untyped error {e:?}"));
            assert!(
                matches!(kind, StorageErrorKind::Corrupt | StorageErrorKind::Other),
                "{e:?}"
            );
            if kind == StorageErrorKind::Corrupt {
                corrupt_seen += 1;
            }
        }
    };
    match Store::open(&path).await {
        Err(e) => {
            println!("damaged file: open refused: {e}");
            check(Err(e))
        }
        Ok(store) => {
            check(store.query(&scope, &QuerySpec::new()).await.map(drop));
            check(store.pending_ops(&scope, usize::MAX).await.map(drop));
            check(store.get_by_id(&scope, "s250").await.map(drop));
            check(store.queue_status(&scope).await.map(drop));
            let op = PendingOp::upsert(scope.clone(), OpKind::Create, record("after", 1, 10));
            check(store.enqueue(op).await);
        }
    }
    println!("damaged file: {corrupt_seen} calls reported Corrupt");
    assert!(corrupt_seen > 0, "damage went unreported");
    let now = std::fs::read(&path).unwrap();
    assert!(
        now.len() >= damaged.len() / 2,
        "the store must not replace a damaged file"
    );
}

#[tokio::test]
async fn damaged_pages_give_corrupt_errors_not_panics() {
    damaged_case(|path| {
        let mut bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 8 * 4096, "enough pages to damage");
        // Keep the header page, scramble pages 2.. (b-tree pages of the tables and indexes).
        for (i, b) in bytes[4096..].iter_mut().enumerate() {
            if (i / 512) % 2 == 0 {
                *b = (i as u8).wrapping_mul(31).wrapping_add(7);
            }
        }
        std::fs::write(path, bytes).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_truncated_file_gives_corrupt_errors_not_panics() {
    damaged_case(|path| {
        let len = std::fs::metadata(path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_len(len / 3 / 4096 * 4096).unwrap();
    })
    .await;
}
