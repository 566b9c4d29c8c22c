//! Runs the public LocalStore conformance suite against both local stores, plus SQLite-specific
//! tests (persistence across reopen, migrations, typed storage errors) and a property test that
//! checks SQL-compiled queries against `QuerySpec::apply`.
#![cfg(all(feature = "testing", feature = "sqlite"))]

use remote_cache_sync::InMemoryLocalStore;
use remote_cache_sync::testing::local;

#[tokio::test]
async fn memory_store_passes_the_suite() {
    local::run_all(async || InMemoryLocalStore::new()).await;
}

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::TestRecord;

#[tokio::test]
async fn sqlite_in_memory_passes_the_suite() {
    local::run_all(async || {
        SqliteLocalStore::<TestRecord>::open_in_memory()
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn sqlite_file_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    local::run_all(async || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteLocalStore::<TestRecord>::builder(dir.path().join(format!("cache-{i}.db")))
            .index_field("title")
            .open()
            .await
            .unwrap()
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// SQLite-specific: persistence, migrations, typed storage errors, indexes.

use std::time::Duration;

use remote_cache_sync::local::sqlite::SCHEMA_VERSION;
use remote_cache_sync::testing::ts;
use remote_cache_sync::{
    Ack, Cursor, Delta, Direction, Error, Filter, JsonRecord, LocalStore, OpKind, PendingOp,
    QuerySpec, QueueStatus, StorageErrorKind, SyncPoint, SyncScope, Tombstone,
};

fn rec(id: &str, title: &str, ms: i64) -> TestRecord {
    TestRecord::new(id, title, ts(ms))
}

fn storage_kind<T: std::fmt::Debug>(r: Result<T, Error>) -> StorageErrorKind {
    match r {
        Err(Error::Storage { kind, .. }) => kind,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

fn user_version(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn reopening_a_file_keeps_records_sync_points_and_queued_ops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let scope = SyncScope::new("records", [("owner", "u1")]).unwrap();
    let other = SyncScope::named("other").unwrap();
    let point = SyncPoint {
        cursor: Some(Cursor::new("seq:42")),
        server_time: ts(1_000),
    };
    let (pending, parked);
    {
        let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
        // A pulled record (synced version 100), a local tombstone, a sync point.
        let page = Delta {
            quarantined: Vec::new(),
            upserts: vec![rec("pulled", "from remote", 100)],
            deletes: vec![],
            server_time: ts(1_000),
            cursor: point.cursor.clone(),
            has_more: false,
        };
        store.apply_remote(&scope, &page, &point).await.unwrap();
        store
            .upsert_many(&scope, &[rec("gone", "x", 5)])
            .await
            .unwrap();
        store
            .delete_many(
                &scope,
                &[Tombstone {
                    id: "gone".into(),
                    deleted_at: ts(6),
                }],
            )
            .await
            .unwrap();
        // Queued ops: an update on the pulled record, a create, a parked one.
        let u = PendingOp::upsert(scope.clone(), OpKind::Update, rec("pulled", "edited", 200));
        let c = PendingOp::upsert(scope.clone(), OpKind::Create, rec("new", "offline", 210));
        let p = PendingOp::upsert(scope.clone(), OpKind::Create, rec("bad", "rejected", 220));
        for op in [&u, &c, &p] {
            store.enqueue(op.clone()).await.unwrap();
        }
        store
            .reject_ops(&scope, std::slice::from_ref(&p.op_id), "invalid", true)
            .await
            .unwrap();
        store
            .upsert_many(&other, &[rec("o", "other scope", 1)])
            .await
            .unwrap();
        pending = vec![u, c];
        parked = p;
    }
    let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
    assert_eq!(
        store
            .get_by_id(&scope, "pulled")
            .await
            .unwrap()
            .unwrap()
            .title,
        "edited"
    );
    assert_eq!(
        store.get_by_id(&scope, "new").await.unwrap().unwrap().title,
        "offline"
    );
    assert_eq!(
        store.get_by_id(&scope, "gone").await.unwrap(),
        None,
        "tombstone persisted"
    );
    assert_eq!(store.sync_point(&scope).await.unwrap(), Some(point));
    let ops = store.pending_ops(&scope, 10).await.unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].op_id, pending[0].op_id, "queue order persisted");
    assert_eq!(ops[0].payload, pending[0].payload);
    assert_eq!(
        ops[0].base_version,
        Some(ts(100)),
        "synced version persisted"
    );
    assert_eq!(ops[1].op_id, pending[1].op_id);
    assert_eq!(ops[1].base_version, None);
    let p = store.parked_ops(&scope).await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].op_id, parked.op_id);
    assert_eq!(p[0].attempts, 1);
    assert_eq!(p[0].last_error.as_deref(), Some("invalid"));
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus {
            pending: 2,
            parked: 1,
            quarantined: 0,
        }
    );
    let mut scopes = store.scopes().await.unwrap();
    scopes.sort();
    let mut want = vec![scope.clone(), other.clone()];
    want.sort();
    assert_eq!(scopes, want);
    // The queue keeps working after the reopen: ack, then a pull applies.
    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "pulled".into(),
                op_ids: vec![pending[0].op_id.clone()],
                version: Some(ts(200)),
            }],
        )
        .await
        .unwrap();
    let c2 = PendingOp::upsert(
        scope.clone(),
        OpKind::Update,
        rec("new2", "after reopen", 300),
    );
    store.enqueue(c2.clone()).await.unwrap();
    let ops = store.pending_ops(&scope, 10).await.unwrap();
    assert_eq!(
        ops.iter().map(|o| &o.op_id).collect::<Vec<_>>(),
        [&pending[1].op_id, &c2.op_id]
    );
}

