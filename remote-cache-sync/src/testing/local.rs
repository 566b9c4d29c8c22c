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

mod reconcile;
mod scope_state;
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

/// `get_by_id` on present and missing ids; an unfiltered query returns every live record by id.
pub async fn get_and_basic_query<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    assert_eq!(get(store, &scope, "a").await, None, "get on an empty store");
    assert!(
        q(store, &scope, QuerySpec::new()).await.is_empty(),
        "query on an empty store"
    );
    let rows = [
        rec("c", "three", 3, 30),
        rec("a", "one", 1, 10),
        rec("b", "two", 2, 20),
    ];
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await,
        Some(rows[1].clone()),
        "get_by_id returns the record"
    );
    assert_eq!(
        get(store, &scope, "zz").await,
        None,
        "get_by_id of a missing id"
    );
    let all = q(store, &scope, QuerySpec::new()).await;
    assert_eq!(
        ids(&all),
        ["a", "b", "c"],
        "unfiltered query is ordered by id"
    );
    assert_eq!(all[2], rows[0], "query returns whole records");
    store
        .upsert_many(&scope, &[])
        .await
        .expect("empty upsert_many is a no-op");
}

fn operator_rows() -> Vec<TestRecord> {
    vec![
        rec("r1", "apple pie", 1, 10),
        rec("r2", "Apple", 0, 20),
        rec("r3", "banana", 5, 30),
        rec("r4", "", -3, 40),
        rec("r5", "cherry apple", 10, 50),
        rec("r6", "10", 2, 60),
    ]
}

