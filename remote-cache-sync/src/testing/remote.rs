//! The [`RemoteStore`] conformance suite.
//!
//! ```no_run
//! # async fn doc() {
//! use remote_cache_sync::InMemoryRemoteStore;
//! use remote_cache_sync::testing::{remote, unique_scope};
//! let store = InMemoryRemoteStore::new();
//! remote::run_all(&store, || unique_scope("records")).await;
//! # }
//! ```
//!
//! Each check works in fresh scopes from `new_scope`, so checks can share one remote (a real
//! server) without seeing each other's data. Remotes may re-deliver rows they already sent (an
//! overlap window); the checks only require that nothing is missed.

use std::collections::{BTreeMap, HashSet};

use jiff::{Timestamp, ToSpan};

use crate::delta::Cursor;
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::remote::RemoteStore;
use crate::scope::SyncScope;
use crate::testing::{TestRecord, ts};

/// Runs every check.
pub async fn run_all<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    new_scope: impl Fn() -> SyncScope,
) {
    empty_scope(remote, &new_scope()).await;
    create_read_and_pull(remote, &new_scope()).await;
    base_version_conflicts(remote, &new_scope()).await;
    deletes_are_tombstones(remote, &new_scope()).await;
    pushes_are_idempotent(remote, &new_scope()).await;
    idempotency_is_per_scope(remote, &new_scope(), &new_scope()).await;
    payload_tombstones_answer_their_version(remote, &new_scope()).await;
    paging_sees_every_change(remote, &new_scope()).await;
    counts_match_the_feed(remote, &new_scope()).await;
    later_changes_follow_cursor(remote, &new_scope()).await;
    scopes_are_isolated(remote, &new_scope(), &new_scope()).await;
    payloads_round_trip(remote, &new_scope()).await;
    mixed_outcomes_in_one_push(remote, &new_scope()).await;
    batch_conveniences(remote, &new_scope()).await;
    server_time_is_sane(remote).await;
    crate::testing::reconcile::digests_match_the_feed(remote, &new_scope(), &new_scope()).await;
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

fn update(scope: &SyncScope, r: TestRecord, base: Option<Timestamp>) -> PendingOp<TestRecord> {
    let mut op = PendingOp::upsert(scope.clone(), OpKind::Update, r);
    op.base_version = base;
    op
}

fn id(n: usize) -> String {
    format!("rec{n:05}")
}

async fn push_ok<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    ops: &[PendingOp<TestRecord>],
) {
    let outcomes = remote.push(scope, ops).await.expect("push failed");
    assert_eq!(outcomes.len(), ops.len(), "one outcome per op");
    for (op, o) in ops.iter().zip(&outcomes) {
        assert!(
            matches!(o, PushOutcome::Applied { .. }),
            "op {:?} on {} should apply, got {o:?}",
            op.kind,
            op.id
        );
    }
}

/// Pulls from `since` until `has_more` is false; returns the latest state per id
/// (`None` = tombstone) and the final cursor.
pub async fn pull_all<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    since: Option<Cursor>,
    limit: usize,
) -> (BTreeMap<String, Option<TestRecord>>, Option<Cursor>) {
    let mut state = BTreeMap::new();
    let mut cursor = since;
    for _ in 0..10_000 {
        let page = remote
            .fetch_since(scope, cursor.as_ref(), limit)
            .await
            .expect("fetch_since failed");
        assert!(
            page.len() <= limit,
            "page of {} exceeds limit {limit}",
            page.len()
        );
        if page.cursor.is_some() {
            cursor = page.cursor.clone();
        }
        let has_more = page.has_more;
        for change in page.into_changes() {
            let id = change.id().to_owned();
            match change {
                Change::Upsert(r) if r.deleted_at().is_none() => state.insert(id, Some(r)),
                _ => state.insert(id, None),
            };
        }
        if !has_more {
            return (state, cursor);
        }
    }
    panic!("fetch_since never reported has_more = false");
}

