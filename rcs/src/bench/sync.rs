//! `rcs bench sync --rows N`: initial and delta sync through an embedded sync server, in one run.
//!
//! 1. Starts our server (the same router as `rcs serve`) on 127.0.0.1:0 over a SQLite file and
//!    seeds a large scope with N rows and a small scope with 10,000 rows (not timed).
//! 2. **Initial sync**: an [`Orchestrator`] with an empty [`SqliteLocalStore`] and an
//!    [`HttpRemoteStore`] pulls the large scope page by page over real loopback HTTP
//!    (`initial_sync_rows_per_s`). The baseline is a raw batched rusqlite upsert of the same rows
//!    into a table shaped like the cache's (same JSON serialization inside the timed region, one
//!    transaction per page, WAL, `synchronous=NORMAL`): `raw_rows_per_s`, and
//!    `initial_sync_ratio` = ours / raw. `storage_pull_only_rows_per_s` and
//!    `http_pull_only_rows_per_s` show the server's storage and the whole HTTP pull alone.
//! 3. **Delta sync**: 10 changes are written on the server in each scope, then a small cache
//!    (10,000 rows) and the large cache (N rows) each synchronize; best of `--rounds`
//!    (`delta_small_ms`, `delta_large_ms`, `delta_scaling_ratio` = large / small).
//! 4. `peak_rss_mb` is the process's VmHWM (server and client share the process), which stays
//!    bounded by the page size because no step holds the whole data set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{RawFeed, ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{TestRecord, ts};
use remote_cache_sync::{
    LastWriteWins, LocalStore, OpKind, Orchestrator, OrchestratorConfig, PendingOp, RemoteStore,
    SyncScope,
};
use rusqlite::{Connection, params};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Rows in the large scope (the large cache).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Rows in the small scope (the small cache).
    #[arg(long, default_value_t = 10_000)]
    small_rows: usize,
    /// Rows per pulled page (and per raw transaction).
    #[arg(long, default_value_t = 5_000)]
    page: usize,
    /// Changes per delta sync.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Delta rounds (the best counts, to damp noise from other processes).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

fn mix(mut x: u64) -> u64 {
    // splitmix64: a cheap, deterministic spread of row numbers.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Row `i` of a scope (~120 bytes of JSON), generated on demand so nothing holds all rows.
pub(super) fn row(i: usize) -> TestRecord {
    let h = mix(i as u64);
    let title: Vec<&str> = (0..4)
        .map(|k| WORDS[((h >> (k * 4)) & 15) as usize])
        .collect();
    TestRecord::new(
        format!("{i:08}-{:08x}", h as u32),
        title.join(" "),
        ts(i as i64),
    )
    .with_n((h % 1_000_000) as i64)
}

fn rows(range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range.map(row).collect()
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Writes `n` generated rows into `scope` of the server's database (also `rcs bench web`'s).
pub(super) async fn seed(
    remote: &SqliteRemoteStore<TestRecord>,
    scope: &SyncScope,
    n: usize,
) -> anyhow::Result<()> {
    const CHUNK: usize = 10_000;
    for start in (0..n).step_by(CHUNK) {
        let ops: Vec<_> = rows(start..(start + CHUNK).min(n))
            .into_iter()
            .map(|r| PendingOp::upsert(scope.clone(), OpKind::Create, r))
            .collect();
        remote.push(scope, &ops).await?;
    }
    Ok(())
}

/// The baseline: a raw batched upsert of the same rows into a table shaped like a cache.
fn raw_insert(
    path: &std::path::Path,
    scope: &str,
    n: usize,
    page: usize,
) -> anyhow::Result<Duration> {
    let mut conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The same shape and indexes as the cache's table (as in `rcs bench local`).
    conn.execute_batch(
        "CREATE TABLE items (
            scope TEXT NOT NULL, id TEXT NOT NULL, data TEXT, updated_at INTEGER NOT NULL,
            deleted_at INTEGER, synced_version INTEGER, PRIMARY KEY (scope, id)
        ) WITHOUT ROWID;
        CREATE INDEX items_since ON items (scope, updated_at, id) WHERE deleted_at IS NULL;",
    )?;
    let mut total = Duration::ZERO;
    for start in (0..n).step_by(page) {
        let chunk = rows(start..(start + page).min(n));
        let t = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO items (scope, id, data, updated_at, synced_version) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data,
                 updated_at = excluded.updated_at, synced_version = excluded.synced_version",
            )?;
            for r in &chunk {
                let json = serde_json::to_string(r)?;
                stmt.execute(params![
                    scope,
                    r.id,
                    json,
                    r.updated_at.as_nanosecond() as i64
                ])?;
            }
        }
        tx.commit()?;
        total += t.elapsed();
    }
    Ok(total)
}

