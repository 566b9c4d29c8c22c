//! Which transactions commit with `synchronous = FULL`, observed from inside them: temporary
//! triggers on the writer connection record the level in effect whenever a statement of a
//! store call writes a row.

use super::SqliteLocalStore;
use crate::delta::{Delta, SyncPoint};
use crate::local::{Ack, LocalStore, Settlement};
use crate::op::{OpKind, PendingOp};
use crate::record::{Change, Record};
use crate::scope::SyncScope;
use crate::{Cursor, JsonRecord, Timestamp};

/// `PRAGMA synchronous` levels.
const NORMAL: i64 = 1;
const FULL: i64 = 2;

/// Temp triggers (never stored in the file) log `(table, event, level)` for every row write.
const WATCH: &str = "
    CREATE TEMP TABLE seen (tbl TEXT, event TEXT, level INTEGER);
    CREATE TEMP TRIGGER seen_items_insert AFTER INSERT ON main.items
        BEGIN INSERT INTO seen SELECT 'items', 'insert', synchronous FROM pragma_synchronous; END;
    CREATE TEMP TRIGGER seen_items_update AFTER UPDATE ON main.items
        BEGIN INSERT INTO seen SELECT 'items', 'update', synchronous FROM pragma_synchronous; END;
    CREATE TEMP TRIGGER seen_ops_insert AFTER INSERT ON main.pending_ops
        BEGIN INSERT INTO seen SELECT 'ops', 'insert', synchronous FROM pragma_synchronous; END;
    CREATE TEMP TRIGGER seen_ops_update AFTER UPDATE ON main.pending_ops
        BEGIN INSERT INTO seen SELECT 'ops', 'update', synchronous FROM pragma_synchronous; END;
    CREATE TEMP TRIGGER seen_ops_delete AFTER DELETE ON main.pending_ops
        BEGIN INSERT INTO seen SELECT 'ops', 'delete', synchronous FROM pragma_synchronous; END;
    CREATE TEMP TRIGGER seen_points AFTER INSERT ON main.sync_points
        BEGIN INSERT INTO seen SELECT 'points', 'insert', synchronous FROM pragma_synchronous; END;
";

struct Watched {
    store: SqliteLocalStore<JsonRecord>,
    scope: SyncScope,
    _dir: tempfile::TempDir,
}

impl Watched {
    async fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteLocalStore::<JsonRecord>::open(dir.path().join("cache.sqlite"))
            .await
            .unwrap();
        store
            .inner
            .conn
            .lock()
            .unwrap()
            .execute_batch(WATCH)
            .unwrap();
        Watched {
            store,
            scope: SyncScope::new("notes", [("user", "u1")]).unwrap(),
            _dir: dir,
        }
    }

    /// The writes logged since the last call, and the connection's level now.
    fn take(&self) -> (Vec<(String, String, i64)>, i64) {
        let conn = self.store.inner.conn.lock().unwrap();
        let seen = conn
            .prepare("SELECT tbl, event, level FROM seen ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        conn.execute_batch("DELETE FROM seen").unwrap();
        let now = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        (seen, now)
    }

    /// Asserts that the last call wrote something, all of it at `level`, and that the
    /// connection is back at NORMAL.
    fn expect(&self, what: &str, level: i64) {
        let (seen, now) = self.take();
        assert!(!seen.is_empty(), "{what}: no write observed");
        for (tbl, event, l) in &seen {
            assert_eq!(*l, level, "{what}: {event} on {tbl} ran at level {l}");
        }
        assert_eq!(
            now, NORMAL,
            "{what}: the connection was left at level {now}"
        );
    }
}

