//! Live apps from the command line (issue 12): a watch in one process sees another process's
//! write to the same cache file within 100 ms; `rcs watch` prints another client's write as it
//! arrives, then exits cleanly on Ctrl-C without losing a queued write; it is driven by the
//! server's events, not its sync interval; and two `rcs serve` processes sharing PostgreSQL
//! wake each other's clients (real binaries, real `rcs serve`, real SQLite files, real
//! PostgreSQL from `scripts/start-postgres.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::{
    InMemoryRemoteStore, JsonRecord, Orchestrator, QuerySpec, Record, SyncScope,
};

const RCS: &str = env!("CARGO_BIN_EXE_rcs");
const TOKEN: &str = "watch-token";

/// `rcs` with the cache and scope every command of these tests uses.
fn rcs(url: &str, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(RCS);
    cmd.arg(args[0])
        .args(["--remote", url, "--scope", "records", "--key", "team=t1"])
        .arg("--cache")
        .arg(cache)
        .args(&args[1..])
        .env("RCS_TOKEN", TOKEN)
        .env("RUST_BACKTRACE", "0");
    cmd
}

fn run(url: &str, cache: &Path, args: &[&str]) -> String {
    let out = rcs(url, cache, args).output().expect("run rcs");
    assert!(
        out.status.success(),
        "rcs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Lines of a child's stdout, as they arrive.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits up to `within` for a line satisfying `want`, returning it.
fn expect_line(
    rx: &mpsc::Receiver<String>,
    within: Duration,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}"));
                if want(&v) {
                    return v;
                }
                seen.push(line);
            }
            Err(_) => break,
        }
    }
    panic!("no line with {what} within {within:?}; saw {seen:?}");
}

#[test]
fn a_watch_sees_another_process_write_within_100_ms() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared.sqlite");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let local = SqliteLocalStore::<JsonRecord>::open(&cache).await.unwrap();
        let orch = Orchestrator::builder(local, InMemoryRemoteStore::new())
            .sync_after_write(false)
            .build();
        let scope = SyncScope::new("records", [("team", "t1")]).unwrap();
        let mut watch = orch.watch(&scope, QuerySpec::new());
        assert!(watch.next().await.unwrap().unwrap().is_empty());

        let mut worst = Duration::ZERO;
        for i in 0..5 {
            let id = format!("p{i}");
            // Process B: `rcs put` on the same cache file. It prints its "queued:" line once
            // the write committed; the clock starts when that line arrives here.
            let mut child = rcs(
                "http://127.0.0.1:9",
                &cache,
                &["put", &id, r#"{"title":"b"}"#],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
            let lines = lines_of(&mut child);
            let committed = tokio::task::spawn_blocking(move || {
                let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
                assert!(line.starts_with("queued: create"), "{line}");
                Instant::now()
            });
            let seen = loop {
                let rows = tokio::time::timeout(Duration::from_secs(30), watch.next())
                    .await
                    .expect("the watch sees the other process's write")
                    .unwrap()
                    .unwrap();
                if rows.iter().any(|r| r.id() == id) {
                    break Instant::now();
                }
            };
            let committed = committed.await.unwrap();
            assert!(child.wait().unwrap().success());
            let lag = seen.saturating_duration_since(committed);
            worst = worst.max(lag);
        }
        eprintln!("worst lag from another process's commit to the watch: {worst:?}");
        assert!(
            worst <= Duration::from_millis(100),
            "a write of another process took {worst:?} to reach the watch"
        );
        orch.shutdown().await;
    });
}

/// `rcs serve` on an ephemeral port.
struct Serve(Child, String);

impl Serve {
    /// Over a SQLite file in `dir`.
    fn start(dir: &Path) -> Self {
        let db = dir.join("server.sqlite");
        Self::start_on(db.to_str().unwrap(), &dir.join("serve.log"))
    }

    /// Over `db` (a SQLite path or a PostgreSQL URL, passed in the environment), logging to `log`.
    fn start_on(db: &str, log: &Path) -> Self {
        let mut child = Command::new(RCS)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RCS_SERVE_DB", db)
            .env("RCS_SERVE_TOKENS", format!("{TOKEN}:records,team=*"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start rcs serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening: ")
            .unwrap_or_else(|| panic!("unexpected first line from rcs serve: {line:?}"))
            .to_owned();
        Serve(child, url)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rcs_watch_shows_another_clients_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path());
    let url = server.1.clone();
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));

