//! One `synchronize`: push the queue (coalesced, conflicts resolved, poison ops parked), then
//! pull pages until the remote has no more, each page committed with its cursor.

use std::collections::HashSet;

use jiff::Timestamp;

use super::coalesce::{Coalesced, coalesce};
use super::{Inner, SyncReport};
use crate::conflict::Resolution;
use crate::delta::SyncPoint;
use crate::error::{Error, Result};
use crate::local::{Ack, Settlement};
use crate::op::{OpId, OpKind, PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

pub(super) async fn run<T: Record>(inner: &Inner<T>, scope: &SyncScope) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    push(inner, scope, &mut report).await?;
    pull(inner, scope, &mut report).await?;
    tracing::debug!(%scope, ?report, "synchronized");
    Ok(report)
}

async fn push<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    report: &mut SyncReport,
) -> Result<()> {
    let batch = inner.config.push_batch_size;
    // Every round removes or parks each op it read, except conflicts the local side won, which
    // are requeued once; the budget bounds the loop even if other writers keep enqueueing.
    let queued = inner.local.queue_status(scope).await?.pending;
    let mut rounds_left = queued.div_ceil(batch) * 2 + 4;
    // Records with an op rejected (not parked) in this sync: their ops wait for the next sync,
    // so `max_rejections` counts syncs, not back-to-back retries; ops of other records go on.
    let mut held = HashSet::new();
    while rounds_left > 0 {
        rounds_left -= 1;
        let ops = next_batch(inner, scope, batch, &held).await?;
        if ops.is_empty() {
            break;
        }
        let mut groups = coalesce(ops);
        for group in groups.iter_mut().filter(|g| g.op.is_none()) {
            group.op = cancelled_create_that_landed(inner, scope, group).await?;
        }
        let mut acks = Vec::new();
        let to_push: Vec<&Coalesced<T>> = groups
            .iter()
            .filter(|g| {
                if g.op.is_none() {
                    acks.push(Ack {
                        id: g.constituents[0].id.clone(),
                        op_ids: g.op_ids(),
                        version: None,
                    });
                }
                g.op.is_some()
            })
            .collect();
        let ops: Vec<PendingOp<T>> = to_push.iter().filter_map(|g| g.op.clone()).collect();
        let outcomes = push_isolating(inner, scope, &ops).await?;
        for (group, outcome) in to_push.into_iter().zip(outcomes) {
            let op = group.op.as_ref().expect("filtered to pushed groups");
            match outcome {
                PushOutcome::Applied { version } => {
                    report.pushed += 1;
                    acks.push(Ack {
                        id: op.id.clone(),
                        op_ids: group.op_ids(),
                        version: Some(version),
                    });
                }
                PushOutcome::Rejected { reason } => {
                    let park = op.attempts + 1 >= inner.config.max_rejections;
                    tracing::warn!(%scope, id = %op.id, %reason, park, "remote rejected op");
                    inner
                        .local
                        .reject_ops(scope, &group.op_ids(), &reason, park)
                        .await?;
                    if park {
                        report.parked += group.constituents.len();
                    } else {
                        held.insert(op.id.clone());
                        report.rejected += group.constituents.len();
                    }
                }
                PushOutcome::Conflict { current } => {
                    if let Some(ack) = settle(inner, scope, group, current, report).await? {
                        acks.push(ack);
                    }
                }
            }
        }
        inner.local.ack_ops(scope, &acks).await?;
    }
    Ok(())
}

/// Up to `batch` queued ops in queue order, skipping the records in `held`.
async fn next_batch<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    batch: usize,
    held: &HashSet<String>,
) -> Result<Vec<PendingOp<T>>> {
    let mut limit = batch;
    loop {
        let ops = inner.local.pending_ops(scope, limit).await?;
        let end = ops.len() < limit;
        let ops: Vec<_> = ops
            .into_iter()
            .filter(|o| !held.contains(&o.id))
            .take(batch)
            .collect();
        if end || ops.len() == batch {
            return Ok(ops);
        }
        limit = limit.saturating_add(batch);
    }
}