fn note(id: &str, at: i64, title: &str) -> JsonRecord {
    JsonRecord::from_value(serde_json::json!({
        "id": id,
        "updated_at": Timestamp::from_second(at).unwrap().to_string(),
        "title": title,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_writes_commit_with_synchronous_full_and_pulls_with_normal() {
    let w = Watched::open().await;
    let scope = w.scope.clone();
    let store = &w.store;

    let page = Delta {
        quarantined: Vec::new(),
        upserts: vec![note("pulled", 1_000, "from the remote")],
        deletes: Vec::new(),
        server_time: Timestamp::from_second(1_000).unwrap(),
        cursor: Some(Cursor::new("1")),
        has_more: false,
    };
    let point = SyncPoint {
        cursor: page.cursor.clone(),
        server_time: page.server_time,
    };
    store.apply_remote(&scope, &page, &point).await.unwrap();
    w.expect("apply_remote", NORMAL);

    let op = PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        note("mine", 2_000, "offline"),
    );
    let mine = op.op_id.clone();
    store.enqueue(op).await.unwrap();
    w.expect("enqueue", FULL);

    // A failed enqueue (the same op id again) still leaves the connection at NORMAL.
    let mut again = PendingOp::upsert(scope.clone(), OpKind::Update, note("mine", 2_001, "x"));
    again.op_id = mine.clone();
    store.enqueue(again).await.unwrap_err();
    let (_, now) = w.take();
    assert_eq!(now, NORMAL, "after a failed enqueue");

    store
        .ack_ops(
            &scope,
            &[Ack {
                id: "mine".into(),
                op_ids: vec![mine],
                version: Some(Timestamp::from_second(2_000).unwrap()),
            }],
        )
        .await
        .unwrap();
    w.expect("ack_ops", NORMAL);

    let op = PendingOp::upsert(scope.clone(), OpKind::Update, note("mine", 3_000, "parked"));
    let parked = op.op_id.clone();
    store.enqueue(op).await.unwrap();
    w.expect("enqueue", FULL);
    store
        .reject_ops(&scope, std::slice::from_ref(&parked), "no", true)
        .await
        .unwrap();
    w.expect("reject_ops", NORMAL);
    store
        .unpark_ops(&scope, std::slice::from_ref(&parked))
        .await
        .unwrap();
    w.expect("unpark_ops", FULL);
    store
        .discard_ops(&scope, std::slice::from_ref(&parked))
        .await
        .unwrap();
    w.expect("discard_ops", FULL);

    // A settlement that requeues the user's write vs one that takes the remote's.
    let op = PendingOp::upsert(scope.clone(), OpKind::Update, note("mine", 4_000, "kept"));
    let kept = op.clone();
    store.enqueue(op).await.unwrap();
    w.expect("enqueue", FULL);
    let mut requeue = kept.clone();
    requeue.op_id = crate::op::OpId::generate();
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "mine".into(),
                settled_ops: vec![kept.op_id.clone()],
                remote_version: Some(Timestamp::from_second(3_500).unwrap()),
                local: Some(Change::Upsert(kept.payload.clone().unwrap())),
                requeue: Some(requeue.clone()),
            },
        )
        .await
        .unwrap();
    w.expect("settle_conflict with a requeue", FULL);
    let theirs = note("mine", 5_000, "theirs");
    store
        .settle_conflict(
            &scope,
            Settlement {
                id: "mine".into(),
                settled_ops: vec![requeue.op_id.clone()],
                remote_version: Some(theirs.updated_at()),
                local: Some(Change::Upsert(theirs)),
                requeue: None,
            },
        )
        .await
        .unwrap();
    w.expect("settle_conflict without a requeue", NORMAL);
    assert_eq!(store.queue_status(&scope).await.unwrap().pending, 0);
}

/// Same from a current-thread runtime, where calls run on the blocking pool.
#[tokio::test(flavor = "current_thread")]
async fn enqueue_is_full_on_a_current_thread_runtime_too() {
    let w = Watched::open().await;
    let op = PendingOp::upsert(w.scope.clone(), OpKind::Create, note("a", 1, "a"));
    w.store.enqueue(op).await.unwrap();
    w.expect("enqueue", FULL);
    w.store
        .upsert_many(&w.scope, &[note("b", 2, "b")])
        .await
        .unwrap();
    w.expect("upsert_many", NORMAL);
}