#[tokio::test]
async fn migrates_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
    let scope = SyncScope::named("r").unwrap();
    store
        .upsert_many(&scope, &[rec("a", "x", 1)])
        .await
        .unwrap();
    drop(store);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    // Opening again is a no-op migration.
    let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
    assert!(store.get_by_id(&scope, "a").await.unwrap().is_some());
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
        let scope = SyncScope::named("r").unwrap();
        store
            .upsert_many(&scope, &[rec("a", "x", 1)])
            .await
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = SqliteLocalStore::<TestRecord>::open(&path).await;
    assert_eq!(storage_kind(err), StorageErrorKind::SchemaTooNew);
    assert_eq!(
        user_version(&path),
        SCHEMA_VERSION + 1,
        "the newer file is untouched"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "data untouched");
}

#[tokio::test]
async fn a_foreign_file_with_a_negative_schema_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    conn.pragma_update(None, "user_version", -7).unwrap();
    drop(conn);
    let err = SqliteLocalStore::<TestRecord>::open(&path).await;
    assert_eq!(storage_kind(err), StorageErrorKind::Foreign);
    assert_eq!(user_version(&path), -7, "the file is untouched");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "no tables added");
}

#[tokio::test]
async fn garbage_bytes_are_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteLocalStore::<TestRecord>::open(&path).await;
    // Four pages of random bytes are what an encrypted cache looks like without its key.
    let want = if cfg!(feature = "encryption") {
        StorageErrorKind::KeyRequired
    } else {
        StorageErrorKind::Corrupt
    };
    assert_eq!(storage_kind(err), want);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "a corrupt file is not overwritten"
    );
    // Not a whole number of pages: no encrypted file looks like that.
    std::fs::write(&path, &garbage[..10_000]).unwrap();
    let err = SqliteLocalStore::<TestRecord>::open(&path).await;
    assert_eq!(storage_kind(err), StorageErrorKind::Corrupt);
    assert_eq!(std::fs::read(&path).unwrap(), &garbage[..10_000]);
}

