//! Online reads answered by the remote ([`RemoteStore::query`](crate::RemoteStore::query), and
//! [`get_by_id`](crate::RemoteStore::get_by_id) for one record): push the scope's queue, ask the
//! remote, overlay what is still queued locally.
//!
//! Decisions:
//! - **The answer is not written into the cache.** It carries no cursor, so it cannot move the
//!   scope's sync point, and a row written outside the pull path can overwrite a newer version
//!   that a concurrent pull applied after the query read the remote, leaving the cache stale
//!   behind a cursor that has moved past the change. The cache catches up through the normal
//!   pull: `RemoteFirst` starts one in the background after each remote answer.
//! - **Local writes never disappear from the answer.** The queue is pushed first, so in the
//!   common case the remote already holds every write the app made. Records that still have a
//!   queued or parked op afterwards (a push that conflicted and was requeued, a write the remote
//!   refused, a write enqueued meanwhile) are answered as the cache holds them, as every other
//!   policy does: the remote's rows for those ids are dropped, the cache's versions are added
//!   when they match, and the page is recomputed with [`QuerySpec::apply`]. To keep the page
//!   exact, the remote is asked for `offset + limit + k` rows from the start (`k` such ids).

use std::collections::HashSet;

use super::Orchestrator;
use crate::error::{Error, Result};
use crate::query::QuerySpec;
use crate::record::Record;
use crate::scope::SyncScope;

/// Most syncs of the scope already running that a push waits for before pushing itself.
const MAX_WAITS: usize = 3;

/// The query answered by the remote with local pending state overlaid, or `None` when the
/// remote cannot answer it (no query support, [`Error::Unsupported`], or an answer holding a
/// row that does not decode): the caller then syncs the scope and reads the cache, where such
/// a row is quarantined.
pub(super) async fn read<T: Record>(
    orch: &Orchestrator<T>,
    scope: &SyncScope,
    query: &QuerySpec,
) -> Result<Option<Vec<T>>> {
    push_queue(orch, scope).await?;
    let inner = &orch.inner;
    let pending = queued_ids(orch, scope).await?;
    let asked = if pending.is_empty() {
        query.clone()
    } else {
        QuerySpec {
            offset: None,
            limit: query.limit.map(|l| {
                l.saturating_add(query.offset.unwrap_or(0))
                    .saturating_add(pending.len())
            }),
            ..query.clone()
        }
    };
    let rows = match inner.remote.query(scope, &asked).await {
        Ok(Some(rows)) => rows,
        Ok(None) => return Ok(None),
        // Cannot express the query, or a row of the answer is not a record (a pull quarantines
        // it): the sync-then-cache path answers instead.
        Err(
            e @ (Error::Unsupported { .. } | Error::MalformedResponse { .. } | Error::Codec(_)),
        ) => {
            tracing::debug!(%scope, error = %e, "remote cannot run the query; reading the synced cache");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if pending.is_empty() {
        return Ok(Some(rows));
    }
    let mut merged: Vec<T> = rows
        .into_iter()
        .filter(|r| !pending.contains(r.id()))
        .collect();
    for id in &pending {
        if let Some(local) = inner.local.get_by_id(scope, id).await? {
            merged.push(local);
        }
    }
    let json = merged
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let page = query.apply(merged.iter().zip(&json).map(|(r, v)| (r.id(), r, v)))?;
    Ok(Some(page.into_iter().cloned().collect()))
}

/// One record answered by the remote (after the queue is pushed), or as the cache holds it when
/// it still has a queued or parked op. `None` (the outer `Option`) when the remote row does not
/// decode: the caller then syncs (the pull quarantines it) and reads the cache.
pub(super) async fn get<T: Record>(
    orch: &Orchestrator<T>,
    scope: &SyncScope,
    id: &str,
) -> Result<Option<Option<T>>> {
    push_queue(orch, scope).await?;
    let inner = &orch.inner;
    if queued_ids(orch, scope).await?.contains(id) {
        return inner.local.get_by_id(scope, id).await.map(Some);
    }
    match inner.remote.get_by_id(scope, id).await {
        Ok(answer) => Ok(Some(answer)),
        Err(e @ (Error::MalformedResponse { .. } | Error::Codec(_))) => {
            tracing::debug!(%scope, %id, error = %e, "remote row does not decode; reading the synced cache");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Ids of the scope's records that still have a queued or parked op (answered as the cache
/// holds them).
async fn queued_ids<T: Record>(
    orch: &Orchestrator<T>,
    scope: &SyncScope,
) -> Result<HashSet<String>> {
    let local = &orch.inner.local;
    Ok(local
        .pending_ops(scope, usize::MAX)
        .await?
        .into_iter()
        .chain(local.parked_ops(scope).await?)
        .map(|o| o.id)
        .collect())
}

/// Pushes the scope's queue without pulling. A sync of the scope already running pushes too:
/// it is awaited first (its result ignored, a failure shows again in our own push), then the
/// queue is pushed if it still holds ops.
async fn push_queue<T: Record>(orch: &Orchestrator<T>, scope: &SyncScope) -> Result<()> {
    for _ in 0..MAX_WAITS {
        if orch.inner.local.queue_status(scope).await?.pending == 0 {
            return Ok(());
        }
        match orch.running(scope) {
            Some(running) => drop(running.await),
            None => break,
        }
    }
    if orch.inner.local.queue_status(scope).await?.pending == 0 {
        return Ok(());
    }
    orch.push_only(scope).await.map(drop)
}
