use super::schema::SCHEMA_VERSION;
use super::*;
use crate::op::OpKind;
use crate::testing::{TestRecord, ts, unique_scope};

#[tokio::test]
async fn feed_is_ordered_by_sequence_and_holds_each_record_once() {
    let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
    let scope = unique_scope("r");
    remote
        .batch_upsert(
            &scope,
            &[
                TestRecord::new("a", "1", ts(1)),
                TestRecord::new("b", "1", ts(1)),
            ],
        )
        .await
        .unwrap();
    remote
        .batch_upsert(&scope, &[TestRecord::new("a", "2", ts(2))])
        .await
        .unwrap();
    let page = remote.fetch_since(&scope, None, 10).await.unwrap();
    let ids: Vec<_> = page.upserts.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(page.upserts[1].title, "2");
    assert_eq!(page.cursor, Some(Cursor::new("3")));
    assert!(!page.has_more);
    assert_eq!(remote.last_seq().await.unwrap(), 3);
}

#[tokio::test]
async fn prunes_old_applied_op_ids() {
    let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
    let scope = unique_scope("r");
    let op = PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        TestRecord::new("a", "x", ts(1)),
    );
    remote
        .push(&scope, std::slice::from_ref(&op))
        .await
        .unwrap();
    let past = Timestamp::now() - jiff::SignedDuration::from_secs(60);
    assert_eq!(remote.prune_applied_ops(past).await.unwrap(), 0);
    let future = Timestamp::now() + jiff::SignedDuration::from_secs(60);
    assert_eq!(remote.prune_applied_ops(future).await.unwrap(), 1);
    // Forgotten: the replayed create is checked again and conflicts with the live record.
    let out = remote.push(&scope, &[op]).await.unwrap();
    assert!(matches!(out[0], PushOutcome::Conflict { .. }), "{out:?}");
}

/// The schema of version 1, as that build created it.
const SCHEMA_V1: &str = "
    CREATE TABLE rcs_remote_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO rcs_remote_meta (key, value) VALUES ('schema_version', 1), ('seq', 0);
    CREATE TABLE rcs_remote_scopes (
        scope_id INTEGER PRIMARY KEY,
        canonical TEXT NOT NULL UNIQUE
    );
    CREATE TABLE rcs_remote_records (
        seq INTEGER PRIMARY KEY,
        scope_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        kind INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        version TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX rcs_remote_records_id ON rcs_remote_records (scope_id, id);
    CREATE INDEX rcs_remote_records_feed ON rcs_remote_records (scope_id, seq);
    CREATE TABLE rcs_remote_applied_ops (
        op_id TEXT PRIMARY KEY,
        applied_at INTEGER NOT NULL
    ) WITHOUT ROWID;
";

#[tokio::test]
async fn migrates_a_version_1_database_to_per_scope_op_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let (alice, bob) = (unique_scope("r"), unique_scope("r"));
    let v1 = TestRecord::new("a", "by alice", ts(1));
    let op = PendingOp::upsert(alice.clone(), OpKind::Create, v1.clone());
    let old_at = (Timestamp::now() - jiff::SignedDuration::from_secs(60)).as_millisecond();
    {
        // What version 1 left after applying `op` in alice's scope.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO rcs_remote_scopes (scope_id, canonical) VALUES (1, ?1)",
            [alice.canonical()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO rcs_remote_records VALUES (1, 1, 'a', 0, 0, ?1, ?2)",
            params![
                v1.updated_at.to_string(),
                serde_json::to_string(&v1).unwrap()
            ],
        )
        .unwrap();
        conn.execute("UPDATE rcs_remote_meta SET value = 1 WHERE key = 'seq'", [])
            .unwrap();
        conn.execute(
            "INSERT INTO rcs_remote_applied_ops VALUES (?1, ?2)",
            params![op.op_id.as_str(), old_at],
        )
        .unwrap();
    }
    let remote = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
    let version: i64 = remote
        .read(|c| {
            c.query_row(
                "SELECT value FROM rcs_remote_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    // The replay in its own scope is still recognised: applied, nothing written.
    let out = remote
        .push(&alice, std::slice::from_ref(&op))
        .await
        .unwrap();
    assert_eq!(
        out,
        [PushOutcome::Applied {
            version: v1.updated_at
        }]
    );
    assert_eq!(remote.last_seq().await.unwrap(), 1);

    // The same op id in another scope is another op: applied there, for real.
    let mut theirs = PendingOp::upsert(
        bob.clone(),
        OpKind::Create,
        TestRecord::new("b", "by bob", ts(2)),
    );
    theirs.op_id = op.op_id.clone();
    let out = remote
        .push(&bob, std::slice::from_ref(&theirs))
        .await
        .unwrap();
    assert_eq!(out, [PushOutcome::Applied { version: ts(2) }]);
    assert_eq!(
        remote.get_by_id(&bob, "b").await.unwrap().map(|r| r.title),
        Some("by bob".to_owned())
    );
    // A legacy id does not vouch for a scope whose record differs from what the op wrote:
    // the op is decided on its merits (here: a create on a live record conflicts).
    let carol = unique_scope("r");
    let carols = TestRecord::new("a", "carol's a", ts(3));
    let fresh = PendingOp::upsert(carol.clone(), OpKind::Create, carols.clone());
    remote.push(&carol, &[fresh]).await.unwrap();
    let mut again = op.clone();
    again.scope = carol.clone();
    let out = remote
        .push(&carol, std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(
        out,
        [PushOutcome::Conflict {
            current: Some(Change::Upsert(carols))
        }]
    );
    assert_eq!(
        remote.get_by_id(&alice, "a").await.unwrap(),
        Some(v1),
        "alice's record is untouched"
    );

    // Pruning covers the legacy ids too.
    let future = Timestamp::now() + jiff::SignedDuration::from_secs(60);
    assert_eq!(remote.prune_applied_ops(future).await.unwrap(), 3);
    drop(remote);
    // Reopening a migrated database changes nothing.
    let remote = SqliteRemoteStore::<TestRecord>::open(&path).await.unwrap();
    assert_eq!(remote.last_seq().await.unwrap(), 3);
}

#[tokio::test]
async fn rejects_malformed_ops_and_cursors() {
    let remote = SqliteRemoteStore::<TestRecord>::in_memory().unwrap();
    let scope = unique_scope("r");
    let mut op = PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        TestRecord::new("a", "x", ts(1)),
    );
    op.id = "b".into();
    let out = remote.push(&scope, &[op]).await.unwrap();
    assert!(matches!(&out[0], PushOutcome::Rejected { .. }), "{out:?}");
    let bad = Cursor::new("nope");
    assert!(matches!(
        remote.fetch_since(&scope, Some(&bad), 10).await,
        Err(Error::InvalidInput(_))
    ));
}