/// Every [`FilterOp`], including type-rank comparisons, missing fields and nested paths.
pub async fn query_operators<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let rows = operator_rows();
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    let json: Vec<(String, Value)> = rows
        .iter()
        .map(|r| (r.id.clone(), serde_json::to_value(r).expect("encode")))
        .collect();
    let cases: Vec<(Filter, &[&str])> = vec![
        (Filter::eq("title", "banana"), &["r3"]),
        (Filter::eq("n", 5), &["r3"]),
        (Filter::eq("n", 5.0), &["r3"]),
        (Filter::eq("n", 1), &["r1"]),
        (Filter::eq("n", true), &["r1"]),
        (Filter::eq("n", false), &["r2"]),
        (Filter::eq("title", 10), &[]),
        (Filter::eq("n", "5"), &[]),
        (Filter::ne("n", 0), &["r1", "r3", "r4", "r5", "r6"]),
        (
            Filter::ne("title", "Apple"),
            &["r1", "r3", "r4", "r5", "r6"],
        ),
        (Filter::lt("n", 2), &["r1", "r2", "r4"]),
        (Filter::le("n", 2), &["r1", "r2", "r4", "r6"]),
        (Filter::gt("n", 2), &["r3", "r5"]),
        (Filter::ge("n", 2), &["r3", "r5", "r6"]),
        (Filter::gt("n", 1.5), &["r3", "r5", "r6"]),
        (Filter::lt("n", -2.5), &["r4"]),
        (Filter::lt("title", "b"), &["r1", "r2", "r4", "r6"]),
        (Filter::lt("title", "a"), &["r2", "r4", "r6"]),
        (Filter::ge("title", "banana"), &["r3", "r5"]),
        (Filter::gt("title", ""), &["r1", "r2", "r3", "r5", "r6"]),
        // Numbers rank below strings: every number is less than any string.
        (Filter::lt("n", "0"), &["r1", "r2", "r3", "r4", "r5", "r6"]),
        (
            Filter::gt("title", 1_000_000),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (Filter::le("title", 1_000_000), &[]),
        (Filter::eq("title", "10"), &["r6"]),
        (Filter::is_in("n", [5, 10, 99]), &["r3", "r5"]),
        (
            Filter::is_in("title", ["banana", "Apple", "x"]),
            &["r2", "r3"],
        ),
        (
            Filter::is_in("n", [Value::from(0), Value::from("banana")]),
            &["r2"],
        ),
        (Filter::is_in("n", Vec::<i64>::new()), &[]),
        (Filter::contains("title", "apple"), &["r1", "r5"]),
        (Filter::contains("title", "Apple"), &["r2"]),
        (Filter::contains("title", "APPLE"), &[]),
        (
            Filter::contains("title", ""),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (Filter::contains("n", "1"), &[]),
        (Filter::contains("title", "%"), &[]),
        (Filter::contains("title", "_"), &[]),
        // Missing fields: every comparison is false, except is_null(true).
        (Filter::eq("missing", 1), &[]),
        (Filter::ne("missing", 1), &[]),
        (Filter::lt("missing", "z"), &[]),
        (
            Filter::is_null("missing", true),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (Filter::is_null("missing", false), &[]),
        (
            Filter::is_null("deleted_at", true),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (
            Filter::is_null("title", false),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (Filter::is_null("title", true), &[]),
        (Filter::eq("title.inner", "x"), &[]),
        (
            Filter::is_null("title.inner", true),
            &["r1", "r2", "r3", "r4", "r5", "r6"],
        ),
        (Filter::eq("updated_at", "2026-01-01T00:00:00.03Z"), &["r3"]),
    ];
    for (filter, want) in cases {
        let spec = QuerySpec::new().filter(filter.clone());
        let got = q(store, &scope, spec.clone()).await;
        assert_eq!(ids(&got), want, "query_operators: filter {filter:?}");
        let reference = spec
            .apply(json.iter().map(|(id, v)| (id.as_str(), id.as_str(), v)))
            .expect("reference failed");
        assert_eq!(
            reference, want,
            "query_operators: the suite disagrees with QuerySpec::apply on {filter:?}"
        );
    }
    // Filters are ANDed.
    let spec = QuerySpec::new()
        .filter(Filter::contains("title", "apple"))
        .filter(Filter::gt("n", 1));
    assert_eq!(
        ids(&q(store, &scope, spec).await),
        ["r5"],
        "filters are ANDed"
    );
}

/// Ordering by fields (both directions, several keys, missing fields), the id tie-break, limit
/// and offset.
pub async fn query_ordering_and_paging<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let rows = vec![
        rec("e", "b", 2, 10),
        rec("a", "b", 1, 20),
        rec("d", "a", 2, 30),
        rec("c", "c", 1, 40),
        rec("b", "a", 3, 50),
    ];
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    let cases: Vec<(QuerySpec, &[&str])> = vec![
        (QuerySpec::new(), &["a", "b", "c", "d", "e"]),
        (
            QuerySpec::new().order_by("n", Direction::Asc),
            &["a", "c", "d", "e", "b"],
        ),
        (
            QuerySpec::new().order_by("n", Direction::Desc),
            &["b", "d", "e", "a", "c"],
        ),
        (
            QuerySpec::new()
                .order_by("title", Direction::Asc)
                .order_by("n", Direction::Desc),
            &["b", "d", "e", "a", "c"],
        ),
        (
            QuerySpec::new()
                .order_by("title", Direction::Desc)
                .order_by("n", Direction::Asc),
            &["c", "a", "e", "d", "b"],
        ),
        (
            QuerySpec::new().order_by("updated_at", Direction::Desc),
            &["b", "c", "d", "a", "e"],
        ),
        // A missing field sorts as null: all equal, so the id decides.
        (
            QuerySpec::new().order_by("missing", Direction::Desc),
            &["a", "b", "c", "d", "e"],
        ),
        (
            QuerySpec::new().order_by("n", Direction::Asc).limit(2),
            &["a", "c"],
        ),
        (
            QuerySpec::new()
                .order_by("n", Direction::Asc)
                .offset(2)
                .limit(2),
            &["d", "e"],
        ),
        (QuerySpec::new().offset(3), &["d", "e"]),
        (QuerySpec::new().offset(5), &[]),
        (QuerySpec::new().offset(50).limit(3), &[]),
        (QuerySpec::new().limit(0), &[]),
        (
            QuerySpec::new().limit(usize::MAX),
            &["a", "b", "c", "d", "e"],
        ),
        (QuerySpec::new().offset(usize::MAX), &[]),
        (
            QuerySpec::new()
                .filter(Filter::ge("n", 2))
                .order_by("n", Direction::Desc)
                .limit(2),
            &["b", "d"],
        ),
    ];
    for (spec, want) in cases {
        let got = q(store, &scope, spec.clone()).await;
        assert_eq!(ids(&got), want, "query_ordering_and_paging: {spec:?}");
    }
    // Descending strings keep the ascending id tie-break.
    let mixed = unique_scope("records");
    let docs = [
        rec("m1", "zeta", 0, 10),
        rec("m2", "alpha", 0, 20),
        rec("m3", "alpha", 0, 30),
    ];
    store
        .upsert_many(&mixed, &docs)
        .await
        .expect("upsert_many failed");
    let got = q(
        store,
        &mixed,
        QuerySpec::new().order_by("title", Direction::Desc),
    )
    .await;
    assert_eq!(
        ids(&got),
        ["m1", "m2", "m3"],
        "descending strings, ties by id ascending"
    );
}

/// Array fields: [`Filter::has`] is membership; a scalar comparison that meets an array in a
/// record the query would return fails with [`Error::InvalidQuery`] (never an empty result).
pub async fn query_arrays<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let rows = vec![
        rec("a1", "x", 1, 10).with_tags(["red", "blue"]),
        rec("a2", "y", 2, 20).with_tags(["blue"]),
        rec("a3", "z", 3, 30).with_tags(["Red", "10"]),
        rec("a4", "red", 4, 40),
    ];
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    let json: Vec<(String, Value)> = rows
        .iter()
        .map(|r| (r.id.clone(), serde_json::to_value(r).expect("encode")))
        .collect();
    let cases: Vec<(QuerySpec, &[&str])> = vec![
        (
            QuerySpec::new().filter(Filter::has("tags", "blue")),
            &["a1", "a2"],
        ),
        (QuerySpec::new().filter(Filter::has("tags", "red")), &["a1"]),
        (QuerySpec::new().filter(Filter::has("tags", "10")), &["a3"]),
        (QuerySpec::new().filter(Filter::has("tags", 10)), &[]),
        (QuerySpec::new().filter(Filter::has("tags", "re")), &[]),
        (QuerySpec::new().filter(Filter::has("title", "red")), &[]),
        (QuerySpec::new().filter(Filter::has("missing", "red")), &[]),
        (
            QuerySpec::new()
                .filter(Filter::has("tags", "blue"))
                .filter(Filter::has("tags", "red")),
            &["a1"],
        ),
        (
            QuerySpec::new()
                .filter(Filter::has("tags", "blue"))
                .order_by("n", Direction::Desc),
            &["a2", "a1"],
        ),
        (
            QuerySpec::new().filter(Filter::is_null("tags", true)),
            &["a4"],
        ),
        // The array record is dropped by another filter or paged out: no error.
        (
            QuerySpec::new()
                .filter(Filter::eq("tags", "red"))
                .filter(Filter::eq("title", "red")),
            &[],
        ),
        (
            QuerySpec::new()
                .filter(Filter::contains("tags", "red"))
                .filter(Filter::gt("n", 3)),
            &[],
        ),
        (
            QuerySpec::new().filter(Filter::is_in("tags", Vec::<String>::new())),
            &[],
        ),
    ];
    for (spec, want) in cases {
        let got = q(store, &scope, spec.clone()).await;
        assert_eq!(ids(&got), want, "query_arrays: {spec:?}");
        let reference = spec
            .apply(json.iter().map(|(id, v)| (id.as_str(), id.as_str(), v)))
            .expect("reference failed");
        assert_eq!(
            reference, want,
            "query_arrays: the suite disagrees with QuerySpec::apply on {spec:?}"
        );
    }
    let wrong = [
        Filter::eq("tags", "red"),
        Filter::ne("tags", "red"),
        Filter::lt("tags", "red"),
        Filter::le("tags", 1),
        Filter::gt("tags", 1),
        Filter::ge("tags", "red"),
        Filter::is_in("tags", ["red"]),
        Filter::contains("tags", "red"),
    ];
    for filter in wrong {
        let spec = QuerySpec::new().filter(filter.clone());
        match store.query(&scope, &spec).await {
            Err(Error::InvalidQuery(m)) => assert!(
                m.contains("tags") && m.contains("Filter::has"),
                "query_arrays: the error should name the field and the fix: {m}"
            ),
            other => panic!(
                "query_arrays: {filter:?} on an array field should fail with InvalidQuery, got {other:?}"
            ),
        }
        assert!(
            spec.apply(json.iter().map(|(id, v)| (id.as_str(), id.as_str(), v)))
                .is_err(),
            "query_arrays: the reference accepts {filter:?}"
        );
    }
    // Only records the query would return count: a4 (no tags) is the whole page here.
    let spec = QuerySpec::new()
        .filter(Filter::ne("tags", "x"))
        .order_by("n", Direction::Desc)
        .limit(1);
    assert!(
        matches!(
            store.query(&scope, &spec).await,
            Err(Error::InvalidQuery(_))
        ),
        "query_arrays: a4 has no tags, so it fails ne and the page holds an array record"
    );
}

/// Strings sort byte-wise by default; [`OrderBy::nocase`](crate::OrderBy::nocase) folds ASCII
/// case only.
pub async fn query_nocase_ordering<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let rows = [
        rec("1", "b", 0, 10),
        rec("2", "B", 0, 20),
        rec("3", "a", 0, 30),
        rec("4", "\u{c9}", 0, 40),
        rec("5", "\u{e9}", 0, 50),
        rec("6", "Z", 1, 60),
        rec("7", "z", 0, 70),
    ];
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    let cases: Vec<(QuerySpec, &[&str])> = vec![
        (
            QuerySpec::new().order_by("title", Direction::Asc),
            &["2", "6", "3", "1", "7", "4", "5"],
        ),
        (
            QuerySpec::new().sort_by(crate::OrderBy::asc("title").nocase()),
            &["3", "1", "2", "6", "7", "4", "5"],
        ),
        (
            QuerySpec::new()
                .sort_by(crate::OrderBy::desc("title").nocase())
                .order_by("n", Direction::Asc),
            &["5", "4", "7", "6", "1", "2", "3"],
        ),
        (
            QuerySpec::new()
                .filter(Filter::lt("title", "a"))
                .sort_by(crate::OrderBy::asc("title").nocase())
                .limit(2),
            &["2", "6"],
        ),
    ];
    for (spec, want) in cases {
        let got = q(store, &scope, spec.clone()).await;
        assert_eq!(ids(&got), want, "query_nocase_ordering: {spec:?}");
    }
}

/// Invalid specs fail with [`Error::InvalidQuery`] and never reach the storage engine.
pub async fn invalid_queries<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    store
        .upsert_many(&scope, &[rec("a", "x", 1, 1)])
        .await
        .expect("upsert_many failed");
    let bad = [
        QuerySpec::new().filter(Filter::eq("a') OR 1=1 --", 1)),
        QuerySpec::new().filter(Filter::eq("", 1)),
        QuerySpec::new().filter(Filter::eq("title..x", 1)),
        QuerySpec::new().filter(Filter::eq("$.title", 1)),
        QuerySpec::new().filter(Filter::eq("1abc", 1)),
        QuerySpec::new().filter(Filter::eq("title", serde_json::json!([1]))),
        QuerySpec::new().filter(Filter::eq("title", serde_json::json!({"a": 1}))),
        QuerySpec::new().filter(Filter {
            field: "title".into(),
            op: FilterOp::Eq(Value::Null),
        }),
        QuerySpec::new().filter(Filter::is_in("n", 0..1001)),
        QuerySpec::new().filter(Filter::has("title", serde_json::json!(["x"]))),
        QuerySpec::new().filter(Filter::has("title", Value::Null)),
        QuerySpec::new().order_by("title desc", Direction::Asc),
        QuerySpec::new().order_by("title\"", Direction::Asc),
    ];
    for spec in bad {
        match store.query(&scope, &spec).await {
            Err(Error::InvalidQuery(_)) => {}
            other => {
                panic!("invalid_queries: {spec:?} should fail with InvalidQuery, got {other:?}")
            }
        }
    }
    assert_eq!(
        get(store, &scope, "a").await.map(|r| r.title),
        Some("x".into()),
        "data intact"
    );
}

