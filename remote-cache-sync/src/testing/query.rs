//! The conformance case of [`RemoteStore::query`]: the same queries answered by the remote and
//! locally (the reference [`QuerySpec::apply`], and with feature `sqlite` the
//! [`SqliteLocalStore`](crate::local::sqlite::SqliteLocalStore)) must give the same records in the same order.
//!
//! The data holds unicode strings (byte-wise order), nulls, missing fields, numbers beyond
//! 2^53, booleans next to numbers, strings next to numbers (type ranks), arrays (membership,
//! and the error of comparing one with a scalar), nested fields, a deleted record and a record
//! of another scope that matches everything. Every filter operator, order (with `nocase`),
//! limit and offset is exercised.
//!
//! The reference is the seeded records as a full pull of the remote reads them back (a remote
//! with typed fields may read a missing field as null): a query answered by the remote must
//! equal a sync followed by a read of the cache.
//!
//! A remote may answer a query [`Error::Unsupported`] (it cannot express an operator): never a
//! wrong answer. [`run`] returns the names of the queries so refused, for the caller to check
//! against what the backend documents.
//!
//! ```no_run
//! # async fn doc() {
//! use remote_cache_sync::InMemoryRemoteStore;
//! use remote_cache_sync::testing::{query, unique_scope};
//! let store = InMemoryRemoteStore::new();
//! let refused = query::run(&store, &unique_scope("q"), &unique_scope("q")).await;
//! assert!(refused.is_empty());
//! # }
//! ```

use serde_json::{Value, json};

use crate::error::Error;
use crate::json_record::JsonRecord;
use crate::query::{Direction, Filter, OrderBy, QuerySpec};
use crate::record::{Record, Tombstone};
use crate::remote::RemoteStore;
use crate::scope::SyncScope;
use crate::testing::ts;

/// 2^53 + 1: not representable as an `f64`.
const BIG: i64 = 9_007_199_254_740_993;

fn records() -> Vec<Value> {
    let at = "2026-01-01T00:00:00Z";
    vec![
        json!({"id": "a", "updated_at": at, "title": "apple", "n": 1, "tags": ["x", "y"], "meta": {"owner": "alice"}}),
        json!({"id": "b", "updated_at": at, "title": "Zebra", "n": BIG, "tags": ["y"], "meta": {"owner": "bob"}}),
        json!({"id": "c", "updated_at": at, "title": "é", "n": BIG - 1, "tags": [], "meta": {"owner": null}}),
        json!({"id": "d", "updated_at": at, "title": "日本語", "n": -2.5, "tags": ["x", 1, true]}),
        json!({"id": "e", "updated_at": at, "title": null, "n": true}),
        json!({"id": "f", "updated_at": at, "n": "7"}),
        json!({"id": "g", "updated_at": at, "title": "🎉 party", "n": 0, "tags": ["X"], "meta": {"owner": "alice"}}),
        json!({"id": "h", "updated_at": at, "title": "Apple", "n": null, "meta": {}}),
        json!({"id": "i", "updated_at": at, "title": 42, "n": 1.0}),
        json!({"id": "j", "updated_at": at, "title": "apple pie", "n": -9_223_372_036_854_775_807_i64, "tags": ["y", "x"]}),
        json!({"id": "k", "updated_at": at, "title": "ß", "n": 2, "tags": "x", "meta": {"owner": "ALICE"}}),
        json!({"id": "l", "updated_at": at, "title": "", "n": 1}),
    ]
}

