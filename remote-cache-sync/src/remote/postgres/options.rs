//! [`PostgresOptions`]: the settings of [`PostgresRemoteStore::connect`](super::PostgresRemoteStore::connect)(super::PostgresRemoteStore::connect).

use std::path::PathBuf;
use std::time::Duration;

#[allow(unused_imports)] // Doc links.
use crate::error::Error;
use crate::remote::RealtimeOptions;

/// Settings for [`PostgresRemoteStore::connect`](super::PostgresRemoteStore::connect).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Prefix of the store's table and sequence names (`[a-z_][a-z0-9_]*`, at most 40 bytes).
    /// Default `rcs_`. Use one prefix per app sharing a database.
    pub table_prefix: String,
    /// Most connections the store opens. Default 8.
    pub max_connections: usize,
    /// How long to wait for a connection (TCP connect and pool wait). Default 10 s.
    pub connect_timeout: Duration,
    /// Create the schema on connect (see [`PostgresRemoteStore::migrate`](super::PostgresRemoteStore::migrate)). Default true.
    pub auto_migrate: bool,
    /// A PEM file of CA certificates to trust, in addition to the system's, for
    /// `sslmode=require` (e.g. a private CA or a self-signed server certificate).
    pub tls_root_certificates: Option<PathBuf>,
    /// Longest a push waits for its scope's lock or a row lock (PostgreSQL `lock_timeout`)
    /// before failing with [`Error::Unavailable`]. Default 30 s.
    pub lock_timeout: Duration,
    /// Timings of [`subscribe`](crate::RemoteStore::subscribe)'s `LISTEN` connection: it is
    /// pinged every third of the stall timeout and reopened when a ping goes unanswered.
    pub realtime: RealtimeOptions,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            table_prefix: "rcs_".into(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            auto_migrate: true,
            tls_root_certificates: None,
            lock_timeout: Duration::from_secs(30),
            realtime: RealtimeOptions::default(),
        }
    }
}

impl PostgresOptions {
    /// Sets [`table_prefix`](Self::table_prefix).
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`auto_migrate`](Self::auto_migrate).
    pub fn auto_migrate(mut self, yes: bool) -> Self {
        self.auto_migrate = yes;
        self
    }

    /// Sets [`lock_timeout`](Self::lock_timeout).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets [`realtime`](Self::realtime).
    pub fn realtime(mut self, options: RealtimeOptions) -> Self {
        self.realtime = options;
        self
    }

    /// Sets [`tls_root_certificates`](Self::tls_root_certificates).
    pub fn tls_root_certificates(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.tls_root_certificates = Some(pem_file.into());
        self
    }
}