/// `query_since` is inclusive, ordered by `(updated_at, id)` and hides tombstones.
pub async fn query_since<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let rows = [
        rec("d", "", 0, 30),
        rec("a", "", 0, 10),
        rec("c", "", 0, 20),
        rec("b", "", 0, 20),
        rec("e", "", 0, 40),
    ];
    store
        .upsert_many(&scope, &rows)
        .await
        .expect("upsert_many failed");
    let got = store
        .query_since(&scope, ts(20))
        .await
        .expect("query_since failed");
    assert_eq!(
        ids(&got),
        ["b", "c", "d", "e"],
        "query_since: inclusive, by (updated_at, id)"
    );
    let got = store
        .query_since(&scope, ts(0))
        .await
        .expect("query_since failed");
    assert_eq!(
        ids(&got),
        ["a", "b", "c", "d", "e"],
        "query_since from before everything"
    );
    let got = store
        .query_since(&scope, ts(41))
        .await
        .expect("query_since failed");
    assert!(got.is_empty(), "query_since after everything");
    store
        .delete_many(
            &scope,
            &[Tombstone {
                id: "d".into(),
                deleted_at: ts(50),
            }],
        )
        .await
        .expect("delete_many failed");
    let got = store
        .query_since(&scope, ts(0))
        .await
        .expect("query_since failed");
    assert_eq!(
        ids(&got),
        ["a", "b", "c", "e"],
        "query_since hides tombstones"
    );
}