/// A new scope has no records and an empty feed.
pub async fn empty_scope<R: RemoteStore<TestRecord> + ?Sized>(remote: &R, scope: &SyncScope) {
    assert_eq!(remote.get_by_id(scope, "nope").await.unwrap(), None);
    let page = remote.fetch_since(scope, None, 100).await.unwrap();
    assert!(page.is_empty(), "new scope must have no changes");
    assert!(!page.has_more);
}

/// A created record can be read and is pulled; pulling again from the cursor adds nothing new.
pub async fn create_read_and_pull<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let r = TestRecord::new(id(1), "first", ts(1_000)).with_n(7);
    push_ok(remote, scope, &[create(scope, r.clone())]).await;
    assert_eq!(
        remote.get_by_id(scope, &r.id).await.unwrap(),
        Some(r.clone())
    );
    let (state, cursor) = pull_all(remote, scope, None, 100).await;
    assert_eq!(
        state.get(&r.id),
        Some(&Some(r.clone())),
        "pull must return the record"
    );
    assert!(cursor.is_some(), "a non-empty pull must return a cursor");
    let (again, _) = pull_all(remote, scope, cursor, 100).await;
    for (k, v) in again {
        assert_eq!(
            v.as_ref(),
            Some(&r),
            "re-delivered row {k} must be unchanged"
        );
    }
}

/// Updates and creates are checked against the remote's current version.
pub async fn base_version_conflicts<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let v1 = TestRecord::new(id(1), "v1", ts(1_000));
    push_ok(remote, scope, &[create(scope, v1.clone())]).await;

    let dup = TestRecord::new(id(1), "dup", ts(1_500));
    let out = remote.push(scope, &[create(scope, dup)]).await.unwrap();
    match &out[0] {
        PushOutcome::Conflict {
            current: Some(Change::Upsert(cur)),
        } => assert_eq!(cur, &v1),
        other => {
            panic!("create of an existing id must conflict with the current version, got {other:?}")
        }
    }

    let v2 = TestRecord::new(id(1), "v2", ts(2_000));
    push_ok(
        remote,
        scope,
        &[update(scope, v2.clone(), Some(v1.updated_at))],
    )
    .await;

    let stale = TestRecord::new(id(1), "stale", ts(3_000));
    let out = remote
        .push(scope, &[update(scope, stale, Some(v1.updated_at))])
        .await
        .unwrap();
    match &out[0] {
        PushOutcome::Conflict {
            current: Some(Change::Upsert(cur)),
        } => assert_eq!(cur, &v2),
        other => panic!("update on a stale base must conflict, got {other:?}"),
    }
    assert_eq!(
        remote.get_by_id(scope, &v1.id).await.unwrap(),
        Some(v2.clone())
    );

    let blind = TestRecord::new(id(1), "blind", ts(4_000));
    let out = remote
        .push(scope, &[update(scope, blind, None)])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], PushOutcome::Conflict { current: Some(Change::Upsert(cur)) } if cur == &v2),
        "an update without a base must not overwrite a live record, got {:?}",
        out[0]
    );
    assert_eq!(remote.get_by_id(scope, &v1.id).await.unwrap(), Some(v2));
}