/// The queries, by name. Those marked `true` compare an array with a scalar in a returned
/// record: both sides must fail with [`Error::InvalidQuery`].
fn queries() -> Vec<(&'static str, QuerySpec)> {
    let q = QuerySpec::new;
    vec![
        ("all", q()),
        ("eq unicode", q().filter(Filter::eq("title", "é"))),
        ("eq empty string", q().filter(Filter::eq("title", ""))),
        ("eq beyond 2^53", q().filter(Filter::eq("n", BIG))),
        ("eq bool is 1", q().filter(Filter::eq("n", true))),
        ("eq number with bool field", q().filter(Filter::eq("n", 1))),
        (
            "eq number on a string field",
            q().filter(Filter::eq("title", 42)),
        ),
        ("ne number", q().filter(Filter::ne("n", 1))),
        ("ne string", q().filter(Filter::ne("title", "apple"))),
        ("lt string (ranks)", q().filter(Filter::lt("title", "a"))),
        ("le string", q().filter(Filter::le("title", "apple"))),
        ("gt string (bytes)", q().filter(Filter::gt("title", "z"))),
        ("ge string", q().filter(Filter::ge("title", "apple pie"))),
        ("gt beyond 2^53", q().filter(Filter::gt("n", BIG - 1))),
        ("lt negative", q().filter(Filter::lt("n", -2))),
        ("le float", q().filter(Filter::le("n", 1.0))),
        (
            "ge number (strings rank above)",
            q().filter(Filter::ge("n", 2)),
        ),
        (
            "in mixed",
            q().filter(Filter::is_in(
                "title",
                [json!("apple"), json!("日本語"), json!(42)],
            )),
        ),
        (
            "in empty",
            q().filter(Filter::is_in("n", Vec::<i64>::new())),
        ),
        ("contains", q().filter(Filter::contains("title", "pp"))),
        (
            "contains is case-sensitive",
            q().filter(Filter::contains("title", "App")),
        ),
        (
            "contains unicode",
            q().filter(Filter::contains("title", "本")),
        ),
        ("contains empty", q().filter(Filter::contains("title", ""))),
        (
            "contains wildcard chars",
            q().filter(Filter::contains("title", "%")),
        ),
        ("is null", q().filter(Filter::is_null("title", true))),
        ("is not null", q().filter(Filter::is_null("title", false))),
        (
            "nested is null",
            q().filter(Filter::is_null("meta.owner", true)),
        ),
        ("nested eq", q().filter(Filter::eq("meta.owner", "alice"))),
        ("has string", q().filter(Filter::has("tags", "x"))),
        ("has number (true is 1)", q().filter(Filter::has("tags", 1))),
        (
            "has on non-array",
            q().filter(Filter::has("title", "apple")),
        ),
        (
            "array compared with scalar",
            q().filter(Filter::eq("tags", "x")),
        ),
        (
            "array error filtered out",
            q().filter(Filter::eq("tags", "x"))
                .filter(Filter::is_null("tags", true)),
        ),
        (
            "array error paged out",
            q().filter(Filter::eq("tags", "x"))
                .order_by("id", Direction::Desc)
                .limit(1),
        ),
        (
            "and",
            q().filter(Filter::has("tags", "x"))
                .filter(Filter::gt("n", 0)),
        ),
        ("order title", q().order_by("title", Direction::Asc)),
        ("order title desc", q().order_by("title", Direction::Desc)),
        (
            "order title nocase",
            q().sort_by(OrderBy::asc("title").nocase()),
        ),
        ("order n desc", q().order_by("n", Direction::Desc)),
        ("order missing field", q().order_by("nope", Direction::Asc)),
        (
            "order two keys",
            q().order_by("meta.owner", Direction::Desc)
                .order_by("n", Direction::Asc),
        ),
        ("page", q().order_by("n", Direction::Asc).limit(3).offset(2)),
        (
            "offset only",
            q().order_by("title", Direction::Asc).offset(9),
        ),
        ("limit 0", q().limit(0)),
        ("offset past the end", q().offset(100)),
    ]
}

/// The queries of the case that a remote which only *narrows* (`eq`/`in` with string operands,
/// `contains` of a non-empty string; see `remote::narrow`) refuses with
/// [`Error::Unsupported`]: those without such a term, in the case's order. With `nested`, a
/// remote that narrows on dotted paths too also answers "nested eq". PocketBase, Supabase and
/// Appwrite document exactly this rule.
pub fn refused_by_narrowing(nested: bool) -> Vec<&'static str> {
    [
        "all",
        "eq beyond 2^53",
        "eq bool is 1",
        "eq number with bool field",
        "eq number on a string field",
        "ne number",
        "ne string",
        "lt string (ranks)",
        "le string",
        "gt string (bytes)",
        "ge string",
        "gt beyond 2^53",
        "lt negative",
        "le float",
        "ge number (strings rank above)",
        "in mixed",
        "contains empty",
        "is null",
        "is not null",
        "nested is null",
        "nested eq",
        "has string",
        "has number (true is 1)",
        "has on non-array",
        "and",
        "order title",
        "order title desc",
        "order title nocase",
        "order n desc",
        "order missing field",
        "order two keys",
        "page",
        "offset only",
        "limit 0",
        "offset past the end",
    ]
    .into_iter()
    .filter(|q| !(nested && *q == "nested eq"))
    .collect()
}

/// Ids answered, or the error.
type Answer = Result<Vec<String>, Error>;

fn ids(rows: &[JsonRecord]) -> Vec<String> {
    rows.iter().map(|r| r.id().to_owned()).collect()
}

fn same(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(Error::InvalidQuery(_)), Err(Error::InvalidQuery(_))) => true,
        _ => false,
    }
}

/// The live records of `scope` as a full pull reads them, in the order of `seeded`; panics
/// when the remote lost or added one.
async fn held<R: RemoteStore<JsonRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    seeded: &[JsonRecord],
) -> Vec<JsonRecord> {
    let mut live = std::collections::BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = remote
            .fetch_since(scope, cursor.as_ref(), 500)
            .await
            .expect("pull the seeded scope");
        if page.cursor.is_some() {
            cursor = page.cursor.clone();
        }
        let more = page.has_more;
        for r in page.upserts {
            if r.deleted_at().is_none() {
                live.insert(r.id().to_owned(), r);
            }
        }
        if !more {
            break;
        }
    }
    let held: Vec<JsonRecord> = seeded.iter().filter_map(|r| live.remove(r.id())).collect();
    assert!(
        held.len() == seeded.len() && live.is_empty(),
        "{}: a pull of the seeded scope reads {} of {} records, and {:?} besides",
        remote.name(),
        held.len(),
        seeded.len(),
        live.keys().collect::<Vec<_>>()
    );
    held
}

