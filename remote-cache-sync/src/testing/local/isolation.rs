//! Checks that nothing of one scope is visible through another, and that values round-trip.

use super::*;

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
