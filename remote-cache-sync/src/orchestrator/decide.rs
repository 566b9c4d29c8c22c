//! The push decisions as pure functions: no I/O, no clock, no store. `sync.rs` reads what a
//! decision needs, calls these, and executes the [`Action`] they return (the style of
//! powersync-sqlite-core's sans-I/O sync client).
//!
//! Vocabulary:
//! - a record's *group* is its queued ops folded by [`coalesce`](super::coalesce) into the one
//!   op that is pushed (a create then a delete is a delete: a tombstone is a write like any
//!   other, so it can win against another device's create of the same id);
//! - *ours* is a remote version equal to one of the group's own writes (an earlier push landed
//!   and only its answer was lost); *theirs* is any other remote version.
//!
//! The rules, each a row of the table test below:
//! 1. The remote holds exactly our net write: acknowledge (a replay whose answer was lost).
//! 2. The remote holds one of our earlier writes: rebase the net write on it (no conflict: nobody
//!    else wrote in between).
//! 3. Anything else is a conflict between the net local write and the remote's version: the
//!    resolver decides, and it is counted. No path drops a local write without the resolver.
//!
//! A write kept or merged by the resolver is pushed again on top of the remote's version. Its
//! version must move past that version, or two different contents would share one version and a
//! later compare-and-set could not tell them apart: such writes are restamped to one
//! millisecond after the remote's version ([`Record::with_updated_at`]).

use std::time::Duration;

use jiff::Timestamp;

use super::coalesce::Coalesced;
use crate::conflict::{ConflictResolver, Resolution};
use crate::local::{Ack, Settlement};
use crate::op::{OpId, OpKind, PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};

/// How much a kept or merged write is moved past the remote's version when it does not already
/// exceed it. One millisecond: every remote stores at least that precision.
pub(crate) const RESTAMP_STEP: Duration = Duration::from_millis(1);

/// What to do with one record's queued ops.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action<T> {
    /// The remote holds what we meant: drop the ops, record the synced version.
    Ack(Ack),
    /// The remote refused one op: count a rejection, park it after `max_rejections`.
    Reject {
        /// The record.
        id: String,
        /// The ops folded into the refused push.
        op_ids: Vec<OpId>,
        /// The remote's reason.
        reason: String,
        /// Park now (else hold until the next sync).
        park: bool,
    },
    /// The compare-and-set failed: read the record's whole queue and call [`settle`].
    Resolve {
        /// The remote's current version.
        current: Option<Change<T>>,
    },
    /// Replace the ops (conflict decided, or a rebase).
    Settle(Box<Settlement<T>>),
}

/// How a counted conflict was decided, for [`SyncReport`](super::SyncReport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictOutcome {
    /// The local write won and is pushed again on top of the remote version.
    KeptLocal,
    /// The remote version won; the local write was replaced by it.
    TookRemote,
    /// The resolver merged both; the merge is pushed.
    Merged,
}

/// One conflict the resolver decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedConflict {
    /// The record.
    pub id: String,
    /// What the resolver chose.
    pub outcome: ConflictOutcome,
}

/// A decision for one record: the action, and the conflict it counts (if any).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision<T> {
    pub action: Action<T>,
    pub conflict: Option<ConflictOutcome>,
}

/// Maps the remote's answer for one pushed group to an action.
pub(crate) fn on_outcome<T: Record>(
    group: &Coalesced<T>,
    outcome: PushOutcome<T>,
    max_rejections: u32,
) -> Action<T> {
    match outcome {
        PushOutcome::Applied { version } => Action::Ack(Ack {
            id: group.id().to_owned(),
            op_ids: group.op_ids(),
            version: Some(version),
        }),
        PushOutcome::Rejected { reason } => {
            let attempts = group.op.attempts;
            Action::Reject {
                id: group.id().to_owned(),
                op_ids: group.op_ids(),
                reason,
                park: attempts.saturating_add(1) >= max_rejections,
            }
        }
        PushOutcome::Conflict { current } => Action::Resolve { current },
    }
}

/// Decides a record whose push failed the compare-and-set. `group` is the record's whole queue,
/// coalesced; `current` the remote's version (`None`: absent); `now` stamps a local tombstone
/// when the remote has no record and the resolver takes the remote side.
pub(crate) fn settle<T: Record>(
    group: &Coalesced<T>,
    current: Option<&Change<T>>,
    resolver: &dyn ConflictResolver<T>,
    now: Timestamp,
) -> Decision<T> {
    let id = group.id().to_owned();
    let intent = group.op.change();
    let Some(cur) = current else {
        // Only a remote that answers "conflict" for a record it does not have gets here.
        return conflict(group, intent, None, resolver, now);
    };
    if same_content(cur, &intent) {
        // Rule 1.
        return Decision {
            action: Action::Ack(Ack {
                id,
                op_ids: group.op_ids(),
                version: Some(cur.version()),
            }),
            conflict: None,
        };
    }
    let own = group
        .constituents
        .iter()
        .any(|c| same_content(cur, &c.change()));
    if own {
        // Rule 2: rebase on our own earlier write.
        return Decision {
            action: Action::Settle(Box::new(Settlement {
                id,
                settled_ops: group.op_ids(),
                remote_version: Some(cur.version()),
                local: None,
                requeue: Some(requeue(group, intent, Some(cur))),
            })),
            conflict: None,
        };
    }
    conflict(group, intent, Some(cur), resolver, now)
}

