//! Conformance of [`RemoteStore::digest`]: a remote that answers digests answers exactly what
//! [`RowSet::answer`] computes over the live rows its feed returns, for every shape of request,
//! and never counts another scope's rows. A remote without digests (`Ok(None)`) passes trivially:
//! reconciliation lists its feed instead.

use crate::reconcile::{DigestRequest, DigestResponse, RowSet, canonical_version};
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::scope::SyncScope;
use crate::testing::remote::pull_all;
use crate::testing::{TestRecord, ts};
use crate::{OpKind, PendingOp, Tombstone};

fn sorted(mut r: DigestResponse) -> DigestResponse {
    r.buckets.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    r.rows.sort_by(|a, b| a.id.cmp(&b.id));
    r.bytes = 0;
    r
}

/// Digests of live rows (deleted, payload-deleted and other-scope rows left out) equal the
/// digests computed from the feed, at the top, one level down and in listings; unicode ids and
/// nanosecond versions included.
pub async fn digests_match_the_feed<R: RemoteStore<TestRecord> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    other: &SyncScope,
) {
    if remote
        .digest(scope, &DigestRequest::top())
        .await
        .expect("digest")
        .is_none()
    {
        return;
    }
    let mut records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord::new(format!("dig{i:03}"), format!("t{i}"), ts(i)))
        .collect();
    records.push(TestRecord::new("dïg-ünï ✓", "unicode", ts(100)));
    let nanos = ts(200) + std::time::Duration::from_nanos(123_456_789);
    records.push(TestRecord::new("dig-nanos", "ns", nanos));
    remote.batch_upsert(scope, &records).await.expect("seed");
    remote
        .batch_upsert(other, &[TestRecord::new("dig-other", "x", ts(1))])
        .await
        .expect("seed other");
    remote
        .batch_delete(
            scope,
            &[Tombstone {
                id: "dig001".into(),
                deleted_at: ts(300),
            }],
        )
        .await
        .expect("delete");
    let mut dead = TestRecord::new("dig002", "gone", ts(2));
    dead.deleted_at = Some(ts(301));
    let mut op = PendingOp::upsert(scope.clone(), OpKind::Update, dead);
    op.base_version = Some(ts(2));
    remote.push(scope, &[op]).await.expect("payload tombstone");

    let (state, _) = pull_all(remote, scope, None, 100).await;
    let live = RowSet::new(state.iter().filter_map(|(id, r)| {
        r.as_ref()
            .map(|r| (id.clone(), canonical_version(r.updated_at())))
    }));
    assert_eq!(live.len(), 40, "42 seeded, 2 deleted");
    let top = remote
        .digest(scope, &DigestRequest::top())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sorted(top.clone()), live.answer(&DigestRequest::top()));
    assert!(top.bytes > 0, "a digest reports the bytes it cost");
    let some: Vec<String> = top
        .buckets
        .iter()
        .take(3)
        .map(|b| b.prefix.clone())
        .collect();
    for req in [
        DigestRequest {
            prefixes: some.clone(),
            length: 5,
            list: vec![],
        },
        DigestRequest {
            prefixes: vec![],
            length: 0,
            list: some.clone(),
        },
        DigestRequest {
            prefixes: vec![],
            length: 0,
            list: vec![String::new()],
        },
        DigestRequest {
            prefixes: vec!["0".into(), "f".into()],
            length: 64,
            list: vec!["ff".into()],
        },
    ] {
        let got = remote.digest(scope, &req).await.unwrap().unwrap();
        assert_eq!(sorted(got), sorted(live.answer(&req)), "request {req:?}");
    }
    let theirs = remote
        .digest(other, &DigestRequest::top())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs.buckets.iter().map(|b| b.count).sum::<u64>(),
        1,
        "scopes are isolated"
    );
    let bad = DigestRequest {
        prefixes: vec!["XYZ".into()],
        length: 5,
        list: vec![],
    };
    assert!(
        remote.digest(scope, &bad).await.is_err(),
        "invalid requests are refused"
    );
}
