//! `rcs bench pocketbase --rows N`: pulls from a real PocketBase vs bare listing, in one run.
//!
//! 1. Seeds N `TestRecord`s into a fresh scope of the guide's `records` collection through the
//!    adapter (`batch_upsert`: pre-read + `/api/batch`), timed as `seed_rows_per_s`.
//! 2. The shared client-overhead measurement ([`overhead`]): the bare listing
//!    here is the keyset pages our pull requests (same filter, sort and page size), each body
//!    fetched and dropped, only each page's last `(updated, id)` read to ask for the next one.
//!
//! Superuser credentials: `--email`/`--password`, else `RCS_POCKETBASE_IDENTITY`/`_PASSWORD`,
//! else `RCS_TEST_POCKETBASE_EMAIL`/`_PASSWORD` (what `scripts/start-pocketbase.sh` prints).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use remote_cache_sync::remote::pocketbase::{Credentials, PocketBaseConfig, PocketBaseRemoteStore};
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{RemoteStore, SyncScope};
use serde::Deserialize;

use super::overhead::{self, BareList, Common, Plan};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
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

/// Keyset listing of the scope, bodies dropped.
struct Bare {
    http: reqwest::Client,
    url: String,
    token: String,
    owner: String,
    page: usize,
}

#[async_trait]
impl BareList for Bare {
    async fn list(&self) -> anyhow::Result<usize> {
        bare_list(&self.http, &self.url, &self.token, &self.owner, self.page).await
    }
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
    args.common.check()?;
    let page = args.common.page.min(1000);
    let rows = args.common.rows;
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
        for start in (0..rows).step_by(5_000) {
            let recs = overhead::records(start..(start + 5_000).min(rows), "PocketBase", base);
            remote.batch_upsert(&scope, &recs).await?;
        }
    }
    let seed = started.elapsed();
    println!("rows: {rows}");
    println!("page_size: {page}");
    if !args.no_seed {
        overhead::print_seed(rows, seed);
    }

    // 2. The shared measurement.
    let http = reqwest::Client::new();
    let token = login(&http, &args.url, &email, &password).await?;
    let bare = Bare {
        http,
        url: args.url.clone(),
        token,
        owner,
        page,
    };
    let common = Common {
        page,
        ..args.common.clone()
    };
    let plan = Plan {
        remote,
        sequential: Some(sequential),
        scope: &scope,
        common: &common,
    };
    overhead::client_overhead(plan, &bare).await
}
