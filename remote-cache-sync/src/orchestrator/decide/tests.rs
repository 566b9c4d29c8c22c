//! The decision table: every queue shape × every remote state × every resolver, checked against
//! the rules in the module docs, plus named rows for the bugs that motivated them.

use super::*;
use crate::conflict::{ClientWins, FnResolver, LastWriteWins, ServerWins};
use crate::orchestrator::coalesce::coalesce;
use crate::testing::{TestRecord, ts};
use crate::{OpKind, SyncScope};

use OpKind::{Create, Delete, Update};

fn scope() -> SyncScope {
    SyncScope::new("records", [("owner", "a")]).unwrap()
}

/// Queued ops of record "x", stamped 10, 20, ... ms.
fn queue(kinds: &[OpKind]) -> Vec<PendingOp<TestRecord>> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let at = ts(10 * (i as i64 + 1));
            match k {
                Delete => PendingOp::delete(scope(), "x", at),
                k => PendingOp::upsert(scope(), *k, TestRecord::new("x", format!("ours{i}"), at)),
            }
        })
        .collect()
}

fn group(kinds: &[OpKind]) -> Coalesced<TestRecord> {
    coalesce(queue(kinds)).remove(0)
}

/// The remote states a record can be in when the group is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RemoteState {
    Absent,
    /// Someone else's live version at this time (ms).
    TheirsLive(i64),
    /// Someone else's tombstone at this time (ms).
    TheirsTombstone(i64),
    /// Our n-th queued write (an earlier push landed, its answer was lost).
    Ours(usize),
}

fn remote(g: &Coalesced<TestRecord>, s: RemoteState) -> Option<Option<Change<TestRecord>>> {
    Some(match s {
        RemoteState::Absent => None,
        RemoteState::TheirsLive(at) => Some(Change::Upsert(TestRecord::new("x", "theirs", ts(at)))),
        RemoteState::TheirsTombstone(at) => Some(Change::Delete(Tombstone {
            id: "x".into(),
            deleted_at: ts(at),
        })),
        RemoteState::Ours(i) => Some(g.constituents.get(i)?.change()),
    })
}

#[derive(Debug, Clone, Copy)]
enum Res {
    Lww,
    ServerWins,
    ClientWins,
    Merge,
}

fn resolver(r: Res) -> Box<dyn ConflictResolver<TestRecord>> {
    match r {
        Res::Lww => Box::new(LastWriteWins::new()),
        Res::ServerWins => Box::new(ServerWins),
        Res::ClientWins => Box::new(ClientWins),
        Res::Merge => Box::new(FnResolver::new(
            |l: &Change<TestRecord>, r: Option<&Change<TestRecord>>| {
                let title = |c: Option<&Change<TestRecord>>| {
                    c.and_then(Change::record)
                        .map_or("-".to_owned(), |r| r.title.clone())
                };
                Resolution::Merged(TestRecord::new(
                    "x",
                    format!("{}+{}", title(Some(l)), title(r)),
                    l.version(),
                ))
            },
        )),
    }
}

const SHAPES: &[&[OpKind]] = &[
    &[Create],
    &[Update],
    &[Delete],
    &[Create, Update],
    &[Create, Delete],
    &[Update, Delete],
    &[Delete, Create],
];

fn states() -> Vec<RemoteState> {
    use RemoteState::*;
    // Theirs older than, equal to and newer than our newest write (at 10 or 20 ms).
    vec![
        Absent,
        TheirsLive(5),
        TheirsLive(20),
        TheirsLive(30),
        TheirsTombstone(5),
        TheirsTombstone(30),
        Ours(0),
        Ours(1),
    ]
}

/// The net local intent: the pushed op's change.
fn intent(g: &Coalesced<TestRecord>) -> Change<TestRecord> {
    g.op.change()
}

