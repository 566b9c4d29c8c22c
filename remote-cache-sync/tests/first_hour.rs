//! The first-hour API (issue 14): the builder, fixing a parked write, updates of records the
//! cache does not hold, flush and shutdown.

use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, ConflictOutcome, Error, InMemoryLocalStore, InMemoryRemoteStore, Orchestrator,
    ServerWins,
};

#[tokio::test]
async fn the_builder_sets_the_resolver_and_settings_without_arc_dyn() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let s = unique_scope("b");
    let a = Orchestrator::builder(InMemoryLocalStore::new(), remote.clone())
        .resolver(ServerWins)
        .sync_after_write(false)
        .push_batch_size(1)
        .build();
    let b = Orchestrator::new(InMemoryLocalStore::new(), remote.clone());
    b.enqueue_create(&s, TestRecord::new("r", "b's", ts(1)))
        .await
        .unwrap();
    b.synchronize(&s).await.unwrap();
    a.enqueue_create(&s, TestRecord::new("r", "a's newer", ts(2)))
        .await
        .unwrap();
    let report = a.synchronize(&s).await.unwrap();
    assert_eq!(
        report.resolved[0].outcome,
        ConflictOutcome::TookRemote,
        "server wins"
    );
    assert_eq!(remote.snapshot(&s)[0].title, "b's");
    b.shutdown().await;
}

#[tokio::test]
async fn a_parked_write_is_replaced_with_a_corrected_record() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    remote.reject_record("r");
    let s = unique_scope("p");
    let d = Orchestrator::builder(InMemoryLocalStore::new(), remote.clone())
        .sync_after_write(false)
        .build();
    d.enqueue_create(&s, TestRecord::new("r", "invalid", ts(1)))
        .await
        .unwrap();
    assert_eq!(d.synchronize(&s).await.unwrap().parked, 1);
    let parked = d.parked_ops(&s).await.unwrap();
    let wrong = TestRecord::new("other", "x", ts(2));
    assert!(matches!(
        d.replace_parked(&s, &parked[0].op_id, wrong).await,
        Err(Error::InvalidInput(_))
    ));
    let new_op = d
        .replace_parked(&s, &parked[0].op_id, TestRecord::new("r", "fixed", ts(2)))
        .await
        .unwrap();
    let status = d.status(&s).await.unwrap();
    assert_eq!((status.pending, status.parked), (1, 0));
    let cached = d
        .get(&s, "r", CachePolicy::OfflineOnly)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cached.title, "fixed",
        "the cache shows the correction at once"
    );
    let pending = d.local().pending_ops(&s, 10).await.unwrap();
    assert_eq!(pending[0].op_id, new_op);
    assert!(matches!(
        d.replace_parked(&s, &parked[0].op_id, TestRecord::new("r", "again", ts(3)))
            .await,
        Err(Error::NotFound { .. })
    ));
    remote.accept_record("r");
    assert_eq!(d.synchronize(&s).await.unwrap().pushed, 1);
    assert_eq!(remote.snapshot(&s)[0].title, "fixed");
}

#[tokio::test]
async fn updating_a_record_the_cache_does_not_hold_is_a_typed_error() {
    let remote = InMemoryRemoteStore::<TestRecord>::new();
    let s = unique_scope("u");
    let d = Orchestrator::builder(InMemoryLocalStore::new(), remote)
        .sync_after_write(false)
        .build();
    let err = d
        .enqueue_update(&s, TestRecord::new("nope", "x", ts(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(d.status(&s).await.unwrap().pending, 0, "nothing queued");
    d.enqueue_create(&s, TestRecord::new("r", "x", ts(1)))
        .await
        .unwrap();
    d.enqueue_delete(&s, "r").await.unwrap();
    let err = d
        .enqueue_update(&s, TestRecord::new("r", "y", Timestamp::now()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "a deleted record: {err:?}"
    );
    d.enqueue_create(&s, TestRecord::new("r", "back", Timestamp::now()))
        .await
        .unwrap();
}

use remote_cache_sync::Timestamp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_pushes_every_scope_and_shutdown_stops_the_tasks() {
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let d = Orchestrator::new(InMemoryLocalStore::new(), remote.clone());
    let scopes = [unique_scope("f"), unique_scope("f")];
    remote.set_offline(true);
    for s in &scopes {
        d.enqueue_create(s, TestRecord::new("r", "w", ts(1)))
            .await
            .unwrap();
    }
    let err = d.flush(Duration::from_millis(300)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    remote.set_offline(false);
    d.flush(Duration::from_secs(10)).await.unwrap();
    for s in &scopes {
        assert_eq!(remote.snapshot(s).len(), 1);
        assert_eq!(d.status(s).await.unwrap().pending, 0);
    }
    let _periodic = d.start_background_sync(scopes.to_vec(), Duration::from_millis(10));
    tokio::time::timeout(Duration::from_secs(5), d.shutdown())
        .await
        .expect("shutdown waits for the tasks, and they stop");
    // Writes after shutdown are still recorded; they just start no task.
    remote.set_offline(true);
    d.enqueue_create(&scopes[0], TestRecord::new("late", "w", ts(2)))
        .await
        .unwrap();
    assert_eq!(d.status(&scopes[0]).await.unwrap().pending, 1);
}
