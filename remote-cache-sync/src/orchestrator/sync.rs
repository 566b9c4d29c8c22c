//! One `synchronize`: push the queue (coalesced, conflicts resolved, poison ops parked), then
//! pull pages until the remote has no more, each page committed with its cursor.

use std::collections::HashSet;

use jiff::Timestamp;

use super::coalesce::coalesce;
use super::decide::{self, Action, Decision, ResolvedConflict};
use super::{Inner, SyncPhase, SyncReport};
use crate::delta::SyncPoint;
use crate::error::{Error, Result};
use crate::local::{Ack, ScopePause, Settlement};
use crate::op::{OpId, PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

pub(super) async fn run<T: Record>(inner: &Inner<T>, scope: &SyncScope) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    inner.live.sync_started(scope);
    let result: Result<()> = async {
        push(inner, scope, &mut report).await?;
        inner
            .live
            .update_status(scope, |s| s.phase = SyncPhase::Pulling);
        pull(inner, scope, &mut report).await?;
        if inner.local.pause(scope).await?.is_some() {
            tracing::info!(%scope, "sync resumed");
            inner.local.set_pause(scope, None).await?;
        }
        Ok(())
    }
    .await;
    let mut pause = None;
    match &result {
        Ok(()) => tracing::debug!(%scope, ?report, "synchronized"),
        Err(e) if e.pauses_scope() => {
            // A refusal of the request, not of any op: remember why, charge no op.
            tracing::warn!(%scope, error = %e, "sync paused");
            let p = ScopePause::new(e.to_string(), Timestamp::now());
            if let Err(store) = inner.local.set_pause(scope, Some(&p)).await {
                tracing::warn!(%scope, error = %store, "cannot record the pause");
            }
            pause = Some(p);
        }
        Err(_) => {}
    }
    if inner.live.status_listened() {
        inner.live.refresh_counts(&*inner.local, scope).await;
    }
    inner
        .live
        .sync_finished(scope, &report, &result, pause.as_ref());
    result.map(|()| report)
}

/// Pushes the queue only (an online read's first step; see `online`). A refusal pauses the
/// scope as in [`run`].
pub(super) async fn push_only<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let result = push(inner, scope, &mut report).await;
    if let Err(e) = &result
        && e.pauses_scope()
    {
        tracing::warn!(%scope, error = %e, "sync paused");
        let p = ScopePause::new(e.to_string(), Timestamp::now());
        if let Err(store) = inner.local.set_pause(scope, Some(&p)).await {
            tracing::warn!(%scope, error = %store, "cannot record the pause");
        }
    }
    result.map(|()| report)
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
    if queued == 0 {
        // Nothing to push. A write enqueued from now on asks for a sync of its own (or waits
        // for the next one, as one enqueued just after this push would).
        return Ok(());
    }
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
        let mut acks = Vec::new();
        let to_push = coalesce(ops);
        let ops: Vec<PendingOp<T>> = to_push.iter().map(|g| g.op.clone()).collect();
        let outcomes = push_isolating(inner, scope, &ops).await?;
        for (group, outcome) in to_push.iter().zip(outcomes) {
            let action = decide::on_outcome(group, outcome, inner.config.max_rejections);
            let d = match action {
                Action::Resolve { current } => {
                    // A push batch may hold only the first of a record's queued ops, and more
                    // may have been queued since: decide with the record's whole queue, so the
                    // newest local write is the one the resolver sees.
                    let queued: Vec<_> = inner
                        .local
                        .pending_ops(scope, usize::MAX)
                        .await?
                        .into_iter()
                        .filter(|o| o.id == group.id())
                        .collect();
                    let whole = coalesce(queued).pop().unwrap_or_else(|| group.clone());
                    tracing::debug!(%scope, id = %group.id(), remote_version = ?current.as_ref().map(Change::version), "push conflict");
                    decide::settle(&whole, current.as_ref(), &*inner.resolver, Timestamp::now())
                }
                Action::Ack(ack) => {
                    report.pushed += 1;
                    Decision {
                        action: Action::Ack(ack),
                        conflict: None,
                    }
                }
                action => Decision {
                    action,
                    conflict: None,
                },
            };
            execute(inner, scope, d, report, &mut acks, &mut held).await?;
        }
        inner.local.ack_ops(scope, &acks).await?;
        inner
            .live
            .update_status(scope, |s| s.pushed = report.pushed);
    }
    Ok(())
}

