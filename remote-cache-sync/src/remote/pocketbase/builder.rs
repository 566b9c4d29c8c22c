//! Configuring a [`PocketBaseRemoteStore`]: its tunables ([`PocketBaseConfig`]) and the
//! `pocketbase://` URLs of tools such as `rcs`.

use std::time::Duration;

use reqwest::Url;

use super::credential::Credentials;
use super::store::PocketBaseRemoteStore;
use super::{filter, realtime};
use crate::error::{Error, Result};
use crate::json_record::JsonRecord;
use crate::record::Record;

/// Tunables of a [`PocketBaseRemoteStore`].
#[derive(Debug, Clone)]
pub struct PocketBaseConfig {
    /// Look-back for late-committing writes: must exceed the longest write transaction (the
    /// server's batch timeout; the guide sets 10 s). Default 15 s.
    pub overlap_window: Duration,
    /// Sub-requests per `/api/batch` call (≤ the server's `batch.maxRequests`). Default 100.
    pub batch_size: usize,
    /// Largest page asked for (PocketBase clamps at 1000). Default 1000.
    pub max_page_size: usize,
    /// Request the next page in the background as soon as a page with `has_more` is returned,
    /// so the network overlaps the caller's work on the current page. Default true.
    pub prefetch: bool,
    /// An empty list page is trusted only from a token the server accepted within this long
    /// (else the token is refreshed first): PocketBase answers a revoked token's list as a
    /// guest's, with no rows. Default 60 s; zero re-checks on every empty page.
    pub auth_recheck: Duration,
    /// Per-request timeout. Default 30 s.
    pub request_timeout: Duration,
    /// Timings of [`subscribe`](crate::remote::RemoteStore::subscribe)'s event stream. PocketBase sends no
    /// heartbeat and drops clients idle for 5 minutes, so the default stall timeout is 330 s.
    pub realtime: crate::remote::RealtimeOptions,
}

impl Default for PocketBaseConfig {
    fn default() -> Self {
        PocketBaseConfig {
            overlap_window: Duration::from_secs(15),
            batch_size: 100,
            max_page_size: 1000,
            prefetch: true,
            auth_recheck: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            realtime: crate::remote::RealtimeOptions::default().stall_timeout(realtime::IDLE_LIMIT),
        }
    }
}

/// Builds a store of [`JsonRecord`]s from a URL, for tools such as `rcs`:
///
/// `pocketbase://HOST:PORT[/PATH]?auth=superuser|<auth collection>|token|none[&tls=true]`
/// (also `pocketbase+http://…` and `pocketbase+https://…`).
///
/// Credentials never go in the URL. They come from the environment: `RCS_POCKETBASE_IDENTITY` and
/// `RCS_POCKETBASE_PASSWORD` (superuser email, or user identity for `auth=<collection>`), or
/// `RCS_POCKETBASE_TOKEN` for `auth=token`. `auth` defaults to `superuser` when the identity
/// variable is set, else `token` when the token variable is set, else `none`.
pub fn from_url(url: &str) -> Result<PocketBaseRemoteStore<JsonRecord>> {
    from_url_with(url, |k| std::env::var(k).ok())
}

/// [`from_url`] with an explicit variable lookup (for tests and embedding).
pub fn from_url_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PocketBaseRemoteStore<JsonRecord>> {
    from_url_config(url, env, |_| {})
}

/// [`from_url_with`] for any record type, with a last word on the tunables (used by
/// [`remote::from_url`](crate::remote::from_url)).
pub(crate) fn from_url_config<T: Record>(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
    adjust: impl FnOnce(&mut PocketBaseConfig),
) -> Result<PocketBaseRemoteStore<T>> {
    let bad = |m: &str| Error::InvalidInput(format!("pocketbase URL: {m}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    let parsed = Url::parse(&format!("http://{rest}")).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; use RCS_POCKETBASE_* variables",
        ));
    }
    let mut tls = match scheme {
        "pocketbase" | "pocketbase+http" | "http+pocketbase" => false,
        "pocketbase+https" | "https+pocketbase" => true,
        _ => {
            return Err(bad(
                "scheme must be pocketbase://, pocketbase+http:// or pocketbase+https://",
            ));
        }
    };
    let mut auth: Option<String> = None;
    let mut config = PocketBaseConfig::default();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "auth" => auth = Some(v.into_owned()),
            "tls" => tls = matches!(v.as_ref(), "1" | "true" | "yes"),
            "batch_size" => {
                config.batch_size = v.parse().map_err(|_| bad("batch_size must be a number"))?
            }
            "window_s" => {
                config.overlap_window =
                    Duration::from_secs(v.parse().map_err(|_| bad("window_s must be a number"))?)
            }
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let mut http = parsed.clone();
    http.set_query(None);
    http.set_scheme(if tls { "https" } else { "http" })
        .map_err(|_| bad("cannot set scheme"))?;
    let identity = env("RCS_POCKETBASE_IDENTITY");
    let password = env("RCS_POCKETBASE_PASSWORD");
    let token = env("RCS_POCKETBASE_TOKEN");
    let auth = auth.unwrap_or_else(|| {
        if identity.is_some() {
            "superuser".into()
        } else if token.is_some() {
            "token".into()
        } else {
            "none".into()
        }
    });
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| bad(&format!("auth needs the {name} variable")))
    };
    let credentials = match auth.as_str() {
        "none" => Credentials::Anonymous,
        "token" => Credentials::token(need(token, "RCS_POCKETBASE_TOKEN")?),
        "superuser" => Credentials::superuser(
            need(identity, "RCS_POCKETBASE_IDENTITY")?,
            need(password, "RCS_POCKETBASE_PASSWORD")?,
        ),
        collection if filter::is_identifier(collection) => Credentials::user(
            collection,
            need(identity, "RCS_POCKETBASE_IDENTITY")?,
            need(password, "RCS_POCKETBASE_PASSWORD")?,
        ),
        _ => {
            return Err(bad(
                "auth must be superuser, token, none or an auth collection name",
            ));
        }
    };
    adjust(&mut config);
    PocketBaseRemoteStore::with_config(http.as_str(), credentials, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let env = |k: &str| match k {
            "RCS_POCKETBASE_IDENTITY" => Some("a@b.c".to_owned()),
            "RCS_POCKETBASE_PASSWORD" => Some("pw-secret".to_owned()),
            _ => None,
        };
        let s = from_url_with("pocketbase://127.0.0.1:8090?batch_size=50", env).unwrap();
        assert_eq!(s.client.base().as_str(), "http://127.0.0.1:8090/");
        assert_eq!(s.config.batch_size, 50);
        assert!(!format!("{s:?}").contains("pw-secret"));
        let s = from_url_with("pocketbase+https://example.invalid/pb?auth=users", env).unwrap();
        assert_eq!(s.client.base().as_str(), "https://example.invalid/pb");
        assert!(from_url_with("pocketbase://u:p@h:1", env).is_err());
        assert!(from_url_with("postgres://h", env).is_err());
        assert!(from_url_with("pocketbase://h?auth=token", |_| None).is_err());
        assert!(from_url_with("pocketbase://h?what=1", env).is_err());
    }
}
