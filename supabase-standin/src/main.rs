//! A stand-in for a Supabase project's HTTP side, for the tests of the `supabase` adapter
//! (no PostgREST or GoTrue binary can be installed on the test machines).
//!
//! It copies the documented behaviour of the three parts a client talks to, in front of a REAL
//! PostgreSQL where the data, the RPC functions and row-level security live:
//! - the API gateway (Kong): every request needs an `apikey` (the anon or service key);
//! - PostgREST (`/rest/v1`): per request, verify the HS256 JWT, `SET LOCAL ROLE` to its `role`
//!   claim (the anon role without a JWT), `set_config('request.jwt.claims', …, true)`, run the
//!   table query or RPC in one transaction, answer with PostgREST's statuses, headers and error
//!   bodies. See [`postgrest`];
//! - GoTrue (`/auth/v1`): sign-up, password and refresh-token grants (rotating refresh tokens),
//!   the current user. See [`gotrue`].
//!
//! Usage: `rcs-supabase-standin --pg URL --guide docs/backends/supabase.md [--port N]
//! [--jwt-secret S] [--jwt-exp SECONDS]`. It creates a fresh database next to the one `--pg`
//! names, applies the platform shapes and the guide's SQL blocks verbatim, and prints one line
//! `READY <port> <anon key> <service key> <jwt secret> <database URL>` once it listens.
//!
//! Written in Rust with axum and tokio-postgres (both already used by the workspace), so the
//! test set-up needs no other toolchain, and it builds with the workspace.

// Handlers return early with the error answer itself (`Result<_, Response>`); its size is
// irrelevant for a test server.
#![allow(clippy::result_large_err)]

mod gotrue;
mod jwt;
mod postgrest;
mod query;
mod setup;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{Value, json};

/// Shared state.
pub struct App {
    pub pool: Pool,
    pub secret: Vec<u8>,
    pub anon_key: String,
    pub service_key: String,
    /// Access-token lifetime GoTrue gives (`GOTRUE_JWT_EXP`).
    pub jwt_exp: i64,
    /// `ALTER ROLE … SET` settings, applied per request like PostgREST does.
    pub role_settings: HashMap<String, Vec<(String, String)>>,
    pub issuer: String,
}

pub type Shared = Arc<App>;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The API gateway's key check (Kong `key-auth`, as Supabase configures it): `apikey` header (or
/// query parameter) must be one of the project's keys.
pub fn gateway(app: &App, headers: &HeaderMap, query: Option<&str>) -> Result<(), Response> {
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "apikey")
            .map(|(_, v)| v.into_owned())
    });
    let key = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(from_query);
    match key {
        None => Err(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "No API key found in request"}),
        )),
        Some(k) if k == app.anon_key || k == app.service_key => Ok(()),
        Some(_) => Err(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Invalid API key"}),
        )),
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

async fn load_role_settings(pool: &Pool) -> Result<HashMap<String, Vec<(String, String)>>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT r.rolname::text, unnest(s.setconfig)
             FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
             WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))",
            &[],
        )
        .await?;
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in rows {
        let role: String = row.get(0);
        let setting: String = row.get(1);
        if let Some((k, v)) = setting.split_once('=') {
            out.entry(role)
                .or_default()
                .push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let pg = arg(&args, "--pg").context("--pg URL is required")?;
    let guide_path = arg(&args, "--guide").context("--guide FILE is required")?;
    let port: u16 = arg(&args, "--port").map_or(Ok(0), |p| p.parse())?;
    let secret = arg(&args, "--jwt-secret").unwrap_or_else(|| {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    });
    if secret.len() < 32 {
        bail!("the JWT secret must be at least 32 characters (as PostgREST requires)");
    }
    let jwt_exp: i64 = arg(&args, "--jwt-exp").map_or(Ok(3600), |p| p.parse())?;
    let guide =
        std::fs::read_to_string(&guide_path).with_context(|| format!("reading {guide_path}"))?;
    let db_url = setup::create_database(&pg, &guide).await?;
    let config: tokio_postgres::Config = db_url.parse()?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(16).build()?;
    let role_settings = load_role_settings(&pool).await?;
    let secret = secret.into_bytes();
    // The project's API keys are JWTs signed with the same secret (Supabase's anon and
    // service_role keys), valid for ten years.
    let now = jiff::Timestamp::now().as_second();
    let key = |role: &str| {
        jwt::sign(
            &json!({"iss": "supabase", "role": role, "iat": now, "exp": now + 10 * 365 * 86_400}),
            &secret,
        )
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let app = Arc::new(App {
        pool,
        anon_key: key("anon"),
        service_key: key("service_role"),
        secret: secret.clone(),
        jwt_exp,
        role_settings,
        issuer: format!("http://127.0.0.1:{port}/auth/v1"),
    });
    let router = Router::new()
        .route("/rest/v1/rpc/{function}", post(postgrest::rpc))
        .route(
            "/rest/v1/{table}",
            get(postgrest::read)
                .post(postgrest::insert)
                .patch(postgrest::update),
        )
        .route("/auth/v1/signup", post(gotrue::signup))
        .route("/auth/v1/token", post(gotrue::token))
        .route("/auth/v1/user", get(gotrue::user))
        .route("/auth/v1/logout", post(gotrue::logout))
        .route("/auth/v1/health", get(gotrue::health))
        .route("/health", get(|| async { "ok" }))
        .with_state(app.clone());
    println!(
        "READY {port} {} {} {} {db_url}",
        app.anon_key,
        app.service_key,
        String::from_utf8_lossy(&secret)
    );
    axum::serve(listener, router).await?;
    Ok(())
}