/// Deletes leave tombstones in the feed; deleting a missing record succeeds.
pub async fn deletes_are_tombstones<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let r = TestRecord::new(id(1), "doomed", ts(1_000));
    push_ok(remote, scope, &[create(scope, r.clone())]).await;
    let (_, cursor) = pull_all(remote, scope, None, 100).await;

    let mut del = PendingOp::delete(scope.clone(), r.id.clone(), ts(2_000));
    del.base_version = Some(r.updated_at);
    push_ok(remote, scope, &[del]).await;
    assert_eq!(remote.get_by_id(scope, &r.id).await.unwrap(), None);

    let (state, _) = pull_all(remote, scope, cursor, 100).await;
    assert_eq!(
        state.get(&r.id),
        Some(&None),
        "the deletion must be pulled as a tombstone"
    );

    let missing = PendingOp::<TestRecord>::delete(scope.clone(), id(99), ts(2_000));
    push_ok(remote, scope, &[missing]).await;

    let stale = update(
        scope,
        TestRecord::new(id(1), "zombie", ts(3_000)),
        Some(r.updated_at),
    );
    let out = remote.push(scope, &[stale]).await.unwrap();
    assert!(
        matches!(&out[0], PushOutcome::Conflict { current: Some(c) } if c.is_delete()),
        "an update on top of a remotely deleted record must conflict with the tombstone, got {:?}",
        out[0]
    );
}

/// Replaying an op id changes nothing, even after later writes.
pub async fn pushes_are_idempotent<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let v1 = TestRecord::new(id(1), "v1", ts(1_000));
    let op1 = create(scope, v1.clone());
    push_ok(remote, scope, std::slice::from_ref(&op1)).await;
    push_ok(remote, scope, std::slice::from_ref(&op1)).await;
    let v2 = TestRecord::new(id(1), "v2", ts(2_000));
    push_ok(
        remote,
        scope,
        &[update(scope, v2.clone(), Some(v1.updated_at))],
    )
    .await;
    let replay = remote
        .push(scope, std::slice::from_ref(&op1))
        .await
        .unwrap();
    match &replay[0] {
        PushOutcome::Applied { version } => assert_eq!(
            *version, v1.updated_at,
            "a replayed op reports the version it wrote, not the one that superseded it"
        ),
        PushOutcome::Conflict {
            current: Some(Change::Upsert(cur)),
        } => {
            assert_eq!(
                cur, &v2,
                "a replay may conflict (no op-id memory), but only with the current version"
            )
        }
        other => panic!("a replayed op must not be rejected, got {other:?}"),
    }
    assert_eq!(
        remote.get_by_id(scope, &v1.id).await.unwrap(),
        Some(v2),
        "a replayed op must not revert a later write"
    );
}

/// Op ids are remembered per scope: an op whose id was already applied in another scope is a
/// different op, applied (and visible) in its own scope, and the other scope is untouched.
/// Answering it `applied` from the other scope's memory would report a write that never landed
/// (and tell a tenant which op ids another tenant used).
pub async fn idempotency_is_per_scope<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    a: &SyncScope,
    b: &SyncScope,
) {
    assert_ne!(a, b, "new_scope must return distinct scopes");
    let ra = TestRecord::new(id(1), "in a", ts(1_000)).with_n(1);
    let op_a = create(a, ra.clone());
    push_ok(remote, a, std::slice::from_ref(&op_a)).await;

    let rb = TestRecord::new(id(1), "in b", ts(2_000)).with_n(2);
    let mut op_b = create(b, rb.clone());
    op_b.op_id = op_a.op_id.clone();
    let out = remote
        .push(b, std::slice::from_ref(&op_b))
        .await
        .expect("push failed");
    assert_eq!(
        out,
        [PushOutcome::Applied {
            version: rb.updated_at
        }],
        "an op id applied in another scope must not decide an op in this one"
    );
    assert_eq!(
        remote.get_by_id(b, &rb.id).await.unwrap(),
        Some(rb.clone()),
        "the op reported applied in scope b must be visible there"
    );
    let (state_b, _) = pull_all(remote, b, None, 100).await;
    assert_eq!(
        state_b.get(&rb.id),
        Some(&Some(rb.clone())),
        "the op applied in scope b must be pulled there"
    );
    assert_eq!(
        remote.get_by_id(a, &ra.id).await.unwrap(),
        Some(ra.clone()),
        "an op in scope b changed scope a"
    );

    // Each scope still recognises its own replay.
    for (scope, op, record) in [(a, &op_a, &ra), (b, &op_b, &rb)] {
        let replay = remote.push(scope, std::slice::from_ref(op)).await.unwrap();
        match &replay[0] {
            PushOutcome::Applied { version } => assert_eq!(
                *version, record.updated_at,
                "a replay reports the version its op wrote"
            ),
            PushOutcome::Conflict {
                current: Some(Change::Upsert(cur)),
            } => assert_eq!(
                cur, record,
                "a replay may conflict (no op-id memory), but only with its own scope's record"
            ),
            other => panic!("a replayed op must not be rejected, got {other:?}"),
        }
    }
    assert_eq!(remote.get_by_id(a, &ra.id).await.unwrap(), Some(ra));
    assert_eq!(remote.get_by_id(b, &rb.id).await.unwrap(), Some(rb));
}

