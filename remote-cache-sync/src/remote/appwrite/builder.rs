//! [`AppwriteConfig`], [`AppwriteBuilder`] and the URL form used by `rcs`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::client::Client;
use super::credential::Credential;
use super::store::AppwriteRemoteStore;
use crate::error::{Error, Result};
use crate::json_record::JsonRecord;
use crate::record::Record;

/// Tunables of an [`AppwriteRemoteStore`].
#[derive(Debug, Clone)]
pub struct AppwriteConfig {
    /// Look-back for late-committing writes: must exceed the longest write request (Appwrite
    /// stamps `$updatedAt` when it handles a write, before its database transaction commits).
    /// Default 30 s.
    pub overlap_window: Duration,
    /// Operations per transaction (≤ the server's `databasesTransactionSize`, 100 by default).
    /// Default 100.
    pub batch_size: usize,
    /// Largest page asked for (`limit`). Default 1000.
    pub max_page_size: usize,
    /// Per-request timeout. Default 30 s.
    pub request_timeout: Duration,
    /// A scope key whose value is the Appwrite user id owning the scope's documents: every
    /// written document then carries `read`, `update` and `delete` permissions for
    /// `user:<value>` (needed with an API key, which has no user; see the guide). Default none:
    /// documents get the server's defaults (a JWT user's own permissions).
    pub owner_key: Option<String>,
    /// Lifetime asked for each push transaction, in seconds (Appwrite accepts 60 to 3600).
    /// Default 60.
    pub transaction_ttl_s: u32,
    /// Transactions tried per push before giving up with [`Error::Unavailable`] when other
    /// writers keep changing the same documents. Default 8.
    pub max_rounds: usize,
    /// Timings of [`subscribe`](crate::RemoteStore::subscribe)'s WebSocket: stall detection
    /// and reconnect backoff (the adapter pings every `stall_timeout / 3`, at most every 20 s,
    /// as Appwrite's SDKs do). Default: [`RealtimeOptions::default`](crate::remote::RealtimeOptions).
    pub realtime: crate::remote::RealtimeOptions,
    /// Whether a pull that has more starts fetching the next page in the background, so the
    /// caller applies one page while the next one travels (at most one extra page per scope in
    /// memory). Default on.
    pub prefetch: bool,
    /// Record fields stored as their JSON text in **string** attributes (a *JSON attribute*),
    /// for fields whose values are not of one Appwrite type (mixed types, objects, arrays of
    /// mixed elements, integers beyond Appwrite's 64-bit range stay exact as text). Other
    /// fields are written as they are and must fit their typed attribute. A JSON attribute
    /// cannot be `id`, `updated_at`, `deleted_at`, `record_id` or a scope key. Queries can
    /// narrow on JSON attributes with `contains` too (see the guide). Default none.
    pub json_attributes: Vec<String>,
}

impl Default for AppwriteConfig {
    fn default() -> Self {
        AppwriteConfig {
            overlap_window: Duration::from_secs(30),
            batch_size: 100,
            max_page_size: 1000,
            request_timeout: Duration::from_secs(30),
            owner_key: None,
            transaction_ttl_s: 60,
            max_rounds: 8,
            realtime: crate::remote::RealtimeOptions::default(),
            prefetch: true,
            json_attributes: Vec::new(),
        }
    }
}

