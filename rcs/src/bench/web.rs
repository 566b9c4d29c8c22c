//! `rcs bench web --rows N`: the library in headless Chromium, on OPFS, pulling from our server.
//!
//! 1. Builds the browser package (as `rcs web-setup` does) into a temporary folder with a bench
//!    page, serves that folder on 127.0.0.1, and starts our server (the router of `rcs serve`,
//!    CORS for the page's origin) over a SQLite file seeded with N rows (not timed).
//! 2. Starts headless Chromium (a fresh profile) on the bench page, whose dedicated worker runs
//!    `benchWeb` (remote-cache-sync-web/src/bench.rs): an initial sync of the scope into a fresh
//!    OPFS cache (`web_initial_sync_rows_per_s`), then the same pages applied by the store
//!    against a raw batched upsert into the same OPFS database, page for page
//!    (`web_apply_ratio` = raw time / our time: 1.0 is parity, higher is better for us). With
//!    `--encrypted`, the same pages are also applied by a store on a plain and by one on an
//!    encrypted OPFS database (SQLite3 Multiple Ciphers, SQLCipher scheme), page for page
//!    (`web_encryption_ratio` = encrypted time / plain time, target <= 1.5 as natively), and the
//!    encrypted open (the key derivation) is timed (`web_encrypted_open_ms`).
//! 3. The page posts the figures back; memory is the wasm heap (`wasm_memory_bytes`) and, where
//!    Chromium offers it, `performance.memory.usedJSHeapSize` of the page. The package's wasm
//!    size (raw and gzipped) is printed too.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use remote_cache_sync::SyncScope;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{RawFeed, ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::TestRecord;
use serde_json::{Value, json};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Rows to sync.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Rows per pulled page.
    #[arg(long, default_value_t = 5_000)]
    page: usize,
    /// Chromium to drive.
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// Longest wait for the page's figures (seconds).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// wasm-bindgen's output of remote-cache-sync-web, instead of building it.
    #[arg(long)]
    wasm_pkg: Option<PathBuf>,
    /// Also compare applying to an encrypted OPFS cache with a plain one
    /// (`web_encryption_ratio`).
    #[arg(long)]
    encrypted: bool,
}

const PAGE_FILES: [(&str, &str); 2] = [
    ("bench.html", include_str!("web_page/bench.html")),
    ("bench-worker.js", include_str!("web_page/bench-worker.js")),
];

type Results = tokio::sync::mpsc::Sender<String>;

async fn file(
    State((dir, _)): State<(Arc<PathBuf>, Results)>,
    UrlPath(path): UrlPath<String>,
) -> impl IntoResponse {
    let valid = !path.split('/').any(|p| p.is_empty() || p == "..");
    let full = dir.join(&path);
    match (valid, tokio::fs::read(&full).await) {
        (true, Ok(bytes)) => {
            let mime = match full.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("wasm") => "application/wasm",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, mime)], bytes).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn result(State((_, tx)): State<(Arc<PathBuf>, Results)>, body: String) -> StatusCode {
    let _ = tx.send(body).await;
    StatusCode::NO_CONTENT
}

