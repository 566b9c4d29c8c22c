//! [`PostgresRemoteStore`]: a PostgreSQL database as the remote, reached directly with
//! `tokio-postgres` (feature `postgres`), with an **exact** change-feed cursor. Needs PostgreSQL 11
//! or newer (`hashtextextended`); tested with 15. Guide: `docs/backends/postgres.md`.
//!
//! ```no_run
//! # async fn doc() -> remote_cache_sync::Result<()> {
//! use remote_cache_sync::JsonRecord;
//! use remote_cache_sync::remote::postgres::{PostgresOptions, PostgresRemoteStore};
//! let store = PostgresRemoteStore::<JsonRecord>::connect(
//!     "postgres://app:secret@127.0.0.1:5432/app",
//!     PostgresOptions::default().table_prefix("myapp_"),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! [`connect`](PostgresRemoteStore::connect) creates (by default) three tables and a sequence named
//! after [`PostgresOptions::table_prefix`] (default `rcs_`), so several apps can share a database:
//!
//! - `{p}records(scope, id, seq, version, updated_at, deleted, data)`, primary key `(scope, id)`,
//!   unique index `(scope, seq)`. `scope` is [`SyncScope::canonical`]; `data` is the record as
//!   `jsonb` (`NULL` for a pure tombstone); `version` is the record's exact version (RFC 3339 with
//!   nanoseconds, what [`base_matches`] compares); `updated_at` is the same instant as a
//!   `timestamptz` (microseconds) for people and SQL; `deleted` marks tombstones. Deleted rows are
//!   kept (with `data` cleared) so the deletion reaches every client.
//! - `{p}applied_ops(scope, op_id, applied_at)`: op ids already applied, for idempotent pushes.
//!   It grows with every op; [`PostgresRemoteStore::prune_applied_ops`] drops old entries.
//! - `{p}meta(key, value)`: the schema version.
//! - sequence `{p}seq`: the change-feed position.
//!
//! Every statement is prepared with bound parameters; the only text spliced into SQL is the table
//! prefix, which must match `[a-z_][a-z0-9_]*`.
//!
//! # The cursor, and why it is exact
//!
//! The cursor is the `seq` of the last row returned: every write of a row sets
//! `seq = nextval('{p}seq')`, and a pull is `WHERE scope = $1 AND seq > $cursor ORDER BY seq`.
//!
//! A bare sequence is not enough. `nextval()` is handed out when a transaction *writes*, but the
//! row becomes visible when it *commits*, and transactions commit in any order: writer A takes
//! seq 10, writer B takes seq 11 and commits, a pull returns 11 and moves the cursor to 11, then A
//! commits row 10 — below the cursor, never pulled. Timestamps have the same hole (`now()` is the
//! transaction start).
//!
//! Two fixes were considered:
//!
//! 1. *Snapshot horizon*: stamp rows with `pg_current_xact_id()` and only return rows whose writing
//!    transaction is older than the reader's snapshot `xmin`. It is exact, but `xmin` is
//!    cluster-wide: any long transaction anywhere in the cluster (a `pg_dump`, an idle-in-transaction
//!    session of another app) holds every pull back, and rows committed before a pull started
//!    could be withheld from it, which breaks the [`RemoteStore::fetch_since`] contract.
//! 2. *Commit-ordered sequence per scope* (**chosen**): every write transaction first takes a
//!    transaction-level advisory lock for its scope
//!    (`pg_advisory_xact_lock(hashtextextended('{p}records' || scope, 0))`) and only then takes
//!    sequence values. The lock is released after the commit, so within one scope seqs are handed
//!    out in commit order.
//!
//! Why the chosen design is exact: PostgreSQL makes a commit visible to new snapshots
//! (`ProcArrayEndTransaction`) *before* it releases the transaction's locks (`xact.c` requires that
//! order). Say a pull's snapshot sees a row of scope S with seq `s`, written by transaction W2. Any
//! row of S with seq `s' < s` was written by a transaction W1 that held S's lock before W2 did (or
//! is W2 itself). W1 became visible before it released the lock, so before W2 got it, before W2
//! committed, and so before the pull's snapshot, which sees W2. So the pull sees W1's row as well:
//! nothing below a returned seq can appear later, and the cursor never skips a row. (A pull is one
//! statement, so one snapshot.) An aborted W1 leaves a gap that nobody will fill, which is
//! harmless. Readers take no lock, and a pull returns everything committed before it started.
//!
//! The lock also serialises pushes *within one scope*, which makes the [`base_matches`] check,
//! the op-id deduplication and create-vs-create races simple and exact (no retries needed). Pushes
//! to different scopes run in parallel; a hash collision between two scopes only makes them wait
//! for each other. Costs and rules that follow:
//! - the lock is held for the whole push transaction (a few milliseconds per batch); a scope that
//!   thousands of clients write at once serialises on it. A push waits at most
//!   [`PostgresOptions::lock_timeout`] for it (then [`Error::Unavailable`], nothing written), and
//!   the store's sessions set `idle_in_transaction_session_timeout`, so a stalled holder cannot
//!   block its scope for long;
//! - anything else that writes `{p}records` must follow the same protocol (take the scope's lock
//!   first); a writer that bypasses it can be missed by pulls;
//! - the sequence must keep `CACHE 1` (the default): per-session caching hands out values out of
//!   order.
//!
//! `tests/remote_postgres.rs` proves it against a real server: a push that has taken its seq but
//! not committed while a later push to the same scope waits, with pulls interleaved; eight
//! concurrent writers, some held open between seq and commit, and a puller running all along
//! (both tests fail when the lock is removed); and a writer that bypasses the lock, showing the
//! hole the lock closes.
//!
//! # Errors
//!
//! Connection failures, timeouts, `57P01`-`57P03`, `40001`, `40P01`, `53xxx`, `55P03` map to
//! [`Error::Unavailable`] (retryable); `28xxx` to [`Error::Unauthorized`]; data and integrity
//! errors to [`Error::Rejected`]. Messages never contain the connection string's password: it is
//! scrubbed from every message, and connection strings are shown with the password masked.
//! Rows are read with `try_get`: a row another writer left malformed (a NULL where a value
//! belongs, a column retyped by hand, a bad version or payload) makes reads of it fail with
//! [`Error::MalformedResponse`] naming the record, never a panic; a push answers ops on such a
//! record with [`PushOutcome::Rejected`] and applies its other ops.
//! Ops with data PostgreSQL cannot store (a NUL character in a string, an id that differs from the
//! payload's, a timestamp before 4713 BC) are answered with [`PushOutcome::Rejected`] without
//! failing the rest of the push.
//!
//! # TLS
//!
//! `sslmode=require` in the connection string turns on TLS (rustls) **with full verification**:
//! the server's certificate must chain to a trusted root (the system's store plus
//! [`PostgresOptions::tls_root_certificates`]) and match the host name, like libpq's
//! `verify-full`; libpq's `sslmode=verify-ca`/`verify-full` and `sslrootcert=PATH` are accepted
//! in the connection string too. `sslmode=disable` and the default `prefer` connect without TLS (libpq's
//! `prefer` would encrypt without verifying anything, which protects against little): use
//! `require` for any server that is not on the same machine or network.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::FromSql;
use tokio_postgres::{NoTls, Row};

