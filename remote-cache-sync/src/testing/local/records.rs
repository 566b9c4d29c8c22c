//! Checks of remote records in the cache: last write wins, soft deletes, sync points.

use super::*;

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