/// Runs the case in `scope` (another, empty scope `other` gets a decoy that matches every
/// query). Panics on the first disagreement; returns the names of the queries the remote
/// refused with [`Error::Unsupported`].
pub async fn run<R: RemoteStore<JsonRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    other: &SyncScope,
) -> Vec<&'static str> {
    let rows: Vec<JsonRecord> = records()
        .into_iter()
        .map(|v| JsonRecord::from_value(v).expect("valid record"))
        .collect();
    remote
        .batch_upsert(scope, &rows)
        .await
        .expect("seed the scope");
    // A deleted record matching everything must never be answered.
    let gone = JsonRecord::from_value(json!({
        "id": "zz-deleted", "updated_at": "2026-01-01T00:00:00Z", "title": "apple", "n": 1,
        "tags": ["x"], "meta": {"owner": "alice"}
    }))
    .expect("valid record");
    remote
        .batch_upsert(scope, std::slice::from_ref(&gone))
        .await
        .expect("seed");
    remote
        .batch_delete(
            scope,
            &[Tombstone {
                id: "zz-deleted".into(),
                deleted_at: ts(86_400_000),
            }],
        )
        .await
        .expect("delete");
    let mut decoy = gone.clone().into_value();
    decoy.insert("id".into(), json!("a-decoy"));
    let decoy = JsonRecord::from_value(Value::Object(decoy)).expect("valid record");
    remote
        .batch_upsert(other, &[decoy])
        .await
        .expect("seed the other scope");

    // The reference is the records as the remote holds them (a remote with typed fields may
    // read a missing field back as null): the answer must equal a sync, then a cache read.
    let rows = held(remote, scope, &rows).await;

    #[cfg(feature = "sqlite")]
    let local = {
        use crate::local::LocalStore;
        let local = crate::local::sqlite::SqliteLocalStore::<JsonRecord>::open_in_memory()
            .await
            .expect("open sqlite");
        local.upsert_many(scope, &rows).await.expect("local seed");
        local
    };

    let json: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    let mut refused = Vec::new();
    let (mut non_empty, mut array_errors) = (0, 0);
    for (name, spec) in queries() {
        let reference: Answer = spec.apply(
            rows.iter()
                .zip(&json)
                .map(|(r, v)| (r.id(), r.id().to_owned(), v)),
        );
        match &reference {
            Ok(r) if !r.is_empty() => non_empty += 1,
            Err(_) => array_errors += 1,
            Ok(_) => {}
        }
        #[cfg(feature = "sqlite")]
        {
            use crate::local::LocalStore;
            let sqlite: Answer = local.query(scope, &spec).await.map(|r| ids(&r));
            assert!(
                same(&reference, &sqlite),
                "query {name:?}: the sqlite cache answers {sqlite:?}, the reference {reference:?}"
            );
        }
        let mut records = Vec::new();
        let answered: Answer = match remote.query(scope, &spec).await {
            Ok(Some(r)) => {
                let answer = ids(&r);
                records = r;
                Ok(answer)
            }
            Ok(None) => panic!(
                "{}: query {name:?}: the remote does not support queries",
                remote.name()
            ),
            Err(Error::Unsupported { .. }) => {
                refused.push(name);
                continue;
            }
            Err(e) => Err(e),
        };
        assert!(
            same(&reference, &answered),
            "{}: query {name:?}: the remote answers {answered:?}, the reference {reference:?}",
            remote.name()
        );
        for got in &records {
            let original = rows.iter().find(|o| o.id() == got.id());
            assert_eq!(
                Some(got),
                original,
                "{}: query {name:?}: record {} does not round-trip",
                remote.name(),
                got.id()
            );
        }
    }
    // The case itself must discriminate: most queries select something, some fail.
    assert!(
        non_empty >= 35 && array_errors >= 1,
        "the case lost its teeth: {non_empty} non-empty answers, {array_errors} errors"
    );
    // Injection-shaped field names are refused before reaching any backend.
    for field in ["a') OR 1=1 --", "title\"", "a..b", "", "$.x", "a b"] {
        let spec = QuerySpec::new().filter(Filter::eq(field, 1));
        assert!(
            matches!(
                remote.query(scope, &spec).await,
                Err(Error::InvalidQuery(_))
            ),
            "{}: field {field:?} must be refused",
            remote.name()
        );
        let spec = QuerySpec::new().order_by(field, Direction::Asc);
        assert!(
            matches!(
                remote.query(scope, &spec).await,
                Err(Error::InvalidQuery(_))
            ),
            "{}: order field {field:?} must be refused",
            remote.name()
        );
    }
    refused
}
