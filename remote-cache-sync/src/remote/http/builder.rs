//! [`HttpRemoteStoreBuilder`]: the URL, token, timeouts, prefetch and realtime options of an
//! [`HttpRemoteStore`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{DEFAULT_TIMEOUT, DIALECT, HttpRemoteStore, Inner};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::remote::client::prefetch::Prefetcher;
use crate::remote::client::transport::Transport;
use crate::remote::client::url;

/// Configures an [`HttpRemoteStore`].
pub struct HttpRemoteStoreBuilder<T> {
    base_url: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    prefetch: bool,
    realtime: crate::remote::RealtimeOptions,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for HttpRemoteStoreBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRemoteStoreBuilder")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<T: Record> HttpRemoteStoreBuilder<T> {
    /// Defaults: no token, [`DEFAULT_TIMEOUT`], 10 s to connect, prefetch and realtime on.
    pub(super) fn new(base_url: String) -> Self {
        HttpRemoteStoreBuilder {
            base_url,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            prefetch: true,
            realtime: crate::remote::RealtimeOptions::default(),
            _t: PhantomData,
        }
    }

    /// Bearer token sent with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Whole-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connection timeout (default: the request timeout, at most 10 s). In the browser `fetch`
    /// has none: only the whole-request timeout applies there.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether a pull that reports `has_more` starts fetching the next page in the background
    /// (default on). The caller applies one page while the next one travels, which roughly
    /// doubles initial-sync throughput; at most one extra page per scope is held in memory.
    pub fn prefetch(mut self, on: bool) -> Self {
        self.prefetch = on;
        self
    }

    /// Timings of [`subscribe`](crate::RemoteStore::subscribe)'s event stream: keep the stall timeout
    /// a few times the server's heartbeat (`rcs serve` sends one every 15 s; the default stall
    /// timeout is 45 s).
    pub fn realtime(mut self, options: crate::remote::RealtimeOptions) -> Self {
        self.realtime = options;
        self
    }

    /// Builds the store. Fails with [`Error::InvalidInput`] for a URL that is not `http(s)://`
    /// or that carries credentials (give those with [`token`](Self::token)).
    pub fn build(self) -> Result<HttpRemoteStore<T>> {
        let url = url::parse_base(&self.base_url, "remote URL", "pass a token instead")?;
        if let Some(t) = &self.token
            && (t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::InvalidInput(
                "the token must be non-empty and contain no whitespace".into(),
            ));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let transport = Transport::new(url, &DIALECT, self.timeout, self.connect_timeout)?;
        Ok(HttpRemoteStore {
            inner: Arc::new(Inner {
                transport,
                base,
                token: self.token,
                prefetch: self.prefetch.then(Prefetcher::default),
                realtime: self.realtime,
            }),
        })
    }
}
