//! Driving the [`Planner`] against a local and a remote store.

use futures::StreamExt;
use jiff::Timestamp;

use super::ReconcileReport;
use super::hash::{RowSet, canonical_version};
use super::planner::Planner;
use super::protocol::{DigestRequest, DigestResponse};
use crate::error::{Error, Result};
use crate::local::LocalStore;
use crate::record::{Change, Record};
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

/// Rows fetched by id at once.
const FETCH_CONCURRENCY: usize = 8;

/// The live rows of `scope` on `remote`, read from its whole feed, and the JSON size of what the
/// feed returned: the digest of a remote that has none of its own.
pub(crate) async fn digest_by_listing<T: Record, R: RemoteStore<T> + ?Sized>(
    remote: &R,
    scope: &SyncScope,
    page_size: usize,
) -> Result<(RowSet, u64)> {
    let mut live = std::collections::HashMap::new();
    let mut bytes = 0u64;
    let mut cursor = None;
    loop {
        let page = remote
            .fetch_since(scope, cursor.as_ref(), page_size)
            .await?;
        let next = page.cursor.clone().or_else(|| cursor.clone());
        if page.has_more && next == cursor {
            return Err(Error::MalformedResponse {
                backend: remote.name(),
                message: "has_more without an advancing cursor".into(),
            });
        }
        for q in &page.quarantined {
            // Undecodable rows still exist on the remote; they stay out of the cache either way.
            bytes += q.raw.len() as u64;
        }
        let has_more = page.has_more;
        for change in page.into_changes() {
            bytes += match &change {
                Change::Upsert(r) => serde_json::to_vec(r).map(|v| v.len() as u64).unwrap_or(0),
                Change::Delete(t) => (t.id.len() + 40) as u64,
            };
            if change.is_delete() {
                live.remove(change.id());
            } else {
                live.insert(change.id().to_owned(), canonical_version(change.version()));
            }
        }
        cursor = next;
        if !has_more {
            return Ok((RowSet::new(live), bytes));
        }
    }
}

/// One reconciliation of `scope` (the caller synchronized it just before).
pub(crate) async fn reconcile<T: Record>(
    local: &dyn LocalStore<T>,
    remote: &dyn RemoteStore<T>,
    scope: &SyncScope,
    page_size: usize,
) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let mut planner = Planner::new();
    let mut listed: Option<RowSet> = None;
    // The first round: the remote digests while the cache's rows are read and hashed.
    let first = planner.next_request().expect("a first request");
    let (ours, theirs) = futures::join!(
        async {
            let rows = local.reconcile_rows(scope).await?;
            hash_rows(rows).await
        },
        remote_answer(remote, scope, &first, &mut listed, page_size),
    );
    let (ours, theirs) = (ours?, theirs?);
    report.bytes_transferred += theirs.bytes;
    planner.on_answers(&first, &ours.answer(&first), &theirs);
    while let Some(req) = planner.next_request() {
        let theirs = remote_answer(remote, scope, &req, &mut listed, page_size).await?;
        report.bytes_transferred += theirs.bytes;
        planner.on_answers(&req, &ours.answer(&req), &theirs);
    }
    let plan = planner.finish();
    report.checked = plan.checked;
    report.missing = plan.missing;
    report.stale = plan.stale;
    report.extra = plan.extra;
    report.rounds = plan.rounds;

    let mut remove: Vec<(String, Timestamp)> = Vec::with_capacity(plan.remove.len());
    for (id, v) in plan.remove {
        remove.push((id, parse_local_version(&v)?));
    }
    let fetched: Vec<(String, Result<Option<T>>)> = futures::stream::iter(plan.fetch)
        .map(|id| async move {
            let r = remote.get_by_id(scope, &id).await;
            (id, r)
        })
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut records = Vec::with_capacity(fetched.len());
    for (id, result) in fetched {
        match result {
            Ok(Some(r)) => {
                report.bytes_transferred +=
                    serde_json::to_vec(&r).map(|v| v.len() as u64).unwrap_or(0);
                records.push(r);
            }
            // Deleted since the digest: the cache's row (if any) goes too.
            Ok(None) => {
                if let Some(v) = ours.version_of(&id) {
                    remove.push((id, parse_local_version(v)?));
                }
            }
            // A remote row that does not decode stays out of the cache, as in a pull.
            Err(Error::Codec(reason)) => {
                tracing::warn!(%scope, %id, %reason, "reconcile: remote row does not decode");
            }
            Err(e) => return Err(e),
        }
    }
    if !records.is_empty() || !remove.is_empty() {
        let skipped = local.apply_reconciled(scope, &records, &remove).await?;
        report.skipped = skipped.len() as u64;
    }
    tracing::info!(%scope, ?report, "reconciled");
    Ok(report)
}

/// The cache's rows hashed into a [`RowSet`]: CPU work (two `sha256` per row), off the async
/// workers natively, inline in the browser.
async fn hash_rows(rows: Vec<(String, Timestamp)>) -> Result<RowSet> {
    let build = move || RowSet::new(rows.into_iter().map(|(id, v)| (id, canonical_version(v))));
    #[cfg(not(target_arch = "wasm32"))]
    {
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| Error::storage(format!("hashing the cache's rows failed: {e}")))
    }
    #[cfg(target_arch = "wasm32")]
    {
        Ok(build())
    }
}

async fn remote_answer<T: Record>(
    remote: &dyn RemoteStore<T>,
    scope: &SyncScope,
    req: &DigestRequest,
    listed: &mut Option<RowSet>,
    page_size: usize,
) -> Result<DigestResponse> {
    if let Some(set) = listed {
        return Ok(set.answer(req));
    }
    if let Some(answer) = remote.digest(scope, req).await? {
        return Ok(answer);
    }
    tracing::debug!(%scope, backend = remote.name(), "no digests: listing the feed");
    let (set, bytes) = digest_by_listing(remote, scope, page_size).await?;
    let mut answer = set.answer(req);
    answer.bytes = bytes;
    *listed = Some(set);
    Ok(answer)
}

fn parse_local_version(v: &str) -> Result<Timestamp> {
    v.parse()
        .map_err(|e| Error::storage(format!("bad local version {v:?}: {e}")))
}