/// An upsert whose payload is a tombstone (`deleted_at` set) is answered
/// `Applied { version: deleted_at }`, the version the remote stores for it (see
/// [`Change::version`]), so the writer's next op, based on that version, applies instead of
/// conflicting with the writer's own delete.
pub async fn payload_tombstones_answer_their_version<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let tombstoned = |r: TestRecord, at: Timestamp| TestRecord {
        deleted_at: Some(at),
        ..r
    };
    let v1 = TestRecord::new(id(1), "v1", ts(1_000));
    push_ok(remote, scope, &[create(scope, v1.clone())]).await;
    let (_, cursor) = pull_all(remote, scope, None, 100).await;

    // Soft delete: `updated_at` and `deleted_at` differ on purpose, so the answer tells them apart.
    let gone = tombstoned(TestRecord::new(id(1), "v1", ts(2_000)), ts(2_500));
    let op = update(scope, gone.clone(), Some(v1.updated_at));
    let out = remote.push(scope, std::slice::from_ref(&op)).await.unwrap();
    assert_eq!(
        out,
        [PushOutcome::Applied { version: ts(2_500) }],
        "a payload tombstone must be answered with its deleted_at, the version stored"
    );
    assert_eq!(
        remote.get_by_id(scope, &v1.id).await.unwrap(),
        None,
        "a payload tombstone hides the record"
    );
    let (state, _) = pull_all(remote, scope, cursor, 100).await;
    assert_eq!(
        state.get(&v1.id),
        Some(&None),
        "a payload tombstone is pulled as a deletion"
    );

    // A replay answers the same version.
    let replay = remote.push(scope, std::slice::from_ref(&op)).await.unwrap();
    match &replay[0] {
        PushOutcome::Applied { version } => assert_eq!(*version, ts(2_500)),
        PushOutcome::Conflict { current: Some(cur) } => assert_eq!(
            (cur.version(), cur.is_delete()),
            (ts(2_500), true),
            "a replay may conflict (no op-id memory), but only with the tombstone it wrote"
        ),
        other => panic!("a replayed op must not be rejected, got {other:?}"),
    }

    // The writer's next op, based on the answered version, applies.
    let back = TestRecord::new(id(1), "restored", ts(3_000));
    let out = remote
        .push(scope, &[update(scope, back.clone(), Some(ts(2_500)))])
        .await
        .unwrap();
    assert_eq!(
        out,
        [PushOutcome::Applied { version: ts(3_000) }],
        "an op based on the answered version must apply"
    );
    assert_eq!(remote.get_by_id(scope, &back.id).await.unwrap(), Some(back));

    // Created already deleted: the answer is the deleted_at too.
    let born_dead = tombstoned(TestRecord::new(id(2), "x", ts(4_000)), ts(4_001));
    let out = remote
        .push(scope, &[create(scope, born_dead.clone())])
        .await
        .unwrap();
    assert_eq!(out, [PushOutcome::Applied { version: ts(4_001) }]);
    assert_eq!(remote.get_by_id(scope, &born_dead.id).await.unwrap(), None);
}

