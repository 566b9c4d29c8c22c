//! Public conformance suites (feature `testing`): one for [`LocalStore`](crate::LocalStore), one
//! for [`RemoteStore`](crate::RemoteStore). Every backend in this crate runs them, and you can run
//! them against your own stores. Each check panics with a message naming what broke.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::scope::SyncScope;

#[cfg(feature = "appwrite-standin")]
pub mod appwrite;
pub mod faults;
pub mod local;
#[cfg(feature = "fault-proxy")]
pub mod proxy;
pub mod query;
pub mod reconcile;
pub mod remote;

pub use faults::{Fault, FaultyRemote};
#[cfg(feature = "fault-proxy")]
pub use proxy::{FaultProxy, HttpFault};

/// The record type the suites use. Field names are plain JSON keys so every backend can store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// Id.
    pub id: String,
    /// Free text (filters, conflicts).
    pub title: String,
    /// A number (ordering, range filters).
    #[serde(default)]
    pub n: i64,
    /// Last change (UTC).
    pub updated_at: Timestamp,
    /// Tombstone time, for payload soft deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Labels (array queries: [`Filter::has`](crate::Filter::has)); absent from the JSON when
    /// empty, so remotes that store a fixed set of columns never see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Record for TestRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    fn deleted_at(&self) -> Option<Timestamp> {
        self.deleted_at
    }
    fn with_updated_at(&self, at: Timestamp) -> crate::Result<Self> {
        Ok(TestRecord {
            updated_at: at,
            ..self.clone()
        })
    }
}

impl TestRecord {
    /// A record with `title`, `n = 0`, stamped `at`.
    pub fn new(id: impl Into<String>, title: impl Into<String>, at: Timestamp) -> Self {
        TestRecord {
            id: id.into(),
            title: title.into(),
            n: 0,
            updated_at: at,
            deleted_at: None,
            tags: Vec::new(),
        }
    }

    /// Same record with `n` set.
    pub fn with_n(mut self, n: i64) -> Self {
        self.n = n;
        self
    }

    /// Same record with `tags` set.
    pub fn with_tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

/// Set to `1` (as `scripts/test.sh` and CI do) to make tests whose prerequisites are missing
/// fail instead of skipping: see [`require_env`] and [`skip_unless_required`].
pub const REQUIRE_SERVERS_VAR: &str = "RCS_TEST_REQUIRE_SERVERS";

/// Whether missing test prerequisites must fail the test (`RCS_TEST_REQUIRE_SERVERS=1`).
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_SERVERS_VAR).as_deref() == Ok("1")
}

/// For a test that cannot run here (`reason` says why): prints a "skipped" line to stderr and
/// returns, so the test can return early; panics instead when [`servers_required`].
#[track_caller]
pub fn skip_unless_required(reason: impl std::fmt::Display) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    assert!(
        !servers_required(),
        "{test}: {reason}, and {REQUIRE_SERVERS_VAR}=1 forbids skipping"
    );
    eprintln!("skipped {test}: {reason}");
}

/// The value of the environment variable `var` (e.g. `RCS_TEST_PG_URL`) for a test that needs
/// an external server. When it is unset or empty: `None`, after [`skip_unless_required`] (a
/// "skipped" line, or a panic when `RCS_TEST_REQUIRE_SERVERS=1`).
///
/// ```no_run
/// # fn test() {
/// let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
///     return;
/// };
/// # }
/// ```
#[track_caller]
pub fn require_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip_unless_required(format_args!(
                "{var} is not set (scripts/start-postgres.sh and scripts/start-pocketbase.sh \
                 print the test servers' variables)"
            ));
            None
        }
    }
}

/// A timestamp `ms` milliseconds after a fixed epoch (2026-01-01), for deterministic tests.
pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_767_225_600_000 + ms).expect("in range")
}

/// A fresh scope with a random key, so checks can share one remote without seeing each other.
pub fn unique_scope(name: &str) -> SyncScope {
    SyncScope::new(name, [("owner", uuid::Uuid::now_v7().simple().to_string())])
        .expect("valid scope")
}