/// `upsert_many`: newer or equal versions replace, older ones are ignored, a newer upsert clears
/// a tombstone, and a record carrying `deleted_at` is stored as a tombstone.
pub async fn upsert_last_write_wins<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    store
        .upsert_many(&scope, &[rec("a", "v1", 1, 100)])
        .await
        .expect("upsert_many failed");
    store
        .upsert_many(&scope, &[rec("a", "older", 0, 50)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "v1",
        "an older upsert is ignored"
    );
    store
        .upsert_many(&scope, &[rec("a", "equal", 2, 100)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "equal",
        "an equal version replaces"
    );
    store
        .upsert_many(&scope, &[rec("a", "newer", 3, 150)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await.unwrap(),
        rec("a", "newer", 3, 150),
        "newer replaces"
    );

    // Within one batch the same rule applies in order.
    store
        .upsert_many(&scope, &[rec("b", "x", 0, 20), rec("b", "y", 0, 10)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "b").await.unwrap().title,
        "x",
        "LWW inside one batch"
    );

    // Tombstones.
    let tomb = Tombstone {
        id: "a".into(),
        deleted_at: ts(200),
    };
    store
        .delete_many(&scope, &[tomb])
        .await
        .expect("delete_many failed");
    store
        .upsert_many(&scope, &[rec("a", "stale", 0, 199)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await,
        None,
        "an older upsert does not revive a tombstone"
    );
    store
        .upsert_many(&scope, &[rec("a", "revived", 0, 200)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await.map(|r| r.title),
        Some("revived".into()),
        "an equal-version upsert clears the tombstone"
    );
    store
        .delete_many(
            &scope,
            &[Tombstone {
                id: "a".into(),
                deleted_at: ts(300),
            }],
        )
        .await
        .expect("delete_many failed");
    store
        .upsert_many(&scope, &[rec("a", "again", 0, 301)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await.map(|r| r.title),
        Some("again".into()),
        "a newer upsert clears the tombstone"
    );
    assert_eq!(
        ids(&q(store, &scope, QuerySpec::new()).await),
        ["a", "b"],
        "revived row is queryable"
    );

    // A payload tombstone (deleted_at set) hides the record; its version is deleted_at.
    let mut gone = rec("a", "gone", 0, 310);
    gone.deleted_at = Some(ts(400));
    store
        .upsert_many(&scope, &[gone])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await,
        None,
        "payload tombstone hides the record"
    );
    store
        .upsert_many(&scope, &[rec("a", "late", 0, 350)])
        .await
        .expect("upsert_many failed");
    assert_eq!(
        get(store, &scope, "a").await,
        None,
        "payload tombstone version is deleted_at"
    );
    assert_eq!(
        ids(&q(store, &scope, QuerySpec::new()).await),
        ["b"],
        "payload tombstone not queried"
    );

    match store.upsert_many(&scope, &[rec("", "no id", 0, 1)]).await {
        Err(Error::InvalidInput(_)) => {}
        other => panic!("upsert of an empty id should be InvalidInput, got {other:?}"),
    }
}

/// `delete_many` leaves tombstones hidden from every read, and ignores stale tombstones.
pub async fn soft_delete<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    assert!(
        store.supports_soft_delete(),
        "the crate's stores keep tombstones"
    );
    store
        .upsert_many(
            &scope,
            &[
                rec("a", "x", 1, 10),
                rec("b", "y", 2, 10),
                rec("c", "z", 3, 50),
            ],
        )
        .await
        .expect("upsert_many failed");
    store
        .delete_many(
            &scope,
            &[
                Tombstone {
                    id: "a".into(),
                    deleted_at: ts(20),
                },
                Tombstone {
                    id: "c".into(),
                    deleted_at: ts(40),
                },
                Tombstone {
                    id: "never-seen".into(),
                    deleted_at: ts(5),
                },
            ],
        )
        .await
        .expect("delete_many failed");
    assert_eq!(
        get(store, &scope, "a").await,
        None,
        "deleted record hidden from get_by_id"
    );
    assert!(
        get(store, &scope, "c").await.is_some(),
        "an older tombstone is ignored"
    );
    assert_eq!(
        get(store, &scope, "never-seen").await,
        None,
        "tombstone for an unknown id"
    );
    assert_eq!(
        ids(&q(store, &scope, QuerySpec::new()).await),
        ["b", "c"],
        "query hides tombstones"
    );
    let spec = QuerySpec::new().filter(Filter::eq("title", "x"));
    assert!(
        q(store, &scope, spec).await.is_empty(),
        "filters never match tombstones"
    );
    let spec = QuerySpec::new().filter(Filter::is_null("title", true));
    assert!(
        q(store, &scope, spec).await.is_empty(),
        "is_null never matches tombstones"
    );
    let since = store
        .query_since(&scope, ts(0))
        .await
        .expect("query_since failed");
    assert_eq!(ids(&since), ["b", "c"], "query_since hides tombstones");
    // A tombstone at the same version as the record wins (newer or equal replaces).
    store
        .delete_many(
            &scope,
            &[Tombstone {
                id: "c".into(),
                deleted_at: ts(50),
            }],
        )
        .await
        .expect("delete_many failed");
    assert_eq!(
        get(store, &scope, "c").await,
        None,
        "an equal-version tombstone replaces"
    );
    // Deleting twice is harmless.
    store
        .delete_many(
            &scope,
            &[Tombstone {
                id: "c".into(),
                deleted_at: ts(60),
            }],
        )
        .await
        .expect("delete_many failed");
    assert_eq!(get(store, &scope, "c").await, None, "double delete");
}

/// Sync points are saved, overwritten and read back per scope.
pub async fn sync_points<S: LocalStore<TestRecord>>(store: &S) {
    let a = unique_scope("records");
    let b = unique_scope("records");
    assert_eq!(
        store.sync_point(&a).await.expect("sync_point failed"),
        None,
        "no sync point yet"
    );
    let p1 = SyncPoint {
        cursor: Some(Cursor::new("c1")),
        server_time: ts(10),
    };
    let p2 = SyncPoint {
        cursor: None,
        server_time: ts(20),
    };
    store
        .save_sync_point(&a, &p1)
        .await
        .expect("save_sync_point failed");
    assert_eq!(
        store.sync_point(&a).await.unwrap(),
        Some(p1.clone()),
        "sync point round-trips"
    );
    assert_eq!(
        store.sync_point(&b).await.unwrap(),
        None,
        "sync points are per scope"
    );
    store
        .save_sync_point(&b, &p2)
        .await
        .expect("save_sync_point failed");
    let p3 = SyncPoint {
        cursor: Some(Cursor::new("{\"seq\":42,\"id\":\"x'y\"}")),
        server_time: ts(30),
    };
    store
        .save_sync_point(&a, &p3)
        .await
        .expect("save_sync_point failed");
    assert_eq!(
        store.sync_point(&a).await.unwrap(),
        Some(p3),
        "sync point overwritten"
    );
    assert_eq!(
        store.sync_point(&b).await.unwrap(),
        Some(p2),
        "other scope untouched"
    );
}

/// `enqueue` applies the change to the local row and queues the op (creates, updates, deletes).
pub async fn enqueue_writes_row_and_op<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let c = create(&scope, rec("a", "draft", 1, 10));
    enqueue(store, &c).await;
    assert_eq!(
        get(store, &scope, "a").await,
        Some(rec("a", "draft", 1, 10)),
        "create writes the row"
    );
    let ops = pending(store, &scope).await;
    assert_eq!(ops, vec![c.clone()], "create is queued as given");

    // A local write replaces the row whatever its version (it is the newest local intent).
    let u = update(&scope, rec("a", "edited", 2, 5));
    enqueue(store, &u).await;
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "edited",
        "update writes the row"
    );
    assert_eq!(
        ids(&q(
            store,
            &scope,
            QuerySpec::new().filter(Filter::eq("title", "edited"))
        )
        .await),
        ["a"],
        "queued writes are queryable"
    );

    let d = PendingOp::delete(scope.clone(), "a", ts(20));
    enqueue(store, &d).await;
    assert_eq!(get(store, &scope, "a").await, None, "delete hides the row");
    let ops = pending(store, &scope).await;
    assert_eq!(
        op_ids(&ops),
        op_ids(&[c, u, d.clone()]),
        "three ops queued in order"
    );
    assert_eq!(ops[2], d, "delete op round-trips");
    assert_eq!(ops[2].payload, None, "delete has no payload");

    // Recreating after a local delete.
    let c2 = create(&scope, rec("a", "reborn", 0, 30));
    enqueue(store, &c2).await;
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "reborn",
        "create after delete"
    );

    // Op fields survive storage.
    let mut odd = update(&scope, rec("b", "it's \"quoted\" ✓", i64::MIN, 40));
    odd.attempts = 3;
    odd.last_error = Some("earlier failure".into());
    enqueue(store, &odd).await;
    let ops = pending(store, &scope).await;
    assert_eq!(
        ops.last(),
        Some(&odd),
        "attempts, last_error and payload round-trip"
    );
}

/// Malformed ops fail with [`Error::InvalidInput`] and write nothing.
pub async fn enqueue_rejects_bad_ops<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let mut mismatched = create(&scope, rec("a", "x", 0, 1));
    mismatched.id = "b".into();
    let mut no_payload = update(&scope, rec("c", "x", 0, 1));
    no_payload.payload = None;
    let empty_id = PendingOp::<TestRecord>::delete(scope.clone(), "", ts(1));
    for op in [mismatched, no_payload, empty_id] {
        match store.enqueue(op.clone()).await {
            Err(Error::InvalidInput(_)) => {}
            other => panic!("enqueue of {op:?} should be InvalidInput, got {other:?}"),
        }
    }
    let good = create(&scope, rec("d", "x", 0, 1));
    enqueue(store, &good).await;
    let mut dup = update(&scope, rec("d", "y", 0, 2));
    dup.op_id = good.op_id.clone();
    match store.enqueue(dup).await {
        Err(Error::InvalidInput(_)) => {}
        other => panic!("enqueue of a duplicate op id should be InvalidInput, got {other:?}"),
    }
    assert_eq!(
        pending(store, &scope).await,
        vec![good],
        "only the good op is queued"
    );
    for id in ["a", "b", "c"] {
        assert_eq!(
            get(store, &scope, id).await,
            None,
            "a rejected op wrote no row ({id})"
        );
    }
    assert_eq!(
        get(store, &scope, "d").await.unwrap().title,
        "x",
        "duplicate op wrote no row"
    );
}

/// `pending_ops` returns ops in enqueue order, honours `limit`, and fills `base_version` from the
/// record's synced version.
pub async fn pending_ops_order_limit_and_base<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let pulled = rec("s", "from remote", 0, 100);
    synced(store, &scope, &pulled).await;
    let ops = vec![
        create(&scope, rec("z", "1", 0, 1)),
        update(&scope, rec("s", "2", 0, 200)),
        create(&scope, rec("a", "3", 0, 3)),
        update(&scope, rec("z", "4", 0, 4)),
        PendingOp::delete(scope.clone(), "s", ts(300)),
    ];
    for op in &ops {
        enqueue(store, op).await;
    }
    let got = pending(store, &scope).await;
    assert_eq!(
        op_ids(&got),
        op_ids(&ops),
        "enqueue order, not id or time order"
    );
    let limited = store
        .pending_ops(&scope, 2)
        .await
        .expect("pending_ops failed");
    assert_eq!(
        op_ids(&limited),
        op_ids(&ops[..2]),
        "limit takes the oldest"
    );
    assert!(
        store.pending_ops(&scope, 0).await.unwrap().is_empty(),
        "limit 0"
    );
    let bases: Vec<_> = got.iter().map(|o| o.base_version).collect();
    assert_eq!(
        bases,
        [None, Some(ts(100)), None, None, Some(ts(100))],
        "base_version is the record's synced version (None when never synced)"
    );
    // base_version passed in by the caller is not trusted.
    let mut lying = update(&scope, rec("a", "5", 0, 5));
    lying.base_version = Some(ts(999));
    enqueue(store, &lying).await;
    let last = pending(store, &scope).await.pop().unwrap();
    assert_eq!(last.base_version, None, "base_version comes from the store");
}

