//! Conformance of [`LocalStore::reconcile_rows`] and [`LocalStore::apply_reconciled`]: rows at
//! their synced version, queued writes never overwritten nor removed, removals only at the
//! version reconciliation saw, and nothing of another scope.

use std::collections::BTreeSet;

use super::{create, page, rec, update};
use crate::local::LocalStore;
use crate::record::Tombstone;
use crate::testing::{TestRecord, ts, unique_scope};

/// See the [module docs](self).
pub(super) async fn reconcile_rows_and_apply<S: LocalStore<TestRecord>>(store: &S) {
    let scope = unique_scope("records");
    let other = unique_scope("records");
    let (p, point) = page(
        vec![
            rec("a", "a", 1, 1),
            rec("b", "b", 2, 2),
            rec("c", "c", 3, 3),
        ],
        vec![Tombstone {
            id: "d".into(),
            deleted_at: ts(4),
        }],
        "1",
    );
    store.apply_remote(&scope, &p, &point).await.unwrap();
    let (p, point) = page(vec![rec("x", "x", 9, 9)], vec![], "1");
    store.apply_remote(&other, &p, &point).await.unwrap();
    // A queued update of b (synced at 2) and a queued create of e (never synced).
    store
        .enqueue(update(&scope, rec("b", "mine", 20, 20)))
        .await
        .unwrap();
    store
        .enqueue(create(&scope, rec("e", "new", 21, 21)))
        .await
        .unwrap();

    let mut rows = store.reconcile_rows(&scope).await.unwrap();
    rows.sort();
    let want = vec![
        ("a".to_owned(), ts(1)),
        ("b".to_owned(), ts(2)),
        ("c".to_owned(), ts(3)),
    ];
    assert_eq!(
        rows, want,
        "live rows at their synced version; no tombstone, no unpushed create"
    );

    // Fetched a (newer), b (queued: skipped) and f (new); removals of c, b, e (queued: skipped)
    // and of x in this scope (not here: nothing happens to the other scope's x).
    let skipped = store
        .apply_reconciled(
            &scope,
            &[
                rec("a", "a2", 5, 5),
                rec("b", "theirs", 6, 6),
                rec("f", "f", 7, 7),
            ],
            &[
                ("c".into(), ts(3)),
                ("b".into(), ts(2)),
                ("e".into(), ts(21)),
                ("x".into(), ts(9)),
            ],
        )
        .await
        .unwrap();
    let skipped: BTreeSet<String> = skipped.into_iter().collect();
    assert_eq!(skipped, BTreeSet::from(["b".to_owned(), "e".to_owned()]));
    assert_eq!(
        store.get_by_id(&scope, "a").await.unwrap().unwrap().title,
        "a2"
    );
    assert_eq!(
        store.get_by_id(&scope, "b").await.unwrap().unwrap().title,
        "mine"
    );
    assert_eq!(store.get_by_id(&scope, "c").await.unwrap(), None);
    assert_eq!(
        store.get_by_id(&scope, "e").await.unwrap().unwrap().title,
        "new"
    );
    assert_eq!(
        store.get_by_id(&scope, "f").await.unwrap().unwrap().title,
        "f"
    );
    assert_eq!(
        store.get_by_id(&other, "x").await.unwrap().unwrap().title,
        "x"
    );
    assert_eq!(
        store.pending_ops(&scope, 10).await.unwrap().len(),
        2,
        "the queue is intact"
    );
    // Fetched rows are synced rows now.
    let mut rows = store.reconcile_rows(&scope).await.unwrap();
    rows.sort();
    let want: Vec<(String, _)> = vec![
        ("a".into(), ts(5)),
        ("b".into(), ts(2)),
        ("f".into(), ts(7)),
    ];
    assert_eq!(rows, want);

    // A removal at a version the row no longer holds (a pull brought a newer one) does nothing.
    store
        .apply_reconciled(&scope, &[], &[("a".into(), ts(1))])
        .await
        .unwrap();
    assert_eq!(
        store.get_by_id(&scope, "a").await.unwrap().unwrap().title,
        "a2"
    );

    // A row quarantined by a pull that reconciliation fetches (it decodes now) is released.
    let (mut p, point) = page(vec![], vec![], "2");
    p.quarantined.push(crate::delta::QuarantinedRow::new(
        "q",
        "{\"id\": 1}",
        "does not decode",
    ));
    store.apply_remote(&scope, &p, &point).await.unwrap();
    assert_eq!(store.quarantined(&scope).await.unwrap().len(), 1);
    store
        .apply_reconciled(&scope, &[rec("q", "fixed", 30, 30)], &[])
        .await
        .unwrap();
    assert!(store.quarantined(&scope).await.unwrap().is_empty());
    assert_eq!(
        store.get_by_id(&scope, "q").await.unwrap().unwrap().title,
        "fixed"
    );
}
