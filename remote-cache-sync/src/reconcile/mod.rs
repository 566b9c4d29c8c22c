//! Reconciliation: repairs what a change feed never carried (rows hard-deleted behind its back,
//! edits that bypassed its sequence) without transferring the scope.
//!
//! Both sides digest the live `(id, version)` rows of a scope in buckets of the id space
//! ([`hash`]); the [`Planner`] compares the digests, descends only into buckets that differ,
//! lists the rows of the small differing ones and yields a [`Plan`]: ids to fetch (missing or
//! stale in the cache) and rows to remove (the remote no longer has them).
//! [`Orchestrator::reconcile`](crate::Orchestrator::reconcile) runs it; remotes answer through
//! [`RemoteStore::digest`](crate::RemoteStore::digest) (our server: `POST /v1/digest`,
//! `docs/protocol.md`), or through a full listing of their feed when they cannot.
//!
//! The cache side digests each row at the version the remote last gave it: a row with queued
//! local ops counts at its synced version (so it matches a remote that has not changed it) and
//! is never overwritten or removed by reconciliation; a local create not yet pushed is left out.

pub mod hash;
mod planner;
pub mod protocol;
mod run;

pub use hash::{RowSet, bucket_hex, canonical_version, digest_rows, row_hash};
pub use planner::{LIST_MAX, Plan, Planner};
pub use protocol::{BucketDigest, DigestRequest, DigestResponse, ListedRow, WireDigestRequest};
#[cfg(feature = "server")]
pub(crate) use run::digest_by_listing;
pub(crate) use run::reconcile;

/// What [`Orchestrator::reconcile`](crate::Orchestrator::reconcile) found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Live remote rows the comparison covered.
    pub checked: u64,
    /// Rows the remote had and the cache had not (fetched).
    pub missing: u64,
    /// Rows the cache had and the remote no longer has (removed from the cache).
    pub extra: u64,
    /// Rows the cache held at another version than the remote's (fetched).
    pub stale: u64,
    /// Differing rows left alone because they have queued local ops.
    pub skipped: u64,
    /// Bytes the remote sent: digest and listing answers, and the fetched rows (their JSON
    /// size). A remote without digests is listed in full, and that listing is counted.
    pub bytes_transferred: u64,
    /// Rounds of digest requests.
    pub rounds: u64,
}
