//! `rcs bench supabase --rows N`: exact-mode pulls from a Supabase project (here: the stand-in
//! that `scripts/start-supabase.sh` starts, PostgREST's behaviour over a real PostgreSQL) vs
//! bare `rcs_pull` calls, in one run.
//!
//! 1. Signs up a fresh user (`POST /auth/v1/signup`) and seeds N `TestRecord`s into a fresh
//!    scope of the guide's `rcs_records` table as that user's rows, straight through SQL on the
//!    database behind the API (`--db-url`): one transaction, the scope's advisory lock taken as
//!    the guide requires of every writer, rows sent as arrays (`unnest`). Timed as
//!    `seed_rows_per_s`.
//! 2. The shared client-overhead measurement ([`overhead`]), as that user
//!    (RLS applies): the bare listing is `POST /rest/v1/rpc/rcs_pull` with the arguments our pull
//!    sends (`p_limit` = page + 1), each body fetched and dropped, only the `seq` of each page's
//!    last row read to ask for the next one.
//!
//! URL and keys: `--url`, `RCS_TEST_SUPABASE_URL`; the anon key from `RCS_SUPABASE_ANON_KEY` or
//! `RCS_TEST_SUPABASE_ANON_KEY`; the database from `--db-url` or `RCS_TEST_SUPABASE_DB_URL`
//! (what the script prints).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use remote_cache_sync::SyncScope;
use remote_cache_sync::remote::supabase::{Credentials, SupabaseRemoteStore};
use remote_cache_sync::testing::TestRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::overhead::{self, BareList, Common, Plan};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Project URL (the stand-in's).
    #[arg(long, env = "RCS_TEST_SUPABASE_URL")]
    url: String,
    /// The PostgreSQL database behind the API, for seeding (prefer the environment: it holds a
    /// password).
    #[arg(long, env = "RCS_TEST_SUPABASE_DB_URL", hide_env_values = true)]
    db_url: String,
}

/// A signed-in user.
struct User {
    id: String,
    access: String,
    refresh: String,
}

async fn signup(http: &reqwest::Client, url: &str, anon: &str) -> anyhow::Result<User> {
    let email = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
    let resp = http
        .post(format!("{url}/auth/v1/signup"))
        .header("apikey", anon)
        .json(&json!({"email": email, "password": format!("pw-{}", uuid::Uuid::now_v7().simple())}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "sign-up failed: {}",
        resp.status()
    );
    let v: Value = resp.json().await?;
    let s = |v: &Value| v.as_str().map(str::to_owned).context("sign-up answer");
    Ok(User {
        id: s(&v["user"]["id"])?,
        access: s(&v["access_token"])?,
        refresh: s(&v["refresh_token"])?,
    })
}

/// Seeds `rows` records as `user`'s rows of `scope`, through SQL.
async fn seed(db_url: &str, scope: &SyncScope, user: &str, rows: usize) -> anyhow::Result<()> {
    let (mut db, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database behind the API")?;
    let conn = tokio::spawn(conn);
    let canonical = scope.canonical();
    let base = remote_cache_sync::Timestamp::now();
    let tx = db.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('rcs_records' || E'\\n' || $1, 0))",
        &[&canonical],
    )
    .await?;
    let insert = tx
        .prepare(
            "INSERT INTO rcs_records (scope, id, seq, version, deleted, data, user_id)
             SELECT $1, r.id, nextval('rcs_seq'), r.version, false, r.data::jsonb, ($2::text)::uuid
             FROM unnest($3::text[], $4::text[], $5::text[]) AS r(id, version, data)",
        )
        .await?;
    for start in (0..rows).step_by(5_000) {
        let recs = overhead::records(start..(start + 5_000).min(rows), "Supabase", base);
        let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        let versions: Vec<String> = recs.iter().map(|r| r.updated_at.to_string()).collect();
        let data = recs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&canonical, &user, &ids, &versions, &data];
        tx.execute(&insert, &params).await?;
    }
    tx.commit().await?;
    drop(db);
    conn.await??;
    Ok(())
}

#[derive(Deserialize)]
struct Seq {
    seq: i64,
}

#[derive(Deserialize)]
struct Page {
    rows: Vec<Seq>,
}

/// `rcs_pull` pages as our pull asks for them, bodies dropped.
struct Bare {
    http: reqwest::Client,
    url: String,
    anon: String,
    token: String,
    scope: String,
    page: usize,
}

#[async_trait]
impl BareList for Bare {
    async fn list(&self) -> anyhow::Result<usize> {
        let url = format!("{}/rest/v1/rpc/rcs_pull", self.url);
        let (mut cursor, mut rows) = (0i64, 0);
        loop {
            let resp = self
                .http
                .post(&url)
                .header("apikey", &self.anon)
                .bearer_auth(&self.token)
                .json(&json!({"p_scope": self.scope, "p_cursor": cursor, "p_limit": self.page + 1}))
                .send()
                .await?;
            ensure!(resp.status().is_success(), "rcs_pull: {}", resp.status());
            let body = resp.bytes().await?;
            let p: Page = serde_json::from_slice(&body)?;
            rows += p.rows.len().min(self.page);
            if p.rows.len() <= self.page {
                return Ok(rows);
            }
            cursor = p.rows[self.page - 1].seq;
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let anon = std::env::var("RCS_SUPABASE_ANON_KEY")
        .or_else(|_| std::env::var("RCS_TEST_SUPABASE_ANON_KEY"))
        .context("anon key: RCS_SUPABASE_ANON_KEY or RCS_TEST_SUPABASE_ANON_KEY")?;
    args.common.check()?;
    let (rows, page) = (args.common.rows, args.common.page);
    let url = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let user = signup(&http, &url, &anon).await?;
    let owner = format!("bench-{}", uuid::Uuid::now_v7().simple());
    println!("owner: {owner}");
    let scope = SyncScope::new("records", [("owner", owner)])?;

    let started = Instant::now();
    seed(&args.db_url, &scope, &user.id, rows).await?;
    println!("rows: {rows}");
    println!("page_size: {page}");
    overhead::print_seed(rows, started.elapsed());

    let build = |prefetch: bool| {
        SupabaseRemoteStore::<TestRecord>::builder(&url)
            .anon_key(&anon)
            .credentials(Credentials::session(&user.access, &user.refresh))
            .prefetch(prefetch)
            .build()
    };
    let remote = Arc::new(build(true)?);
    remote.authenticate().await.context("Supabase session")?;
    let sequential = Arc::new(build(false)?);
    let bare = Bare {
        http,
        url: url.clone(),
        anon: anon.clone(),
        token: user.access.clone(),
        scope: scope.canonical(),
        page,
    };
    let plan = Plan {
        remote,
        sequential: Some(sequential),
        scope: &scope,
        common: &args.common,
    };
    overhead::client_overhead(plan, &bare).await
}
