//! `rcs serve`: our HTTP sync server (docs/protocol.md) over an embedded SQLite file or a
//! PostgreSQL database.
//!
//! Prints `listening: http://ADDR` on stdout once bound (so scripts and tests can use port 0),
//! stops gracefully on SIGINT or SIGTERM (ending the open event streams first). Over
//! PostgreSQL, each server hears the others' writes through `LISTEN/NOTIFY` and announces them
//! on its own event streams.

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::http::{HeaderValue, Method, header};
use remote_cache_sync::JsonRecord;
use remote_cache_sync::remote::postgres::{
    PostgresOptions, PostgresRemoteStore, redact_connection_string,
};
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{
    AllowAll, Authorizer, DEFAULT_MAX_BODY_BYTES, Server, StaticTokens, serve, shutdown_signal,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Arguments of `rcs serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Storage: a SQLite file path (created when missing), or a `postgres://` URL (several
    /// servers may share one database). Also read from RCS_SERVE_DB, which keeps a database
    /// password out of the process list.
    #[arg(long, env = "RCS_SERVE_DB", hide_env_values = true)]
    db: String,
    /// Grants a bearer token the scopes matching a pattern: `TOKEN:PATTERN`, where PATTERN is
    /// `name[,key=value]*` and `*` matches any name or value (e.g. `s3cret:records,owner=alice`).
    /// Repeat for more tokens or patterns. Also read from RCS_SERVE_TOKENS (one spec per line),
    /// which keeps tokens out of the process list.
    #[arg(long = "token", value_name = "TOKEN:PATTERN")]
    tokens: Vec<String>,
    /// Accept every request without a token (development only).
    #[arg(long, conflicts_with = "tokens")]
    allow_all: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Longest time one request may take, body upload included (seconds).
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// Interval of the heartbeat on idle event streams (`GET /v1/events`), in seconds.
    #[arg(long, default_value_t = 15)]
    heartbeat: u64,
    /// Answers CORS (preflights and `Access-Control-Allow-Origin`) for this origin, e.g.
    /// `http://127.0.0.1:5173`, so a page served there may call the server from a browser.
    /// Repeat for more origins; other origins get no CORS headers.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
}

/// The CORS layer for `origins` (`None` when there are none): only those origins are answered,
/// for the protocol's methods and the headers our clients send (the bearer token, JSON bodies).
pub(crate) fn cors_layer(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let mut allowed = Vec::with_capacity(origins.len());
    for origin in origins {
        let trimmed = origin.trim_end_matches('/');
        let host = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"));
        let valid = host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', '*']));
        if !valid {
            bail!(
                "--cors-origin {origin:?}: give scheme://host[:port], e.g. http://127.0.0.1:5173"
            );
        }
        allowed
            .push(HeaderValue::from_str(trimmed).with_context(|| {
                format!("--cors-origin {origin:?} is not a valid header value")
            })?);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// Opens the storage; SQLite also serves pulls through the raw fast path.
async fn open_storage(db: &str, auth: Arc<dyn Authorizer>) -> anyhow::Result<Server> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let store = PostgresRemoteStore::<JsonRecord>::connect(db, PostgresOptions::default())
            .await
            .with_context(|| {
                format!(
                    "cannot open PostgreSQL storage {}",
                    redact_connection_string(db)
                )
            })?;
        // Several servers may share the database: each announces the others' writes to its
        // event streams through LISTEN/NOTIFY.
        let store = Arc::new(store);
        Ok(Server::from_arcs(store.clone(), auth).change_feed(store))
    } else {
        let store = SqliteRemoteStore::<JsonRecord>::open(db)
            .await
            .with_context(|| format!("cannot open SQLite storage {db}"))?;
        Ok(Server::from_arcs(Arc::new(store.clone()), auth).raw_feed(Arc::new(store)))
    }
}

fn authorizer(args: &Args) -> anyhow::Result<Arc<dyn Authorizer>> {
    let mut specs = args.tokens.clone();
    if let Ok(env) = std::env::var("RCS_SERVE_TOKENS") {
        specs.extend(
            env.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if args.allow_all {
        if !specs.is_empty() {
            bail!("--allow-all cannot be combined with tokens");
        }
        tracing::warn!("--allow-all: every request is accepted without a token");
        return Ok(Arc::new(AllowAll));
    }
    if specs.is_empty() {
        bail!("give at least one --token TOKEN:PATTERN (or --allow-all for development)");
    }
    let mut tokens = StaticTokens::new();
    for (i, spec) in specs.iter().enumerate() {
        // Never echo the spec: it holds the token.
        tokens
            .grant_spec(spec)
            .map_err(|e| anyhow::anyhow!("token spec #{}: {e}", i + 1))?;
    }
    Ok(Arc::new(tokens))
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let auth = authorizer(&args)?;
    let cors = cors_layer(&args.cors_origins)?;
    let server = open_storage(&args.db, auth)
        .await?
        .max_body_bytes(args.max_body_bytes)
        .request_timeout(std::time::Duration::from_secs(args.request_timeout.max(1)))
        .heartbeat(std::time::Duration::from_secs(args.heartbeat.max(1)));
    // Ends the event streams at shutdown (a graceful shutdown waits for open connections).
    let stop_streams = server.stop_handle();
    let mut router = server.into_router();
    if let Some(cors) = cors {
        tracing::info!(origins = ?args.cors_origins, "CORS enabled");
        router = router.layer(cors);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening: http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "rcs serve started");
    serve(listener, router, async move {
        shutdown_signal().await;
        stop_streams.cancel();
    })
    .await?;
    tracing::info!("rcs serve stopped");
    Ok(())
}