fn gzip_size(path: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("cannot run gzip")?;
    ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout.len() as u64)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.rows > 0 && args.page > 0, "sizes must be positive");
    ensure!(
        args.chromium.exists(),
        "no Chromium at {} (apt-get install chromium, or --chromium PATH)",
        args.chromium.display()
    );
    let dir = tempfile::tempdir()?;
    let site = dir.path().join("site");
    let pkg = site.join(crate::web_setup::PACKAGE_DIR);
    crate::web_setup::write_package(
        &pkg,
        None,
        args.wasm_pkg.as_deref(),
        crate::web_setup::WasmProfile::Release,
    )?;
    for (name, text) in PAGE_FILES {
        std::fs::write(site.join(name), text)?;
    }
    let wasm = pkg.join("remote_cache_sync_web_bg.wasm");
    let wasm_bytes = std::fs::metadata(&wasm)?.len();
    let wasm_gzip_bytes = gzip_size(&wasm)?;

    // The page's server: the bench files, and /result for the figures.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", pages.local_addr()?);
    let site_router = Router::new()
        .route("/{*path}", get(file))
        .route("/result", post(result))
        .with_state((Arc::new(site), tx));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_pages = stopped.clone();
    let pages_task = tokio::spawn(serve(pages, site_router, async move {
        let _ = stopped_pages.changed().await;
    }));

    // Our server, seeded (not timed).
    let scope = SyncScope::new("records", [("bench", "web")])?;
    let db = dir.path().join("server.sqlite");
    let storage = SqliteRemoteStore::<remote_cache_sync::JsonRecord>::open(&db).await?;
    let token = format!("{:032x}", rand::random::<u128>());
    let mut tokens = StaticTokens::new();
    tokens.grant(token.clone(), ScopePattern::any())?;
    let seeder = SqliteRemoteStore::<TestRecord>::open(&db).await?;
    super::sync::seed(&seeder, &scope, args.rows).await?;
    let cors = crate::serve::cors_layer(std::slice::from_ref(&origin))?
        .context("a CORS layer for the page")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let remote = format!("http://{}", listener.local_addr()?);
    let feed: Arc<dyn RawFeed> = Arc::new(storage.clone());
    let router = Server::new(storage, tokens)
        .raw_feed(feed)
        .into_router()
        .layer(cors);
    let mut stopped_server = stopped.clone();
    let server_task = tokio::spawn(serve(listener, router, async move {
        let _ = stopped_server.changed().await;
    }));

    // Chromium on the bench page.
    let options = json!({
        "remote": remote,
        "token": token,
        "scope": scope,
        "page": args.page,
        "encrypted": args.encrypted,
    });
    let url = format!(
        "{origin}/bench.html?options={}",
        url_escape(&options.to_string())
    );
    let profile = dir.path().join("profile");
    let started = Instant::now();
    let mut chromium = tokio::process::Command::new(&args.chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-precise-memory-info",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", args.chromium.display()))?;
    let answer = tokio::time::timeout(Duration::from_secs(args.timeout), rx.recv()).await;
    let _ = chromium.kill().await;
    let _ = stop.send(true);
    let _ = server_task.await;
    let _ = pages_task.await;
    let answer = match answer {
        Ok(Some(a)) => a,
        Ok(None) => bail!("the bench page's server stopped"),
        Err(_) => bail!(
            "no figures from Chromium within {} s (after {:.0} s)",
            args.timeout,
            started.elapsed().as_secs_f64()
        ),
    };
    let answer: Value = serde_json::from_str(&answer).context("the page's figures")?;
    if answer["ok"] != json!(true) {
        bail!("the benchmark failed in the browser: {}", answer["error"]);
    }
    let r = &answer["result"];
    let num = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let rows = num("rows");
    ensure!(
        rows as usize == args.rows && num("pulled") as usize == args.rows,
        "the browser saw {rows} rows (pulled {}), expected {}",
        num("pulled"),
        args.rows
    );
    ensure!(
        num("raw_rows") as usize == args.rows,
        "raw side has {} rows",
        num("raw_rows")
    );
    let per_s = |ms: f64| rows / (ms / 1000.0);
    println!("rows: {}", args.rows);
    println!("page: {}", args.page);
    println!("web_initial_sync_rows_per_s: {:.0}", per_s(num("sync_ms")));
    println!("web_apply_rows_per_s: {:.0}", per_s(num("apply_ours_ms")));
    println!(
        "web_raw_apply_rows_per_s: {:.0}",
        per_s(num("apply_raw_ms"))
    );
    println!(
        "web_apply_ratio: {:.3}",
        num("apply_raw_ms") / num("apply_ours_ms")
    );
    if args.encrypted {
        ensure!(
            num("encrypted_rows") as usize == args.rows,
            "the encrypted cache has {} rows",
            num("encrypted_rows")
        );
        println!(
            "web_plain_apply_rows_per_s: {:.0}",
            per_s(num("apply_plain_ms"))
        );
        println!(
            "web_encrypted_apply_rows_per_s: {:.0}",
            per_s(num("apply_encrypted_ms"))
        );
        println!(
            "web_encryption_ratio: {:.3}",
            num("apply_encrypted_ms") / num("apply_plain_ms")
        );
        println!("web_encrypted_open_ms: {:.0}", num("encrypted_open_ms"));
    }
    println!(
        "wasm_memory_mb: {:.1}",
        num("wasm_memory_bytes") / (1024.0 * 1024.0)
    );
    match answer["js_heap_used_bytes"].as_f64() {
        Some(b) => println!("js_heap_used_mb: {:.1}", b / (1024.0 * 1024.0)),
        None => println!("js_heap_used_mb: n/a"),
    }
    println!("wasm_package_bytes: {wasm_bytes}");
    println!("wasm_package_gzip_bytes: {wasm_gzip_bytes}");
    Ok(())
}

/// Percent-encodes a query parameter value.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
