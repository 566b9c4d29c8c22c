//! Checks of the write queue: enqueue, pending order, acks, rejections, parking, settlements.

use super::*;

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
