//! The default [`LocalStore::reconcile_rows`] and [`LocalStore::apply_reconciled`], built on the
//! other methods of the trait.

use std::collections::HashMap;

use jiff::Timestamp;

use super::LocalStore;
use crate::delta::{Delta, SyncPoint};
use crate::error::Result;
use crate::query::QuerySpec;
use crate::record::{Record, Tombstone};
use crate::scope::SyncScope;

/// Live rows without queued ops at their version; queued ids at their ops' synced version.
pub(super) async fn rows_from_queries<T: Record, S: LocalStore<T> + ?Sized>(
    store: &S,
    scope: &SyncScope,
) -> Result<Vec<(String, Timestamp)>> {
    let mut queued: HashMap<String, Option<Timestamp>> = HashMap::new();
    let pending = store.pending_ops(scope, usize::MAX).await?;
    let parked = store.parked_ops(scope).await?;
    for op in pending.into_iter().chain(parked) {
        let base = queued.entry(op.id.clone()).or_insert(None);
        *base = base.or(op.base_version);
    }
    let mut rows: Vec<(String, Timestamp)> = store
        .query(scope, &QuerySpec::new())
        .await?
        .into_iter()
        .filter(|r| !queued.contains_key(r.id()))
        .map(|r| (r.id().to_owned(), r.updated_at()))
        .collect();
    rows.extend(
        queued
            .into_iter()
            .filter_map(|(id, base)| base.map(|b| (id, b))),
    );
    Ok(rows)
}

/// One [`LocalStore::apply_remote`] page: the fetched records and a tombstone per removal, with
/// the scope's current sync point (an epoch point with no cursor when there is none).
pub(super) async fn apply_through_pull<T: Record, S: LocalStore<T> + ?Sized>(
    store: &S,
    scope: &SyncScope,
    fetched: &[T],
    removed: &[(String, Timestamp)],
) -> Result<Vec<String>> {
    let point = store.sync_point(scope).await?.unwrap_or(SyncPoint {
        cursor: None,
        server_time: Timestamp::UNIX_EPOCH,
    });
    let mut page = Delta::empty(point.server_time, point.cursor.clone());
    page.upserts = fetched.to_vec();
    page.deletes = removed
        .iter()
        .map(|(id, version)| Tombstone {
            id: id.clone(),
            deleted_at: *version,
        })
        .collect();
    store.apply_remote(scope, &page, &point).await
}
