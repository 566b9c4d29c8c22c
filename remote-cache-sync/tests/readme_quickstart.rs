//! The README's client quick start is `examples/quickstart.rs`, word for word, and it works:
//! built and run as a separate program against a real server on loopback, as a user would.

use std::process::Command;
use std::sync::Arc;

use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{Server, StaticTokens, serve};
use remote_cache_sync::{JsonRecord, RemoteStore, SyncScope};

const EXAMPLE: &str = include_str!("../examples/quickstart.rs");
const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_shows_the_example_verbatim() {
    let start = README
        .find("```rust\nuse std::time::Duration;")
        .expect("the README's quick start block");
    let block = &README[start + "```rust\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    assert_eq!(
        block, EXAMPLE,
        "README.md's client quick start and examples/quickstart.rs differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_runs_against_rcs_serve() {
    // Built the way the rest of the test run is built, so nothing is compiled twice.
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "remote-cache-sync",
            "--all-features",
            "--example",
            "quickstart",
            "--message-format",
            "short",
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join("quickstart");

    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteRemoteStore::<JsonRecord>::open(dir.path().join("server.db"))
        .await
        .unwrap();
    let mut tokens = StaticTokens::new();
    tokens.grant_spec("dev-token:notes,owner=*").unwrap();
    let server = Server::new(storage.clone(), tokens).raw_feed(Arc::new(storage.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        server.into_router(),
        std::future::pending::<()>(),
    ));

    for run in 1..=2 {
        let out = tokio::process::Command::new(&bin)
            .env("RCS_REMOTE", &url)
            .env("RCS_TOKEN", "dev-token")
            .env("NOTES_CACHE", dir.path().join("notes.sqlite"))
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("pushed 1, "), "{stdout}");
        assert_eq!(
            stdout.matches(": buy milk").count(),
            run,
            "each run adds a note: {stdout}"
        );
    }
    let scope = SyncScope::new("notes", [("owner", "alice")]).unwrap();
    let page = storage.fetch_since(&scope, None, 10).await.unwrap();
    assert_eq!(page.upserts.len(), 2, "both notes reached the server");
}
