//! Two `rcs` client processes with their own cache files converge through one `rcs serve`
//! process (real binaries, real loopback HTTP, real SQLite files).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RCS: &str = env!("CARGO_BIN_EXE_rcs");
const TOKEN: &str = "converge-token";

struct ServeProcess {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ServeProcess {
    fn start(dir: &Path) -> Self {
        Self::start_with(
            dir,
            dir.join("server.sqlite").to_str().unwrap(),
            "serve.log",
        )
    }

    fn start_with(dir: &Path, db: &str, log_name: &str) -> Self {
        Self::start_granting(dir, db, log_name, "records,team=*")
    }

    /// A server whose token may use the scopes matching `pattern`.
    fn start_granting(dir: &Path, db: &str, log_name: &str, pattern: &str) -> Self {
        let log = dir.join(log_name);
        let mut child = Command::new(RCS)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .env("RCS_SERVE_TOKENS", format!("{TOKEN}:{pattern}"))
            .env("RCS_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
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
        ServeProcess { child, url, log }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "rcs serve exited with {status} on SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rcs serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    url: String,
    team: String,
    cache: PathBuf,
    token: Option<String>,
}

impl Client {
    fn new(url: &str, cache: PathBuf) -> Self {
        Client {
            url: url.to_owned(),
            team: "t1".into(),
            cache,
            token: Some(TOKEN.into()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(RCS);
        cmd.arg(args[0])
            .args([
                "--remote",
                &self.url,
                "--key",
                &format!("team={}", self.team),
            ])
            .arg("--cache")
            .arg(&self.cache)
            .args(&args[1..])
            .env_remove("RCS_TOKEN")
            .env("RUST_BACKTRACE", "0");
        if let Some(t) = &self.token {
            cmd.env("RCS_TOKEN", t);
        }
        cmd
    }

    fn try_run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run rcs")
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "rcs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn list(&self) -> Vec<serde_json::Value> {
        self.run(&["list"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn titles(&self) -> Vec<(String, String)> {
        self.list()
            .into_iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap().to_owned(),
                    v["title"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn value_of<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} in {output:?}"))
}

#[test]
fn two_clients_converge_through_rcs_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    let b = Client::new(&server.url, dir.path().join("b.sqlite"));

    // Offline writes on both sides.
    a.run(&["put", "a1", r#"{"title":"from a","n":1}"#]);
    a.run(&["put", "a2", r#"{"title":"doomed","n":2}"#]);
    b.run(&["put", "b1", r#"{"title":"from b","n":3}"#]);
    let status = a.run(&["status"]);
    assert_eq!(value_of(&status, "pending"), "2");
    assert_eq!(value_of(&status, "last_sync"), "never");
    assert!(
        b.titles().iter().all(|(id, _)| id == "b1"),
        "nothing reached b yet"
    );

    // Sync both ways.
    assert_eq!(value_of(&a.run(&["sync", "--quiet"]), "pushed"), "2");
    b.run(&["sync", "--quiet"]);
    a.run(&["sync", "--quiet"]);
    let want = vec![
        ("a1".to_owned(), "from a".to_owned()),
        ("a2".to_owned(), "doomed".to_owned()),
        ("b1".to_owned(), "from b".to_owned()),
    ];
    assert_eq!(a.titles(), want);
    assert_eq!(b.titles(), want);
    let status = a.run(&["status"]);
    assert_eq!(value_of(&status, "pending"), "0");
    assert_ne!(value_of(&status, "last_sync"), "never");

    // Concurrent edits of one record: the later write wins on both sides; a delete propagates.
    a.run(&["put", "a1", r#"{"title":"a edits"}"#]);
    std::thread::sleep(Duration::from_millis(5));
    b.run(&["put", "a1", r#"{"title":"b edits later"}"#]);
    b.run(&["delete", "a2"]);
    a.run(&["sync", "--quiet"]);
    b.run(&["sync", "--quiet"]);
    a.run(&["sync", "--quiet"]);
    let want = vec![
        ("a1".to_owned(), "b edits later".to_owned()),
        ("b1".to_owned(), "from b".to_owned()),
    ];
    assert_eq!(a.titles(), want);
    assert_eq!(b.titles(), want);
    assert_eq!(a.list(), b.list(), "caches must hold identical records");

    // Both clients write and sync at the same time, as separate processes.
    let writers: Vec<_> = [(&a, "a"), (&b, "b")]
        .into_iter()
        .map(|(c, tag)| {
            let mut script = Vec::new();
            for i in 0..5 {
                script.push(vec![
                    "put".to_owned(),
                    format!("{tag}-{i}"),
                    format!(r#"{{"title":"{tag} {i}","n":{i}}}"#),
                    "--sync".to_owned(),
                ]);
            }
            let cmds: Vec<Command> = script
                .iter()
                .map(|args| c.command(&args.iter().map(String::as_str).collect::<Vec<_>>()))
                .collect();
            std::thread::spawn(move || {
                for mut cmd in cmds {
                    let out = cmd.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    a.run(&["sync", "--quiet"]);
    b.run(&["sync", "--quiet"]);
    let (la, lb) = (a.list(), b.list());
    assert_eq!(la.len(), 12, "2 old + 10 new records: {la:?}");
    assert_eq!(la, lb, "caches must hold identical records");

    // Filters and get read the cache.
    let out = b.run(&["list", "--filter", "n>=3", "--filter", "title~a "]);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["a-3", "a-4"]);
    let got: serde_json::Value = serde_json::from_str(&a.run(&["get", "b-2"])).unwrap();
    assert_eq!(got["title"], "b 2");
    assert!(
        !a.try_run(&["get", "a2"]).status.success(),
        "a deleted record is not found"
    );

    // A wrong token is refused and the write stays queued; the token never shows up in output.
    let mut bad = Client::new(&server.url, dir.path().join("a.sqlite"));
    bad.token = Some("not-the-token".into());
    bad.run(&["put", "late", r#"{"title":"late"}"#]);
    let out = bad.try_run(&["sync", "--quiet"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "{stderr}");
    assert_eq!(value_of(&a.run(&["status"]), "pending"), "1");
    a.run(&["sync", "--quiet"]);
    b.run(&["sync", "--quiet"]);
    assert_eq!(a.list(), b.list());
    assert_eq!(b.list().len(), 13);

    let log_path = server.log.clone();
    server.stop();
    // The server logged requests at debug level, and never a token.
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("/v1/pull") && log.contains("/v1/push"),
        "{log}"
    );
    assert!(
        log.contains("refused"),
        "the refused request is logged: {log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("not-the-token"),
        "a token leaked into the log"
    );
}

/// The README's `rcs list --filter 'n>=3' --order -n --limit 10`: a descending order is written
/// `-FIELD`, also as a separate argument that starts with `-`.
#[test]
fn list_orders_descending_with_a_minus_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    let b = Client::new(&server.url, dir.path().join("b.sqlite"));
    for n in [4, 1, 7, 3, 5] {
        a.run(&["put", &format!("r{n}"), &format!(r#"{{"n":{n}}}"#)]);
    }
    a.run(&["sync", "--quiet"]);
    b.run(&["sync", "--quiet"]);
    let ids = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let readme = ["list", "--filter", "n>=3", "--order", "-n", "--limit", "10"];
    assert_eq!(ids(b.run(&readme)), ["r7", "r5", "r4", "r3"]);
    assert_eq!(
        ids(b.run(&["list", "--order=-n", "--limit", "2"])),
        ["r7", "r5"]
    );
    assert_eq!(
        ids(b.run(&["list", "--order", "n", "--filter", "n>=3"])),
        ["r3", "r4", "r5", "r7"]
    );
    // `--online` runs the query on the server: a fresh cache answers without pulling, and its
    // own queued write is pushed first and in the answer.
    let c = Client::new(&server.url, dir.path().join("c.sqlite"));
    c.run(&["put", "r9", r#"{"n":9}"#]);
    let online = [
        "list", "--online", "--filter", "n>=4", "--order", "-n", "--limit", "3",
    ];
    assert_eq!(ids(c.run(&online)), ["r9", "r7", "r5"]);
    assert_eq!(ids(c.run(&["list"])), ["r9"], "the answer is not cached");
    assert_eq!(
        ids(b.run(&["list", "--refresh", "--limit", "1", "--order", "-n"])),
        ["r9"]
    );
    // A malformed field is refused.
    let out = b.try_run(&["list", "--order", "-n;x"]);
    assert!(!out.status.success(), "a malformed order field is refused");
    server.stop();
}

#[test]
fn serve_refuses_to_start_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(RCS)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("s.sqlite"))
        .env_remove("RCS_SERVE_TOKENS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

/// Two `rcs serve` processes share one PostgreSQL database (as behind a load balancer); a client
/// on each converges. Needs `RCS_TEST_PG_URL` (scripts/start-postgres.sh).
#[test]
fn two_clients_converge_through_two_servers_sharing_postgres() {
    let Some(pg) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s1 = ServeProcess::start_with(dir.path(), &pg, "serve1.log");
    let s2 = ServeProcess::start_with(dir.path(), &pg, "serve2.log");
    let team = format!("pg-{}", std::process::id());
    let mut a = Client::new(&s1.url, dir.path().join("a.sqlite"));
    let mut b = Client::new(&s2.url, dir.path().join("b.sqlite"));
    a.team = team.clone();
    b.team = team;
    a.run(&["put", "a1", r#"{"title":"via server 1"}"#, "--sync"]);
    b.run(&["put", "b1", r#"{"title":"via server 2"}"#, "--sync"]);
    a.run(&["sync", "--quiet"]);
    b.run(&["delete", "a1", "--sync"]);
    a.run(&["sync", "--quiet"]);
    let want = vec![("b1".to_owned(), "via server 2".to_owned())];
    assert_eq!(a.titles(), want);
    assert_eq!(b.titles(), want);
    assert_eq!(a.list(), b.list());
    s1.stop();
    s2.stop();
}

/// Issue 8, case 2, as a user meets it: a token without the grant for the scope gets 403. The
/// scope pauses with a visible reason and nothing is parked; once the grant is fixed, the first
/// `rcs sync` pushes every queued write.
#[test]
fn a_refused_scope_pauses_and_resumes_when_the_grant_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.sqlite");
    let db = db.to_str().unwrap();
    let server = ServeProcess::start_granting(dir.path(), db, "serve1.log", "records,team=other");
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    for i in 0..3 {
        a.run(&["put", &format!("w{i}"), r#"{"title":"queued"}"#]);
    }
    for _ in 0..2 {
        let out = a.try_run(&["sync", "--quiet"]);
        assert!(!out.status.success(), "a refused sync must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("paused") && err.contains("403"), "{err}");
    }
    let status = a.run(&["status"]);
    assert_eq!(value_of(&status, "pending"), "3");
    assert_eq!(value_of(&status, "parked"), "0");
    assert!(
        value_of(&status, "paused").contains("forbidden"),
        "{status}"
    );
    let ops = a.run(&["ops"]);
    assert_eq!(
        ops.lines().filter(|l| l.starts_with("pending ")).count(),
        3,
        "{ops}"
    );
    assert!(ops.lines().all(|l| l.contains("attempts=0")), "{ops}");
    server.stop();

    let server = ServeProcess::start_granting(dir.path(), db, "serve2.log", "records,team=*");
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    assert_eq!(value_of(&a.run(&["sync", "--quiet"]), "pushed"), "3");
    let status = a.run(&["status"]);
    assert_eq!(value_of(&status, "paused"), "no");
    assert_eq!(value_of(&status, "pending"), "0");
    let b = Client::new(&server.url, dir.path().join("b.sqlite"));
    b.run(&["sync", "--quiet"]);
    assert_eq!(b.titles().len(), 3, "3 of 3 writes arrived");
    server.stop();
}

/// A verdict on one op parks it; `rcs ops` shows why, `rcs retry` requeues it and `rcs discard`
/// gives it up (the record is restored from the server).
#[test]
fn parked_ops_can_be_listed_retried_and_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.sqlite");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(RCS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ])
        .args(["--max-body-bytes", "4096"])
        .env("RCS_SERVE_TOKENS", format!("{TOKEN}:records,team=*"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = ServeProcess {
        url: line.trim().strip_prefix("listening: ").unwrap().to_owned(),
        child,
        log,
    };
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    a.run(&["put", "small", r#"{"title":"fits"}"#]);
    let big = format!(r#"{{"title":"{}"}}"#, "x".repeat(8000));
    a.run(&["put", "big", &big]);
    let out = a.run(&["sync", "--quiet"]);
    assert_eq!(
        (value_of(&out, "pushed"), value_of(&out, "parked")),
        ("1", "1"),
        "{out}"
    );
    let ops = a.run(&["ops"]);
    let parked = ops
        .lines()
        .find_map(|l| l.strip_prefix("parked "))
        .unwrap_or_else(|| panic!("no parked op: {ops}"));
    let op_id = parked.split_whitespace().next().unwrap().to_owned();
    assert!(
        parked.contains(" big ") && parked.contains("attempts=1"),
        "{parked}"
    );

    assert!(!a.try_run(&["retry", "not-an-op"]).status.success());
    assert_eq!(value_of(&a.run(&["retry", &op_id]), "retried"), "1");
    assert_eq!(value_of(&a.run(&["status"]), "pending"), "1");
    assert_eq!(
        value_of(&a.run(&["sync", "--quiet"]), "parked"),
        "1",
        "still too large"
    );
    assert_eq!(value_of(&a.run(&["retry", "--all"]), "retried"), "1");
    assert_eq!(value_of(&a.run(&["discard", &op_id]), "discarded"), "1");
    let status = a.run(&["status"]);
    assert_eq!(
        (value_of(&status, "pending"), value_of(&status, "parked")),
        ("0", "0")
    );
    assert_eq!(
        a.titles(),
        vec![("small".to_owned(), "fits".to_owned())],
        "the record was given up"
    );
    server.stop();
}

#[test]
fn rcs_reconcile_repairs_a_delete_made_behind_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.sqlite");
    let server = ServeProcess::start(dir.path());
    let a = Client::new(&server.url, dir.path().join("a.sqlite"));
    a.run(&["put", "k1", r#"{"title":"kept"}"#]);
    a.run(&["put", "k2", r#"{"title":"purged on the server"}"#]);
    a.run(&["sync", "--quiet"]);
    let out = a.run(&["reconcile"]);
    assert_eq!(value_of(&out, "checked"), "2");
    assert_eq!(value_of(&out, "extra"), "0");

    // A purge straight in the server's database: no tombstone, no feed entry.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n = conn
        .execute("DELETE FROM rcs_remote_records WHERE id = 'k2'", [])
        .unwrap();
    assert_eq!(n, 1);
    a.run(&["sync", "--quiet"]);
    assert_eq!(a.titles().len(), 2, "a pull cannot see the purge");
    let out = a.run(&["reconcile"]);
    for (key, want) in [
        ("checked", "1"),
        ("extra", "1"),
        ("missing", "0"),
        ("stale", "0"),
    ] {
        assert_eq!(value_of(&out, key), want, "{out}");
    }
    assert!(value_of(&out, "bytes_transferred").parse::<u64>().unwrap() > 0);
    assert_eq!(a.titles(), vec![("k1".to_owned(), "kept".to_owned())]);
    server.stop();
}