#[tokio::test]
async fn damaged_pages_are_reported_as_corrupt_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    let scope = SyncScope::named("r").unwrap();
    {
        let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
        let rows: Vec<_> = (0..2_000)
            .map(|i| rec(&format!("id{i:05}"), &"x".repeat(100), i))
            .collect();
        store.upsert_many(&scope, &rows).await.unwrap();
    }
    // Everything is checkpointed into the main file on close; smash pages after the header.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "file is {} bytes", bytes.len());
    let end = bytes.len() - 4096;
    for b in &mut bytes[4096..end] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result = async {
        let store = SqliteLocalStore::<TestRecord>::open(&path).await?;
        store.query(&scope, &QuerySpec::new()).await?;
        store.upsert_many(&scope, &[rec("new", "y", 1)]).await?;
        Ok::<_, Error>(())
    }
    .await;
    assert_eq!(storage_kind(result), StorageErrorKind::Corrupt);
}

#[tokio::test]
async fn a_locked_database_gives_a_retryable_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let scope = SyncScope::named("r").unwrap();
    let store = SqliteLocalStore::<TestRecord>::builder(&path)
        .busy_timeout(Duration::from_millis(50))
        .open()
        .await
        .unwrap();
    store
        .upsert_many(&scope, &[rec("a", "before", 1)])
        .await
        .unwrap();

    // Another connection (another process, say) holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO sync_points VALUES ('x', NULL, 0);")
        .unwrap();
    let op = PendingOp::upsert(scope.clone(), OpKind::Update, rec("a", "during", 2));
    let err = store.enqueue(op.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                kind: StorageErrorKind::Locked,
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(err.is_retryable(), "a lock is worth retrying");
    let err = store
        .upsert_many(&scope, &[rec("b", "during", 2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                kind: StorageErrorKind::Locked,
                ..
            }
        ),
        "got {err:?}"
    );
    // Nothing half-written; reads still work under WAL.
    assert_eq!(
        store.get_by_id(&scope, "a").await.unwrap().unwrap().title,
        "before"
    );
    assert_eq!(
        store.queue_status(&scope).await.unwrap(),
        QueueStatus::default()
    );

    other.execute_batch("ROLLBACK").unwrap();
    store
        .enqueue(op)
        .await
        .expect("succeeds once the lock is gone");
    assert_eq!(
        store.get_by_id(&scope, "a").await.unwrap().unwrap().title,
        "during"
    );
}

#[tokio::test]
async fn declared_fields_are_indexed_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("indexed.db");
    let store = SqliteLocalStore::<TestRecord>::builder(&path)
        .index_field("title")
        .open()
        .await
        .unwrap();
    let scope = SyncScope::named("r").unwrap();
    let rows: Vec<_> = (0..5_000)
        .map(|i| rec(&format!("id{i:05}"), &format!("t{}", i % 100), i).with_n(i))
        .collect();
    store.upsert_many(&scope, &rows).await.unwrap();
    let spec = QuerySpec::new().filter(Filter::eq("title", "t7"));
    let plan = store.explain(&scope, &spec).await.unwrap().join(" | ");
    assert!(
        plan.contains("items_json:title"),
        "plan should use the field index: {plan}"
    );
    assert_eq!(store.query(&scope, &spec).await.unwrap().len(), 50);
    let range = QuerySpec::new()
        .filter(Filter::lt("title", "t10"))
        .filter(Filter::ge("title", "t0"))
        .order_by("n", Direction::Desc)
        .limit(3);
    let plan = store.explain(&scope, &range).await.unwrap().join(" | ");
    assert!(
        plan.contains("items_json:title"),
        "range filters use it too: {plan}"
    );
    let got: Vec<i64> = store
        .query(&scope, &range)
        .await
        .unwrap()
        .iter()
        .map(|r| r.n)
        .collect();
    assert_eq!(got, [4901, 4900, 4801]);
    // Undeclared fields scan the scope (through the primary key), never other scopes.
    let plan = store
        .explain(&scope, &QuerySpec::new().filter(Filter::eq("n", 3)))
        .await
        .unwrap()
        .join(" | ");
    assert!(!plan.contains("items_json"), "{plan}");
    // The index survives a reopen without the builder option, and invalid fields are refused.
    drop(store);
    let store = SqliteLocalStore::<TestRecord>::open(&path).await.unwrap();
    let plan = store.explain(&scope, &spec).await.unwrap().join(" | ");
    assert!(plan.contains("items_json:title"), "{plan}");
    let bad = SqliteLocalStore::<TestRecord>::builder(dir.path().join("bad.db"))
        .index_field("title') --")
        .open()
        .await;
    assert!(matches!(bad, Err(Error::InvalidQuery(_))), "got {bad:?}");
}

