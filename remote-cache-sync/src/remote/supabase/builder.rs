//! [`SupabaseBuilder`]: the project URL, keys, mode and tunables of a [`SupabaseRemoteStore`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::client::{Client, Http};
use super::credential::Credentials;
use super::store::SupabaseRemoteStore;
use crate::error::{Error, Result};
use crate::record::Record;

/// How the adapter reads and writes (see `docs/backends/supabase.md`, section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// The guide's `rcs_pull`/`rcs_push` functions: an exact change feed (default).
    #[default]
    Exact,
    /// Plain table requests with an overlap window, for projects that cannot install functions.
    Table,
}

/// Tunables of a [`SupabaseRemoteStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupabaseConfig {
    /// The mode. Default [`Mode::Exact`].
    pub mode: Mode,
    /// Table mode's look-back for late commits: must exceed the longest write transaction (the
    /// `authenticated` role's `statement_timeout`, 8 s on Supabase). Default 15 s.
    pub overlap_window: Duration,
    /// Ops per `rcs_push` call (one transaction each). Default 500.
    pub push_batch: usize,
    /// Per-request timeout. Default 30 s.
    pub request_timeout: Duration,
    /// Whether a pull that has more starts fetching the next page in the background, so the
    /// caller applies one page while the next one travels (at most one extra page per scope in
    /// memory). Default on.
    pub prefetch: bool,
}

impl Default for SupabaseConfig {
    fn default() -> Self {
        SupabaseConfig {
            mode: Mode::Exact,
            overlap_window: Duration::from_secs(15),
            push_batch: 500,
            request_timeout: Duration::from_secs(30),
            prefetch: true,
        }
    }
}

/// Builds a [`SupabaseRemoteStore`]; see [`SupabaseRemoteStore::builder`].
#[derive(Debug)]
pub struct SupabaseBuilder<T> {
    url: String,
    anon_key: Option<String>,
    credentials: Credentials,
    config: SupabaseConfig,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> SupabaseBuilder<T> {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        SupabaseBuilder {
            url: url.into(),
            anon_key: None,
            credentials: Credentials::Anonymous,
            config: SupabaseConfig::default(),
            _t: PhantomData,
        }
    }

    /// The project's anon (publishable) key, sent as `apikey` on every request. Required.
    pub fn anon_key(mut self, key: impl Into<String>) -> Self {
        self.anon_key = Some(key.into());
        self
    }

    /// Who the adapter is (default [`Credentials::Anonymous`]).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The mode (default [`Mode::Exact`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Table mode's overlap window (default 15 s).
    pub fn overlap_window(mut self, window: Duration) -> Self {
        self.config.overlap_window = window;
        self
    }

    /// Per-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Whether pulls fetch the next page in the background (default on; see
    /// [`SupabaseConfig::prefetch`]).
    pub fn prefetch(mut self, on: bool) -> Self {
        self.config.prefetch = on;
        self
    }

    /// All tunables at once.
    pub fn config(mut self, config: SupabaseConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the settings; sends nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad URL (not http(s), credentials in it), a missing anon
    /// key or a zero batch size.
    pub fn build(self) -> Result<SupabaseRemoteStore<T>> {
        let base = crate::remote::client::url::parse_base(
            &self.url,
            "supabase URL",
            "put keys in the builder",
        )?;
        let anon_key = self
            .anon_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::InvalidInput("supabase: the anon key is required".into()))?;
        if self.config.push_batch == 0 {
            return Err(Error::InvalidInput(
                "supabase: push_batch must be > 0".into(),
            ));
        }
        let http = Http::new(base, anon_key, self.config.request_timeout)?;
        Ok(SupabaseRemoteStore::from_parts(
            Arc::new(Client::new(http, self.credentials)),
            self.config,
        ))
    }
}
