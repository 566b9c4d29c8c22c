//! `rcs bench pocketbase --rows N`: pulls from a real PocketBase vs bare listing, in one run.
//!
//! 1. Seeds N `TestRecord`s into a fresh scope of the guide's `records` collection through the
//!    adapter (`batch_upsert`: pre-read + `/api/batch`), timed as `seed_rows_per_s`.
//! 2. **Bare listing** (`server_list_rows_per_s`): the same keyset pages our pull requests
//!    (same filter, sort and page size), each body fetched and dropped; only each page's last
//!    `(updated, id)` is read to ask for the next one. This is the server + network floor.
//! 3. **Adapter fetch** (`fetch_rows_per_s`): `fetch_since` page by page, records decoded, nothing
//!    stored.
//! 4. **Pull** (`pull_rows_per_s`): an [`Orchestrator`] with an empty [`SqliteLocalStore`] runs
//!    `synchronize` (every page decoded, applied and its sync point saved in one transaction).
//!
//! 5. The same pull with the adapter's next-page prefetch turned off (`pull_sequential_*`): the
//!    bare listing is sequential too, so this is the like-for-like client cost.
//!
//! Steps 2–5 alternate for `--rounds` rounds; the best time of each counts.
//! `client_overhead_ratio` = pull time / bare listing time.
//!
//! Superuser credentials: `--email`/`--password`, else `RCS_POCKETBASE_IDENTITY`/`_PASSWORD`,
//! else `RCS_TEST_POCKETBASE_EMAIL`/`_PASSWORD` (what `scripts/start-pocketbase.sh` prints).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::pocketbase::{Credentials, PocketBaseConfig, PocketBaseRemoteStore};
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{
    LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, RemoteStore, SyncScope,
};
use serde::Deserialize;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Records to seed and pull.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// PocketBase URL (with the guide's `records` collection).
    #[arg(
        long,
        env = "RCS_TEST_POCKETBASE_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    url: String,
    /// Superuser email.
    #[arg(long)]
    email: Option<String>,
    /// Superuser password (prefer the environment).
    #[arg(long)]
    password: Option<String>,
    /// Rows per page (PocketBase caps at 1000).
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Measurement rounds (best counts).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Scope owner to use (default: a new one). With `--no-seed`, measure rows seeded by an
    /// earlier run with the same `--owner` and `--rows`.
    #[arg(long)]
    owner: Option<String>,
    /// Skip seeding.
    #[arg(long)]
    no_seed: bool,
}

fn var(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok())
}

