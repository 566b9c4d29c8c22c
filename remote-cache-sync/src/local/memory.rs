//! [`InMemoryLocalStore`]: a non-persistent [`LocalStore`] for tests and demos.
//!
//! Everything lives in maps behind one `std::sync::Mutex`; every method is one critical section,
//! so each call is atomic exactly like a SQLite transaction. It implements the same semantics as
//! [`SqliteLocalStore`](crate::local::sqlite::SqliteLocalStore) and passes the same conformance
//! suite ([`testing::local`](crate::testing::local)).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

use crate::delta::{Delta, QuarantinedRow, SyncPoint};
use crate::error::{Error, Result};
use crate::local::check::{check_ids, check_op};
use crate::local::{Ack, LocalStore, QueueStatus, ScopePause, Settlement};
use crate::op::{OpId, PendingOp};
use crate::query::QuerySpec;
use crate::record::{Change, Record, Tombstone};
use crate::scope::SyncScope;

mod reconcile;

/// One stored record (live or tombstone).
#[derive(Debug, Clone)]
struct Row<T> {
    /// The record and its JSON form (`None` for a tombstone without payload).
    data: Option<(T, Value)>,
    /// `updated_at`, or `deleted_at` for a tombstone.
    version: Timestamp,
    deleted: bool,
    /// The remote version the local state builds on.
    synced: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct OpRow<T> {
    op: PendingOp<T>,
    parked: bool,
}

#[derive(Debug)]
struct ScopeData<T> {
    rows: BTreeMap<String, Row<T>>,
    sync_point: Option<SyncPoint>,
    /// Queue position → op.
    ops: BTreeMap<u64, OpRow<T>>,
    /// Remote rows that did not decode, by id.
    quarantine: BTreeMap<String, QuarantinedRow>,
    pause: Option<ScopePause>,
}

impl<T> Default for ScopeData<T> {
    fn default() -> Self {
        ScopeData {
            rows: BTreeMap::new(),
            sync_point: None,
            ops: BTreeMap::new(),
            quarantine: BTreeMap::new(),
            pause: None,
        }
    }
}

impl<T> ScopeData<T> {
    fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.sync_point.is_none()
            && self.ops.is_empty()
            && self.quarantine.is_empty()
            && self.pause.is_none()
    }

    fn has_ops_for(&self, id: &str) -> bool {
        self.ops.values().any(|o| o.op.id == id)
    }

    fn seq_of(&self, op_id: &OpId) -> Option<u64> {
        self.ops
            .iter()
            .find(|(_, o)| &o.op.op_id == op_id)
            .map(|(s, _)| *s)
    }
}

#[derive(Debug)]
struct State<T> {
    scopes: BTreeMap<SyncScope, ScopeData<T>>,
    /// Every queued op id, in any scope (op ids are unique store-wide).
    op_ids: HashSet<OpId>,
    next_seq: u64,
}

/// In-memory local store. Cheap to share behind an `Arc`; nothing survives a drop.
///
/// ```
/// use remote_cache_sync::{InMemoryLocalStore, JsonRecord, LocalStore, SyncScope};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryLocalStore::<JsonRecord>::new();
/// let scope = SyncScope::named("records").unwrap();
/// let rec = JsonRecord::from_value(serde_json::json!({
///     "id": "a", "updated_at": "2026-11-22T10:00:00Z", "title": "hello"
/// })).unwrap();
/// store.upsert_many(&scope, &[rec]).await.unwrap();
/// let got = store.get_by_id(&scope, "a").await.unwrap().unwrap();
/// assert_eq!(got.value()["title"], "hello");
/// # });
/// ```
#[derive(Debug)]
pub struct InMemoryLocalStore<T> {
    state: Mutex<State<T>>,
    /// Bumped by every call that may change the store ([`LocalStore::change_token`]).
    generation: AtomicU64,
}

impl<T> Default for InMemoryLocalStore<T> {
    fn default() -> Self {
        InMemoryLocalStore {
            state: Mutex::new(State {
                scopes: BTreeMap::new(),
                op_ids: HashSet::new(),
                next_seq: 1,
            }),
            generation: AtomicU64::new(0),
        }
    }
}