/// `ack_ops` removes ops, is idempotent, and records the synced version for later ops.
pub async fn ack_ops<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let c = create(&scope, rec("a", "1", 0, 10));
    let u = update(&scope, rec("a", "2", 0, 20));
    let other = create(&scope, rec("b", "x", 0, 5));
    for op in [&c, &u, &other] {
        enqueue(store, op).await;
    }
    let ack = Ack {
        id: "a".into(),
        op_ids: vec![c.op_id.clone(), u.op_id.clone()],
        version: Some(ts(21)),
    };
    store
        .ack_ops(&scope, std::slice::from_ref(&ack))
        .await
        .expect("ack_ops failed");
    assert_eq!(
        op_ids(&pending(store, &scope).await),
        [other.op_id.clone()],
        "acked ops removed"
    );
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "2",
        "ack leaves the row"
    );
    store
        .ack_ops(&scope, &[ack])
        .await
        .expect("a repeated ack is fine");
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "zz".into(),
                op_ids: vec![OpId::generate()],
                version: Some(ts(1)),
            }],
        )
        .await
        .expect("unknown op ids are ignored");
    assert_eq!(
        pending(store, &scope).await.len(),
        1,
        "nothing else removed"
    );

    let next = update(&scope, rec("a", "3", 0, 30));
    enqueue(store, &next).await;
    let ops = pending(store, &scope).await;
    assert_eq!(ops[1].op_id, next.op_id);
    assert_eq!(
        ops[1].base_version,
        Some(ts(21)),
        "later op builds on the acked version"
    );
    assert_eq!(ops[0].base_version, None, "other record unaffected");

    // An ack without version (create + delete cancelled out) leaves the synced version.
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "a".into(),
                op_ids: vec![next.op_id.clone()],
                version: None,
            }],
        )
        .await
        .expect("ack_ops failed");
    let again = update(&scope, rec("a", "4", 0, 40));
    enqueue(store, &again).await;
    let ops = pending(store, &scope).await;
    assert_eq!(
        ops[1].base_version,
        Some(ts(21)),
        "version-less ack keeps the synced version"
    );
    store.ack_ops(&scope, &[]).await.expect("empty ack");
}

/// Rejections count attempts; parking hides ops from `pending_ops`; unpark and discard.
pub async fn reject_park_unpark_discard<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let ops: Vec<_> = (0..4)
        .map(|i| create(&scope, rec(&format!("r{i}"), "x", i, i)))
        .collect();
    for op in &ops {
        enqueue(store, op).await;
    }
    store
        .reject_ops(&scope, &[ops[0].op_id.clone()], "timeout", false)
        .await
        .expect("reject_ops failed");
    let got = pending(store, &scope).await;
    assert_eq!(
        op_ids(&got),
        op_ids(&ops),
        "a rejection without park keeps the op queued"
    );
    assert_eq!(got[0].attempts, 1, "attempts counted");
    assert_eq!(
        got[0].last_error.as_deref(),
        Some("timeout"),
        "last_error kept"
    );

    store
        .reject_ops(
            &scope,
            &[ops[0].op_id.clone(), ops[2].op_id.clone()],
            "invalid title",
            true,
        )
        .await
        .expect("reject_ops failed");
    let got = pending(store, &scope).await;
    assert_eq!(
        op_ids(&got),
        op_ids(&[ops[1].clone(), ops[3].clone()]),
        "parked ops not pending"
    );
    let p = parked(store, &scope).await;
    assert_eq!(
        op_ids(&p),
        op_ids(&[ops[0].clone(), ops[2].clone()]),
        "parked in enqueue order"
    );
    assert_eq!(p[0].attempts, 2);
    assert_eq!(p[1].attempts, 1);
    assert_eq!(p[0].last_error.as_deref(), Some("invalid title"));
    assert_eq!(p[0].payload, ops[0].payload, "parked op keeps its payload");
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 2,
            parked: 2,
            quarantined: 0,
        },
        "queue_status counts parked ops"
    );
    // A non-parking rejection of a parked op keeps it parked.
    store
        .reject_ops(&scope, &[ops[2].op_id.clone()], "again", false)
        .await
        .expect("reject_ops failed");
    assert_eq!(parked(store, &scope).await.len(), 2, "stays parked");

    store
        .unpark_ops(&scope, &[ops[0].op_id.clone()])
        .await
        .expect("unpark_ops failed");
    let got = pending(store, &scope).await;
    assert_eq!(
        op_ids(&got),
        op_ids(&[ops[0].clone(), ops[1].clone(), ops[3].clone()]),
        "unparked op back in its queue position"
    );
    assert_eq!(got[0].attempts, 0, "unpark resets attempts");
    assert_eq!(op_ids(&parked(store, &scope).await), [ops[2].op_id.clone()]);

    store
        .discard_ops(
            &scope,
            &[ops[2].op_id.clone(), ops[3].op_id.clone(), OpId::generate()],
        )
        .await
        .expect("discard_ops failed");
    assert!(
        parked(store, &scope).await.is_empty(),
        "discarded parked op gone"
    );
    assert_eq!(
        op_ids(&pending(store, &scope).await),
        op_ids(&[ops[0].clone(), ops[1].clone()]),
        "discarded pending op gone"
    );
    assert!(
        get(store, &scope, "r3").await.is_some(),
        "discard leaves the local row"
    );
    store
        .reject_ops(&scope, &[OpId::generate()], "x", true)
        .await
        .expect("rejecting unknown ops is a no-op");
    store
        .unpark_ops(&scope, &[ops[1].op_id.clone()])
        .await
        .expect("unparking a pending op is a no-op");
    assert_eq!(pending(store, &scope).await.len(), 2);
}