use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result, StorageErrorKind};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::remote::{RemoteStore, applied_version, base_matches};
use crate::scope::SyncScope;

const BACKEND: &str = "postgres";

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Earliest instant a `timestamptz` can hold (4714-11-24 BC, Julian day 0), in Unix seconds.
const PG_MIN_UNIX_SECOND: i64 = -210_866_803_200;

/// Settings for [`PostgresRemoteStore::connect`].
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
    /// Create the schema on connect (see [`PostgresRemoteStore::migrate`]). Default true.
    pub auto_migrate: bool,
    /// A PEM file of CA certificates to trust, in addition to the system's, for
    /// `sslmode=require` (e.g. a private CA or a self-signed server certificate).
    pub tls_root_certificates: Option<PathBuf>,
    /// Longest a push waits for its scope's lock or a row lock (PostgreSQL `lock_timeout`)
    /// before failing with [`Error::Unavailable`]. Default 30 s.
    pub lock_timeout: Duration,
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

    /// Sets [`tls_root_certificates`](Self::tls_root_certificates).
    pub fn tls_root_certificates(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.tls_root_certificates = Some(pem_file.into());
        self
    }
}

/// A rustls connector trusting the system's roots plus the certificates in `extra`.
fn tls_connector(extra: &[&Path]) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    // Errors from individual system certificates are ignored, like every TLS client does.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra {
        let bad = |e: &dyn fmt::Display| {
            Error::InvalidInput(format!(
                "postgres: cannot read TLS root certificates from {}: {e}",
                path.display()
            ))
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no certificate in the file"));
        }
    }
    if roots.is_empty() {
        return Err(Error::InvalidInput(
            "postgres: sslmode=require but no trusted root certificate was found; set tls_root_certificates".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidInput(format!("postgres TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Accepts libpq's TLS parameters that `tokio-postgres` does not parse: `sslrootcert=PATH` is
/// taken out (and returned), `sslmode=verify-ca`/`verify-full` become `require` (which always
/// verifies fully here). Works on URLs and on the key/value form.
fn libpq_tls_parameters(url: &str) -> (String, Option<PathBuf>) {
    let mut root_cert = None;
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslrootcert", v)) => root_cert = Some(PathBuf::from(percent_decode(v))),
                Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (url, root_cert)
    } else {
        // Key/value form; rewritten only when one of these parameters is present (unquoted).
        let mut kept = Vec::new();
        let mut changed = false;
        for part in url.split_whitespace() {
            match part.split_once('=') {
                Some(("sslrootcert", v)) if !v.starts_with('\'') => {
                    root_cert = Some(PathBuf::from(v));
                    changed = true;
                }
                Some(("sslmode", "verify-ca" | "verify-full")) => {
                    kept.push("sslmode=require");
                    changed = true;
                }
                _ => kept.push(part),
            }
        }
        if changed {
            (kept.join(" "), root_cert)
        } else {
            (url.to_owned(), None)
        }
    }
}

/// The SQL of one store, built once from the validated prefix.
#[derive(Debug)]
struct Sql {
    records: String,
    applied: String,
    meta: String,
    seq: String,
    migrate: Vec<String>,
    lock_scope: String,
    tx_settings: String,
    lock_key_prefix: String,
    applied_check: String,
    current_for_update: String,
    upsert_rows: String,
    insert_applied: String,
    pull: String,
    get: String,
    prune: String,
}

impl Sql {
    fn new(prefix: &str) -> Result<Self> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()));
        if !valid {
            return Err(Error::InvalidInput(format!(
                "postgres table prefix {prefix:?} must match [a-z_][a-z0-9_]* and be at most 40 bytes"
            )));
        }
        let records = format!("{prefix}records");
        let applied = format!("{prefix}applied_ops");
        let meta = format!("{prefix}meta");
        let seq = format!("{prefix}seq");
        let migrate = vec![
            format!("CREATE SEQUENCE IF NOT EXISTS {seq} AS bigint CACHE 1"),
            format!(
                "CREATE TABLE IF NOT EXISTS {records} (
                    scope text NOT NULL,
                    id text NOT NULL,
                    seq bigint NOT NULL,
                    version text NOT NULL,
                    updated_at timestamptz NOT NULL,
                    deleted boolean NOT NULL,
                    data jsonb,
                    PRIMARY KEY (scope, id)
                )"
            ),
            format!("CREATE UNIQUE INDEX IF NOT EXISTS {records}_feed ON {records} (scope, seq)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {applied} (
                    scope text NOT NULL,
                    op_id text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (scope, op_id)
                )"
            ),
            format!("CREATE INDEX IF NOT EXISTS {applied}_applied_at ON {applied} (applied_at)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text NOT NULL)"
            ),
        ];
        Ok(Sql {
            lock_scope: "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))".into(),
            tx_settings: "SELECT set_config('lock_timeout', $1, true), \
                          set_config('idle_in_transaction_session_timeout', $2, true)"
                .into(),
            lock_key_prefix: format!("{records}\n"),
            applied_check: format!("SELECT op_id FROM {applied} WHERE scope = $1 AND op_id = ANY($2::text[])"),
            current_for_update: format!(
                "SELECT id, version, deleted, data FROM {records}
                 WHERE scope = $1 AND id = ANY($2::text[]) FOR UPDATE"
            ),
            upsert_rows: format!(
                "INSERT INTO {records} (scope, id, seq, version, updated_at, deleted, data)
                 SELECT $1, u.id, nextval('{seq}'), u.version, u.updated_at, u.deleted, u.data
                 FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::boolean[], $6::jsonb[])
                      AS u(id, version, updated_at, deleted, data)
                 ON CONFLICT (scope, id) DO UPDATE SET
                    seq = EXCLUDED.seq, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                    deleted = EXCLUDED.deleted, data = EXCLUDED.data"
            ),
            insert_applied: format!(
                "INSERT INTO {applied} (scope, op_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING"
            ),
            pull: format!(
                "SELECT seq, id, version, data FROM {records}
                 WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            get: format!(
                "SELECT data FROM {records}
                 WHERE scope = $1 AND id = $2 AND NOT deleted AND data IS NOT NULL"
            ),
            prune: format!("DELETE FROM {applied} WHERE applied_at < $1"),
            records,
            applied,
            meta,
            seq,
            migrate,
        })
    }
}