/// Carries out one decision. Acks are batched by the caller; the report and `held` change only
/// after the store accepted the write.
async fn execute<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    decision: Decision<T>,
    report: &mut SyncReport,
    acks: &mut Vec<Ack>,
    held: &mut HashSet<String>,
) -> Result<()> {
    match decision.action {
        Action::Ack(ack) => acks.push(ack),
        Action::Reject {
            id,
            op_ids,
            reason,
            park,
        } => {
            tracing::warn!(%scope, %id, %reason, park, "remote rejected op");
            inner
                .local
                .reject_ops(scope, &op_ids, &reason, park)
                .await?;
            if park {
                report.parked += op_ids.len();
            } else {
                report.rejected += op_ids.len();
                held.insert(id);
            }
        }
        Action::Settle(settlement) => {
            let id = settlement.id.clone();
            inner.local.settle_conflict(scope, *settlement).await?;
            if let Some(outcome) = decision.conflict {
                report.conflicts += 1;
                report.resolved.push(ResolvedConflict { id, outcome });
            }
        }
        Action::Resolve { .. } => unreachable!("resolved before execution"),
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

/// Pushes `ops`; when the remote refuses the whole request as invalid, splits it to find the
/// op(s) it objects to, so one poison op cannot block the rest. Only a refusal that isolation
/// narrows to one op is a verdict on that op; a refusal of the request itself
/// ([`Error::Refused`], [`Error::Unauthorized`]) says nothing about any op and is returned.
///
/// When isolation ends with *every* op of a batch of several refused on its own, for the same
/// reason, the refusal is the request's (a misconfigured endpoint or schema refuses every push
/// alike), not a verdict on each op: it is returned as [`Error::Refused`], so the scope pauses
/// with that reason and no op is charged or parked. (One op alone cannot tell the two apart;
/// its refusal counts toward parking as before.)
async fn push_isolating<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    ops: &[PendingOp<T>],
) -> Result<Vec<PushOutcome<T>>> {
    let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
    // The refusals isolation narrowed to one op: (reason, status).
    let mut isolated: Vec<(String, Option<u16>)> = Vec::new();
    // Ranges of `ops` still to send; a refused range is split in two.
    let mut ranges = Vec::new();
    if !ops.is_empty() {
        ranges.push(0..ops.len());
    }
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
            Err(Error::Rejected {
                message, status, ..
            }) if chunk.len() == 1 => {
                isolated.push((message.clone(), status));
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
    if ops.len() > 1 && isolated.len() == ops.len() && isolated.windows(2).all(|w| w[0].0 == w[1].0)
    {
        let (message, status) = isolated.swap_remove(0);
        tracing::warn!(%scope, ops = ops.len(), reason = %message, "every op refused alike: the request is refused");
        return Err(Error::Refused {
            backend: inner.remote.name(),
            status,
            code: None,
            message: format!("every op of a push was refused alike: {message}"),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every range answered"))
        .collect())
}

async fn pull<T: Record>(
    inner: &Inner<T>,
    scope: &SyncScope,
    report: &mut SyncReport,
) -> Result<()> {
    let mut cursor = inner.local.sync_point(scope).await?.and_then(|p| p.cursor);
    let mut counted = false;
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
        inner
            .live
            .update_status(scope, |s| s.pulled = report.pulled);
        if !counted && page.has_more && inner.live.status_listened() {
            // A pull of several pages: ask the remote how much is left, once, for progress.
            counted = true;
            match inner.remote.count_since(scope, next.as_ref()).await {
                Ok(Some(left)) => {
                    let total = report.pulled as u64 + left;
                    inner
                        .live
                        .update_status(scope, |s| s.pull_total = Some(total));
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%scope, error = %e, "the remote cannot count the pull"),
            }
        }
        report.skipped += skipped.len();
        report.quarantined += page.quarantined.len();
        for q in &page.quarantined {
            tracing::warn!(%scope, id = %q.id, reason = %q.reason, "remote row quarantined");
        }
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
    let mut queued = inner.local.parked_ops(scope).await?;
    queued.extend(inner.local.pending_ops(scope, usize::MAX).await?);
    let mut by_id: std::collections::BTreeMap<String, Vec<OpId>> = Default::default();
    for op in queued.into_iter().filter(|o| op_ids.contains(&o.op_id)) {
        by_id.entry(op.id).or_default().push(op.op_id);
    }
    for (id, ops) in by_id {
        let remote = match inner.remote.get_by_id(scope, &id).await {
            // The remote row does not decode (it is quarantined when pulled): nothing of it
            // can be shown, so the discarded write's row is hidden.
            Err(Error::MalformedResponse { .. } | Error::Codec(_)) => None,
            other => other?,
        };
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