    // A write queued in A's cache before the watch starts: shown at once, pushed in the
    // background.
    run(&url, &a, &["put", "a0", r#"{"title":"queued before"}"#]);
    let mut watch = rcs(&url, &a, &["watch", "--interval-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("watch.log")).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watch);
    expect_line(&lines, Duration::from_secs(30), "a0", |v| v["id"] == "a0");

    // Another client's write arrives through the server.
    run(&url, &b, &["put", "b1", r#"{"title":"from b"}"#, "--sync"]);
    let v = expect_line(&lines, Duration::from_secs(30), "b1", |v| v["id"] == "b1");
    assert_eq!(v["title"], "from b");
    run(&url, &b, &["put", "b1", r#"{"title":"b again"}"#, "--sync"]);
    expect_line(&lines, Duration::from_secs(30), "b1's edit", |v| {
        v["id"] == "b1" && v["title"] == "b again"
    });
    run(&url, &b, &["delete", "b1", "--sync"]);
    expect_line(&lines, Duration::from_secs(30), "b1's deletion", |v| {
        v["id"] == "b1" && v["deleted"] == true
    });

    // Another process writes to A's cache; the watch shows it, and Ctrl-C right after
    // pushes it before exiting.
    run(&url, &a, &["put", "a9", r#"{"title":"last word"}"#]);
    expect_line(&lines, Duration::from_secs(30), "a9", |v| v["id"] == "a9");
    let killed = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = watch.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "rcs watch did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "rcs watch exited with {status}");
    let status = run(&url, &a, &["status"]);
    assert!(status.contains("pending: 0"), "{status}");
    let ids: Vec<String> = run(&url, &b, &["list", "--refresh"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    assert!(
        ids.contains(&"\"a0\"".to_owned()) && ids.contains(&"\"a9\"".to_owned()),
        "{ids:?}"
    );
}

/// Starts `rcs watch` on `url` with a one-minute sync interval: only the server's events can
/// explain a change showing within seconds.
fn watch_slowly(url: &str, cache: &Path, log: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut watch = rcs(url, cache, &["watch", "--interval-ms", "60000"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watch);
    (watch, lines)
}

/// Writes `id` through `url` from another client (`rcs put --sync`), then waits for the
/// watch to print it; returns the time from the write's acknowledgement to the line.
fn write_and_time(
    url: &str,
    writer_cache: &Path,
    lines: &mpsc::Receiver<String>,
    id: &str,
    title: &str,
) -> Duration {
    run(
        url,
        writer_cache,
        &["put", id, &format!(r#"{{"title":"{title}"}}"#), "--sync"],
    );
    let acknowledged = Instant::now();
    expect_line(lines, Duration::from_secs(10), id, |v| {
        v["id"] == id && v["title"] == title
    });
    acknowledged.elapsed()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn rcs_watch_is_driven_by_the_servers_events_not_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path());
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    let (watch, lines) = watch_slowly(&server.1, &a, &dir.path().join("watch.log"));
    // The first write may arrive through the watch's first sync; the next ones only through
    // events (the next timed sync is a minute away).
    write_and_time(&server.1, &b, &lines, "w0", "first");
    for i in 1..=3 {
        let took = write_and_time(&server.1, &b, &lines, &format!("w{i}"), "event");
        eprintln!("rcs_watch_write_to_line_ms: {}", took.as_millis());
        assert!(
            took < Duration::from_secs(2),
            "a write took {took:?} to show in rcs watch"
        );
    }
    stop(watch);
}

#[test]
fn two_serve_processes_on_one_postgres_wake_each_others_clients() {
    let Some(pg) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = Serve::start_on(&pg, &dir.path().join("serve1.log"));
    let two = Serve::start_on(&pg, &dir.path().join("serve2.log"));
    // A scope of its own: the database is shared with other tests.
    let team = format!("t{}", uuid::Uuid::now_v7().simple());
    let key = format!("team={team}");
    let cmd = |url: &str, cache: &Path, args: &[&str]| {
        let mut cmd = Command::new(RCS);
        cmd.arg(args[0])
            .args(["--remote", url, "--scope", "records", "--key", &key])
            .arg("--cache")
            .arg(cache)
            .args(&args[1..])
            .env("RCS_TOKEN", TOKEN)
            .env("RUST_BACKTRACE", "0");
        cmd
    };
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    // A client of server 2, syncing in the background with a one-minute interval.
    let mut watch = cmd(&two.1, &a, &["watch", "--interval-ms", "60000"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("watch.log")).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watch);
    for i in 0..4 {
        let (id, title) = (format!("p{i}"), format!("via one {i}"));
        // Written through server 1.
        let out = cmd(
            &one.1,
            &b,
            &["put", &id, &format!(r#"{{"title":"{title}"}}"#), "--sync"],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let acknowledged = Instant::now();
        expect_line(&lines, Duration::from_secs(10), &id, |v| {
            v["id"] == id.as_str() && v["title"] == title.as_str()
        });
        let took = acknowledged.elapsed();
        eprintln!("two_serve_processes_write_to_line_ms: {}", took.as_millis());
        // The first write may meet the watch's first sync; the others only LISTEN/NOTIFY
        // between the servers and the event stream explain a prompt arrival.
        if i > 0 {
            assert!(
                took < Duration::from_secs(2),
                "server 1's write took {took:?} to reach server 2's client"
            );
        }
    }
    stop(watch);
}