impl<T: Record> InMemoryLocalStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every method validates and encodes its input before mutating, and mutations cannot
        // panic halfway, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`lock`](Self::lock) for a call that may change the store: bumps the change token
    /// first (a watcher that sees the new token waits on this lock for the change itself).
    fn lock_mut(&self) -> MutexGuard<'_, State<T>> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock()
    }
}

/// The row a change produces (synced version left to the caller).
fn row_of<T: Record>(change: &Change<T>) -> Result<(String, Row<T>)> {
    Ok(match change {
        Change::Upsert(r) => (
            r.id().to_owned(),
            Row {
                data: Some((r.clone(), serde_json::to_value(r)?)),
                version: change.version(),
                deleted: r.deleted_at().is_some(),
                synced: None,
            },
        ),
        Change::Delete(t) => (
            t.id.clone(),
            Row {
                data: None,
                version: t.deleted_at,
                deleted: true,
                synced: None,
            },
        ),
    })
}

/// Writes `row` over the stored one, keeping the synced version; with `lww`, only when the new
/// version is newer or equal.
fn write_row<T>(rows: &mut BTreeMap<String, Row<T>>, id: String, mut row: Row<T>, lww: bool) {
    match rows.get_mut(&id) {
        Some(old) => {
            if !lww || row.version >= old.version {
                row.synced = old.synced;
                *old = row;
            }
        }
        None => {
            rows.insert(id, row);
        }
    }
}

fn live<T>(row: &Row<T>) -> Option<&(T, Value)> {
    if row.deleted { None } else { row.data.as_ref() }
}

