//! [`from_url`]: one entry point from a remote URL to the right [`RemoteStore`], for tools such as
//! `rcs` (object_store's `parse.rs`).

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::Record;
use crate::remote::RemoteStore;

/// A variable lookup (`name → value`), such as the process environment.
type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Settings [`from_url_with`] uses besides the URL. Secrets never go in the URL: a token is
/// given here, and adapter credentials are read through [`env`](Self::env).
#[non_exhaustive]
pub struct RemoteOptions {
    token: Option<String>,
    timeout: Option<Duration>,
    env: EnvLookup,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            token: None,
            timeout: None,
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteOptions {
    /// Defaults: no token, each adapter's default timeout, the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bearer token for `http(s)://` remotes (our sync server). PocketBase reads its own
    /// credentials from the environment (see [`pocketbase::from_url`](crate::remote::pocketbase::from_url)).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Per-request timeout, for every adapter.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where adapters read credential variables such as `RCS_POCKETBASE_PASSWORD` (default: the
    /// process environment). Tests and embedders pass their own lookup.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Box::new(lookup);
        self
    }
}

/// The remote a URL names, with [`RemoteOptions::default`] (the process environment, no token).
/// See [`from_url_with`].
pub async fn from_url<T: Record>(url: &str) -> Result<Box<dyn RemoteStore<T>>> {
    from_url_with(url, RemoteOptions::default()).await
}

/// The remote a URL names, picked by its scheme:
///
/// | URL | remote | feature |
/// | --- | --- | --- |
/// | `http://HOST:PORT[/PATH]`, `https://…` | our sync server (`rcs serve`), [`HttpRemoteStore`](crate::remote::http::HttpRemoteStore), with [`RemoteOptions::token`] | `http` |
/// | `pocketbase://HOST:PORT[/PATH]?auth=…`, `pocketbase+http(s)://…` | [`PocketBaseRemoteStore`](crate::remote::pocketbase::PocketBaseRemoteStore), URL parameters and credential variables as in [`pocketbase::from_url`](crate::remote::pocketbase::from_url) | `pocketbase` |
/// | `supabase://HOST:PORT[/PATH]?mode=exact\|table`, `supabase+http(s)://…` | [`SupabaseRemoteStore`](crate::remote::supabase::SupabaseRemoteStore), keys from `RCS_SUPABASE_ANON_KEY` plus `RCS_SUPABASE_TOKEN` or `RCS_SUPABASE_SERVICE_KEY` ([`supabase::from_url`](crate::remote::supabase::from_url)) | `supabase` |
/// | `appwrite://HOST:PORT[/v1]?project=P&database=D[&tls=true]` | [`AppwriteRemoteStore`](crate::remote::appwrite::AppwriteRemoteStore), credentials from `RCS_APPWRITE_KEY` or `RCS_APPWRITE_JWT` as in [`appwrite::from_url`](crate::remote::appwrite::from_url) | `appwrite` |
/// | `postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=…&table_prefix=P]`, `postgresql://…` | [`PostgresRemoteStore`](crate::remote::postgres::PostgresRemoteStore), libpq URL parameters plus `table_prefix` (default `rcs_`); the timeout is the connect timeout | `postgres` |
///
/// HTTP remotes send nothing: building checks the URL and the settings only. A `postgres://`
/// remote connects (and creates its schema) before it is returned. The password of a
/// `postgres://` URL (libpq's convention) never appears in an error or in `Debug`.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an unknown scheme, a scheme whose feature this build lacks, or a
/// URL the adapter refuses (credentials in it, a bad parameter, a missing variable).
///
/// # Example
///
/// ```no_run
/// # async fn doc() -> remote_cache_sync::Result<()> {
/// use std::time::Duration;
/// use remote_cache_sync::JsonRecord;
/// use remote_cache_sync::remote::{RemoteOptions, from_url_with};
///
/// let options = RemoteOptions::new()
///     .token(std::env::var("RCS_TOKEN").unwrap_or_default())
///     .timeout(Duration::from_secs(10));
/// let remote = from_url_with::<JsonRecord>("http://127.0.0.1:8080", options).await?;
/// assert_eq!(remote.name(), "http");
/// # Ok(()) }
/// ```
pub async fn from_url_with<T: Record>(
    url: &str,
    options: RemoteOptions,
) -> Result<Box<dyn RemoteStore<T>>> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .ok_or_else(|| Error::InvalidInput(format!("remote URL {url:?} has no scheme")))?;
    match scheme.as_str() {
        "http" | "https" => http(url, options),
        "pocketbase" | "pocketbase+http" | "pocketbase+https" | "http+pocketbase"
        | "https+pocketbase" => pocketbase(url, options),
        "supabase" | "supabase+http" | "supabase+https" => supabase(url, options),
        "appwrite" => appwrite(url, options),
        "postgres" | "postgresql" => postgres(url, options).await,
        other => Err(Error::InvalidInput(format!(
            "remote URL scheme {other:?} is not supported: use http(s):// (rcs serve), \
             pocketbase://, supabase://, appwrite:// or postgres://"
        ))),
    }
}

