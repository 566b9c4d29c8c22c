//! Checks of the per-scope state beside the records: the sync pause, quarantined remote rows,
//! and the version lookup enqueue relies on.

use super::{create, page, rec};
use crate::delta::{QuarantinedRow, SyncPoint};
use crate::local::{LocalStore, ScopePause};
use crate::op::PendingOp;
use crate::testing::{TestRecord, ts, unique_scope};

/// A pause is kept per scope, read back as written, and cleared.
pub async fn pause_round_trips<S: LocalStore<TestRecord>>(store: &S) {
    let (a, b) = (unique_scope("pause"), unique_scope("pause"));
    assert_eq!(store.pause(&a).await.unwrap(), None);
    let p = ScopePause::new("http: refused (403 forbidden): no grant", ts(5));
    store.set_pause(&a, Some(&p)).await.unwrap();
    assert_eq!(store.pause(&a).await.unwrap(), Some(p.clone()));
    assert_eq!(store.pause(&b).await.unwrap(), None, "pauses are per scope");
    let later = ScopePause::new("again", ts(9));
    store.set_pause(&a, Some(&later)).await.unwrap();
    assert_eq!(store.pause(&a).await.unwrap(), Some(later));
    store.set_pause(&a, None).await.unwrap();
    assert_eq!(store.pause(&a).await.unwrap(), None);
    store.set_pause(&b, None).await.unwrap();
}

/// Quarantined rows of a page are kept raw with their reason (replacing an earlier entry for
/// the id), counted, isolated per scope, and released by any later change of the id.
pub async fn quarantine_is_kept_and_released<S: LocalStore<TestRecord>>(store: &S) {
    let (s, other) = (unique_scope("q"), unique_scope("q"));
    let (mut p1, point1) = page(vec![rec("good", "g", 0, 1)], vec![], "1");
    p1.quarantined = vec![
        QuarantinedRow::new("bad", r#"{"id":"bad","title":5}"#, "does not decode: title"),
        QuarantinedRow::new("worse", "{}", "no id"),
    ];
    store.apply_remote(&s, &p1, &point1).await.unwrap();
    let q = store.quarantined(&s).await.unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(
        (q[0].id.as_str(), q[0].reason.as_str()),
        ("bad", "does not decode: title")
    );
    assert_eq!(q[0].raw, r#"{"id":"bad","title":5}"#);
    assert_eq!(store.queue_status(&s).await.unwrap().quarantined, 2);
    assert!(store.quarantined(&other).await.unwrap().is_empty());
    assert_eq!(store.queue_status(&other).await.unwrap().quarantined, 0);
    assert!(store.scopes().await.unwrap().contains(&s));

    // The same row, still bad: replaced, not duplicated.
    let (mut p2, point2) = page(vec![], vec![], "2");
    p2.quarantined = vec![QuarantinedRow::new("bad", "{}", "still bad")];
    store.apply_remote(&s, &p2, &point2).await.unwrap();
    let q = store.quarantined(&s).await.unwrap();
    assert_eq!((q.len(), q[0].reason.as_str()), (2, "still bad"));

    // A queued local write on one id: the pull skips its change but the row decoded.
    store
        .enqueue(create(&s, rec("worse", "mine", 0, 3)))
        .await
        .unwrap();
    let (p3, point3) = page(
        vec![rec("bad", "fixed", 0, 4), rec("worse", "theirs", 0, 4)],
        vec![],
        "3",
    );
    let skipped = store.apply_remote(&s, &p3, &point3).await.unwrap();
    assert_eq!(skipped, ["worse"]);
    assert!(store.quarantined(&s).await.unwrap().is_empty());
    assert_eq!(store.queue_status(&s).await.unwrap().quarantined, 0);
    assert_eq!(
        store.get_by_id(&s, "bad").await.unwrap().unwrap().title,
        "fixed"
    );
    assert_eq!(
        store.sync_point(&s).await.unwrap(),
        Some(SyncPoint {
            cursor: point3.cursor,
            server_time: point3.server_time
        })
    );
}

/// `version` is the row's version, tombstones included.
pub async fn versions_include_tombstones<S: LocalStore<TestRecord>>(store: &S) {
    let s = unique_scope("v");
    assert_eq!(store.version(&s, "r").await.unwrap(), None);
    store
        .enqueue(create(&s, rec("r", "t", 0, 10)))
        .await
        .unwrap();
    assert_eq!(store.version(&s, "r").await.unwrap(), Some((ts(10), false)));
    store
        .enqueue(PendingOp::<TestRecord>::delete(s.clone(), "r", ts(20)))
        .await
        .unwrap();
    assert_eq!(store.version(&s, "r").await.unwrap(), Some((ts(20), true)));
    assert_eq!(store.version(&unique_scope("v"), "r").await.unwrap(), None);
}
