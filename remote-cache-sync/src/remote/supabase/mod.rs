//! [`SupabaseRemoteStore`]: a [`RemoteStore`](crate::remote::RemoteStore) over a Supabase
//! project's REST API (PostgREST, `/rest/v1`) and Auth API (GoTrue, `/auth/v1`), as the signed-in
//! user under row-level security (feature `supabase`). Set-up, SQL and behaviour:
//! `docs/backends/supabase.md`. Verified against a stand-in that copies PostgREST's and
//! GoTrue's documented behaviour over a real PostgreSQL, not against a real Supabase server.
//!
//! ```no_run
//! # async fn doc() -> remote_cache_sync::Result<()> {
//! use remote_cache_sync::JsonRecord;
//! use remote_cache_sync::remote::supabase::{Credentials, Mode, SupabaseRemoteStore};
//! let store = SupabaseRemoteStore::<JsonRecord>::builder("https://xyz.supabase.co")
//!     .anon_key(std::env::var("SUPABASE_ANON_KEY").unwrap_or_default())
//!     .credentials(Credentials::password("me@example.com", "…"))
//!     .mode(Mode::Exact)
//!     .build()?;
//! store.authenticate().await?;
//! # Ok(()) }
//! ```
//!
//! # Modes
//! - [`Mode::Exact`] (default): the guide's `rcs_pull`/`rcs_push` functions (`SECURITY
//!   INVOKER`), called as RPC. Pulls follow a server sequence handed out in commit order per
//!   scope (the guarantee `PostgresRemoteStore` uses), so a late commit is never skipped; pushes
//!   do compare-and-set and op-id idempotency in one transaction.
//! - [`Mode::Table`]: plain table requests; pulls page on a trigger-stamped `updated_at` and `id`
//!   with an overlap window and a seen-set; pushes are conditional `PATCH`/`POST` per op.
//!
//! In both modes, while the caller applies a page that has more, the next one is already being
//! fetched ([`SupabaseConfig::prefetch`], on by default; the shared prefetcher of every HTTP
//! adapter).
//!
//! # Auth
//! `apikey: <anon key>` on every request and `Authorization: Bearer <JWT>` (see
//! [`Credentials`]). Sessions are renewed through GoTrue's refresh grant before the access
//! token expires; a 401 renews once and retries. An expired or invalid JWT is
//! [`Error::Unauthorized`], never an empty page. Keys never appear
//! in errors, logs or `Debug`.
//!
//! # Errors
//! PostgREST's `{code, message, details, hint}` go through the status table every HTTP adapter
//! shares: 401 (`PGRST301`, `PGRST303`) → `Unauthorized`; 403 (`42501`, RLS or a missing grant)
//! → `Refused` (the scope pauses); 404 `PGRST202`/`PGRST205`/`42P01` → `NotFound` naming the
//! guide; 409 (`23505`, `23503`) and other 4xx → `Rejected`; 408, 5xx → `Unavailable`; 429 →
//! `RateLimited`. Rows that do not decode are quarantined.

mod builder;
mod client;
mod credential;
mod decode;
mod exact;
mod filter;
mod query;
mod store;
mod table;

pub use builder::{Mode, SupabaseBuilder, SupabaseConfig};
pub use credential::Credentials;
pub use store::SupabaseRemoteStore;

use std::time::Duration;

use reqwest::Url;

use crate::error::{Error, Result};
use crate::record::Record;

/// Builds a store from a URL, for tools such as `rcs`:
/// `supabase://HOST:PORT[/PATH]?mode=exact|table[&tls=true][&window_s=N]` (also
/// `supabase+http://…`, `supabase+https://…`).
///
/// Keys never go in the URL. They come from `env`: `RCS_SUPABASE_ANON_KEY` (required), plus
/// `RCS_SUPABASE_TOKEN` (a user JWT) or `RCS_SUPABASE_SERVICE_KEY`.
pub fn from_url<T: Record>(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
    timeout: Option<Duration>,
) -> Result<SupabaseRemoteStore<T>> {
    let bad = |m: &str| Error::InvalidInput(format!("supabase URL: {m}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    let mut tls = match scheme.to_ascii_lowercase().as_str() {
        "supabase" | "supabase+http" => false,
        "supabase+https" => true,
        _ => {
            return Err(bad(
                "scheme must be supabase://, supabase+http:// or supabase+https://",
            ));
        }
    };
    let parsed = Url::parse(&format!("http://{rest}")).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "keys do not belong in the URL; use the RCS_SUPABASE_* variables",
        ));
    }
    let mut mode = Mode::Exact;
    let mut window = None;
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "mode" => {
                mode = match v.as_ref() {
                    "exact" => Mode::Exact,
                    "table" => Mode::Table,
                    _ => return Err(bad("mode must be exact or table")),
                }
            }
            "tls" => tls = matches!(v.as_ref(), "1" | "true" | "yes"),
            "window_s" => {
                window = Some(Duration::from_secs(
                    v.parse().map_err(|_| bad("window_s must be a number"))?,
                ))
            }
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let mut http = parsed.clone();
    http.set_query(None);
    http.set_scheme(if tls { "https" } else { "http" })
        .map_err(|_| bad("cannot set scheme"))?;
    let anon =
        env("RCS_SUPABASE_ANON_KEY").ok_or_else(|| bad("RCS_SUPABASE_ANON_KEY is not set"))?;
    let credentials = match (env("RCS_SUPABASE_TOKEN"), env("RCS_SUPABASE_SERVICE_KEY")) {
        (Some(t), _) => Credentials::token(t),
        (None, Some(k)) => Credentials::service_role(k),
        (None, None) => {
            return Err(bad(
                "set RCS_SUPABASE_TOKEN (a user JWT) or RCS_SUPABASE_SERVICE_KEY",
            ));
        }
    };
    let mut builder = SupabaseBuilder::<T>::new(http.as_str())
        .anon_key(anon)
        .credentials(credentials)
        .mode(mode);
    if let Some(w) = window {
        builder = builder.overlap_window(w);
    }
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RemoteStore;
    use crate::testing::TestRecord;

    #[test]
    fn urls() {
        let env = |k: &str| match k {
            "RCS_SUPABASE_ANON_KEY" => Some("anon-secret".to_owned()),
            "RCS_SUPABASE_TOKEN" => Some("tok-secret".to_owned()),
            _ => None,
        };
        let s = from_url::<TestRecord>("supabase://127.0.0.1:54321?mode=table", env, None).unwrap();
        assert_eq!(s.config().mode, Mode::Table);
        assert_eq!(s.name(), "supabase");
        let d = format!("{s:?}");
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("http://127.0.0.1:54321/"), "{d}");
        let s = from_url::<TestRecord>("supabase+https://x.invalid/p", env, None).unwrap();
        assert!(format!("{s:?}").contains("https://x.invalid/p"));
        for bad in [
            "supabase://u:p@h:1",
            "supabase://h?mode=fast",
            "supabase://h?x=1",
            "postgres://h",
        ] {
            assert!(from_url::<TestRecord>(bad, env, None).is_err(), "{bad}");
        }
        assert!(from_url::<TestRecord>("supabase://h", |_| None, None).is_err());
    }
}