/// Settlement "take remote": the settled ops go, the local row becomes the remote version, the
/// synced version is the remote's.
pub async fn settle_take_remote<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    synced(store, &scope, &rec("a", "base", 0, 10)).await;
    let u1 = update(&scope, rec("a", "mine", 1, 20));
    let u2 = update(&scope, rec("a", "mine again", 2, 30));
    let other = update(&scope, rec("b", "other", 0, 5));
    for op in [&u1, &u2, &other] {
        enqueue(store, op).await;
    }
    let remote = rec("a", "theirs", 9, 25);
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "a".into(),
                settled_ops: vec![u1.op_id.clone(), u2.op_id.clone()],
                remote_version: Some(ts(25)),
                local: Some(Change::Upsert(remote.clone())),
                requeue: None,
            },
        )
        .await
        .expect("settle_conflict failed");
    assert_eq!(
        get(store, &scope, "a").await,
        Some(remote),
        "local row is the remote version"
    );
    assert_eq!(
        op_ids(&pending(store, &scope).await),
        [other.op_id.clone()],
        "settled ops removed"
    );
    let next = update(&scope, rec("a", "later", 0, 40));
    enqueue(store, &next).await;
    let ops = pending(store, &scope).await;
    assert_eq!(
        ops[1].base_version,
        Some(ts(25)),
        "synced version is the remote's"
    );

    // Taking a remote deletion.
    let scope2 = unique_scope("records");
    let c = create(&scope2, rec("x", "new", 0, 10));
    enqueue(store, &c).await;
    store
        .settle_conflict(
            &scope2,
            Settlement {
                id: "x".into(),
                settled_ops: vec![c.op_id.clone()],
                remote_version: Some(ts(15)),
                local: Some(Change::Delete(Tombstone {
                    id: "x".into(),
                    deleted_at: ts(15),
                })),
                requeue: None,
            },
        )
        .await
        .expect("settle_conflict failed");
    assert_eq!(
        get(store, &scope2, "x").await,
        None,
        "remote deletion taken"
    );
    assert_eq!(
        store.queue_status(&scope2).await.unwrap(),
        QueueStatus::default()
    );
}

/// Settlement "keep local": the settled ops are replaced by one op at the earliest settled op's
/// queue position, built on the remote version.
pub async fn settle_keep_local_requeues<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    synced(store, &scope, &rec("a", "base", 0, 10)).await;
    let first = create(&scope, rec("z", "first", 0, 1));
    let u1 = update(&scope, rec("a", "mine", 1, 20));
    let middle = create(&scope, rec("m", "middle", 0, 2));
    let u2 = update(&scope, rec("a", "mine 2", 2, 30));
    let last = create(&scope, rec("y", "last", 0, 3));
    for op in [&first, &u1, &middle, &u2, &last] {
        enqueue(store, op).await;
    }
    let merged = rec("a", "merged", 3, 40);
    let requeue = update(&scope, merged.clone());
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "a".into(),
                settled_ops: vec![u1.op_id.clone(), u2.op_id.clone()],
                remote_version: Some(ts(35)),
                local: Some(Change::Upsert(merged.clone())),
                requeue: Some(requeue.clone()),
            },
        )
        .await
        .expect("settle_conflict failed");
    let ops = pending(store, &scope).await;
    assert_eq!(
        op_ids(&ops),
        op_ids(&[first, requeue.clone(), middle, last]),
        "requeued op takes the earliest settled op's position"
    );
    assert_eq!(ops[1].payload, Some(merged.clone()), "requeued payload");
    assert_eq!(
        ops[1].base_version,
        Some(ts(35)),
        "requeued op builds on the remote version"
    );
    assert_eq!(
        get(store, &scope, "a").await,
        Some(merged),
        "local row written"
    );

    // Keep local without touching the row (`local: None`).
    let scope2 = unique_scope("records");
    let u = update(&scope2, rec("k", "keep me", 0, 50));
    enqueue(store, &u).await;
    let re = update(&scope2, rec("k", "keep me", 0, 50));
    store
        .settle_conflict(
            &scope2,
            Settlement {
                id: "k".into(),
                settled_ops: vec![u.op_id.clone()],
                remote_version: Some(ts(45)),
                local: None,
                requeue: Some(re.clone()),
            },
        )
        .await
        .expect("settle_conflict failed");
    assert_eq!(
        get(store, &scope2, "k").await.unwrap().title,
        "keep me",
        "row left alone"
    );
    let ops = pending(store, &scope2).await;
    assert_eq!(op_ids(&ops), [re.op_id.clone()]);
    assert_eq!(
        ops[0].base_version,
        Some(ts(45)),
        "requeue based on the remote version"
    );
}

/// Settlement while a newer op for the record (not settled) is queued: the local row, which
/// shows that newer write, is kept; the settled ops still go.
pub async fn settle_with_newer_op_keeps_local_row<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let u1 = update(&scope, rec("a", "pushed", 1, 20));
    enqueue(store, &u1).await;
    let u2 = update(&scope, rec("a", "newer local", 2, 30));
    enqueue(store, &u2).await;
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "a".into(),
                settled_ops: vec![u1.op_id.clone()],
                remote_version: Some(ts(25)),
                local: Some(Change::Upsert(rec("a", "theirs", 9, 25))),
                requeue: None,
            },
        )
        .await
        .expect("settle_conflict failed");
    assert_eq!(
        get(store, &scope, "a").await.unwrap().title,
        "newer local",
        "a newer queued write stays visible"
    );
    let ops = pending(store, &scope).await;
    assert_eq!(
        op_ids(&ops),
        [u2.op_id.clone()],
        "settled op removed, newer kept"
    );
    assert_eq!(
        ops[0].base_version,
        Some(ts(25)),
        "newer op now builds on the remote version"
    );

    // A parked op for the id also protects the row.
    let scope2 = unique_scope("records");
    let p = update(&scope2, rec("b", "parked local", 0, 10));
    let s = update(&scope2, rec("b", "settled", 0, 20));
    enqueue(store, &p).await;
    enqueue(store, &s).await;
    store
        .reject_ops(&scope2, &[p.op_id.clone()], "bad", true)
        .await
        .expect("reject_ops failed");
    store
        .settle_conflict(
            &scope2,
            Settlement {
                id: "b".into(),
                settled_ops: vec![s.op_id.clone()],
                remote_version: Some(ts(15)),
                local: Some(Change::Upsert(rec("b", "theirs", 0, 15))),
                requeue: None,
            },
        )
        .await
        .expect("settle_conflict failed");
    assert_eq!(
        get(store, &scope2, "b").await.unwrap().title,
        "settled",
        "parked op protects the row"
    );
    assert_eq!(parked(store, &scope2).await.len(), 1, "parked op untouched");
}

