//! `rcs bench appwrite --rows N`: pulls from an Appwrite server (here: the stand-in that
//! `scripts/start-appwrite.sh` starts) vs bare listing, in one run.
//!
//! 1. Seeds N `TestRecord`s into a fresh scope of the guide's `records` collection through the
//!    adapter (`batch_upsert`: transactions of 100 operations), timed as `seed_rows_per_s`.
//! 2. **Bare listing** (`server_list_rows_per_s`): the same keyset pages our pull requests (same
//!    queries, page size and `total=false`), each body fetched and dropped; only each page's last
//!    `($updatedAt, $id)` is read to ask for the next one: the server + network floor.
//! 3. **Adapter fetch** (`fetch_rows_per_s`): `fetch_since` page by page, nothing stored.
//! 4. **Pull** (`pull_rows_per_s`): an [`Orchestrator`] with an empty [`SqliteLocalStore`] runs
//!    `synchronize` (every page decoded, applied and its sync point saved in one transaction).
//!
//! Steps 2–4 alternate for `--rounds` rounds; the best time of each counts.
//! `client_overhead_ratio` = pull time / bare listing time.
//!
//! Endpoint, project and API key: `--endpoint`/`--project`, `RCS_TEST_APPWRITE_*` (what
//! `scripts/start-appwrite.sh` prints); the key only from `RCS_APPWRITE_KEY` or
//! `RCS_TEST_APPWRITE_KEY`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::appwrite::{AppwriteConfig, AppwriteRemoteStore, Credential};
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{
    LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, RemoteStore, SyncScope,
};
use serde::Deserialize;
use serde_json::json;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Records to seed and pull.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// API endpoint (`http://HOST:PORT/v1`).
    #[arg(long, env = "RCS_TEST_APPWRITE_ENDPOINT")]
    endpoint: String,
    /// Project id.
    #[arg(long, env = "RCS_TEST_APPWRITE_PROJECT")]
    project: String,
    /// Database id (the guide's).
    #[arg(long, default_value = "rcs")]
    database: String,
    /// Rows per page.
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Measurement rounds (best counts).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

#[derive(Deserialize)]
struct Key {
    #[serde(rename = "$id")]
    id: String,
    #[serde(rename = "$updatedAt")]
    updated: String,
}

#[derive(Deserialize)]
struct Page {
    documents: Vec<Key>,
}