/// Masks the password of a `postgres://user:password@host/db` URL (or a `password=` key/value),
/// for messages and logs.
pub fn redact_connection_string(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_owned();
    }
    // key=value form: mask whatever follows `password=` up to the next whitespace.
    let mut out = String::with_capacity(url.len());
    for (i, part) in url.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if part
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("password=")
        {
            out.push_str("password=***");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Turns driver errors into the crate's [`Error`], scrubbing the password from every message.
#[derive(Clone)]
struct ErrorMapper {
    secret: Option<String>,
}

impl fmt::Debug for ErrorMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorMapper").finish_non_exhaustive()
    }
}

impl ErrorMapper {
    fn scrub(&self, message: impl Into<String>) -> String {
        let message = message.into();
        match &self.secret {
            Some(s) if !s.is_empty() => message.replace(s.as_str(), "***"),
            _ => message,
        }
    }

    fn pg(&self, e: &tokio_postgres::Error) -> Error {
        let unavailable = |message: String| Error::Unavailable {
            backend: BACKEND,
            message: self.scrub(message),
            source: None,
        };
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let message = match db.detail() {
                Some(d) => format!("{} ({code}): {}: {d}", db.severity(), db.message()),
                None => format!("{} ({code}): {}", db.severity(), db.message()),
            };
            let class = &code[..2];
            return match class {
                "28" => Error::Unauthorized {
                    backend: BACKEND,
                    message: self.scrub(message),
                },
                "08" | "53" | "57" | "58" | "XX" => unavailable(message),
                "40" | "55" if matches!(code, "40001" | "40P01" | "55P03" | "55006") => {
                    unavailable(message)
                }
                "42" if code == "42501" => Error::Rejected {
                    backend: BACKEND,
                    status: None,
                    message: self.scrub(format!("permission denied: {message}")),
                },
                _ => Error::Rejected {
                    backend: BACKEND,
                    status: None,
                    message: self.scrub(message),
                },
            };
        }
        // Client-side errors: the Display text names the kind; the causes (io, TLS) follow.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if text.starts_with("error performing TLS handshake") && text.contains("certificate") {
            Error::Rejected {
                backend: BACKEND,
                status: None,
                message: self.scrub(format!(
                    "the server's TLS certificate is not trusted: {text}"
                )),
            }
        } else if text.starts_with("authentication error") {
            Error::Unauthorized {
                backend: BACKEND,
                message: self.scrub(text),
            }
        } else if text.starts_with("invalid connection string")
            || text.starts_with("invalid configuration")
        {
            Error::InvalidInput(self.scrub(format!("postgres: {text}")))
        } else if text.starts_with("error serializing") {
            Error::Codec(self.scrub(format!("postgres: {text}")))
        } else if text.starts_with("error deserializing")
            || text.starts_with("invalid column")
            || text.starts_with("query returned an unexpected")
        {
            Error::MalformedResponse {
                backend: BACKEND,
                message: self.scrub(text),
            }
        } else {
            // io, closed connection, timeout, TLS, protocol errors: transient.
            unavailable(text)
        }
    }

    fn pool(&self, e: PoolError) -> Error {
        match e {
            PoolError::Backend(e) => self.pg(&e),
            PoolError::PostCreateHook(h) => Error::Unavailable {
                backend: BACKEND,
                message: self.scrub(h.to_string()),
                source: None,
            },
            other => Error::Unavailable {
                backend: BACKEND,
                message: self.scrub(format!("connection pool: {other}")),
                source: None,
            },
        }
    }
}

