//! Queries answered by Appwrite (`RemoteStore::query`: Appwrite narrows, the client decides)
//! against the Appwrite server the `RCS_TEST_APPWRITE_*` variables name, else an in-process
//! stand-in set up with docs/backends/appwrite.md (as `remote_appwrite.rs`):
//! - the query conformance case (`testing::query`) on the guide's `notes` collection, whose
//!   fields are JSON attributes (the case's fields mix types), with an API key and a user JWT;
//! - typed attributes: what narrows, what Appwrite refuses (→ `Unsupported`, never a wrong
//!   answer);
//! - operands shaped like query syntax, scope values, quotes, backslashes and wildcards;
//! - `Orchestrator::read` with `OnlineOnly` answers from the remote without pulling the scope.
#![cfg(all(
    feature = "appwrite",
    feature = "appwrite-standin",
    feature = "fault-proxy",
    feature = "sqlite"
))]

mod support;

use std::sync::Arc;

use remote_cache_sync::remote::appwrite::{AppwriteRemoteStore, Credential};
use remote_cache_sync::testing::proxy::FaultProxy;
use remote_cache_sync::testing::{TestRecord, query, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Error, Filter, InMemoryLocalStore, JsonRecord, Orchestrator, QuerySpec, Record,
    RemoteStore, SyncScope,
};
use serde_json::{Value, json};
use support::appwrite::{DB, Env, Raw, env, keyed, store_at};

/// The fields of the `notes` collection stored as JSON text (see the guide).
const JSON_FIELDS: [&str; 4] = ["title", "n", "tags", "meta"];

fn notes_at(e: &Env, c: Credential) -> AppwriteRemoteStore<JsonRecord> {
    AppwriteRemoteStore::<JsonRecord>::builder(&e.endpoint, &e.project, DB)
        .credential(c)
        .json_attributes(JSON_FIELDS)
        .build()
        .unwrap()
}

fn notes_scope() -> SyncScope {
    unique_scope("notes")
}

#[tokio::test]
async fn the_query_case_runs_on_json_attributes() {
    let Some(e) = env() else { return };
    let store = notes_at(&e, Credential::api_key(&e.key));
    let refused = query::run(&store, &notes_scope(), &notes_scope()).await;
    assert_eq!(refused, query::refused_by_narrowing(false));
}

/// More than 5,000 candidates make a query `Unsupported` (the orchestrator syncs instead of
/// listing a large scope, uncached, on every read); at 5,000 it is answered.
#[tokio::test]
async fn candidates_past_the_cap_fall_back() {
    let Some(e) = env() else { return };
    let store = notes_at(&e, Credential::api_key(&e.key));
    let scope = notes_scope();
    let row = |i: usize| {
        JsonRecord::from_value(serde_json::json!({
            "id": format!("c{i:05}"), "updated_at": "2026-01-01T00:00:00Z", "title": "many"
        }))
        .unwrap()
    };
    let rows: Vec<JsonRecord> = (0..5000).map(row).collect();
    for chunk in rows.chunks(100) {
        store.batch_upsert(&scope, chunk).await.unwrap();
    }
    let spec = remote_cache_sync::QuerySpec::new()
        .filter(remote_cache_sync::Filter::eq("title", "many"))
        .limit(3);
    assert_eq!(store.query(&scope, &spec).await.unwrap().unwrap().len(), 3);
    store.batch_upsert(&scope, &[row(5000)]).await.unwrap();
    assert!(unsupported(store.query(&scope, &spec).await));
}

#[tokio::test]
async fn the_query_case_runs_as_a_user() {
    let Some(e) = env() else { return };
    let (user, jwt) = Raw::new(&e).user_with_jwt(900).await;
    let store = notes_at(&e, Credential::jwt(jwt));
    let scope = || {
        SyncScope::new(
            "notes",
            [("owner", format!("{user}-{}", uuid::Uuid::now_v7().simple()))],
        )
        .unwrap()
    };
    let refused = query::run(&store, &scope(), &scope()).await;
    assert_eq!(refused, query::refused_by_narrowing(false));
}

fn ids<R: Record>(rows: &[R]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.id().to_owned()).collect();
    v.sort();
    v
}

fn unsupported<R: std::fmt::Debug>(r: remote_cache_sync::Result<Option<R>>) -> bool {
    matches!(
        r,
        Err(Error::Unsupported {
            backend: "appwrite",
            ..
        })
    )
}