/// Paging with a small limit sees every record.
pub async fn paging_sees_every_change<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let records: Vec<_> = (0..25)
        .map(|i| {
            TestRecord::new(id(i), format!("r{i}"), ts(1_000 + (i as i64 / 5))).with_n(i as i64)
        })
        .collect();
    let ops: Vec<_> = records.iter().map(|r| create(scope, r.clone())).collect();
    push_ok(remote, scope, &ops).await;
    let (state, _) = pull_all(remote, scope, None, 7).await;
    let want: BTreeMap<_, _> = records
        .into_iter()
        .map(|r| (r.id.clone(), Some(r)))
        .collect();
    assert_eq!(
        state, want,
        "paged pull must return every record exactly as written"
    );
}

/// [`RemoteStore::count_since`], where the remote answers it, counts what a pull from the same
/// cursor returns (a remote that cannot tell answers `None`).
pub async fn counts_match_the_feed<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let count = |since: Option<Cursor>| async move {
        remote
            .count_since(scope, since.as_ref())
            .await
            .expect("count_since")
    };
    let Some(empty) = count(None).await else {
        return;
    };
    assert_eq!(empty, 0, "an empty scope counts 0");
    let ops: Vec<_> = (0..12)
        .map(|i| create(scope, TestRecord::new(id(i), "c", ts(2_000 + i as i64))))
        .collect();
    push_ok(remote, scope, &ops).await;
    assert_eq!(count(None).await, Some(12), "the whole feed");
    let page = remote.fetch_since(scope, None, 5).await.expect("pull");
    assert!(page.has_more);
    assert_eq!(
        count(page.cursor.clone()).await,
        Some(12 - page.len() as u64),
        "what waits after the first page"
    );
}

/// Changes made after a pull are returned from its cursor.
pub async fn later_changes_follow_cursor<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let a = TestRecord::new(id(1), "a", ts(1_000));
    let b = TestRecord::new(id(2), "b", ts(1_000));
    push_ok(
        remote,
        scope,
        &[create(scope, a.clone()), create(scope, b.clone())],
    )
    .await;
    let (_, cursor) = pull_all(remote, scope, None, 100).await;

    let a2 = TestRecord::new(id(1), "a2", ts(2_000));
    let c = TestRecord::new(id(3), "c", ts(2_000));
    push_ok(
        remote,
        scope,
        &[
            update(scope, a2.clone(), Some(a.updated_at)),
            create(scope, c.clone()),
        ],
    )
    .await;
    let (state, cursor2) = pull_all(remote, scope, cursor, 100).await;
    assert_eq!(
        state.get(&a2.id),
        Some(&Some(a2.clone())),
        "updated record must be pulled"
    );
    assert_eq!(
        state.get(&c.id),
        Some(&Some(c.clone())),
        "new record must be pulled"
    );
    if let Some(v) = state.get(&b.id) {
        assert_eq!(
            v.as_ref(),
            Some(&b),
            "an unchanged record may be re-sent, but unchanged"
        );
    }
    let (state3, _) = pull_all(remote, scope, cursor2, 100).await;
    for (k, v) in state3 {
        let expect = if k == a2.id { Some(&a2) } else { Some(&c) };
        assert!(
            k == a2.id || k == c.id,
            "nothing changed since; only overlap re-sends are allowed"
        );
        assert_eq!(v.as_ref(), expect);
    }
}

