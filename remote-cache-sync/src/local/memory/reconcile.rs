//! [`LocalStore::reconcile_rows`](crate::LocalStore::reconcile_rows) and
//! [`LocalStore::apply_reconciled`](crate::LocalStore::apply_reconciled) of the in-memory store.

use std::collections::HashSet;

use jiff::Timestamp;

use super::{InMemoryLocalStore, row_of};
use crate::error::Result;
use crate::local::check::check_ids;
use crate::record::{Change, Record};
use crate::scope::SyncScope;

impl<T: Record> InMemoryLocalStore<T> {
    pub(super) fn synced_rows(&self, scope: &SyncScope) -> Vec<(String, Timestamp)> {
        let state = self.lock();
        let Some(sd) = state.scopes.get(scope) else {
            return Vec::new();
        };
        let queued: HashSet<&str> = sd.ops.values().map(|o| o.op.id.as_str()).collect();
        sd.rows
            .iter()
            .filter_map(|(id, row)| {
                let version = if queued.contains(id.as_str()) {
                    row.synced?
                } else if row.deleted {
                    return None;
                } else {
                    row.version
                };
                Some((id.clone(), version))
            })
            .collect()
    }

    pub(super) fn apply_reconciled_rows(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        check_ids(fetched.iter().map(Record::id))?;
        let rows = fetched
            .iter()
            .map(|r| row_of(&Change::Upsert(r.clone())))
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.lock_mut();
        let sd = state.scopes.entry(scope.clone()).or_default();
        let queued: HashSet<String> = sd.ops.values().map(|o| o.op.id.clone()).collect();
        let mut skipped = Vec::new();
        for (id, mut row) in rows {
            if queued.contains(&id) {
                skipped.push(id);
            } else {
                row.synced = Some(row.version);
                // It decodes now: no longer quarantined.
                sd.quarantine.remove(&id);
                sd.rows.insert(id, row);
            }
        }
        for (id, version) in removed {
            if queued.contains(id) {
                skipped.push(id.clone());
            } else if sd
                .rows
                .get(id)
                .is_some_and(|r| !r.deleted && r.version == *version)
            {
                sd.rows.remove(id);
            }
        }
        Ok(skipped)
    }
}
