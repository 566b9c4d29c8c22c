//! Checks of applying pulled pages, queue status and the list of scopes.

use super::*;

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