/// Nothing written in one scope is visible in another, even with equal ids.
pub async fn scopes_are_isolated<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    a: &SyncScope,
    b: &SyncScope,
) {
    assert_ne!(a, b, "new_scope must return distinct scopes");
    let ra = TestRecord::new(id(1), "in a", ts(1_000));
    push_ok(remote, a, &[create(a, ra.clone())]).await;
    assert_eq!(
        remote.get_by_id(b, &ra.id).await.unwrap(),
        None,
        "get_by_id leaked across scopes"
    );
    let (sb, _) = pull_all(remote, b, None, 100).await;
    assert!(sb.is_empty(), "fetch_since leaked across scopes: {sb:?}");

    let rb = TestRecord::new(id(1), "in b", ts(2_000));
    push_ok(remote, b, &[create(b, rb.clone())]).await;
    assert_eq!(remote.get_by_id(a, &ra.id).await.unwrap(), Some(ra.clone()));
    assert_eq!(remote.get_by_id(b, &rb.id).await.unwrap(), Some(rb));
    let mut del = PendingOp::<TestRecord>::delete(b.clone(), ra.id.clone(), ts(3_000));
    del.base_version = Some(ts(2_000));
    push_ok(remote, b, &[del]).await;
    assert_eq!(
        remote.get_by_id(a, &ra.id).await.unwrap(),
        Some(ra),
        "a delete in b touched a"
    );
}

/// Text with quotes, unicode and newlines, and numbers, survive the round trip.
pub async fn payloads_round_trip<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let titles = [
        "quote \" and ' and \\",
        "line\nbreak\ttab",
        "ünïcødé ✓ 漢字",
        "|| && () =",
        "",
    ];
    let records: Vec<_> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| {
            TestRecord::new(id(i), *t, ts(1_000 + i as i64))
                .with_n(i64::from(i as i32) * -1_000_003)
        })
        .collect();
    let ops: Vec<_> = records.iter().map(|r| create(scope, r.clone())).collect();
    push_ok(remote, scope, &ops).await;
    for r in &records {
        assert_eq!(
            remote.get_by_id(scope, &r.id).await.unwrap().as_ref(),
            Some(r)
        );
    }
}

/// One conflicting op does not stop the others in the same push.
pub async fn mixed_outcomes_in_one_push<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let a = TestRecord::new(id(1), "a", ts(1_000));
    push_ok(remote, scope, &[create(scope, a.clone())]).await;
    let ops = vec![
        create(scope, TestRecord::new(id(2), "b", ts(2_000))),
        update(
            scope,
            TestRecord::new(id(1), "stale", ts(2_000)),
            Some(ts(1)),
        ),
        create(scope, TestRecord::new(id(3), "c", ts(2_000))),
    ];
    let out = remote.push(scope, &ops).await.unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(out[1], PushOutcome::Conflict { .. }),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(out[2], PushOutcome::Applied { .. }),
        "{:?}",
        out[2]
    );
    let ids: HashSet<String> = pull_all(remote, scope, None, 100)
        .await
        .0
        .into_keys()
        .collect();
    assert_eq!(ids, [id(1), id(2), id(3)].into_iter().collect());
}

/// `batch_upsert` and `batch_delete` write unconditionally.
pub async fn batch_conveniences<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
) {
    let old: Vec<_> = (0..3)
        .map(|i| TestRecord::new(id(i), "old", ts(500)))
        .collect();
    remote.batch_upsert(scope, &old).await.unwrap();
    let rs: Vec<_> = (0..3)
        .map(|i| TestRecord::new(id(i), "x", ts(1_000)))
        .collect();
    remote.batch_upsert(scope, &rs).await.unwrap();
    remote.batch_upsert(scope, &rs).await.unwrap();
    remote
        .batch_delete(
            scope,
            &[Tombstone {
                id: id(0),
                deleted_at: ts(2_000),
            }],
        )
        .await
        .unwrap();
    assert_eq!(remote.get_by_id(scope, &id(0)).await.unwrap(), None);
    assert_eq!(
        remote.get_by_id(scope, &id(1)).await.unwrap(),
        Some(rs[1].clone())
    );
}

/// `server_time` is the remote's clock, close to ours on one machine.
pub async fn server_time_is_sane<R: RemoteStore<TestRecord> + ?Sized>(remote: &R) {
    let t = remote.server_time().await.unwrap();
    let now = Timestamp::now();
    assert!(
        t > now - 5.minutes() && t < now + 5.minutes(),
        "server time {t} is far from local time {now}"
    );
}