/// Rule 3: asks the resolver and turns its answer into a settlement.
fn conflict<T: Record>(
    group: &Coalesced<T>,
    local: Change<T>,
    current: Option<&Change<T>>,
    resolver: &dyn ConflictResolver<T>,
    now: Timestamp,
) -> Decision<T> {
    let id = group.id().to_owned();
    let remote_version = current.map(Change::version);
    let (local_row, requeued, outcome) = match resolver.resolve(&local, current) {
        Resolution::TakeRemote => {
            let row = current.cloned().unwrap_or_else(|| {
                Change::Delete(Tombstone {
                    id: id.clone(),
                    deleted_at: now,
                })
            });
            (Some(row), None, ConflictOutcome::TookRemote)
        }
        Resolution::KeepLocal => {
            let op = requeue(group, local, current);
            // A restamped write shows its new version locally too.
            (Some(op.change()), Some(op), ConflictOutcome::KeptLocal)
        }
        Resolution::Merged(merged) => {
            let op = requeue(group, Change::Upsert(merged), current);
            (Some(op.change()), Some(op), ConflictOutcome::Merged)
        }
    };
    Decision {
        action: Action::Settle(Box::new(Settlement {
            id,
            settled_ops: group.op_ids(),
            remote_version,
            local: local_row,
            requeue: requeued,
        })),
        conflict: Some(outcome),
    }
}

/// The op that replaces the group: `change` made on top of `current`, with a version past it.
fn requeue<T: Record>(
    group: &Coalesced<T>,
    change: Change<T>,
    current: Option<&Change<T>>,
) -> PendingOp<T> {
    let scope = group.last().scope.clone();
    let change = match current {
        Some(cur) => restamp_past(change, cur.version()),
        None => change,
    };
    let remote_live = current.is_some_and(|c| !c.is_delete());
    let mut op = match change {
        Change::Upsert(r) => {
            let kind = if remote_live {
                OpKind::Update
            } else {
                OpKind::Create
            };
            PendingOp::upsert(scope, kind, r)
        }
        Change::Delete(t) => PendingOp::delete(scope, t.id, t.deleted_at),
    };
    op.attempts = group
        .constituents
        .iter()
        .map(|o| o.attempts)
        .max()
        .unwrap_or(0);
    op
}

/// `change` with a version strictly after `floor` (unchanged when it already is). A record whose
/// type cannot be restamped keeps its own version, with a warning.
pub(crate) fn restamp_past<T: Record>(change: Change<T>, floor: Timestamp) -> Change<T> {
    try_restamp_past(change, floor).unwrap_or_else(|change| {
        tracing::warn!(id = %change.id(), "cannot restamp a resolved write; pushed with its own version");
        change
    })
}

/// `change` with a version strictly after `floor`: unchanged when it already is, else moved to
/// `floor` + [`RESTAMP_STEP`] (deletes directly, records through [`Record::with_updated_at`]).
/// `Err` gives the change back unchanged when it cannot be moved past `floor`.
pub(crate) fn try_restamp_past<T: Record>(
    change: Change<T>,
    floor: Timestamp,
) -> std::result::Result<Change<T>, Change<T>> {
    if change.version() > floor {
        return Ok(change);
    }
    let at = floor + RESTAMP_STEP;
    match change {
        Change::Delete(t) => Ok(Change::Delete(Tombstone {
            deleted_at: at,
            ..t
        })),
        Change::Upsert(r) => match r.with_updated_at(at) {
            Ok(moved) if Change::Upsert(moved.clone()).version() > floor => {
                Ok(Change::Upsert(moved))
            }
            _ => Err(Change::Upsert(r)),
        },
    }
}

/// Whether two changes are the same write: same version, kind and content.
pub(crate) fn same_content<T: Record>(a: &Change<T>, b: &Change<T>) -> bool {
    if a.version() != b.version() || a.is_delete() != b.is_delete() {
        return false;
    }
    match (a.record(), b.record()) {
        (Some(x), Some(y)) => serde_json::to_value(x).ok() == serde_json::to_value(y).ok(),
        _ => true,
    }
}

#[cfg(test)]
mod tests;
