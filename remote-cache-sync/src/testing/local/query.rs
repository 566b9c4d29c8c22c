//! Checks of `get_by_id` and `query`: operators, ordering, paging, arrays, case folding, invalid specs, and `query_since`.

use super::*;

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
