//! [`PostgresRemoteStore`]: a PostgreSQL database as the remote, reached directly with
//! `tokio-postgres` (feature `postgres`), with an **exact** change-feed cursor. Needs PostgreSQL 11
//! or newer (`hashtextextended`), 14 for [reconciliation](crate::reconcile) digests (`bit_xor`);
//! tested with 15. Guide: `docs/backends/postgres.md`.
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
//!   nanoseconds, what [`base_matches`](crate::remote::base_matches) compares); `updated_at` is the same instant as a
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
//! The lock also serialises pushes *within one scope*, which makes the [`base_matches`](crate::remote::base_matches) check,
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
//!
//! # Realtime
//!
//! [`RemoteStore::subscribe`] listens on the channel `{p}changes` with `LISTEN` on a dedicated
//! connection; every push that writes anything sends `pg_notify('{p}changes', scope)` in its
//! transaction, so listeners hear of it exactly when it commits. Events are triggers: the
//! subscription says `Reconnected` whenever its `LISTEN` (re)starts, and the orchestrator pulls.
//! A writer that bypasses the store should notify the same way, or its changes wait for the
//! periodic sync. Details in the `listen` module's source.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

const BACKEND: &str = "postgres";

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Earliest instant a `timestamptz` can hold (4714-11-24 BC, Julian day 0), in Unix seconds.
const PG_MIN_UNIX_SECOND: i64 = -210_866_803_200;

mod coalesce;
mod connect;
mod digest;
mod errors;
mod listen;
mod options;
mod push;
mod query;
mod sql;
mod tls;

use errors::ErrorMapper;
pub use options::PostgresOptions;
use sql::Sql;
pub use tls::redact_connection_string;

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
    /// How subscriptions open their `LISTEN` connection.
    listen: Arc<listen::ListenSetup>,
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
    /// an op older than that gets it applied again (under [`base_matches`](crate::remote::base_matches)), so keep this well
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

    /// A count over the feed index `(scope, seq)` from the cursor on.
    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        let from = parse_cursor(since)?;
        let client = self.client().await?;
        let broken = client.broken.clone();
        let stmt = client
            .prepare_cached(&self.sql.count)
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        let row = client
            .query_one(&stmt, &[&scope.canonical(), &from])
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        let n: i64 = row.try_get(0).map_err(|e| self.fail(&broken, &e))?;
        Ok(Some(n.max(0) as u64))
    }

    /// One `SELECT` with bound parameters (see the `query` submodule for the mapping).
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        self.run_query(scope, query).await.map(Some)
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
        self.push_ops(scope, ops).await
    }

    /// In SQL, where the rows live (see `digest.rs`).
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &crate::reconcile::DigestRequest,
    ) -> Result<Option<crate::reconcile::DigestResponse>> {
        self.digest_in_sql(scope, request).await.map(Some)
    }

    /// `LISTEN`/`NOTIFY` on a dedicated connection; see [Realtime](self#realtime).
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<crate::remote::RemoteEvents> {
        Some(listen::spawn(self.listen.clone(), Some(scopes)))
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

/// Every change of every scope, for a server sharing this database with others (`rcs serve`).
#[cfg(feature = "server")]
impl<T: Record> crate::server::ChangeFeed for PostgresRemoteStore<T> {
    fn changes(&self) -> crate::remote::RemoteEvents {
        listen::spawn(self.listen.clone(), None)
    }
}

#[cfg(test)]
mod tests;