/// Builds an [`AppwriteRemoteStore`]: [`AppwriteRemoteStore::builder`].
#[derive(Debug)]
pub struct AppwriteBuilder<T> {
    endpoint: String,
    project: String,
    database: String,
    credential: Option<Credential>,
    config: AppwriteConfig,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> AppwriteBuilder<T> {
    pub(crate) fn new(endpoint: &str, project: &str, database: &str) -> Self {
        AppwriteBuilder {
            endpoint: endpoint.to_owned(),
            project: project.to_owned(),
            database: database.to_owned(),
            credential: None,
            config: AppwriteConfig::default(),
            _t: PhantomData,
        }
    }

    /// The credential (required).
    pub fn credential(mut self, c: Credential) -> Self {
        self.credential = Some(c);
        self
    }

    /// All tunables at once.
    pub fn config(mut self, config: AppwriteConfig) -> Self {
        self.config = config;
        self
    }

    /// See [`AppwriteConfig::owner_key`].
    pub fn owner_key(mut self, key: impl Into<String>) -> Self {
        self.config.owner_key = Some(key.into());
        self
    }

    /// See [`AppwriteConfig::overlap_window`].
    pub fn overlap_window(mut self, d: Duration) -> Self {
        self.config.overlap_window = d;
        self
    }

    /// See [`AppwriteConfig::json_attributes`].
    pub fn json_attributes<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.config.json_attributes = fields.into_iter().map(Into::into).collect();
        self
    }

    /// See [`AppwriteConfig::realtime`].
    pub fn realtime(mut self, options: crate::remote::RealtimeOptions) -> Self {
        self.config.realtime = options;
        self
    }

    /// See [`AppwriteConfig::request_timeout`].
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }

    /// Checks the settings (nothing is sent) and builds the store.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad endpoint (not http(s), credentials or a query in it),
    /// an empty project or database id, a missing credential, a zero batch or page size, or a
    /// JSON attribute that is not a usable attribute name or is reserved.
    pub fn build(self) -> Result<AppwriteRemoteStore<T>> {
        let bad = |m: &str| Error::InvalidInput(format!("appwrite: {m}"));
        let mut base = crate::remote::client::url::parse_base(
            &self.endpoint,
            "appwrite endpoint",
            "pass the API key or JWT as a Credential",
        )?;
        if base.path().trim_matches('/').is_empty() {
            base.set_path("/v1");
        }
        for (what, v) in [("project", &self.project), ("database", &self.database)] {
            if !super::decode::fits_id_rules(v) {
                return Err(bad(&format!("{what} id {v:?} is not a valid Appwrite id")));
            }
        }
        let credential = self
            .credential
            .ok_or_else(|| bad("a credential (API key or JWT) is required"))?;
        if self.config.batch_size == 0 || self.config.max_page_size == 0 {
            return Err(bad("batch_size and max_page_size must be > 0"));
        }
        for k in &self.config.json_attributes {
            let reserved = [
                "id",
                "updated_at",
                "deleted_at",
                super::decode::RECORD_ID_ATTR,
            ];
            if !super::store::attribute_name_ok(k) || reserved.contains(&k.as_str()) {
                return Err(bad(&format!("{k:?} cannot be a JSON attribute")));
            }
        }
        let client = Client::new(base, self.project, credential, self.config.request_timeout)?;
        Ok(AppwriteRemoteStore::from_parts(
            Arc::new(client),
            self.database,
            self.config,
        ))
    }
}

/// Builds a store of [`JsonRecord`]s from a URL, for tools such as `rcs`:
///
/// `appwrite://HOST:PORT[/v1]?project=P&database=D[&tls=true][&owner_key=K][&window_s=N][&json=F1,F2]`
/// (`json`: [`AppwriteConfig::json_attributes`])
///
/// Credentials never go in the URL: they come from the environment, `RCS_APPWRITE_KEY` (an API
/// key) or `RCS_APPWRITE_JWT` (a user JWT); exactly one must be set.
pub fn from_url(url: &str) -> Result<AppwriteRemoteStore<JsonRecord>> {
    from_url_with(url, |k| std::env::var(k).ok())
}

/// [`from_url`] with an explicit variable lookup (for tests and embedding).
pub fn from_url_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<AppwriteRemoteStore<JsonRecord>> {
    from_url_config(url, env, |_| {})
}

