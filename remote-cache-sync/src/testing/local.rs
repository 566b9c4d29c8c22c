//! The [`LocalStore`] conformance suite: the trait's documented semantics in executable form.
//!
//! ```no_run
//! # async fn doc() {
//! use remote_cache_sync::InMemoryLocalStore;
//! use remote_cache_sync::testing::local;
//! local::run_all(async || InMemoryLocalStore::new()).await;
//! # }
//! ```
//!
//! `make` must return a new, empty store on every call (each check gets its own, so checks
//! about [`LocalStore::scopes`] can expect exact lists). Each check is also public, so you can
//! run one alone. A failed check panics with a message naming the check and what broke.

// `&[id.clone()]` reads better than `slice::from_ref(&id)` in test code.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::collections::BTreeSet;

use serde_json::Value;

use crate::delta::{Cursor, Delta, SyncPoint};
use crate::error::Error;
use crate::local::{Ack, LocalStore, QueueStatus, Settlement};
use crate::op::{OpId, OpKind, PendingOp};
use crate::query::{Direction, Filter, FilterOp, QuerySpec};
use crate::record::{Change, Tombstone};
use crate::scope::SyncScope;
use crate::testing::{TestRecord, ts, unique_scope};

mod apply;
mod isolation;
mod query;
mod queue;
mod reconcile;
mod records;
mod scope_state;
pub use apply::{apply_remote, queue_status, scopes};
pub use isolation::{scope_isolation, values_round_trip};
pub use query::{
    get_and_basic_query, invalid_queries, query_arrays, query_nocase_ordering, query_operators,
    query_ordering_and_paging, query_since,
};
pub use queue::{
    ack_ops, enqueue_rejects_bad_ops, enqueue_writes_row_and_op, pending_ops_order_limit_and_base,
    reject_park_unpark_discard, settle_keep_local_requeues, settle_take_remote,
    settle_with_newer_op_keeps_local_row,
};
pub use records::{soft_delete, sync_points, upsert_last_write_wins};
pub use scope_state::{
    pause_round_trips, quarantine_is_kept_and_released, versions_include_tombstones,
};

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S: LocalStore<TestRecord>>(make: impl AsyncFn() -> S) {
    get_and_basic_query(&make().await).await;
    query_operators(&make().await).await;
    query_ordering_and_paging(&make().await).await;
    query_arrays(&make().await).await;
    query_nocase_ordering(&make().await).await;
    invalid_queries(&make().await).await;
    query_since(&make().await).await;
    upsert_last_write_wins(&make().await).await;
    soft_delete(&make().await).await;
    sync_points(&make().await).await;
    enqueue_writes_row_and_op(&make().await).await;
    enqueue_rejects_bad_ops(&make().await).await;
    pending_ops_order_limit_and_base(&make().await).await;
    ack_ops(&make().await).await;
    reject_park_unpark_discard(&make().await).await;
    settle_take_remote(&make().await).await;
    settle_keep_local_requeues(&make().await).await;
    settle_with_newer_op_keeps_local_row(&make().await).await;
    apply_remote(&make().await).await;
    queue_status(&make().await).await;
    scopes(&make().await).await;
    scope_isolation(&make().await).await;
    values_round_trip(&make().await).await;
    pause_round_trips(&make().await).await;
    quarantine_is_kept_and_released(&make().await).await;
    versions_include_tombstones(&make().await).await;
    reconcile::reconcile_rows_and_apply(&make().await).await;
}

fn rec(id: &str, title: &str, n: i64, ms: i64) -> TestRecord {
    TestRecord::new(id, title, ts(ms)).with_n(n)
}

fn ids(records: &[TestRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn op_ids<T>(ops: &[PendingOp<T>]) -> Vec<OpId> {
    ops.iter().map(|o| o.op_id.clone()).collect()
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

fn update(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Update, r)
}

fn page(
    upserts: Vec<TestRecord>,
    deletes: Vec<Tombstone>,
    cursor: &str,
) -> (Delta<TestRecord>, SyncPoint) {
    let point = SyncPoint {
        cursor: Some(Cursor::new(cursor)),
        server_time: ts(1_000_000),
    };
    let delta = Delta {
        quarantined: Vec::new(),
        upserts,
        deletes,
        server_time: point.server_time,
        cursor: point.cursor.clone(),
        has_more: false,
    };
    (delta, point)
}

async fn q<S: LocalStore<TestRecord>>(
    store: &S,
    scope: &SyncScope,
    spec: QuerySpec,
) -> Vec<TestRecord> {
    store
        .query(scope, &spec)
        .await
        .unwrap_or_else(|e| panic!("query {spec:?} failed: {e}"))
}

async fn get<S: LocalStore<TestRecord>>(
    store: &S,
    scope: &SyncScope,
    id: &str,
) -> Option<TestRecord> {
    store.get_by_id(scope, id).await.expect("get_by_id failed")
}

async fn pending<S: LocalStore<TestRecord>>(
    store: &S,
    scope: &SyncScope,
) -> Vec<PendingOp<TestRecord>> {
    store
        .pending_ops(scope, usize::MAX)
        .await
        .expect("pending_ops failed")
}

async fn parked<S: LocalStore<TestRecord>>(
    store: &S,
    scope: &SyncScope,
) -> Vec<PendingOp<TestRecord>> {
    store.parked_ops(scope).await.expect("parked_ops failed")
}

async fn enqueue<S: LocalStore<TestRecord>>(store: &S, op: &PendingOp<TestRecord>) {
    store.enqueue(op.clone()).await.expect("enqueue failed");
}

/// Marks `r` as synced at its own version (a pulled page holding it).
async fn synced<S: LocalStore<TestRecord>>(store: &S, scope: &SyncScope, r: &TestRecord) {
    let (delta, point) = page(vec![r.clone()], vec![], "sync");
    let skipped = store
        .apply_remote(scope, &delta, &point)
        .await
        .expect("apply_remote failed");
    assert!(
        skipped.is_empty(),
        "helper pull unexpectedly skipped {skipped:?}"
    );
}