#[test]
fn every_shape_state_and_resolver() {
    let now = ts(1_000_000);
    let mut rows = 0;
    for shape in SHAPES {
        for state in states() {
            for res in [Res::Lww, Res::ServerWins, Res::ClientWins, Res::Merge] {
                let g = group(shape);
                let Some(current) = remote(&g, state) else {
                    continue; // Ours(n) beyond the queue's length.
                };
                rows += 1;
                let ctx = format!("{shape:?} remote={state:?} resolver={res:?}");
                let d = settle(&g, current.as_ref(), resolver(res).as_ref(), now);
                check_row(&g, current.as_ref(), state, res, &d, &ctx);
            }
        }
    }
    assert!(rows > 150, "the table shrank: {rows} rows");
}

fn check_row(
    g: &Coalesced<TestRecord>,
    current: Option<&Change<TestRecord>>,
    state: RemoteState,
    res: Res,
    d: &Decision<TestRecord>,
    ctx: &str,
) {
    let intent = intent(g);
    let theirs = matches!(
        state,
        RemoteState::TheirsLive(_) | RemoteState::TheirsTombstone(_)
    );
    // Every settled op of the record is accounted for.
    let settled = match &d.action {
        Action::Ack(a) => &a.op_ids,
        Action::Settle(s) => &s.settled_ops,
        other => panic!("{ctx}: settle returned {other:?}"),
    };
    assert_eq!(settled, &g.op_ids(), "{ctx}: every queued op is settled");
    if theirs {
        // Rule 4: someone else's version always goes through the resolver.
        let outcome = d.conflict.unwrap_or_else(|| panic!("{ctx}: not counted"));
        let Action::Settle(s) = &d.action else {
            panic!("{ctx}: a conflict settles")
        };
        assert_eq!(s.remote_version, current.map(Change::version), "{ctx}");
        let cur = current.unwrap();
        let expected = match res {
            Res::Lww if intent.version() > cur.version() => ConflictOutcome::KeptLocal,
            Res::Lww | Res::ServerWins => ConflictOutcome::TookRemote,
            Res::ClientWins => ConflictOutcome::KeptLocal,
            Res::Merge => ConflictOutcome::Merged,
        };
        assert_eq!(outcome, expected, "{ctx}");
        match outcome {
            ConflictOutcome::TookRemote => {
                assert!(s.requeue.is_none(), "{ctx}");
                assert_eq!(
                    s.local.as_ref(),
                    Some(cur),
                    "{ctx}: the local row becomes theirs"
                );
            }
            ConflictOutcome::KeptLocal | ConflictOutcome::Merged => {
                let op = s.requeue.as_ref().expect("a kept write is pushed again");
                assert!(
                    op.change().version() > cur.version(),
                    "{ctx}: the requeued write must move past the remote version"
                );
                assert_eq!(s.local.as_ref(), Some(&op.change()), "{ctx}");
                if outcome == ConflictOutcome::KeptLocal {
                    assert_eq!(op.change().is_delete(), intent.is_delete(), "{ctx}");
                    if let (Some(a), Some(b)) = (op.payload.as_ref(), intent.record()) {
                        assert_eq!(a.title, b.title, "{ctx}: the local content is kept");
                    }
                } else {
                    assert!(op.payload.as_ref().unwrap().title.contains('+'), "{ctx}");
                }
                assert!(!g.op_ids().contains(&op.op_id), "{ctx}: a fresh op id");
            }
        }
        return;
    }
    assert_eq!(d.conflict.is_some(), state == RemoteState::Absent, "{ctx}");
    match state {
        RemoteState::Absent => {
            // Only reachable through a remote that answers Conflict for an absent record.
            let Action::Settle(s) = &d.action else {
                panic!("{ctx}")
            };
            match res {
                Res::Merge => assert!(s.requeue.is_some(), "{ctx}"),
                _ => assert_eq!(
                    s.requeue.as_ref().map(PendingOp::change),
                    Some(intent.clone()),
                    "{ctx}: absent remote: the local write is pushed again"
                ),
            }
        }
        RemoteState::Ours(_) => {
            let cur = current.unwrap();
            if same_content(cur, &intent) {
                assert!(matches!(d.action, Action::Ack(_)), "{ctx}: rule 1");
                return;
            }
            let Action::Settle(s) = &d.action else {
                panic!("{ctx}: rule 2 rebases")
            };
            let op = s.requeue.as_ref().expect("rule 2 pushes the net intent");
            assert_eq!(op.change().is_delete(), intent.is_delete(), "{ctx}");
            assert!(op.change().version() > cur.version(), "{ctx}");
            assert_eq!(s.remote_version, Some(cur.version()), "{ctx}");
        }
        _ => unreachable!(),
    }
}