#[tokio::test]
async fn typed_attributes_narrow_with_equal_and_refusals_are_unsupported() {
    let Some(e) = env() else { return };
    let store = keyed(&e);
    let s = unique_scope("records");
    let rows = vec![
        TestRecord::new("a", "apple", ts(1)).with_n(1),
        TestRecord::new("b", "Apple", ts(1)).with_n(2),
        TestRecord::new("c", "pear", ts(1))
            .with_n(3)
            .with_tags(["x", "y"]),
        TestRecord::new("d", "apple", ts(1)).with_n(4),
    ];
    store.batch_upsert(&s, &rows).await.unwrap();
    store
        .batch_delete(
            &s,
            &[remote_cache_sync::Tombstone {
                id: "d".into(),
                deleted_at: ts(2),
            }],
        )
        .await
        .unwrap();
    let q = |spec: QuerySpec| {
        let (store, s) = (&store, &s);
        async move { store.query(s, &spec).await }
    };
    let got = q(QuerySpec::new().filter(Filter::eq("title", "apple")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), ["a"], "exact case, the tombstone left out");
    let got = q(QuerySpec::new()
        .filter(Filter::is_in("title", ["apple", "pear", "nope"]))
        .filter(Filter::gt("n", 1)))
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ids(&got), ["c"]);
    let got = q(QuerySpec::new().filter(Filter::is_in("id", ["b", "c", "d", "zz"])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), ["b", "c"], "`id` is the record_id attribute");
    // Appwrite refuses these (400 general_query_invalid): unsupported, the read syncs instead.
    for spec in [
        QuerySpec::new().filter(Filter::eq("colour", "red")),
        QuerySpec::new().filter(Filter::eq("tags", "x")),
        QuerySpec::new().filter(Filter::eq("n", "3")),
        // Not sent at all: contains on a typed attribute, numbers, membership.
        QuerySpec::new().filter(Filter::contains("title", "pp")),
        QuerySpec::new().filter(Filter::eq("n", 3)),
        QuerySpec::new().filter(Filter::has("tags", "x")),
    ] {
        assert!(unsupported(q(spec.clone()).await), "{spec:?}");
    }
    // A term Appwrite refuses next to one it takes still fails the whole query: never a
    // partial answer.
    let spec = QuerySpec::new()
        .filter(Filter::eq("title", "pear"))
        .filter(Filter::eq("tags", "x"));
    assert!(unsupported(q(spec).await));
}

/// Operands shaped like Appwrite query JSON, scope values, SQL, quotes, backslashes and `LIKE`
/// wildcards are data: each query answers exactly what the reference evaluation does.
#[tokio::test]
async fn operands_cannot_inject_queries() {
    let Some(e) = env() else { return };
    let store = notes_at(&e, Credential::api_key(&e.key));
    let (s, other) = (notes_scope(), notes_scope());
    let other_owner = other.keys()["owner"].clone();
    let nasty = [
        "\"".to_owned(),
        "\\".to_owned(),
        "\\\"".to_owned(),
        "a\\\"b".to_owned(),
        "\"]},{\"method\":\"notEqual\",\"attribute\":\"owner\",\"values\":[\"x".to_owned(),
        "\"],\"method\":\"isNotNull".to_owned(),
        "' OR 1=1 --".to_owned(),
        "%".to_owned(),
        "_".to_owned(),
        "[".to_owned(),
        "50%_off".to_owned(),
        "\\%".to_owned(),
        "line\nbreak".to_owned(),
        "null".to_owned(),
        "[\"x\"]".to_owned(),
        other_owner.clone(),
    ];
    let at = "2026-01-01T00:00:00Z";
    let mut rows: Vec<JsonRecord> = nasty
        .iter()
        .enumerate()
        .map(|(i, t)| {
            JsonRecord::from_value(json!({"id": format!("n{i}"), "updated_at": at, "title": t}))
                .unwrap()
        })
        .collect();
    for (i, v) in [json!("plain"), json!({"k": "\"%"}), json!(null), json!(7)]
        .into_iter()
        .enumerate()
    {
        rows.push(
            JsonRecord::from_value(json!({"id": format!("x{i}"), "updated_at": at, "title": v}))
                .unwrap(),
        );
    }
    store.batch_upsert(&s, &rows).await.unwrap();
    // The other scope holds records matching everything, under the same ids.
    store.batch_upsert(&other, &rows).await.unwrap();
    let values: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let reference = |spec: &QuerySpec| -> remote_cache_sync::Result<Vec<String>> {
        let mut v: Vec<String> = spec.apply(
            rows.iter()
                .zip(&values)
                .map(|(r, v)| (r.id(), r.id().to_owned(), v)),
        )?;
        v.sort();
        Ok(v)
    };
    let mut narrowed = 0;
    for operand in &nasty {
        for spec in [
            QuerySpec::new().filter(Filter::eq("title", operand.as_str())),
            QuerySpec::new().filter(Filter::is_in("title", [operand.as_str(), "plain"])),
            QuerySpec::new().filter(Filter::contains("title", operand.as_str())),
            QuerySpec::new().filter(Filter::eq("owner", operand.as_str())),
        ] {
            let expected = reference(&spec);
            match store.query(&s, &spec).await {
                Ok(Some(got)) => {
                    narrowed += 1;
                    assert_eq!(
                        Ok(ids(&got)),
                        expected.map_err(|e| e.to_string()),
                        "{spec:?}"
                    );
                }
                Err(Error::InvalidQuery(_)) => assert!(expected.is_err(), "{spec:?}"),
                // A contains operand with no backslash-free piece cannot narrow.
                r => assert!(
                    unsupported(r) && operand.chars().all(|c| c == '\\'),
                    "{spec:?}"
                ),
            }
        }
    }
    assert!(narrowed >= 60, "{narrowed}");
    // Another scope's owner value as an operand finds nothing of that scope.
    let spec = QuerySpec::new().filter(Filter::eq("owner", other_owner.as_str()));
    assert!(store.query(&s, &spec).await.unwrap().unwrap().is_empty());
}