/// A PostgreSQL database as a [`RemoteStore`], for any record type (stored as `jsonb`). See the
/// [module docs](self) for the schema and the exact-cursor design.
///
/// Cheap to share behind an `Arc`; it holds a connection pool.
pub struct PostgresRemoteStore<T> {
    pool: Pool,
    sql: Sql,
    errors: ErrorMapper,
    /// `lock_timeout` and `idle_in_transaction_session_timeout` (ms) for write transactions.
    tx_settings: [String; 2],
    prefix: String,
    _records: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for PostgresRemoteStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRemoteStore")
            .field("table_prefix", &self.prefix)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// A pooled connection that leaves the pool, instead of going back, after a connection-level
/// failure (the driver may not have noticed yet that the server closed it).
struct Conn {
    obj: Option<deadpool_postgres::Object>,
    broken: Arc<AtomicBool>,
}

impl std::ops::Deref for Conn {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.obj.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.obj.as_mut().expect("present until drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Relaxed)
            && let Some(obj) = self.obj.take()
        {
            drop(deadpool_postgres::Object::take(obj));
        }
    }
}

/// The remote's state of one record inside a push.
struct Current {
    version: Timestamp,
    deleted: bool,
    /// The stored payload; `None` for a pure tombstone.
    data: Option<Value>,
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Column `col` of a row read from the tables. Other writers can put anything there (a NULL, a
/// column retyped by hand): that is [`Error::MalformedResponse`], never a panic.
fn column<'a, V: FromSql<'a>>(row: &'a Row, col: &str) -> Result<V> {
    row.try_get(col).map_err(|e| Error::MalformedResponse {
        backend: BACKEND,
        message: format!("column {col:?}: {e}"),
    })
}

/// Like [`column`], naming the record in the error.
fn record_column<'a, V: FromSql<'a>>(row: &'a Row, col: &str, id: &str) -> Result<V> {
    row.try_get(col).map_err(|e| Error::MalformedResponse {
        backend: BACKEND,
        message: format!("record {id:?}: column {col:?}: {e}"),
    })
}

fn parse_version(id: &str, s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| Error::MalformedResponse {
        backend: BACKEND,
        message: format!("record {id:?} has a bad version {s:?}: {e}"),
    })
}

fn parse_cursor(c: Option<&Cursor>) -> Result<i64> {
    match c {
        None => Ok(0),
        Some(c) => c
            .as_str()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::InvalidInput(format!("bad postgres cursor {:?}", c.as_str()))),
    }
}

impl<T: Record> PostgresRemoteStore<T> {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or the key/value form), checks
    /// that a connection can be made and, unless disabled, creates the schema.
    ///
    /// Fails with [`Error::Unavailable`] when the server cannot be reached, [`Error::Unauthorized`]
    /// for bad credentials, [`Error::InvalidInput`] for a bad URL or options. No message contains
    /// the password.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let sql = Sql::new(&options.table_prefix)?;
        if options.max_connections == 0 {
            return Err(Error::InvalidInput(
                "postgres max_connections must be at least 1".into(),
            ));
        }
        let (url, url_root_cert) = libpq_tls_parameters(url);
        let url = url.as_str();
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::InvalidInput(format!(
                "invalid PostgreSQL connection string {}: {e}",
                redact_connection_string(url)
            ))
        })?;
        let errors = ErrorMapper {
            secret: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .filter(|p| !p.is_empty()),
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("remote-cache-sync");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Require {
            let extra: Vec<&Path> = options
                .tls_root_certificates
                .as_deref()
                .into_iter()
                .chain(url_root_cert.as_deref())
                .collect();
            let tls = tls_connector(&extra)?;
            Manager::from_config(config, tls, manager_config)
        } else {
            // `prefer` without verification would be theatre; see the module docs.
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| Error::InvalidInput(format!("postgres pool: {e}")))?;
        // Per-transaction settings of every write transaction (set with `set_config(.., true)`,
        // which also works through transaction-pooling proxies): bounded lock waits, and a
        // transaction that stalls while holding its scope's lock is ended by the server.
        let tx_settings = [
            options.lock_timeout.as_millis().max(1).to_string(),
            (options.lock_timeout.as_millis() * 2)
                .max(1_000)
                .to_string(),
        ];
        let store = PostgresRemoteStore {
            pool,
            sql,
            errors,
            tx_settings,
            prefix: options.table_prefix,
            _records: PhantomData,
        };
        if options.auto_migrate {
            store.migrate().await?;
        } else {
            // Fail now, not on the first sync, when the server or credentials are wrong.
            drop(store.client().await?);
        }
        tracing::debug!(prefix = %store.prefix, "connected to postgres remote");
        Ok(store)
    }

    /// Creates the tables, index and sequence if missing (idempotent, safe to run from several
    /// processes at once). Fails with [`Error::Storage`] ([`StorageErrorKind::SchemaTooNew`]) when
    /// the database was set up by a newer build.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let broken = client.broken.clone();
        let e = |e: tokio_postgres::Error| self.fail(&broken, &e);
        let tx = client.transaction().await.map_err(e)?;
        let [lock_timeout, idle_timeout] = &self.tx_settings;
        tx.execute(&self.sql.tx_settings, &[lock_timeout, idle_timeout])
            .await
            .map_err(e)?;
        // CREATE ... IF NOT EXISTS races between sessions; one migrator at a time per prefix.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
            &[&format!("remote-cache-sync migrate {}", self.prefix)],
        )
        .await
        .map_err(e)?;
        for stmt in &self.sql.migrate {
            tx.batch_execute(stmt).await.map_err(e)?;
        }
        let meta = &self.sql.meta;
        let row = tx
            .query_opt(
                &format!("SELECT value FROM {meta} WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .map_err(e)?;
        match row {
            None => {
                tx.execute(
                    &format!("INSERT INTO {meta} (key, value) VALUES ('schema_version', $1)"),
                    &[&SCHEMA_VERSION.to_string()],
                )
                .await
                .map_err(e)?;
            }
            Some(row) => {
                let v: String = row.try_get(0).map_err(|err| Error::Storage {
                    kind: StorageErrorKind::Corrupt,
                    message: format!("{meta}.schema_version: {err}"),
                })?;
                let v: i32 = v.parse().map_err(|_| Error::Storage {
                    kind: StorageErrorKind::Corrupt,
                    message: format!("{meta}.schema_version is {v:?}"),
                })?;
                if v > SCHEMA_VERSION {
                    return Err(Error::Storage {
                        kind: StorageErrorKind::SchemaTooNew,
                        message: format!(
                            "postgres tables {}* are at schema version {v}; this build knows {SCHEMA_VERSION}",
                            self.prefix
                        ),
                    });
                }
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(())
    }

    /// The table prefix in use.
    pub fn table_prefix(&self) -> &str {
        &self.prefix
    }

    /// Name of the records table (`{prefix}records`).
    pub fn records_table(&self) -> &str {
        &self.sql.records
    }

    /// Name of the applied-ops table (`{prefix}applied_ops`).
    pub fn applied_ops_table(&self) -> &str {
        &self.sql.applied
    }

    /// Name of the change-feed sequence (`{prefix}seq`).
    pub fn sequence_name(&self) -> &str {
        &self.sql.seq
    }

    /// Forgets applied op ids recorded before `before`; returns how many. A client that replays
    /// an op older than that gets it applied again (under [`base_matches`]), so keep this well
    /// beyond the longest time a client can stay offline.
    pub async fn prune_applied_ops(&self, before: Timestamp) -> Result<u64> {
        let client = self.client().await?;
        let broken = client.broken.clone();
        client
            .execute(&self.sql.prune, &[&before])
            .await
            .map_err(|e| self.fail(&broken, &e))
    }

    async fn client(&self) -> Result<Conn> {
        let obj = self.pool.get().await.map_err(|e| self.errors.pool(e))?;
        Ok(Conn {
            obj: Some(obj),
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Maps a driver error; a connection-level failure also marks the connection `broken`, so it
    /// is dropped instead of going back to the pool (the next call gets a fresh one).
    fn fail(&self, broken: &AtomicBool, e: &tokio_postgres::Error) -> Error {
        let connection_lost = e.is_closed()
            || match e.code() {
                Some(code) => matches!(&code.code()[..2], "08" | "57" | "58" | "XX"),
                // Client-side: io, timeouts, protocol errors; not value conversions.
                None => {
                    let text = e.to_string();
                    ![
                        "error serializing",
                        "error deserializing",
                        "invalid column",
                        "query returned",
                    ]
                    .iter()
                    .any(|p| text.starts_with(p))
                }
            };
        let err = self.errors.pg(e);
        if connection_lost {
            broken.store(true, Ordering::Relaxed);
            tracing::warn!(error = %err, "postgres connection failed; dropping it from the pool");
        }
        err
    }

    fn decode(&self, id: &str, data: &Value) -> Result<T> {
        T::deserialize(data).map_err(|e| Error::MalformedResponse {
            backend: BACKEND,
            message: format!("record {id:?} does not decode: {e}"),
        })
    }

    /// Decodes one change-feed row (columns `id`, `version`, `data`): the record, or a tombstone
    /// when `data` is NULL. Anything malformed is a typed error naming the record.
    fn decode_row(&self, row: &Row) -> Result<Change<T>> {
        let id: String = column(row, "id")?;
        let data: Option<Value> = record_column(row, "data", &id)?;
        Ok(match data {
            Some(d) => Change::Upsert(self.decode(&id, &d)?),
            None => {
                let version: String = record_column(row, "version", &id)?;
                let deleted_at = parse_version(&id, &version)?;
                Change::Delete(Tombstone { id, deleted_at })
            }
        })
    }

    /// Decodes one row of record `id` locked by a push (columns `version`, `deleted`, `data`).
    fn current_row(row: &Row, id: &str) -> Result<Current> {
        let version: String = record_column(row, "version", id)?;
        Ok(Current {
            version: parse_version(id, &version)?,
            deleted: record_column(row, "deleted", id)?,
            data: record_column(row, "data", id)?,
        })
    }

    fn current_change(&self, id: &str, cur: &Current) -> Result<Change<T>> {
        Ok(match &cur.data {
            Some(d) => Change::Upsert(self.decode(id, d)?),
            None => Change::Delete(Tombstone {
                id: id.to_owned(),
                deleted_at: cur.version,
            }),
        })
    }

    /// Checks an op for data PostgreSQL cannot store; returns the rejection reason.
    fn invalid_op(
        &self,
        op: &PendingOp<T>,
        change: &Change<T>,
        data: Option<&Value>,
    ) -> Option<String> {
        if op.id.is_empty() {
            return Some("record id must not be empty".into());
        }
        if op.id.contains('\0') || op.op_id.as_str().contains('\0') {
            return Some("ids must not contain NUL characters".into());
        }
        if let Some(r) = change.record()
            && r.id() != op.id
        {
            return Some(format!(
                "op targets record {:?} but its payload has id {:?}",
                op.id,
                r.id()
            ));
        }
        if change.version().as_second() < PG_MIN_UNIX_SECOND {
            return Some(format!("timestamp {} is before 4713 BC", change.version()));
        }
        if data.is_some_and(contains_nul) {
            return Some("text containing NUL characters cannot be stored".into());
        }
        None
    }
}

#[async_trait]
impl<T: Record> RemoteStore<T> for PostgresRemoteStore<T> {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let client = self.client().await?;
        let broken = client.broken.clone();
        let stmt = client
            .prepare_cached(&self.sql.get)
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        let row = client
            .query_opt(&stmt, &[&scope.canonical(), &id])
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        row.map(|r| {
            let data: Value = record_column(&r, "data", id)?;
            self.decode(id, &data)
        })
        .transpose()
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let from = parse_cursor(since)?;
        let limit = limit.clamp(1, 1_000_000);
        let client = self.client().await?;
        let broken = client.broken.clone();
        let stmt = client
            .prepare_cached(&self.sql.pull)
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        let canonical = scope.canonical();
        let fetch = (limit + 1) as i64;
        // Pipelined on one connection: the page and the server clock.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&canonical, &from, &fetch];
        let (rows, now) = tokio::try_join!(
            client.query(&stmt, &params),
            client.query_one("SELECT clock_timestamp()", &[]),
        )
        .map_err(|e| self.fail(&broken, &e))?;
        let server_time: Timestamp = now.try_get(0).map_err(|e| self.fail(&broken, &e))?;
        let mut delta = Delta::empty(server_time, since.cloned());
        delta.has_more = rows.len() > limit;
        for row in rows.into_iter().take(limit) {
            let seq: i64 = column(&row, "seq")?;
            match self.decode_row(&row) {
                Ok(Change::Upsert(r)) => delta.upserts.push(r),
                Ok(Change::Delete(t)) => delta.deletes.push(t),
                // One bad row never blocks the scope: it is handed over raw.
                Err(e) => {
                    let id = row.try_get::<_, String>("id").unwrap_or_default();
                    let raw = match row.try_get::<_, Option<Value>>("data") {
                        Ok(Some(d)) => d.to_string(),
                        _ => row.try_get::<_, String>("version").unwrap_or_default(),
                    };
                    delta
                        .quarantined
                        .push(QuarantinedRow::new(id, raw, e.to_string()));
                }
            }
            delta.cursor = Some(Cursor::new(seq.to_string()));
        }
        Ok(delta)
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        // Encode and validate before touching the database.
        let mut prepared = Vec::with_capacity(ops.len());
        for op in ops {
            let change = op.change();
            let data = match change.record() {
                Some(r) => Some(serde_json::to_value(r)?),
                None => None,
            };
            let invalid = self.invalid_op(op, &change, data.as_ref());
            prepared.push((change, data, invalid));
        }
        let canonical = scope.canonical();
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            ops.iter()
                .map(|o| o.id.as_str())
                .filter(|id| seen.insert(*id))
                .collect()
        };
        let op_ids: Vec<&str> = ops.iter().map(|o| o.op_id.as_str()).collect();

        let mut client = self.client().await?;
        let broken = client.broken.clone();
        let e = |e: tokio_postgres::Error| self.fail(&broken, &e);
        let tx = client.transaction().await.map_err(e)?;
        // See the module docs: this lock is what keeps the cursor exact.
        let lock_key = format!("{}{canonical}", self.sql.lock_key_prefix);
        let (settings, lock, applied_stmt, current_stmt) = tokio::try_join!(
            tx.prepare_cached(&self.sql.tx_settings),
            tx.prepare_cached(&self.sql.lock_scope),
            tx.prepare_cached(&self.sql.applied_check),
            tx.prepare_cached(&self.sql.current_for_update),
        )
        .map_err(e)?;
        let [lock_timeout, idle_timeout] = &self.tx_settings;
        let settings_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [lock_timeout, idle_timeout];
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_key];
        // Pipelined: the settings apply before the lock wait starts.
        tokio::try_join!(
            tx.execute(&settings, &settings_params),
            tx.execute(&lock, &lock_params)
        )
        .map_err(e)?;
        let applied_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&canonical, &op_ids];
        let current_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&canonical, &ids];
        let (applied_rows, current_rows) = tokio::try_join!(
            tx.query(&applied_stmt, &applied_params),
            tx.query(&current_stmt, &current_params),
        )
        .map_err(e)?;
        let mut applied: HashSet<String> = applied_rows
            .iter()
            .map(|r| column(r, "op_id"))
            .collect::<Result<_>>()?;
        let mut current: HashMap<String, Current> = HashMap::with_capacity(current_rows.len());
        // Rows another writer left malformed: ops on them cannot be checked, so they are
        // rejected (with the reason) and the other ops of the push go on.
        let mut unreadable: HashMap<String, Error> = HashMap::new();
        for row in &current_rows {
            let id: String = column(row, "id")?;
            match Self::current_row(row, &id) {
                Ok(cur) => {
                    current.insert(id, cur);
                }
                Err(err) => {
                    tracing::warn!(id = %id, error = %err, "postgres row is malformed");
                    unreadable.insert(id, err);
                }
            }
        }

        let mut outcomes = Vec::with_capacity(ops.len());
        // Ids to write, in first-write order; their final state is in `current`.
        let mut written: Vec<&str> = Vec::new();
        let mut written_set: HashSet<&str> = HashSet::new();
        let mut new_applied: Vec<&str> = Vec::new();
        for (op, (change, data, invalid)) in ops.iter().zip(prepared) {
            let cur = current.get(&op.id);
            if applied.contains(op.op_id.as_str()) {
                // The version this op wrote back then, not whatever superseded it since.
                outcomes.push(PushOutcome::Applied {
                    version: applied_version(op),
                });
                continue;
            }
            if let Some(reason) = invalid {
                outcomes.push(PushOutcome::Rejected { reason });
                continue;
            }
            if let Some(err) = unreadable.get(&op.id) {
                outcomes.push(PushOutcome::undecodable_current(err));
                continue;
            }
            if !base_matches(
                op.kind,
                op.base_version,
                cur.map(|c| (c.version, c.deleted)),
            ) {
                let cur = cur.expect("base_matches accepts every op on a missing record");
                match self.current_change(&op.id, cur) {
                    Ok(c) => outcomes.push(PushOutcome::Conflict { current: Some(c) }),
                    Err(err) => outcomes.push(PushOutcome::undecodable_current(err)),
                }
                continue;
            }
            current.insert(
                op.id.clone(),
                Current {
                    version: change.version(),
                    deleted: change.is_delete(),
                    data,
                },
            );
            if written_set.insert(op.id.as_str()) {
                written.push(op.id.as_str());
            }
            applied.insert(op.op_id.0.clone());
            new_applied.push(op.op_id.as_str());
            outcomes.push(PushOutcome::Applied {
                version: applied_version(op),
            });
        }

        if !written.is_empty() {
            let finals: Vec<&Current> = written.iter().map(|id| &current[*id]).collect();
            let w_versions: Vec<String> = finals.iter().map(|c| c.version.to_string()).collect();
            let w_times: Vec<Timestamp> = finals.iter().map(|c| c.version).collect();
            let w_deleted: Vec<bool> = finals.iter().map(|c| c.deleted).collect();
            let w_data: Vec<Option<&Value>> = finals.iter().map(|c| c.data.as_ref()).collect();
            let (upsert, insert_applied) = tokio::try_join!(
                tx.prepare_cached(&self.sql.upsert_rows),
                tx.prepare_cached(&self.sql.insert_applied),
            )
            .map_err(e)?;
            tx.execute(
                &upsert,
                &[
                    &canonical,
                    &written,
                    &w_versions,
                    &w_times,
                    &w_deleted,
                    &w_data,
                ],
            )
            .await
            .map_err(e)?;
            tx.execute(&insert_applied, &[&canonical, &new_applied])
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        tracing::debug!(
            scope = %scope,
            ops = ops.len(),
            written = written.len(),
            "postgres push committed"
        );
        Ok(outcomes)
    }

    async fn server_time(&self) -> Result<Timestamp> {
        let client = self.client().await?;
        let broken = client.broken.clone();
        let row = client
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        row.try_get(0).map_err(|e| self.fail(&broken, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_validated() {
        assert!(Sql::new("rcs_").is_ok());
        assert!(Sql::new("app2_").is_ok());
        for bad in [
            "",
            "Rcs_",
            "1abc",
            "a-b",
            "a b",
            "x; drop table y",
            "é",
            &"a".repeat(41),
        ] {
            assert!(
                matches!(Sql::new(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn connection_strings_are_redacted() {
        assert_eq!(
            redact_connection_string("postgres://u:pw@127.0.0.1:5432/db"),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact_connection_string("postgresql://u:p%40ss@h/db?sslmode=disable"),
            "postgresql://u:***@h/db?sslmode=disable"
        );
        assert_eq!(
            redact_connection_string("postgres://u@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(
            redact_connection_string("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn libpq_tls_parameters_are_understood() {
        assert_eq!(
            libpq_tls_parameters(
                "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem"
            ),
            (
                "postgres://u:p@h/db?sslmode=require".to_owned(),
                Some(PathBuf::from("/tmp/ca x.pem"))
            )
        );
        assert_eq!(
            libpq_tls_parameters("postgres://u@h/db?sslrootcert=/ca.pem"),
            (
                "postgres://u@h/db".to_owned(),
                Some(PathBuf::from("/ca.pem"))
            )
        );
        assert_eq!(
            libpq_tls_parameters("postgres://u@h/db?sslmode=disable"),
            ("postgres://u@h/db?sslmode=disable".to_owned(), None)
        );
        assert_eq!(
            libpq_tls_parameters("host=h sslmode=verify-ca sslrootcert=/ca.pem user=u"),
            (
                "host=h sslmode=require user=u".to_owned(),
                Some(PathBuf::from("/ca.pem"))
            )
        );
        assert_eq!(
            libpq_tls_parameters("host=h password='a  b'"),
            ("host=h password='a  b'".to_owned(), None)
        );
    }

    #[test]
    fn cursors_are_validated() {
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some(&Cursor::new("42"))).unwrap(), 42);
        for bad in ["", "-1", "x", "1.5", "99999999999999999999"] {
            assert!(parse_cursor(Some(&Cursor::new(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nul_detection() {
        assert!(contains_nul(&serde_json::json!({"a": ["x\u{0}"]})));
        assert!(contains_nul(&serde_json::json!({"a\u{0}": 1})));
        assert!(!contains_nul(&serde_json::json!({"a": ["x", 1, null]})));
    }
}