/// Issue 8, case 1: A's create landed (answer lost), B edited it, A deleted it. A's queue folds
/// into a delete, the newest write: last-write-wins must push it, and count it.
#[test]
fn newer_delete_after_lost_create_ack_wins_under_lww() {
    let g = group(&[Create, Delete]); // create at 10, delete at 20
    let theirs = Change::Upsert(TestRecord::new("x", "B's edit", ts(15)));
    let d = settle(&g, Some(&theirs), &LastWriteWins::new(), ts(99));
    assert_eq!(d.conflict, Some(ConflictOutcome::KeptLocal));
    let Action::Settle(s) = d.action else {
        panic!("{:?}", d.action)
    };
    let op = s.requeue.unwrap();
    assert_eq!(op.kind, Delete);
    assert_eq!(op.updated_at, ts(20));
    assert_eq!(
        s.remote_version,
        Some(ts(15)),
        "pushed on top of B's version"
    );

    // B's edit is newer than the delete: B wins, counted.
    let theirs = Change::Upsert(TestRecord::new("x", "B's edit", ts(25)));
    let d = settle(&g, Some(&theirs), &LastWriteWins::new(), ts(99));
    assert_eq!(d.conflict, Some(ConflictOutcome::TookRemote));
}

#[test]
fn equal_stamps_remote_wins_under_lww_and_a_kept_write_is_restamped() {
    let g = group(&[Update]); // at 10
    let theirs = Change::Upsert(TestRecord::new("x", "theirs", ts(10)));
    let d = settle(&g, Some(&theirs), &LastWriteWins::new(), ts(99));
    assert_eq!(d.conflict, Some(ConflictOutcome::TookRemote));
    let d = settle(&g, Some(&theirs), &ClientWins, ts(99));
    let Action::Settle(s) = d.action else {
        panic!()
    };
    assert_eq!(
        s.requeue.unwrap().updated_at,
        ts(10) + RESTAMP_STEP,
        "same stamp, different content: the kept write gets its own version"
    );
}

#[test]
fn outcomes_map_to_actions() {
    let g = group(&[Update]);
    assert_eq!(
        on_outcome(&g, PushOutcome::Applied { version: ts(10) }, 3),
        Action::Ack(Ack {
            id: "x".into(),
            op_ids: g.op_ids(),
            version: Some(ts(10))
        })
    );
    let reject = |attempts, max| {
        let mut g = group(&[Update]);
        g.op.attempts = attempts;
        match on_outcome(
            &g,
            PushOutcome::Rejected {
                reason: "no".into(),
            },
            max,
        ) {
            Action::Reject { park, .. } => park,
            other => panic!("{other:?}"),
        }
    };
    assert!(reject(0, 1));
    assert!(!reject(0, 2));
    assert!(reject(1, 2));
    assert!(matches!(
        on_outcome(&g, PushOutcome::Conflict { current: None }, 1),
        Action::Resolve { current: None }
    ));
}

#[test]
fn restamp_keeps_versions_that_already_move_past() {
    let r = Change::Upsert(TestRecord::new("x", "a", ts(50)));
    assert_eq!(restamp_past(r.clone(), ts(40)), r);
    let moved = restamp_past(r, ts(50));
    assert_eq!(moved.version(), ts(50) + RESTAMP_STEP);
}