#[derive(Deserialize)]
struct Key {
    id: String,
    updated: String,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Key>,
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Keyset listing of the scope, bodies dropped. Returns rows seen.
async fn bare_list(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    owner: &str,
    page: usize,
) -> anyhow::Result<usize> {
    let list = format!(
        "{}/api/collections/records/records",
        url.trim_end_matches('/')
    );
    let per_page = page.to_string();
    let mut last: Option<(String, String)> = None;
    let mut rows = 0;
    loop {
        let filter = match &last {
            None => format!("(owner = {})", quote(owner)),
            Some((u, i)) => {
                let (u, i) = (quote(u), quote(i));
                format!(
                    "(owner = {}) && (updated >= {u} && (updated > {u} || id > {i}))",
                    quote(owner)
                )
            }
        };
        let resp = http
            .get(&list)
            .header("Authorization", token)
            .query(&[
                ("filter", filter.as_str()),
                ("sort", "updated,id"),
                ("perPage", &per_page),
                ("skipTotal", "1"),
            ])
            .send()
            .await?;
        ensure!(resp.status().is_success(), "list failed: {}", resp.status());
        let body = resp.bytes().await?;
        let page_rows: Page = serde_json::from_slice(&body)?;
        let n = page_rows.items.len();
        rows += n;
        match page_rows.items.into_iter().last() {
            Some(k) if n == page => last = Some((k.updated, k.id)),
            _ => return Ok(rows),
        }
    }
}

async fn login(
    http: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let resp = http
        .post(format!(
            "{}/api/collections/_superusers/auth-with-password",
            url.trim_end_matches('/')
        ))
        .json(&serde_json::json!({"identity": email, "password": password}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "superuser login failed: {}",
        resp.status()
    );
    let v: serde_json::Value = resp.json().await?;
    Ok(v["token"].as_str().context("no token")?.to_owned())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let email = args
        .email
        .clone()
        .or_else(|| var(&["RCS_POCKETBASE_IDENTITY", "RCS_TEST_POCKETBASE_EMAIL"]))
        .context(
            "superuser email: --email, RCS_POCKETBASE_IDENTITY or RCS_TEST_POCKETBASE_EMAIL",
        )?;
    let password = args
        .password
        .clone()
        .or_else(|| var(&["RCS_POCKETBASE_PASSWORD", "RCS_TEST_POCKETBASE_PASSWORD"]))
        .context("superuser password: --password, RCS_POCKETBASE_PASSWORD or RCS_TEST_POCKETBASE_PASSWORD")?;
    ensure!(
        args.rows > 0 && args.page > 0 && args.rounds > 0,
        "rows, page and rounds must be > 0"
    );
    let page = args.page.min(1000);
    let config = PocketBaseConfig {
        batch_size: 500,
        max_page_size: page,
        ..PocketBaseConfig::default()
    };
    let remote = Arc::new(PocketBaseRemoteStore::<TestRecord>::with_config(
        &args.url,
        Credentials::superuser(&email, &password),
        config.clone(),
    )?);
    let sequential = Arc::new(PocketBaseRemoteStore::<TestRecord>::with_config(
        &args.url,
        Credentials::superuser(&email, &password),
        PocketBaseConfig {
            prefetch: false,
            ..config
        },
    )?);
    remote
        .authenticate()
        .await
        .context("PocketBase superuser login")?;
    let owner = args
        .owner
        .clone()
        .unwrap_or_else(|| format!("bench-{}", uuid::Uuid::now_v7().simple()));
    println!("owner: {owner}");
    let scope = SyncScope::new("records", [("owner", owner.clone())])?;

    // 1. Seed.
    let base = remote_cache_sync::Timestamp::now();
    let started = Instant::now();
    if !args.no_seed {
        let chunk = 5_000;
        for start in (0..args.rows).step_by(chunk) {
            let recs: Vec<TestRecord> = (start..(start + chunk).min(args.rows))
                .map(|i| {
                    TestRecord::new(
                        format!("r{i:08}"),
                        format!("record {i} of the PocketBase benchmark, some text to give it a realistic size"),
                        base + Duration::from_micros(i as u64),
                    )
                    .with_n(i as i64)
                })
                .collect();
            remote.batch_upsert(&scope, &recs).await?;
        }
    }
    let seed = started.elapsed();
    println!("rows: {}", args.rows);
    println!("page_size: {page}");
    if !args.no_seed {
        println!("seed_s: {:.2}", seed.as_secs_f64());
        println!(
            "seed_rows_per_s: {:.0}",
            args.rows as f64 / seed.as_secs_f64()
        );
    }

    let http = reqwest::Client::new();
    let token = login(&http, &args.url, &email, &password).await?;
    let (mut best_list, mut best_fetch, mut best_pull) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut best_seq = Duration::MAX;
    for _ in 0..args.rounds {
        // 2. Bare listing.
        let t = Instant::now();
        let n = bare_list(&http, &args.url, &token, &owner, page).await?;
        best_list = best_list.min(t.elapsed());
        ensure!(
            n == args.rows,
            "bare listing saw {n} rows, expected {}",
            args.rows
        );

        // 3. Adapter fetch only.
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

        // 4. Full pull into an empty SQLite cache; 5. the same without prefetch.
        best_pull = best_pull.min(pull_into_sqlite(remote.clone(), &scope, page, args.rows).await?);
        best_seq =
            best_seq.min(pull_into_sqlite(sequential.clone(), &scope, page, args.rows).await?);
    }
    let rate = |d: Duration| args.rows as f64 / d.as_secs_f64();
    println!("server_list_s: {:.3}", best_list.as_secs_f64());
    println!("server_list_rows_per_s: {:.0}", rate(best_list));
    println!("fetch_s: {:.3}", best_fetch.as_secs_f64());
    println!("fetch_rows_per_s: {:.0}", rate(best_fetch));
    println!("pull_s: {:.3}", best_pull.as_secs_f64());
    println!("pull_rows_per_s: {:.0}", rate(best_pull));
    println!("pull_sequential_s: {:.3}", best_seq.as_secs_f64());
    println!("pull_sequential_rows_per_s: {:.0}", rate(best_seq));
    println!(
        "fetch_overhead_ratio: {:.3}",
        best_fetch.as_secs_f64() / best_list.as_secs_f64()
    );
    println!(
        "client_overhead_ratio: {:.3}",
        best_pull.as_secs_f64() / best_list.as_secs_f64()
    );
    println!(
        "client_overhead_ratio_sequential: {:.3}",
        best_seq.as_secs_f64() / best_list.as_secs_f64()
    );
    Ok(())
}

/// Pulls the scope into an empty SQLite cache through an orchestrator; returns the time taken.
async fn pull_into_sqlite(
    remote: Arc<PocketBaseRemoteStore<TestRecord>>,
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