#[tokio::test]
async fn out_of_range_timestamps_are_refused_not_truncated() {
    let store = SqliteLocalStore::<TestRecord>::open_in_memory()
        .await
        .unwrap();
    let scope = SyncScope::named("r").unwrap();
    let far = jiff::Timestamp::from_second(300 * 365 * 86_400 * 2).unwrap(); // ~2570
    let err = store
        .upsert_many(&scope, &[TestRecord::new("a", "x", far)])
        .await;
    assert!(matches!(err, Err(Error::InvalidInput(_))), "got {err:?}");
    assert_eq!(store.get_by_id(&scope, "a").await.unwrap(), None);
    // query_since with such a bound still answers.
    store
        .upsert_many(&scope, &[rec("b", "x", 1)])
        .await
        .unwrap();
    assert!(store.query_since(&scope, far).await.unwrap().is_empty());
    assert_eq!(
        store
            .query_since(&scope, jiff::Timestamp::MIN)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Property test: SQL-compiled queries agree with the reference `QuerySpec::apply`.

mod query_property {
    use super::*;
    use proptest::prelude::*;
    use remote_cache_sync::{FilterOp, OrderBy};
    use serde_json::{Value, json};

    const FIELDS: &[&str] = &["a", "b", "c", "m.x", "m", "missing"];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            (-3i64..4).prop_map(Value::from),
            (-6i32..8).prop_map(|h| json!(f64::from(h) / 2.0 + 0.25)),
            prop::sample::select(vec![
                "", "a", "A", "b", "ab", "aB", "é", "%", "_", "a b", "10", "2"
            ])
            .prop_map(Value::from),
        ]
    }

    fn field_value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            3 => scalar().prop_map(Some),
            1 => Just(Some(Value::Null)),
            1 => Just(None),
            1 => prop::collection::vec(scalar(), 0..3).prop_map(|v| Some(Value::Array(v))),
            1 => (scalar(), scalar()).prop_map(|(x, y)| Some(json!({"x": x, "y": y}))),
        ]
    }

    fn record(i: usize) -> impl Strategy<Value = Value> {
        (field_value(), field_value(), field_value(), field_value()).prop_map(
            move |(a, b, c, mx)| {
                let mut obj = serde_json::Map::new();
                obj.insert("id".into(), json!(format!("r{i:02}")));
                obj.insert("updated_at".into(), json!("2026-01-01T00:00:00Z"));
                for (k, v) in [("a", a), ("b", b), ("c", c)] {
                    if let Some(v) = v {
                        obj.insert(k.into(), v);
                    }
                }
                if let Some(mx) = mx {
                    obj.insert("m".into(), json!({ "x": mx }));
                }
                Value::Object(obj)
            },
        )
    }

    fn records() -> impl Strategy<Value = Vec<Value>> {
        (0usize..25).prop_flat_map(|n| (0..n).map(record).collect::<Vec<_>>())
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let field = prop::sample::select(FIELDS.to_vec()).prop_map(String::from);
        let op = prop_oneof![
            scalar().prop_map(FilterOp::Eq),
            scalar().prop_map(FilterOp::Ne),
            scalar().prop_map(FilterOp::Lt),
            scalar().prop_map(FilterOp::Le),
            scalar().prop_map(FilterOp::Gt),
            scalar().prop_map(FilterOp::Ge),
            prop::collection::vec(scalar(), 0..4).prop_map(FilterOp::In),
            prop::sample::select(vec!["", "a", "A", "b", "%", "_", " "])
                .prop_map(|s| FilterOp::Contains(s.to_owned())),
            any::<bool>().prop_map(FilterOp::IsNull),
            scalar().prop_map(FilterOp::Has),
        ];
        (field, op).prop_map(|(field, op)| Filter { field, op })
    }

    fn spec() -> impl Strategy<Value = QuerySpec> {
        (
            prop::collection::vec(filter(), 0..3),
            prop::collection::vec(
                (
                    prop::sample::select(FIELDS.to_vec()),
                    any::<bool>(),
                    any::<bool>(),
                ),
                0..3,
            ),
            prop::option::of(0usize..8),
            prop::option::of(0usize..6),
        )
            .prop_map(|(filters, order, limit, offset)| {
                let mut q = QuerySpec {
                    filters,
                    limit,
                    offset,
                    ..QuerySpec::default()
                };
                for (f, desc, nocase) in order {
                    let key = if desc {
                        OrderBy::desc(f)
                    } else {
                        OrderBy::asc(f)
                    };
                    q = q.sort_by(if nocase { key.nocase() } else { key });
                }
                q
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn sqlite_queries_match_the_reference(docs in records(), specs in prop::collection::vec(spec(), 1..8)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let store = SqliteLocalStore::<JsonRecord>::builder(":memory:")
                    .index_field("a")
                    .index_field("m.x")
                    .open()
                    .await
                    .unwrap();
                let scope = SyncScope::named("p").unwrap();
                let other = SyncScope::named("q").unwrap();
                let recs: Vec<JsonRecord> =
                    docs.iter().map(|d| JsonRecord::from_value(d.clone()).unwrap()).collect();
                store.upsert_many(&scope, &recs).await.unwrap();
                // Same ids in another scope must never show up.
                store.upsert_many(&other, &recs).await.unwrap();
                for spec in &specs {
                    // Errors (an array under a scalar comparison) must agree too, message
                    // included: the same filter fails the same query.
                    let got: Result<Vec<String>, String> = store
                        .query(&scope, spec)
                        .await
                        .map(|rows| {
                            rows.iter()
                                .map(|r| r.value()["id"].as_str().unwrap().to_owned())
                                .collect()
                        })
                        .map_err(|e| {
                            assert!(matches!(e, Error::InvalidQuery(_)), "{e:?}");
                            e.to_string()
                        });
                    let want: Result<Vec<String>, String> = spec
                        .apply(docs.iter().map(|d| {
                            let id = d["id"].as_str().unwrap();
                            (id, id.to_owned(), d)
                        }))
                        .map_err(|e| e.to_string());
                    prop_assert_eq!(got, want, "spec {:?}", spec);
                }
                Ok(())
            })?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-thread runtime: calls run under `block_in_place` there (spawn_blocking elsewhere).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_suite_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    local::run_all(async || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteLocalStore::<TestRecord>::open(dir.path().join(format!("mt-{i}.db")))
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_and_keep_per_task_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        SqliteLocalStore::<TestRecord>::open(dir.path().join("concurrent.db"))
            .await
            .unwrap(),
    );
    let scope = SyncScope::named("r").unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, scope) = (store.clone(), scope.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let r = rec(&format!("t{t}-{i}"), "x", i64::from(t * 1000 + i));
                let op = PendingOp::upsert(scope.clone(), OpKind::Create, r);
                ids.push(op.op_id.clone());
                store.enqueue(op).await.unwrap();
                if i % 10 == 0 {
                    // Readers interleave with writers.
                    store
                        .query(&scope, &QuerySpec::new().limit(5))
                        .await
                        .unwrap();
                }
            }
            ids
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(t.await.unwrap());
    }
    let ops = store.pending_ops(&scope, usize::MAX).await.unwrap();
    assert_eq!(ops.len(), 400, "every write queued");
    assert_eq!(
        store.query(&scope, &QuerySpec::new()).await.unwrap().len(),
        400,
        "every row written"
    );
    let position: std::collections::HashMap<_, _> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.op_id.clone(), i))
        .collect();
    for ids in per_task {
        let positions: Vec<usize> = ids.iter().map(|id| position[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a task's ops keep their order"
        );
    }
}