/// `apply_remote` replaces rows without queued ops unconditionally, skips (and returns) ids with
/// pending or parked ops, applies deletions and saves the sync point with the page.
pub async fn apply_remote<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    store
        .upsert_many(
            &scope,
            &[rec("old", "local newer", 0, 500), rec("gone", "x", 0, 1)],
        )
        .await
        .expect("upsert_many failed");
    let pending_op = update(&scope, rec("p", "local edit", 0, 10));
    let parked_op = update(&scope, rec("k", "parked edit", 0, 10));
    enqueue(store, &pending_op).await;
    enqueue(store, &parked_op).await;
    store
        .reject_ops(&scope, &[parked_op.op_id.clone()], "bad", true)
        .await
        .expect("reject_ops failed");
    let (delta, point) = page(
        vec![
            rec("new", "n", 1, 100),
            rec("old", "remote older", 2, 100),
            rec("p", "remote p", 3, 100),
            rec("k", "remote k", 4, 100),
        ],
        vec![
            Tombstone {
                id: "gone".into(),
                deleted_at: ts(100),
            },
            Tombstone {
                id: "p".into(),
                deleted_at: ts(101),
            },
        ],
        "page-1",
    );
    let mut skipped = store
        .apply_remote(&scope, &delta, &point)
        .await
        .expect("apply_remote failed");
    skipped.sort();
    skipped.dedup();
    assert_eq!(
        skipped,
        ["k", "p"],
        "ids with pending or parked ops are skipped and returned"
    );
    assert_eq!(
        get(store, &scope, "new").await.unwrap().title,
        "n",
        "new row applied"
    );
    assert_eq!(
        get(store, &scope, "old").await.unwrap().title,
        "remote older",
        "the remote replaces the row unconditionally"
    );
    assert_eq!(
        get(store, &scope, "p").await.unwrap().title,
        "local edit",
        "pending write kept"
    );
    assert_eq!(
        get(store, &scope, "k").await.unwrap().title,
        "parked edit",
        "parked write kept"
    );
    assert_eq!(
        get(store, &scope, "gone").await,
        None,
        "remote deletion applied"
    );
    assert_eq!(
        store.sync_point(&scope).await.unwrap(),
        Some(point),
        "sync point saved with the page"
    );
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 1,
            parked: 1,
            quarantined: 0,
        }
    );

    // Synced versions are set from the page: later ops build on them.
    let on_new = update(&scope, rec("new", "edit", 0, 200));
    enqueue(store, &on_new).await;
    let ops = pending(store, &scope).await;
    let base = ops
        .iter()
        .find(|o| o.op_id == on_new.op_id)
        .unwrap()
        .base_version;
    assert_eq!(base, Some(ts(100)), "apply_remote sets the synced version");
    let base_p = ops
        .iter()
        .find(|o| o.op_id == pending_op.op_id)
        .unwrap()
        .base_version;
    assert_eq!(
        base_p, None,
        "a skipped change does not set the synced version"
    );

    // A remote tombstone for an unknown id, a payload tombstone, and an empty page.
    let mut payload_tomb = rec("new2", "t", 0, 300);
    payload_tomb.deleted_at = Some(ts(301));
    let (delta, point) = page(
        vec![payload_tomb],
        vec![Tombstone {
            id: "unknown".into(),
            deleted_at: ts(300),
        }],
        "page-2",
    );
    assert!(
        store
            .apply_remote(&scope, &delta, &point)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        get(store, &scope, "new2").await,
        None,
        "payload tombstone applied"
    );
    assert_eq!(get(store, &scope, "unknown").await, None);
    let (delta, point) = page(vec![], vec![], "page-3");
    assert!(
        store
            .apply_remote(&scope, &delta, &point)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.sync_point(&scope).await.unwrap(),
        Some(point),
        "an empty page moves the cursor"
    );

    // After the op is acked the next pull applies.
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "p".into(),
                op_ids: vec![pending_op.op_id.clone()],
                version: Some(ts(10)),
            }],
        )
        .await
        .expect("ack_ops failed");
    let (delta, point) = page(vec![rec("p", "remote p2", 0, 150)], vec![], "page-4");
    assert!(
        store
            .apply_remote(&scope, &delta, &point)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        get(store, &scope, "p").await.unwrap().title,
        "remote p2",
        "applies once acked"
    );

    // Discarding the last queued op of a record, or settling it, also lets pulls through.
    store
        .discard_ops(&scope, &[parked_op.op_id.clone()])
        .await
        .expect("discard_ops failed");
    let u1 = update(&scope, rec("s", "local s", 0, 10));
    enqueue(store, &u1).await;
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "s".into(),
                settled_ops: vec![u1.op_id.clone()],
                remote_version: Some(ts(11)),
                local: None,
                requeue: None,
            },
        )
        .await
        .expect("settle_conflict failed");
    let (delta, point) = page(
        vec![rec("k", "remote k2", 0, 160), rec("s", "remote s", 0, 170)],
        vec![],
        "page-5",
    );
    let skipped = store.apply_remote(&scope, &delta, &point).await.unwrap();
    assert!(
        skipped.is_empty(),
        "no queued ops left, got skipped {skipped:?}"
    );
    assert_eq!(
        get(store, &scope, "k").await.unwrap().title,
        "remote k2",
        "applies once discarded"
    );
    assert_eq!(
        get(store, &scope, "s").await.unwrap().title,
        "remote s",
        "applies once settled"
    );
}

/// `queue_status` counts pending and parked ops per scope.
pub async fn queue_status<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus::default(),
        "empty queue"
    );
    let ops: Vec<_> = (0..3)
        .map(|i| create(&scope, rec(&format!("q{i}"), "", 0, i)))
        .collect();
    for op in &ops {
        enqueue(store, op).await;
    }
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 3,
            parked: 0,
            quarantined: 0,
        }
    );
    store
        .reject_ops(&scope, &[ops[1].op_id.clone()], "no", true)
        .await
        .unwrap();
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 2,
            parked: 1,
            quarantined: 0,
        }
    );
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "q0".into(),
                op_ids: vec![ops[0].op_id.clone()],
                version: Some(ts(0)),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 1,
            parked: 1,
            quarantined: 0,
        }
    );
}

/// `scopes` lists every scope holding records (even only tombstones), ops or a sync point.
pub async fn scopes<S: LocalStore<TestRecord>>(store: &S) {
    assert!(
        store.scopes().await.expect("scopes failed").is_empty(),
        "a new store has no scopes"
    );
    let with_rows = unique_scope("records");
    let with_tombstone = unique_scope("records");
    let with_point = unique_scope("other");
    let with_op = SyncScope::new("records", [("owner", "o'neil"), ("team", "a\"b")]).unwrap();
    store
        .upsert_many(&with_rows, &[rec("a", "", 0, 1)])
        .await
        .unwrap();
    store
        .delete_many(
            &with_tombstone,
            &[Tombstone {
                id: "a".into(),
                deleted_at: ts(1),
            }],
        )
        .await
        .unwrap();
    store
        .save_sync_point(
            &with_point,
            &SyncPoint {
                cursor: None,
                server_time: ts(1),
            },
        )
        .await
        .unwrap();
    enqueue(store, &create(&with_op, rec("b", "", 0, 1))).await;
    let got: BTreeSet<SyncScope> = store.scopes().await.unwrap().into_iter().collect();
    let want: BTreeSet<SyncScope> = [with_rows, with_tombstone, with_point, with_op]
        .into_iter()
        .collect();
    assert_eq!(
        got, want,
        "scopes() lists every scope with data, exactly once"
    );
}