#[cfg(not(all(
    feature = "http",
    feature = "pocketbase",
    feature = "supabase",
    feature = "appwrite",
    feature = "postgres"
)))]
fn missing_feature(feature: &str) -> Error {
    Error::InvalidInput(format!(
        "this build has no {feature} remote (enable the `{feature}` feature)"
    ))
}

#[cfg(feature = "http")]
fn http<T: Record>(url: &str, options: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    let mut builder = crate::remote::http::HttpRemoteStore::<T>::builder(url);
    if let Some(t) = options.token {
        builder = builder.token(t);
    }
    if let Some(d) = options.timeout {
        builder = builder.timeout(d);
    }
    Ok(Box::new(builder.build()?))
}

#[cfg(not(feature = "http"))]
fn http<T: Record>(_: &str, _: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    Err(missing_feature("http"))
}

#[cfg(feature = "pocketbase")]
fn pocketbase<T: Record>(url: &str, options: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    let RemoteOptions { timeout, env, .. } = options;
    let store = crate::remote::pocketbase::from_url_config::<T>(url, env, |config| {
        if let Some(d) = timeout {
            config.request_timeout = d;
        }
    })?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "pocketbase"))]
fn pocketbase<T: Record>(_: &str, _: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    Err(missing_feature("pocketbase"))
}

#[cfg(feature = "supabase")]
fn supabase<T: Record>(url: &str, options: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    let RemoteOptions { timeout, env, .. } = options;
    Ok(Box::new(crate::remote::supabase::from_url::<T>(
        url, env, timeout,
    )?))
}

#[cfg(not(feature = "supabase"))]
fn supabase<T: Record>(_: &str, _: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    Err(missing_feature("supabase"))
}

#[cfg(feature = "appwrite")]
fn appwrite<T: Record>(url: &str, options: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    let RemoteOptions { timeout, env, .. } = options;
    let store = crate::remote::appwrite::from_url_config::<T>(url, env, |config| {
        if let Some(d) = timeout {
            config.request_timeout = d;
        }
    })?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "appwrite"))]
fn appwrite<T: Record>(_: &str, _: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    Err(missing_feature("appwrite"))
}

