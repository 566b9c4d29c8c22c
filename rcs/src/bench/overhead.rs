//! The client-overhead measurement every remote benchmark shares (`rcs bench pocketbase`,
//! `appwrite`, `supabase`), over any [`RemoteStore`]:
//!
//! 1. **Bare listing** (`server_list_rows_per_s`): the same pages our pull requests (same
//!    queries, order and page size), fetched with a plain HTTP client and dropped; only what
//!    asks for the next page is read. The server + network floor, written per backend
//!    ([`BareList`]).
//! 2. **Adapter fetch** (`fetch_rows_per_s`): `fetch_since` page by page, records decoded,
//!    nothing stored.
//! 3. **Pull** (`pull_rows_per_s`): an [`Orchestrator`] with an empty [`SqliteLocalStore`] runs
//!    `synchronize`: every page decoded, applied and its sync point saved in one transaction,
//!    with the adapter's next-page prefetch on (its default).
//! 4. The same pull with the prefetch off (`pull_sequential_*`), when the benchmark gives such
//!    a store: the bare listing is sequential too, so this is the like-for-like client cost.
//!
//! Steps 1–4 alternate for `--rounds` rounds; the best time of each counts.
//! `client_overhead_ratio` = pull time / bare listing time (target ≤ 1.15).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use async_trait::async_trait;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{
    LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, RemoteStore, SyncScope, Timestamp,
};

/// Arguments every remote benchmark takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Records to seed and pull.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Rows per page.
    #[arg(long, default_value_t = 1000)]
    pub page: usize,
    /// Measurement rounds (best counts).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

impl Common {
    /// Fails on zero values.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.rows > 0 && self.page > 0 && self.rounds > 0,
            "rows, page and rounds must be > 0"
        );
        Ok(())
    }
}

/// The pages our pull asks for, fetched bare and dropped: returns the rows seen.
#[async_trait]
pub trait BareList: Send + Sync {
    /// Lists the whole scope once.
    async fn list(&self) -> anyhow::Result<usize>;
}

/// Records `range` of a benchmark: ids `r00000000`…, versions one microsecond apart from `base`,
/// a title of realistic size.
pub fn records(range: std::ops::Range<usize>, backend: &str, base: Timestamp) -> Vec<TestRecord> {
    range
        .map(|i| {
            TestRecord::new(
                format!("r{i:08}"),
                format!(
                    "record {i} of the {backend} benchmark, some text to give it a realistic size"
                ),
                base + Duration::from_micros(i as u64),
            )
            .with_n(i as i64)
        })
        .collect()
}

/// Prints the seeding figures.
pub fn print_seed(rows: usize, took: Duration) {
    println!("seed_s: {:.2}", took.as_secs_f64());
    println!("seed_rows_per_s: {:.0}", rows as f64 / took.as_secs_f64());
}

/// What to measure.
pub struct Plan<'a> {
    /// The store, prefetch on.
    pub remote: Arc<dyn RemoteStore<TestRecord>>,
    /// The same store with its prefetch off, if the adapter has the switch.
    pub sequential: Option<Arc<dyn RemoteStore<TestRecord>>>,
    /// The scope holding exactly `common.rows` records.
    pub scope: &'a SyncScope,
    /// Rows, page size, rounds.
    pub common: &'a Common,
}

/// Runs steps 1–4 (module docs) and prints their figures and ratios.
pub async fn client_overhead(plan: Plan<'_>, bare: &dyn BareList) -> anyhow::Result<()> {
    let Plan {
        remote,
        sequential,
        scope,
        common,
    } = plan;
    let (rows, page) = (common.rows, common.page);
    let expect = |what: &str, n: usize| {
        ensure!(n == rows, "{what} saw {n} rows, expected {rows}");
        Ok(())
    };
    let (mut best_list, mut best_fetch, mut best_pull, mut best_seq) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..common.rounds {
        let t = Instant::now();
        let n = bare.list().await?;
        best_list = best_list.min(t.elapsed());
        expect("bare listing", n)?;

        let t = Instant::now();
        let n = fetch_all(remote.as_ref(), scope, page).await?;
        best_fetch = best_fetch.min(t.elapsed());
        expect("fetch_since", n)?;

        best_pull = best_pull.min(pull_into_sqlite(remote.clone(), scope, page, rows).await?);
        if let Some(seq) = &sequential {
            best_seq = best_seq.min(pull_into_sqlite(seq.clone(), scope, page, rows).await?);
        }
    }
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let ratio = |d: Duration| d.as_secs_f64() / best_list.as_secs_f64();
    println!("server_list_s: {:.3}", best_list.as_secs_f64());
    println!("server_list_rows_per_s: {:.0}", rate(best_list));
    println!("fetch_s: {:.3}", best_fetch.as_secs_f64());
    println!("fetch_rows_per_s: {:.0}", rate(best_fetch));
    println!("pull_s: {:.3}", best_pull.as_secs_f64());
    println!("pull_rows_per_s: {:.0}", rate(best_pull));
    if sequential.is_some() {
        println!("pull_sequential_s: {:.3}", best_seq.as_secs_f64());
        println!("pull_sequential_rows_per_s: {:.0}", rate(best_seq));
    }
    println!("fetch_overhead_ratio: {:.3}", ratio(best_fetch));
    println!("client_overhead_ratio: {:.3}", ratio(best_pull));
    if sequential.is_some() {
        println!("client_overhead_ratio_sequential: {:.3}", ratio(best_seq));
    }
    Ok(())
}

/// `fetch_since` through the whole scope, pages dropped; returns the rows seen.
async fn fetch_all(
    remote: &dyn RemoteStore<TestRecord>,
    scope: &SyncScope,
    page: usize,
) -> anyhow::Result<usize> {
    let (mut cursor, mut n) = (None, 0);
    loop {
        let d = remote.fetch_since(scope, cursor.as_ref(), page).await?;
        n += d.len();
        cursor = d.cursor.clone();
        if !d.has_more {
            return Ok(n);
        }
    }
}

/// Pulls the scope into an empty SQLite cache through an orchestrator; returns the time taken.
async fn pull_into_sqlite(
    remote: Arc<dyn RemoteStore<TestRecord>>,
    scope: &SyncScope,
    page: usize,
    rows: usize,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let local: Arc<dyn LocalStore<TestRecord>> =
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("cache.sqlite")).await?);
    let orch = Orchestrator::with(
        local,
        remote,
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