/// [`from_url_with`] for any record type, with a last word on the tunables.
pub(crate) fn from_url_config<T: Record>(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
    adjust: impl FnOnce(&mut AppwriteConfig),
) -> Result<AppwriteRemoteStore<T>> {
    let bad = |m: &str| Error::InvalidInput(format!("appwrite URL: {m}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    if !scheme.eq_ignore_ascii_case("appwrite") {
        return Err(bad("scheme must be appwrite://"));
    }
    let parsed = Url::parse(&format!("http://{rest}")).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; set RCS_APPWRITE_KEY or RCS_APPWRITE_JWT",
        ));
    }
    let (mut project, mut database, mut tls) = (None, None, false);
    let mut config = AppwriteConfig::default();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "project" => project = Some(v.into_owned()),
            "database" => database = Some(v.into_owned()),
            "tls" => tls = matches!(v.as_ref(), "1" | "true" | "yes"),
            "owner_key" => config.owner_key = Some(v.into_owned()),
            "json" => {
                config.json_attributes = v
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "window_s" => {
                config.overlap_window =
                    Duration::from_secs(v.parse().map_err(|_| bad("window_s must be a number"))?)
            }
            "key" | "jwt" | "secret" | "token" => {
                return Err(bad(
                    "credentials do not belong in the URL; set RCS_APPWRITE_KEY or RCS_APPWRITE_JWT",
                ));
            }
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let project = project.ok_or_else(|| bad("project=… is required"))?;
    let database = database.ok_or_else(|| bad("database=… is required"))?;
    let mut http = parsed.clone();
    http.set_query(None);
    http.set_scheme(if tls { "https" } else { "http" })
        .map_err(|_| bad("cannot set scheme"))?;
    let credential = match (env("RCS_APPWRITE_KEY"), env("RCS_APPWRITE_JWT")) {
        (Some(k), None) if !k.is_empty() => Credential::api_key(k),
        (None, Some(j)) if !j.is_empty() => Credential::jwt(j),
        (Some(_), Some(_)) => {
            return Err(bad("set only one of RCS_APPWRITE_KEY and RCS_APPWRITE_JWT"));
        }
        _ => {
            return Err(bad(
                "set RCS_APPWRITE_KEY (API key) or RCS_APPWRITE_JWT (user JWT)",
            ));
        }
    };
    adjust(&mut config);
    AppwriteRemoteStore::builder(http.as_str(), &project, &database)
        .credential(credential)
        .config(config)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let env = |k: &str| (k == "RCS_APPWRITE_KEY").then(|| "k3y-secret".to_owned());
        let s = from_url_with("appwrite://127.0.0.1:8080?project=p&database=d", env).unwrap();
        assert_eq!(s.endpoint(), "http://127.0.0.1:8080/v1");
        assert!(!format!("{s:?}").contains("k3y-secret"));
        let s = from_url_with(
            "appwrite://example.invalid/v1?project=p&database=d&tls=true&owner_key=owner",
            env,
        )
        .unwrap();
        assert_eq!(s.endpoint(), "https://example.invalid/v1");
        assert_eq!(s.config().owner_key.as_deref(), Some("owner"));
        let s = from_url_with("appwrite://h:1?project=p&database=d&json=title,meta", env).unwrap();
        assert_eq!(s.config().json_attributes, ["title", "meta"]);
        for bad in [
            "appwrite://u:p@h:1?project=p&database=d",
            "appwrite://h:1?database=d",
            "appwrite://h:1?project=p",
            "appwrite://h:1?project=p&database=d&key=abc",
            "appwrite://h:1?project=p&database=d&what=1",
            "appwrite://h:1?project=p%20x&database=d",
            "appwrite://h:1?project=p&database=d&json=updated_at",
            "appwrite://h:1?project=p&database=d&json=a%22b",
            "postgres://h",
        ] {
            assert!(from_url_with(bad, env).is_err(), "{bad}");
        }
        assert!(from_url_with("appwrite://h:1?project=p&database=d", |_| None).is_err());
        let both = |_: &str| Some("x".to_owned());
        assert!(from_url_with("appwrite://h:1?project=p&database=d", both).is_err());
    }
}
