//! Public conformance suites (feature `testing`): one for [`LocalStore`](crate::LocalStore), one
//! for [`RemoteStore`](crate::RemoteStore). Every backend in this crate runs them, and you can run
//! them against your own stores. Each check panics with a message naming what broke.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::scope::SyncScope;

pub mod faults;
pub mod local;
#[cfg(feature = "fault-proxy")]
pub mod proxy;
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
        }
    }

    /// Same record with `n` set.
    pub fn with_n(mut self, n: i64) -> Self {
        self.n = n;
        self
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