/// Writes `changes` updates spread over the scope's rows, directly on the server's storage.
async fn change_rows(
    remote: &SqliteRemoteStore<TestRecord>,
    scope: &SyncScope,
    n: usize,
    changes: usize,
    round: usize,
) -> anyhow::Result<()> {
    let changed: Vec<_> = (0..changes)
        .map(|k| {
            let i = (mix((round * changes + k) as u64 ^ 0xABCD) as usize) % n;
            let mut r = row(i);
            r.title = format!("changed in round {round}");
            r.updated_at = ts((n + round * changes + k) as i64 + 1_000_000_000);
            r
        })
        .collect();
    remote.batch_upsert(scope, &changed).await?;
    Ok(())
}

fn orchestrator(
    local: Arc<SqliteLocalStore<TestRecord>>,
    http: &HttpRemoteStore<TestRecord>,
    page: usize,
) -> Orchestrator<TestRecord> {
    Orchestrator::with(
        local,
        Arc::new(http.clone()),
        Arc::new(LastWriteWins::default()),
        OrchestratorConfig::default()
            .sync_after_write(false)
            .pull_page_size(page),
    )
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.rows > 0 && args.small_rows > 0 && args.page > 0 && args.rounds > 0,
        "sizes must be positive"
    );
    let dir = tempfile::tempdir()?;
    let large = SyncScope::new("records", [("bench", "large")])?;
    let small = SyncScope::new("records", [("bench", "small")])?;

    // The server: the same router as `rcs serve`, on loopback, with a random token.
    let db = dir.path().join("server.sqlite");
    let storage = SqliteRemoteStore::<remote_cache_sync::JsonRecord>::open(&db).await?;
    let token = format!("{:032x}", rand::random::<u128>());
    let mut tokens = StaticTokens::new();
    tokens.grant(token.clone(), ScopePattern::any())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let storage_probe = storage.clone();
    let server = tokio::spawn(serve(
        listener,
        Server::new(storage.clone(), tokens)
            .raw_feed(Arc::new(storage))
            .into_router(),
        async {
            let _ = stopped.await;
        },
    ));
    // Seeding writes straight to the server's database, as another server process would.
    let seeder = SqliteRemoteStore::<TestRecord>::open(&db).await?;
    let t = Instant::now();
    seed(&seeder, &large, args.rows).await?;
    seed(&seeder, &small, args.small_rows).await?;
    let seed_s = t.elapsed().as_secs_f64();

    let http = HttpRemoteStore::<TestRecord>::builder(format!("http://{addr}"))
        .token(token)
        .timeout(Duration::from_secs(120))
        .build()?;

    // Initial sync of the large scope into an empty cache.
    let large_cache =
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("large.sqlite")).await?);
    let orch_large = orchestrator(large_cache.clone(), &http, args.page);
    let t = Instant::now();
    let report = orch_large
        .synchronize(&large)
        .await
        .context("initial sync")?;
    let initial = t.elapsed();
    ensure!(
        report.pulled == args.rows,
        "pulled {} of {} rows",
        report.pulled,
        args.rows
    );
    let probe = row(args.rows / 2);
    ensure!(
        large_cache.get_by_id(&large, &probe.id).await?.as_ref() == Some(&probe),
        "the cache must hold the seeded rows"
    );
    let initial_rss = peak_rss_mb();

    // Transport alone: the same pages over HTTP, not applied.
    let t = Instant::now();
    let mut cursor = None;
    let mut pulled = 0;
    loop {
        let page = http.fetch_since(&large, cursor.as_ref(), args.page).await?;
        pulled += page.len();
        cursor = page.cursor.clone();
        if !page.has_more {
            break;
        }
    }
    ensure!(pulled == args.rows, "transport pull got {pulled} rows");
    let pull_only = t.elapsed();

    // Server storage alone (the raw feed the server answers pulls from).
    let t = Instant::now();
    let mut cursor = None;
    loop {
        let page = storage_probe
            .fetch_raw(&large, cursor.as_ref(), args.page)
            .await?;
        cursor = page.cursor.clone();
        if !page.has_more {
            break;
        }
    }
    let storage_only = t.elapsed();

    // Baseline: the same rows, raw.
    let raw_path = dir.path().join("raw.sqlite");
    let (n, page) = (args.rows, args.page);
    let canonical = large.canonical();
    let raw =
        tokio::task::spawn_blocking(move || raw_insert(&raw_path, &canonical, n, page)).await??;

    // Small cache, synced untimed.
    let small_cache =
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("small.sqlite")).await?);
    let orch_small = orchestrator(small_cache, &http, args.page);
    orch_small
        .synchronize(&small)
        .await
        .context("small initial sync")?;

    // Delta syncs, alternating small and large; best of the rounds.
    let (mut best_small, mut best_large) = (Duration::MAX, Duration::MAX);
    for round in 0..args.rounds {
        change_rows(&seeder, &small, args.small_rows, args.changes, round).await?;
        change_rows(&seeder, &large, args.rows, args.changes, round).await?;
        let t = Instant::now();
        let r = orch_small.synchronize(&small).await?;
        best_small = best_small.min(t.elapsed());
        ensure!(
            r.pulled == args.changes,
            "small delta pulled {} changes",
            r.pulled
        );
        let t = Instant::now();
        let r = orch_large.synchronize(&large).await?;
        best_large = best_large.min(t.elapsed());
        ensure!(
            r.pulled == args.changes,
            "large delta pulled {} changes",
            r.pulled
        );
    }

    let _ = stop.send(());
    server.await??;

    let ours_rps = args.rows as f64 / initial.as_secs_f64();
    let raw_rps = args.rows as f64 / raw.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("rows: {}", args.rows);
    println!("small_rows: {}", args.small_rows);
    println!("page: {}", args.page);
    println!("seed_s: {seed_s:.2}");
    println!("initial_sync_s: {:.3}", initial.as_secs_f64());
    println!("initial_sync_rows_per_s: {ours_rps:.0}");
    println!("raw_rows_per_s: {raw_rps:.0}");
    println!(
        "storage_pull_only_rows_per_s: {:.0}",
        args.rows as f64 / storage_only.as_secs_f64()
    );
    println!(
        "http_pull_only_rows_per_s: {:.0}",
        args.rows as f64 / pull_only.as_secs_f64()
    );
    println!("initial_sync_ratio: {:.2}", ours_rps / raw_rps);
    if let Some(rss) = initial_rss {
        println!("initial_sync_peak_rss_mb: {rss:.1}");
    }
    match peak_rss_mb() {
        Some(rss) => println!("peak_rss_mb: {rss:.1}"),
        None => println!("peak_rss_mb: unknown"),
    }
    println!("delta_changes: {}", args.changes);
    println!("delta_small_ms: {:.2}", ms(best_small));
    println!("delta_large_ms: {:.2}", ms(best_large));
    println!(
        "delta_scaling_ratio: {:.2}",
        ms(best_large) / ms(best_small)
    );
    Ok(())
}
