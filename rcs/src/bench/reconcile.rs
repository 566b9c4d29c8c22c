//! `rcs bench reconcile --rows N --differences D`: what a reconciliation of a large scope costs
//! against a full pull of the same scope, measured in the same run.
//!
//! 1. Starts our server (the `rcs serve` router) on loopback over a SQLite file, seeds a scope
//!    with N rows and syncs an empty cache from it (not timed).
//! 2. **Full pull**: the whole scope over `POST /v1/pull` pages of 5,000, counting the response
//!    bytes (`full_pull_bytes`).
//! 3. An unchanged scope is reconciled (`unchanged_reconcile_s`, `unchanged_bytes`).
//! 4. D differences are made behind the feed by SQL in the server's database (a third each:
//!    rows deleted, rows edited without a new sequence, rows inserted below every cursor), and
//!    the cache is reconciled (`reconcile_s`, `reconcile_bytes`), which must find them all and
//!    leave the cache equal to the server. `reconcile_bytes_ratio` = `reconcile_bytes` /
//!    `full_pull_bytes`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{TestRecord, ts};
use remote_cache_sync::{
    LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, QuerySpec, SyncScope,
};
use rusqlite::params;

use super::sync::{row, seed};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Rows in the scope.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Differences made behind the feed (at least 3: deletes, edits, inserts).
    #[arg(long, default_value_t = 10)]
    differences: usize,
}

/// Bytes of a full pull of `scope`, page by page, as the server sends them.
async fn full_pull_bytes(base: &str, token: &str, scope: &SyncScope) -> anyhow::Result<u64> {
    let client = reqwest::Client::new();
    let mut cursor: Option<String> = None;
    let mut bytes = 0u64;
    loop {
        let body = serde_json::json!({"scope": scope, "cursor": cursor, "limit": 5_000});
        let resp = client
            .post(format!("{base}/v1/pull"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        bytes += resp.len() as u64;
        let page: serde_json::Value = serde_json::from_slice(&resp)?;
        cursor = page["cursor"].as_str().map(str::to_owned);
        if page["has_more"] != serde_json::Value::Bool(true) {
            return Ok(bytes);
        }
    }
}

/// Makes `d` differences behind the feed; returns (deleted, edited, inserted).
fn tamper(
    db: &std::path::Path,
    scope: &SyncScope,
    n: usize,
    d: usize,
) -> anyhow::Result<(u64, u64, u64)> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let sid: i64 = conn.query_row(
        "SELECT scope_id FROM rcs_remote_scopes WHERE canonical = ?1",
        [scope.canonical()],
        |r| r.get(0),
    )?;
    let (deletes, edits) = (d / 3, d / 3);
    let inserts = d - deletes - edits;
    let spread = |k: usize| (k * 7_919 + 13) % n;
    for k in 0..deletes {
        conn.execute(
            "DELETE FROM rcs_remote_records WHERE scope_id = ?1 AND id = ?2",
            params![sid, row(spread(k)).id],
        )?;
    }
    for k in deletes..deletes + edits {
        let mut r = row(spread(k));
        r.title = "edited behind the feed".into();
        r.updated_at = ts(n as i64 + 1_000_000 + k as i64);
        conn.execute(
            "UPDATE rcs_remote_records SET body = ?1, version = ?2 WHERE scope_id = ?3 AND id = ?4",
            params![
                serde_json::to_string(&r)?,
                r.updated_at.to_string(),
                sid,
                r.id
            ],
        )?;
    }
    for k in 0..inserts {
        let r = TestRecord::new(
            format!("sneaky-{k}"),
            "inserted behind the feed",
            ts(k as i64),
        );
        conn.execute(
            "INSERT INTO rcs_remote_records (seq, scope_id, id, kind, deleted, version, body) \
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?5)",
            params![
                -1 - k as i64,
                sid,
                r.id,
                r.updated_at.to_string(),
                serde_json::to_string(&r)?
            ],
        )?;
    }
    Ok((deletes as u64, edits as u64, inserts as u64))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.rows >= args.differences, "more differences than rows");
    ensure!(args.differences >= 3, "--differences must be at least 3");
    let dir = tempfile::tempdir()?;
    let scope = SyncScope::new("records", [("bench", "reconcile")])?;
    let db = dir.path().join("server.sqlite");
    let storage = SqliteRemoteStore::<remote_cache_sync::JsonRecord>::open(&db).await?;
    let token = format!("{:032x}", rand::random::<u128>());
    let mut tokens = StaticTokens::new();
    tokens.grant(token.clone(), ScopePattern::any())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Server::new(storage.clone(), tokens)
            .raw_feed(Arc::new(storage))
            .into_router(),
        async {
            let _ = stopped.await;
        },
    ));
    let seeder = SqliteRemoteStore::<TestRecord>::open(&db).await?;
    seed(&seeder, &scope, args.rows).await?;
    drop(seeder);

    let http = HttpRemoteStore::<TestRecord>::builder(&base)
        .token(token.clone())
        .timeout(Duration::from_secs(300))
        .build()?;
    let cache =
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("cache.sqlite")).await?);
    let orch = Orchestrator::with(
        cache.clone(),
        Arc::new(http),
        Arc::new(LastWriteWins::default()),
        OrchestratorConfig::default()
            .sync_after_write(false)
            .pull_page_size(5_000),
    );
    orch.synchronize(&scope).await.context("initial sync")?;

    let full = full_pull_bytes(&base, &token, &scope).await?;

    let t = Instant::now();
    let unchanged = orch.reconcile(&scope).await?;
    let unchanged_s = t.elapsed().as_secs_f64();
    ensure!(
        unchanged.missing + unchanged.extra + unchanged.stale == 0,
        "an unchanged scope reconciled with differences: {unchanged:?}"
    );

    let (n, d, path, s) = (args.rows, args.differences, db.clone(), scope.clone());
    let (deleted, edited, inserted) =
        tokio::task::spawn_blocking(move || tamper(&path, &s, n, d)).await??;
    let t = Instant::now();
    let report = orch.reconcile(&scope).await?;
    let reconcile_s = t.elapsed().as_secs_f64();
    ensure!(
        (report.extra, report.stale, report.missing) == (deleted, edited, inserted),
        "reconcile found {report:?}, expected {deleted} extra, {edited} stale, {inserted} missing"
    );
    let live = cache.query(&scope, &QuerySpec::new().limit(1)).await?;
    ensure!(!live.is_empty(), "the cache lost its rows");
    ensure!(
        cache.get_by_id(&scope, &row(13 % n).id).await?.is_none(),
        "a row deleted behind the feed is still cached"
    );
    ensure!(
        cache.get_by_id(&scope, "sneaky-0").await?.is_some(),
        "a row inserted behind the feed is not cached"
    );

    println!("rows: {}", args.rows);
    println!("differences: {}", args.differences);
    println!("full_pull_bytes: {full}");
    println!("unchanged_bytes: {}", unchanged.bytes_transferred);
    println!("unchanged_reconcile_s: {unchanged_s:.3}");
    println!("reconcile_bytes: {}", report.bytes_transferred);
    println!("reconcile_rounds: {}", report.rounds);
    println!(
        "reconcile_bytes_ratio: {:.6}",
        report.bytes_transferred as f64 / full.max(1) as f64
    );
    println!("reconcile_s: {reconcile_s:.3}");
    let _ = stop.send(());
    server.await??;
    Ok(())
}