/// A create and a delete of one record cancel out, unless an earlier push of the create reached
/// the remote and only its answer was lost: then the remote holds our record, and the delete must
/// be pushed after all. Asks the remote, which costs one read per cancelled pair.
async fn cancelled_create_that_landed<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    group: &Coalesced<T>,
) -> Result<Option<PendingOp<T>>> {
    let id = &group.constituents[0].id;
    let current = inner.remote.get_by_id(scope, id).await?.map(Change::Upsert);
    Ok(delete_if_own_write_landed(scope, group, current.as_ref()))
}

/// For ops that cancel out: a delete of `current` when it is one of the group's own writes.
fn delete_if_own_write_landed<T: Record>(
    scope: &SyncScope,
    group: &Coalesced<T>,
    current: Option<&Change<T>>,
) -> Option<PendingOp<T>> {
    let current = current.filter(|c| !c.is_delete())?;
    if !group
        .constituents
        .iter()
        .any(|c| same_json(current, &c.change()))
    {
        return None;
    }
    let last = group.constituents.last().expect("non-empty group");
    let mut delete = PendingOp::delete(scope.clone(), last.id.clone(), last.updated_at);
    delete.op_id = last.op_id.clone();
    delete.base_version = Some(current.version());
    Some(delete)
}

/// Pushes `ops`; when the remote refuses the whole request permanently, splits it to find the
/// op(s) it objects to, so one poison op cannot block the rest.
async fn push_isolating<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    ops: &[PendingOp<T>],
) -> Result<Vec<PushOutcome<T>>> {
    let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
    // Ranges of `ops` still to send; a refused range is split in two.
    let mut ranges = Vec::new();
    ranges.push(0..ops.len());
    while let Some(range) = ranges.pop() {
        let chunk = &ops[range.clone()];
        match inner.remote.push(scope, chunk).await {
            Ok(answer) if answer.len() == chunk.len() => {
                for (slot, o) in outcomes[range].iter_mut().zip(answer) {
                    *slot = Some(o);
                }
            }
            Ok(answer) => {
                return Err(Error::MalformedResponse {
                    backend: inner.remote.name(),
                    message: format!("{} outcomes for {} ops", answer.len(), chunk.len()),
                });
            }
            Err(Error::Rejected { message, .. }) if chunk.len() == 1 => {
                outcomes[range.start] = Some(PushOutcome::Rejected { reason: message });
            }
            Err(Error::Rejected { .. }) if chunk.len() > 1 => {
                let mid = range.start + chunk.len() / 2;
                ranges.push(mid..range.end);
                ranges.push(range.start..mid);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every range answered"))
        .collect())
}

fn same_json<T: Record>(a: &Change<T>, b: &Change<T>) -> bool {
    if a.version() != b.version() || a.is_delete() != b.is_delete() {
        return false;
    }
    match (a.record(), b.record()) {
        (Some(x), Some(y)) => serde_json::to_value(x).ok() == serde_json::to_value(y).ok(),
        _ => true,
    }
}

/// Resolves a push conflict. Returns an ack when the remote already holds exactly what we pushed
/// (a replay after a crash against a remote without op-id memory).
async fn settle<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    pushed: &Coalesced<T>,
    current: Option<Change<T>>,
    report: &mut SyncReport,
) -> Result<Option<Ack>> {
    let pushed_op = pushed
        .op
        .as_ref()
        .expect("conflicts come from pushed groups");
    let remote_version = current.as_ref().map(Change::version);
    if let Some(cur) = &current
        && same_json(cur, &pushed_op.change())
    {
        return Ok(Some(Ack {
            id: pushed_op.id.clone(),
            op_ids: pushed.op_ids(),
            version: remote_version,
        }));
    }
    // A push batch may hold only the first of a record's queued ops, and more may have been
    // queued since: resolve against the record's whole queue, so the newest local write decides.
    let queued: Vec<_> = inner
        .local
        .pending_ops(scope, usize::MAX)
        .await?
        .into_iter()
        .filter(|o| o.id == pushed_op.id)
        .collect();
    let mut group = coalesce(queued).pop().unwrap_or_else(|| pushed.clone());
    if group.op.is_none() {
        group.op = delete_if_own_write_landed(scope, &group, current.as_ref());
    }
    let local = group.op.as_ref().map(PendingOp::change);
    // The remote holds one of our own earlier writes (pushed, then the ack was lost): not a
    // conflict with anyone else, just rebase on it.
    let own_earlier = current.as_ref().is_some_and(|cur| {
        group
            .constituents
            .iter()
            .any(|c| same_json(cur, &c.change()))
    });
    let resolution = match &local {
        // The queued ops cancel out and the remote record is someone else's: keep theirs.
        None => Resolution::TakeRemote,
        Some(_) if own_earlier => Resolution::KeepLocal,
        Some(local) => {
            report.conflicts += 1;
            inner.resolver.resolve(local, current.as_ref())
        }
    };
    tracing::debug!(%scope, id = %pushed_op.id, ?remote_version, own_earlier, "push conflict");
    let op = pushed_op;
    let remote_exists = current.as_ref().is_some_and(|c| !c.is_delete());
    let requeue = |change: Change<T>| {
        let mut op = match change {
            Change::Upsert(r) => {
                let kind = if remote_exists {
                    OpKind::Update
                } else {
                    OpKind::Create
                };
                PendingOp::upsert(scope.clone(), kind, r)
            }
            Change::Delete(t) => PendingOp::delete(scope.clone(), t.id, t.deleted_at),
        };
        op.attempts = group.op.as_ref().map_or(0, |o| o.attempts);
        op
    };
    let settlement = match resolution {
        Resolution::TakeRemote => Settlement {
            id: op.id.clone(),
            settled_ops: group.op_ids(),
            remote_version,
            local: Some(current.unwrap_or_else(|| {
                Change::Delete(Tombstone {
                    id: op.id.clone(),
                    deleted_at: Timestamp::now(),
                })
            })),
            requeue: None,
        },
        Resolution::KeepLocal => Settlement {
            id: op.id.clone(),
            settled_ops: group.op_ids(),
            remote_version,
            local: None,
            requeue: local.map(requeue),
        },
        Resolution::Merged(merged) => Settlement {
            id: op.id.clone(),
            settled_ops: group.op_ids(),
            remote_version,
            local: Some(Change::Upsert(merged.clone())),
            requeue: Some(requeue(Change::Upsert(merged))),
        },
    };
    inner.local.settle_conflict(scope, settlement).await?;
    Ok(None)
}

async fn pull<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    report: &mut SyncReport,
) -> Result<()> {
    let mut cursor = inner.local.sync_point(scope).await?.and_then(|p| p.cursor);
    loop {
        let page = inner
            .remote
            .fetch_since(scope, cursor.as_ref(), inner.config.pull_page_size)
            .await?;
        let next = page.cursor.clone().or_else(|| cursor.clone());
        if page.has_more && next == cursor {
            return Err(Error::MalformedResponse {
                backend: inner.remote.name(),
                message: "has_more without an advancing cursor".into(),
            });
        }
        let point = SyncPoint {
            cursor: next.clone(),
            server_time: page.server_time,
        };
        let skipped = inner.local.apply_remote(scope, &page, &point).await?;
        report.pulled += page.len();
        report.skipped += skipped.len();
        cursor = next;
        if !page.has_more {
            return Ok(());
        }
    }
}

pub(super) async fn discard<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    op_ids: &[OpId],
) -> Result<()> {
    let parked = inner.local.parked_ops(scope).await?;
    let mut by_id: std::collections::BTreeMap<String, Vec<OpId>> = Default::default();
    for op in parked.into_iter().filter(|o| op_ids.contains(&o.op_id)) {
        by_id.entry(op.id).or_default().push(op.op_id);
    }
    for (id, ops) in by_id {
        let remote = inner.remote.get_by_id(scope, &id).await?;
        let local = match remote {
            Some(r) => Change::Upsert(r),
            None => Change::Delete(Tombstone {
                id: id.clone(),
                deleted_at: Timestamp::now(),
            }),
        };
        let remote_version = match &local {
            Change::Upsert(r) => Some(r.updated_at()),
            Change::Delete(_) => None,
        };
        inner
            .local
            .settle_conflict(
                scope,
                Settlement {
                    id,
                    settled_ops: ops,
                    remote_version,
                    local: Some(local),
                    requeue: None,
                },
            )
            .await?;
    }
    Ok(())
}
