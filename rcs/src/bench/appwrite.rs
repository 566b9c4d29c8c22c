//! `rcs bench appwrite --rows N`: pulls from an Appwrite server (here: the stand-in that
//! `scripts/start-appwrite.sh` starts) vs bare listing, in one run.
//!
//! 1. Seeds N `TestRecord`s into a fresh scope of the guide's `records` collection through the
//!    adapter (`batch_upsert`: transactions of 100 operations), timed as `seed_rows_per_s`.
//! 2. The shared client-overhead measurement ([`overhead`]): the bare listing
//!    here is the keyset pages our pull requests (same queries, page size and `total=false`),
//!    each body fetched and dropped, only each page's last `($updatedAt, $id)` read to ask for
//!    the next one.
//!
//! Endpoint, project and API key: `--endpoint`/`--project`, `RCS_TEST_APPWRITE_*` (what
//! `scripts/start-appwrite.sh` prints); the key only from `RCS_APPWRITE_KEY` or
//! `RCS_TEST_APPWRITE_KEY`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use remote_cache_sync::remote::appwrite::{AppwriteConfig, AppwriteRemoteStore, Credential};
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{RemoteStore, SyncScope};
use serde::Deserialize;
use serde_json::json;

use super::overhead::{self, BareList, Common, Plan};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// API endpoint (`http://HOST:PORT/v1`).
    #[arg(long, env = "RCS_TEST_APPWRITE_ENDPOINT")]
    endpoint: String,
    /// Project id.
    #[arg(long, env = "RCS_TEST_APPWRITE_PROJECT")]
    project: String,
    /// Database id (the guide's).
    #[arg(long, default_value = "rcs")]
    database: String,
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

/// Keyset listing of the scope, bodies dropped.
struct Bare<'a> {
    http: reqwest::Client,
    args: &'a Args,
    key: String,
    owner: String,
}

#[async_trait]
impl BareList for Bare<'_> {
    async fn list(&self) -> anyhow::Result<usize> {
        bare_list(
            &self.http,
            self.args,
            &self.key,
            &self.owner,
            self.args.common.page,
        )
        .await
    }
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
    args.common.check()?;
    let (rows, page) = (args.common.rows, args.common.page);
    let config = AppwriteConfig {
        max_page_size: page,
        ..AppwriteConfig::default()
    };
    let build = |config: AppwriteConfig| {
        AppwriteRemoteStore::<TestRecord>::builder(&args.endpoint, &args.project, &args.database)
            .credential(Credential::api_key(&key))
            .config(config)
            .build()
    };
    let remote = Arc::new(build(config.clone())?);
    let sequential = Arc::new(build(AppwriteConfig {
        prefetch: false,
        ..config
    })?);
    let owner = format!("bench-{}", uuid::Uuid::now_v7().simple());
    println!("owner: {owner}");
    let scope = SyncScope::new("records", [("owner", owner.clone())])?;

    let base = remote_cache_sync::Timestamp::now();
    let started = Instant::now();
    for start in (0..rows).step_by(5_000) {
        let recs = overhead::records(start..(start + 5_000).min(rows), "Appwrite", base);
        remote.batch_upsert(&scope, &recs).await?;
    }
    let seed = started.elapsed();
    println!("rows: {rows}");
    println!("page_size: {page}");
    overhead::print_seed(rows, seed);

    let bare = Bare {
        http: reqwest::Client::new(),
        args: &args,
        key,
        owner,
    };
    let plan = Plan {
        remote,
        sequential: Some(sequential),
        scope: &scope,
        common: &args.common,
    };
    overhead::client_overhead(plan, &bare).await
}