/// `url` without its `table_prefix` parameter (ours, not libpq's), and that parameter.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn split_table_prefix(url: &str) -> (String, Option<String>) {
    let Some((head, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut prefix = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("table_prefix=") {
            Some(p) => {
                prefix = Some(p.to_owned());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (head.to_owned(), prefix)
    } else {
        (format!("{head}?{}", kept.join("&")), prefix)
    }
}

#[cfg(feature = "postgres")]
async fn postgres<T: Record>(url: &str, options: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    use crate::remote::postgres::{PostgresOptions, PostgresRemoteStore};
    let (url, prefix) = split_table_prefix(url);
    let mut pg = PostgresOptions::default();
    if let Some(p) = prefix {
        pg = pg.table_prefix(p);
    }
    if let Some(d) = options.timeout {
        pg = pg.connect_timeout(d);
    }
    // `connect` redacts the password from every error it returns.
    Ok(Box::new(PostgresRemoteStore::<T>::connect(&url, pg).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres<T: Record>(_: &str, _: RemoteOptions) -> Result<Box<dyn RemoteStore<T>>> {
    Err(missing_feature("postgres"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRecord;

    async fn pick(url: &str) -> Result<&'static str> {
        let env = |k: &str| match k {
            "RCS_POCKETBASE_IDENTITY" => Some("a@b.c".to_owned()),
            "RCS_POCKETBASE_PASSWORD" => Some("pw".to_owned()),
            "RCS_SUPABASE_ANON_KEY" => Some("anon".to_owned()),
            "RCS_SUPABASE_TOKEN" => Some("jwt".to_owned()),
            "RCS_APPWRITE_KEY" => Some("k3y".to_owned()),
            _ => None,
        };
        let options = RemoteOptions::new().token("t0k3n").env(env);
        from_url_with::<TestRecord>(url, options)
            .await
            .map(|r| r.name())
    }

    #[tokio::test]
    async fn picks_the_remote_by_scheme() {
        for bad in ["", "127.0.0.1:8080", "ftp://h", "mysql://h/db"] {
            let e = pick(bad).await.unwrap_err();
            assert!(matches!(e, Error::InvalidInput(_)), "{bad}: {e:?}");
        }
        let http = pick("http://127.0.0.1:8080").await;
        let https = pick("HTTPS://example.invalid/sync").await;
        let pb = pick("pocketbase://127.0.0.1:8090?auth=superuser").await;
        let pbs = pick("pocketbase+https://example.invalid/pb").await;
        if cfg!(feature = "http") {
            assert_eq!(http.unwrap(), "http");
            assert_eq!(https.unwrap(), "http");
            // Credentials never go in the URL, whatever the remote.
            assert!(pick("http://u:p@127.0.0.1:1").await.is_err());
        } else {
            assert!(http.unwrap_err().to_string().contains("`http` feature"));
        }
        let sb = pick("supabase://127.0.0.1:54321?mode=table").await;
        if cfg!(feature = "supabase") {
            assert_eq!(sb.unwrap(), "supabase");
            assert!(pick("supabase://u:p@127.0.0.1:1").await.is_err());
        } else {
            assert!(sb.unwrap_err().to_string().contains("`supabase` feature"));
        }
        let aw = pick("appwrite://127.0.0.1:8080/v1?project=p&database=d").await;
        if cfg!(feature = "appwrite") {
            assert_eq!(aw.unwrap(), "appwrite");
            assert!(
                pick("appwrite://u:p@127.0.0.1:1?project=p&database=d")
                    .await
                    .is_err()
            );
        } else {
            assert!(aw.unwrap_err().to_string().contains("`appwrite` feature"));
        }
        if cfg!(feature = "pocketbase") {
            assert_eq!(pb.unwrap(), "pocketbase");
            assert_eq!(pbs.unwrap(), "pocketbase");
            assert!(pick("pocketbase://u:p@127.0.0.1:1").await.is_err());
            assert!(
                pick("pocketbase://h?auth=token").await.is_err(),
                "no token variable"
            );
        } else {
            assert!(pb.unwrap_err().to_string().contains("`pocketbase` feature"));
        }
    }

    #[test]
    fn the_table_prefix_is_ours() {
        assert_eq!(
            split_table_prefix("postgres://u@h/db?sslmode=require&table_prefix=app_"),
            (
                "postgres://u@h/db?sslmode=require".to_owned(),
                Some("app_".to_owned())
            )
        );
        assert_eq!(
            split_table_prefix("postgresql://h/db?table_prefix=x_"),
            ("postgresql://h/db".to_owned(), Some("x_".to_owned()))
        );
        assert_eq!(
            split_table_prefix("postgres://h/db"),
            ("postgres://h/db".to_owned(), None)
        );
    }

    /// A `postgres://` URL connects; its password is in no error (a server that refuses the
    /// connection, a bad table prefix, a bad parameter).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_urls_never_show_the_password() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        for url in [
            format!("postgres://rcs:hunter2-pw@127.0.0.1:{closed}/db"),
            format!("postgresql://rcs:hunter2-pw@127.0.0.1:{closed}/db?connect_timeout=2"),
            format!("postgres://rcs:hunter2-pw@127.0.0.1:{closed}/db?table_prefix=Bad-Prefix"),
            format!("postgres://rcs:hunter2-pw@127.0.0.1:{closed}/db?nonsense=1"),
        ] {
            let options = RemoteOptions::new().timeout(std::time::Duration::from_secs(2));
            let e = match from_url_with::<TestRecord>(&url, options).await {
                Ok(_) => panic!("{url}: connected to a closed port"),
                Err(e) => e,
            };
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                e.is_retryable() || matches!(e, Error::InvalidInput(_)),
                "{url}: {e:?}"
            );
        }
    }

    #[test]
    fn options_hide_the_token() {
        let o = RemoteOptions::new().token("s3cret");
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