/// Nothing of one scope is visible or changeable through another: records, tombstones, sync
/// points, pending and parked ops, and the skip rule of `apply_remote`.
pub async fn scope_isolation<S: LocalStore<TestRecord>>(store: &S) {
    let a = SyncScope::new("records", [("owner", "u1")]).unwrap();
    let b = SyncScope::new("records", [("owner", "u2")]).unwrap();
    let c = SyncScope::named("records").unwrap();
    let d = SyncScope::new("records", [("owner", "u1"), ("team", "t")]).unwrap();

    // Records and queries.
    store
        .upsert_many(&a, &[rec("x", "in a", 1, 10)])
        .await
        .unwrap();
    store
        .upsert_many(&b, &[rec("x", "in b", 2, 5)])
        .await
        .unwrap();
    assert_eq!(
        get(store, &a, "x").await.unwrap().title,
        "in a",
        "records: a"
    );
    assert_eq!(
        get(store, &b, "x").await.unwrap().title,
        "in b",
        "records: same id, other scope"
    );
    for s in [&c, &d] {
        assert_eq!(get(store, s, "x").await, None, "records: no leak to {s}");
        assert!(
            q(store, s, QuerySpec::new()).await.is_empty(),
            "query: no leak to {s}"
        );
        assert!(
            store.query_since(s, ts(0)).await.unwrap().is_empty(),
            "query_since: no leak"
        );
    }
    let spec = QuerySpec::new().filter(Filter::eq("title", "in a"));
    assert!(
        q(store, &b, spec).await.is_empty(),
        "query filters stay in scope"
    );
    assert_eq!(ids(&store.query_since(&b, ts(0)).await.unwrap()), ["x"]);

    // Tombstones: deleting in a hides nothing in b; an older upsert in b is not blocked by a's.
    store
        .delete_many(
            &a,
            &[Tombstone {
                id: "x".into(),
                deleted_at: ts(100),
            }],
        )
        .await
        .unwrap();
    assert_eq!(get(store, &a, "x").await, None, "tombstone in a");
    assert_eq!(
        get(store, &b, "x").await.unwrap().title,
        "in b",
        "tombstones: no leak"
    );
    store
        .upsert_many(&b, &[rec("x", "b newer", 0, 50)])
        .await
        .unwrap();
    assert_eq!(
        get(store, &b, "x").await.unwrap().title,
        "b newer",
        "a's tombstone not applied in b"
    );
    assert_eq!(
        get(store, &a, "x").await,
        None,
        "b's write does not revive a's row"
    );

    // Sync points.
    let pa = SyncPoint {
        cursor: Some(Cursor::new("a")),
        server_time: ts(1),
    };
    store.save_sync_point(&a, &pa).await.unwrap();
    for s in [&b, &c, &d] {
        assert_eq!(
            store.sync_point(s).await.unwrap(),
            None,
            "sync points: no leak to {s}"
        );
    }

    // Ops.
    let op_a = update(&a, rec("y", "a op", 0, 10));
    let op_b = update(&b, rec("y", "b op", 0, 10));
    enqueue(store, &op_a).await;
    enqueue(store, &op_b).await;
    assert_eq!(
        op_ids(&pending(store, &a).await),
        [op_a.op_id.clone()],
        "pending ops: a"
    );
    assert_eq!(
        op_ids(&pending(store, &b).await),
        [op_b.op_id.clone()],
        "pending ops: b"
    );
    assert!(pending(store, &c).await.is_empty(), "pending ops: no leak");
    assert_eq!(
        get(store, &b, "y").await.unwrap().title,
        "b op",
        "enqueue writes its own scope"
    );

    // Acting on another scope's op ids through b changes nothing.
    store
        .ack_ops(
            &b,
            &[Ack {
                id: "y".into(),
                op_ids: vec![op_a.op_id.clone()],
                version: Some(ts(10)),
            }],
        )
        .await
        .unwrap();
    store
        .reject_ops(&b, &[op_a.op_id.clone()], "cross-scope", true)
        .await
        .unwrap();
    store.discard_ops(&c, &[op_a.op_id.clone()]).await.unwrap();
    let still = pending(store, &a).await;
    assert_eq!(
        op_ids(&still),
        [op_a.op_id.clone()],
        "ops untouched through other scopes"
    );
    assert_eq!(
        still[0].attempts, 0,
        "reject through another scope did nothing"
    );
    assert_eq!(
        still[0].base_version, None,
        "ack through another scope set no version"
    );

    // Parked ops.
    store
        .reject_ops(&a, &[op_a.op_id.clone()], "bad", true)
        .await
        .unwrap();
    assert_eq!(parked(store, &a).await.len(), 1, "parked in a");
    assert!(parked(store, &b).await.is_empty(), "parked ops: no leak");
    store.unpark_ops(&b, &[op_a.op_id.clone()]).await.unwrap();
    assert_eq!(
        parked(store, &a).await.len(),
        1,
        "unpark through another scope did nothing"
    );
    assert_eq!(
        store.queue_status(&a).await.unwrap(),
        QueueStatus {
            pending: 0,
            parked: 1,
            quarantined: 0,
        }
    );
    assert_eq!(
        store.queue_status(&b).await.unwrap(),
        QueueStatus {
            pending: 1,
            parked: 0,
            quarantined: 0,
        }
    );
    assert_eq!(
        store.queue_status(&d).await.unwrap(),
        QueueStatus::default()
    );

    // apply_remote: only the page's own scope's ops protect rows.
    let (delta, point) = page(vec![rec("y", "remote y", 0, 20)], vec![], "c-1");
    let skipped = store.apply_remote(&c, &delta, &point).await.unwrap();
    assert!(
        skipped.is_empty(),
        "ops of other scopes do not block a pull"
    );
    assert_eq!(get(store, &c, "y").await.unwrap().title, "remote y");
    assert_eq!(
        get(store, &a, "y").await.unwrap().title,
        "a op",
        "pull into c left a alone"
    );
    assert_eq!(
        store.sync_point(&a).await.unwrap(),
        Some(pa),
        "pull into c left a's sync point"
    );

    // Settling through the wrong scope leaves the op.
    store
        .settle_conflict(
            &b,
            Settlement {
                id: "y".into(),
                settled_ops: vec![op_a.op_id.clone()],
                remote_version: Some(ts(1)),
                local: None,
                requeue: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        parked(store, &a).await.len(),
        1,
        "settle through another scope did nothing"
    );
    assert_eq!(
        pending(store, &b).await.len(),
        1,
        "b's own op untouched by a foreign settle"
    );
}

/// Records survive storage exactly (unicode, quotes, extreme numbers, timestamps with
/// nanoseconds), and ids are arbitrary text.
pub async fn values_round_trip<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let at = jiff::Timestamp::new(1_800_000_000, 123_456_789).expect("valid");
    let rows = vec![
        TestRecord::new(
            "id with spaces/and'quotes\"",
            "naïve ☃ \u{1F600} \\ \n \t",
            at,
        )
        .with_n(i64::MAX),
        TestRecord::new("%_*", "", at).with_n(i64::MIN),
        TestRecord::new("ünï", "'; DROP TABLE items; --", ts(-5)).with_n(0),
    ];
    store.upsert_many(&scope, &rows).await.unwrap();
    for r in &rows {
        assert_eq!(
            get(store, &scope, &r.id).await.as_ref(),
            Some(r),
            "round trip of {:?}",
            r.id
        );
    }
    let spec = QuerySpec::new().filter(Filter::eq("n", i64::MAX));
    assert_eq!(
        q(store, &scope, spec).await,
        rows[..1],
        "i64::MAX compares exactly"
    );
    let since = store.query_since(&scope, at).await.unwrap();
    assert_eq!(
        since.len(),
        2,
        "query_since with sub-microsecond timestamps"
    );
    // Nanosecond versions are kept exactly (they become base versions compared by remotes).
    let op = update(&scope, rows[0].clone());
    enqueue(store, &op).await;
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: rows[0].id.clone(),
                op_ids: vec![op.op_id.clone()],
                version: Some(at),
            }],
        )
        .await
        .unwrap();
    let next = update(&scope, rows[0].clone());
    enqueue(store, &next).await;
    assert_eq!(
        pending(store, &scope).await[0].base_version,
        Some(at),
        "nanosecond synced version"
    );
    assert_eq!(
        pending(store, &scope).await[0].updated_at,
        at,
        "nanosecond op time"
    );
}