/// Keyset listing of the scope, bodies dropped. Returns rows seen.
async fn bare_list(
    http: &reqwest::Client,
    args: &Args,
    key: &str,
    owner: &str,
    page: usize,
) -> anyhow::Result<usize> {
    let url = format!(
        "{}/databases/{}/collections/records/documents",
        args.endpoint.trim_end_matches('/'),
        args.database
    );
    let mut last: Option<(String, String)> = None;
    let mut rows = 0;
    loop {
        let mut queries = vec![json!({"method": "equal", "attribute": "owner", "values": [owner]})];
        if let Some((u, i)) = &last {
            queries.push(json!({"method": "or", "values": [
                {"method": "greaterThan", "attribute": "$updatedAt", "values": [u]},
                {"method": "and", "values": [
                    {"method": "equal", "attribute": "$updatedAt", "values": [u]},
                    {"method": "greaterThan", "attribute": "$id", "values": [i]}]}]}));
        }
        queries.push(json!({"method": "orderAsc", "attribute": "$updatedAt"}));
        queries.push(json!({"method": "orderAsc", "attribute": "$id"}));
        queries.push(json!({"method": "limit", "values": [page]}));
        let mut params: Vec<(String, String)> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| (format!("queries[{i}]"), q.to_string()))
            .collect();
        params.push(("total".into(), "false".into()));
        let resp = http
            .get(&url)
            .header("X-Appwrite-Project", &args.project)
            .header("X-Appwrite-Key", key)
            .query(&params)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "list failed: {}", resp.status());
        let body = resp.bytes().await?;
        let p: Page = serde_json::from_slice(&body)?;
        let n = p.documents.len();
        rows += n;
        match p.documents.into_iter().last() {
            Some(k) if n == page => last = Some((k.updated, k.id)),
            _ => return Ok(rows),
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let key = std::env::var("RCS_APPWRITE_KEY")
        .or_else(|_| std::env::var("RCS_TEST_APPWRITE_KEY"))
        .context("API key: RCS_APPWRITE_KEY or RCS_TEST_APPWRITE_KEY")?;
    ensure!(
        args.rows > 0 && args.page > 0 && args.rounds > 0,
        "rows, page and rounds must be > 0"
    );
    let page = args.page;
    let config = AppwriteConfig {
        max_page_size: page,
        ..AppwriteConfig::default()
    };
    let remote = Arc::new(
        AppwriteRemoteStore::<TestRecord>::builder(&args.endpoint, &args.project, &args.database)
            .credential(Credential::api_key(&key))
            .config(config)
            .build()?,
    );
    let owner = format!("bench-{}", uuid::Uuid::now_v7().simple());
    println!("owner: {owner}");
    let scope = SyncScope::new("records", [("owner", owner.clone())])?;

    let base = remote_cache_sync::Timestamp::now();
    let started = Instant::now();
    let chunk = 5_000;
    for start in (0..args.rows).step_by(chunk) {
        let recs: Vec<TestRecord> = (start..(start + chunk).min(args.rows))
            .map(|i| {
                TestRecord::new(
                    format!("r{i:08}"),
                    format!("record {i} of the Appwrite benchmark, some text to give it a realistic size"),
                    base + Duration::from_micros(i as u64),
                )
                .with_n(i as i64)
            })
            .collect();
        remote.batch_upsert(&scope, &recs).await?;
    }
    let seed = started.elapsed();
    println!("rows: {}", args.rows);
    println!("page_size: {page}");
    println!("seed_s: {:.2}", seed.as_secs_f64());
    println!(
        "seed_rows_per_s: {:.0}",
        args.rows as f64 / seed.as_secs_f64()
    );

    let http = reqwest::Client::new();
    let (mut best_list, mut best_fetch, mut best_pull) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..args.rounds {
        let t = Instant::now();
        let n = bare_list(&http, &args, &key, &owner, page).await?;
        best_list = best_list.min(t.elapsed());
        ensure!(
            n == args.rows,
            "bare listing saw {n} rows, expected {}",
            args.rows
        );

        let t = Instant::now();
        let (mut cursor, mut n) = (None, 0);
        loop {
            let d = remote.fetch_since(&scope, cursor.as_ref(), page).await?;
            n += d.len();
            cursor = d.cursor.clone();
            if !d.has_more {
                break;
            }
        }
        best_fetch = best_fetch.min(t.elapsed());
        ensure!(
            n == args.rows,
            "fetch_since saw {n} rows, expected {}",
            args.rows
        );

        best_pull = best_pull.min(pull_into_sqlite(remote.clone(), &scope, page, args.rows).await?);
    }
    let rate = |d: Duration| args.rows as f64 / d.as_secs_f64();
    println!("server_list_s: {:.3}", best_list.as_secs_f64());
    println!("server_list_rows_per_s: {:.0}", rate(best_list));
    println!("fetch_s: {:.3}", best_fetch.as_secs_f64());
    println!("fetch_rows_per_s: {:.0}", rate(best_fetch));
    println!("pull_s: {:.3}", best_pull.as_secs_f64());
    println!("pull_rows_per_s: {:.0}", rate(best_pull));
    println!(
        "fetch_overhead_ratio: {:.3}",
        best_fetch.as_secs_f64() / best_list.as_secs_f64()
    );
    println!(
        "client_overhead_ratio: {:.3}",
        best_pull.as_secs_f64() / best_list.as_secs_f64()
    );
    Ok(())
}

/// Pulls the scope into an empty SQLite cache through an orchestrator; returns the time taken.
async fn pull_into_sqlite(
    remote: Arc<AppwriteRemoteStore<TestRecord>>,
    scope: &SyncScope,
    page: usize,
    rows: usize,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let local: Arc<dyn LocalStore<TestRecord>> =
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("cache.sqlite")).await?);
    let orch = Orchestrator::with(
        local,
        remote as Arc<dyn RemoteStore<TestRecord>>,
        Arc::new(LastWriteWins::new()),
        OrchestratorConfig::default()
            .sync_after_write(false)
            .pull_page_size(page),
    );
    let t = Instant::now();
    let report = orch.synchronize(scope).await?;
    let took = t.elapsed();
    ensure!(
        report.pulled == rows,
        "pull got {} rows, expected {rows}",
        report.pulled
    );
    Ok(took)
}