fn with_base<T: Record>(sd: &ScopeData<T>, o: &OpRow<T>) -> PendingOp<T> {
    let mut op = o.op.clone();
    op.base_version = sd.rows.get(&op.id).and_then(|r| r.synced);
    op
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> LocalStore<T> for InMemoryLocalStore<T> {
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let state = self.lock();
        Ok(state
            .scopes
            .get(scope)
            .and_then(|sd| sd.rows.get(id))
            .and_then(live)
            .map(|(r, _)| r.clone()))
    }

    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>> {
        let state = self.lock();
        Ok(state
            .scopes
            .get(scope)
            .and_then(|sd| sd.rows.get(id))
            .map(|r| (r.version, r.deleted)))
    }

    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        spec.validate()?;
        let state = self.lock();
        let Some(sd) = state.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        let rows = sd
            .rows
            .iter()
            .filter_map(|(id, row)| live(row).map(|(r, v)| (id.as_str(), r, v)));
        Ok(spec.apply(rows)?.into_iter().cloned().collect())
    }

    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>> {
        let state = self.lock();
        let Some(sd) = state.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<(&Timestamp, &String, &T)> = sd
            .rows
            .iter()
            .filter(|(_, row)| row.version >= since)
            .filter_map(|(id, row)| live(row).map(|(r, _)| (&row.version, id, r)))
            .collect();
        rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        Ok(rows.into_iter().map(|(_, _, r)| r.clone()).collect())
    }

    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        check_ids(items.iter().map(Record::id))?;
        let rows = items
            .iter()
            .map(|r| row_of(&Change::Upsert(r.clone())))
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.lock_mut();
        let sd = state.scopes.entry(scope.clone()).or_default();
        for (id, row) in rows {
            write_row(&mut sd.rows, id, row, true);
        }
        Ok(())
    }

    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        check_ids(tombstones.iter().map(|t| t.id.as_str()))?;
        let mut state = self.lock_mut();
        let sd = state.scopes.entry(scope.clone()).or_default();
        for t in tombstones {
            let (id, row) = row_of::<T>(&Change::Delete(t.clone()))?;
            write_row(&mut sd.rows, id, row, true);
        }
        Ok(())
    }

    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>> {
        Ok(self
            .lock()
            .scopes
            .get(scope)
            .and_then(|sd| sd.sync_point.clone()))
    }

    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()> {
        self.lock_mut()
            .scopes
            .entry(scope.clone())
            .or_default()
            .sync_point = Some(point.clone());
        Ok(())
    }

    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>> {
        check_ids(page.upserts.iter().map(Record::id))?;
        check_ids(page.deletes.iter().map(|t| t.id.as_str()))?;
        let changes = page
            .upserts
            .iter()
            .map(|r| Change::Upsert(r.clone()))
            .chain(page.deletes.iter().map(|t| Change::Delete(t.clone())))
            .map(|c| row_of(&c))
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.lock_mut();
        let sd = state.scopes.entry(scope.clone()).or_default();
        let queued: HashSet<&str> = sd.ops.values().map(|o| o.op.id.as_str()).collect();
        let mut skipped = Vec::new();
        let mut writes = Vec::with_capacity(changes.len());
        for (id, mut row) in changes {
            if queued.contains(id.as_str()) {
                if !skipped.contains(&id) {
                    skipped.push(id);
                }
            } else {
                row.synced = Some(row.version);
                writes.push((id, row));
            }
        }
        for (id, row) in writes {
            sd.quarantine.remove(&id);
            sd.rows.insert(id, row);
        }
        for id in &skipped {
            sd.quarantine.remove(id);
        }
        for q in &page.quarantined {
            sd.quarantine.insert(q.id.clone(), q.clone());
        }
        sd.sync_point = Some(point.clone());
        Ok(skipped)
    }

    async fn enqueue(&self, op: PendingOp<T>) -> Result<()> {
        check_op(&op)?;
        let (id, row) = row_of(&op.change())?;
        let mut state = self.lock_mut();
        if state.op_ids.contains(&op.op_id) {
            return Err(Error::InvalidInput(format!(
                "op {} is already queued",
                op.op_id
            )));
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.op_ids.insert(op.op_id.clone());
        let sd = state.scopes.entry(op.scope.clone()).or_default();
        write_row(&mut sd.rows, id, row, false);
        sd.ops.insert(seq, OpRow { op, parked: false });
        Ok(())
    }

    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>> {
        let state = self.lock();
        let Some(sd) = state.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        Ok(sd
            .ops
            .values()
            .filter(|o| !o.parked)
            .take(limit)
            .map(|o| with_base(sd, o))
            .collect())
    }

    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()> {
        let mut state = self.lock_mut();
        let State { scopes, op_ids, .. } = &mut *state;
        let Some(sd) = scopes.get_mut(scope) else {
            return Ok(());
        };
        for ack in acks {
            let mut removed = false;
            for op_id in &ack.op_ids {
                if let Some(seq) = sd.seq_of(op_id) {
                    sd.ops.remove(&seq);
                    op_ids.remove(op_id);
                    removed = true;
                }
            }
            if let (true, Some(v), Some(row)) = (removed, ack.version, sd.rows.get_mut(&ack.id)) {
                row.synced = Some(v);
            }
        }
        if sd.is_empty() {
            scopes.remove(scope);
        }
        Ok(())
    }

    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()> {
        let mut state = self.lock_mut();
        let Some(sd) = state.scopes.get_mut(scope) else {
            return Ok(());
        };
        let wanted: HashSet<&OpId> = op_ids.iter().collect();
        for o in sd.ops.values_mut().filter(|o| wanted.contains(&o.op.op_id)) {
            o.op.attempts = o.op.attempts.saturating_add(1);
            o.op.last_error = Some(error.to_owned());
            o.parked |= park;
        }
        Ok(())
    }

    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        let state = self.lock();
        let Some(sd) = state.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        Ok(sd
            .ops
            .values()
            .filter(|o| o.parked)
            .map(|o| with_base(sd, o))
            .collect())
    }

    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let mut state = self.lock_mut();
        let Some(sd) = state.scopes.get_mut(scope) else {
            return Ok(());
        };
        let wanted: HashSet<&OpId> = op_ids.iter().collect();
        for o in sd
            .ops
            .values_mut()
            .filter(|o| o.parked && wanted.contains(&o.op.op_id))
        {
            o.parked = false;
            o.op.attempts = 0;
        }
        Ok(())
    }

    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let mut state = self.lock_mut();
        let State {
            scopes,
            op_ids: all,
            ..
        } = &mut *state;
        let Some(sd) = scopes.get_mut(scope) else {
            return Ok(());
        };
        let wanted: HashSet<&OpId> = op_ids.iter().collect();
        sd.ops.retain(|_, o| {
            let keep = !wanted.contains(&o.op.op_id);
            if !keep {
                all.remove(&o.op.op_id);
            }
            keep
        });
        if sd.is_empty() {
            scopes.remove(scope);
        }
        Ok(())
    }

    async fn settle_conflict(&self, scope: &SyncScope, settlement: Settlement<T>) -> Result<()> {
        let Settlement {
            id,
            settled_ops,
            remote_version,
            local,
            requeue,
        } = settlement;
        check_ids([id.as_str()])?;
        if let Some(op) = &requeue {
            check_op(op)?;
            if &op.scope != scope {
                return Err(Error::InvalidInput(
                    "requeued op belongs to another scope".into(),
                ));
            }
        }
        let local_row = match &local {
            Some(change) => {
                if change.id() != id {
                    return Err(Error::InvalidInput(format!(
                        "settlement for {id:?} carries a change for {:?}",
                        change.id()
                    )));
                }
                Some(row_of(change)?.1)
            }
            None => None,
        };
        let mut state = self.lock_mut();
        if let Some(op) = &requeue
            && state.op_ids.contains(&op.op_id)
            && !settled_ops.contains(&op.op_id)
        {
            return Err(Error::InvalidInput(format!(
                "op {} is already queued",
                op.op_id
            )));
        }
        let State {
            scopes,
            op_ids,
            next_seq,
        } = &mut *state;
        let sd = scopes.entry(scope.clone()).or_default();
        let mut first_seq: Option<u64> = None;
        for op_id in &settled_ops {
            if let Some(seq) = sd.seq_of(op_id) {
                sd.ops.remove(&seq);
                op_ids.remove(op_id);
                first_seq = Some(first_seq.map_or(seq, |f| f.min(seq)));
            }
        }
        if let Some(row) = local_row
            && !sd.has_ops_for(&id)
        {
            write_row(&mut sd.rows, id.clone(), row, false);
        }
        if let Some(row) = sd.rows.get_mut(&id) {
            row.synced = remote_version;
        }
        if let Some(op) = requeue {
            let seq = first_seq.unwrap_or_else(|| {
                let s = *next_seq;
                *next_seq += 1;
                s
            });
            op_ids.insert(op.op_id.clone());
            sd.ops.insert(seq, OpRow { op, parked: false });
        }
        if sd.is_empty() {
            scopes.remove(scope);
        }
        Ok(())
    }

    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        let state = self.lock();
        let mut status = QueueStatus::default();
        if let Some(sd) = state.scopes.get(scope) {
            for o in sd.ops.values() {
                if o.parked {
                    status.parked += 1;
                } else {
                    status.pending += 1;
                }
            }
            status.quarantined = sd.quarantine.len();
        }
        Ok(status)
    }

    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        let state = self.lock();
        Ok(state
            .scopes
            .get(scope)
            .map(|sd| sd.quarantine.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        Ok(self
            .lock()
            .scopes
            .get(scope)
            .and_then(|sd| sd.pause.clone()))
    }

    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()> {
        let mut state = self.lock_mut();
        match pause {
            Some(p) => state.scopes.entry(scope.clone()).or_default().pause = Some(p.clone()),
            None => {
                if let Some(sd) = state.scopes.get_mut(scope) {
                    sd.pause = None;
                    if sd.is_empty() {
                        state.scopes.remove(scope);
                    }
                }
            }
        }
        Ok(())
    }

    async fn scopes(&self) -> Result<Vec<SyncScope>> {
        let state = self.lock();
        let set: BTreeSet<&SyncScope> = state
            .scopes
            .iter()
            .filter(|(_, sd)| !sd.is_empty())
            .map(|(s, _)| s)
            .collect();
        Ok(set.into_iter().cloned().collect())
    }

    async fn reconcile_rows(&self, scope: &SyncScope) -> Result<Vec<(String, Timestamp)>> {
        Ok(self.synced_rows(scope))
    }

    async fn apply_reconciled(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        self.apply_reconciled_rows(scope, fetched, removed)
    }

    /// Changes with every call that may have changed the store (through any handle sharing
    /// it: the store lives in this process only).
    async fn change_token(&self) -> Result<Option<u64>> {
        Ok(Some(self.generation.load(Ordering::SeqCst)))
    }
}