/// The queries of each list request the proxy saw.
fn listed_queries(proxy: &FaultProxy) -> Vec<Vec<Value>> {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/documents?"))
        .map(|r| {
            reqwest::Url::parse(&format!("http://x{}", r.path))
                .unwrap()
                .query_pairs()
                .filter(|(k, _)| k.starts_with("queries["))
                .map(|(_, v)| serde_json::from_str(&v).unwrap())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn online_reads_run_on_appwrite_without_pulling_the_scope() {
    let Some(e) = env() else { return };
    let s = unique_scope("records");
    let seed: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord::new(format!("r{i:02}"), format!("title {}", i % 8), ts(i)).with_n(i))
        .collect();
    keyed(&e).batch_upsert(&s, &seed).await.unwrap();
    let proxy = FaultProxy::start(e.endpoint.trim_end_matches("/v1").to_owned())
        .await
        .unwrap();
    let remote: Arc<dyn RemoteStore<TestRecord>> = Arc::new(store_at(
        &e,
        &format!("{}/v1", proxy.url()),
        Credential::api_key(&e.key),
    ));
    let device = Orchestrator::builder(InMemoryLocalStore::<TestRecord>::new(), remote)
        .sync_after_write(false)
        .build();
    let q = QuerySpec::new()
        .filter(Filter::is_in("title", ["title 3", "title 5"]))
        .filter(Filter::lt("n", 30))
        .order_by("n", remote_cache_sync::Direction::Desc);
    let rows = device.read(&s, CachePolicy::OnlineOnly, &q).await.unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        got,
        ["r29", "r27", "r21", "r19", "r13", "r11", "r05", "r03"]
    );
    let lists = listed_queries(&proxy);
    assert!(!lists.is_empty());
    for list in &lists {
        let text = Value::from(list.clone()).to_string();
        assert!(!text.contains("$updatedAt"), "the scope was pulled: {text}");
        assert!(
            list.iter().any(|q| q["method"] == "equal"
                && q["attribute"] == "title"
                && q["values"] == json!(["title 3", "title 5"])),
            "{text}"
        );
    }
    // Nothing was cached by the answer.
    let cached = device
        .read(&s, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await
        .unwrap();
    assert!(cached.is_empty(), "{cached:?}");
    // A query Appwrite cannot narrow falls back to a sync, then the cache answers.
    proxy.reset_log();
    let q = QuerySpec::new().filter(Filter::gt("n", 37));
    let rows = device.read(&s, CachePolicy::OnlineOnly, &q).await.unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, ["r38", "r39"]);
    assert!(
        listed_queries(&proxy)
            .iter()
            .any(|l| Value::from(l.clone()).to_string().contains("$updatedAt")),
        "the fallback pulls"
    );
    // A query Appwrite itself refuses (`400 general_query_invalid`: no such attribute) falls
    // back too: an answer from the cache, not an error.
    let q = QuerySpec::new().filter(Filter::eq("colour", "red"));
    let rows = device.read(&s, CachePolicy::OnlineOnly, &q).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let q = QuerySpec::new().filter(Filter::eq("title", "title 7"));
    let rows = device.read(&s, CachePolicy::OnlineOnly, &q).await.unwrap();
    assert_eq!(rows.len(), 5);
    device.shutdown().await;
}
