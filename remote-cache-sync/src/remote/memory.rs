//! [`InMemoryRemoteStore`]: a reference remote for tests and demos.
//!
//! It behaves like a real server: every write gets the next value of a monotonic sequence, the
//! change feed is ordered by that sequence (the cursor), deletes are tombstones, pushes are
//! idempotent by (scope, op id) and checked with [`base_matches`]. It can also be told to fail, for fault
//! tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record};
use crate::remote::{RemoteStore, applied_version, base_matches};
use crate::scope::SyncScope;

#[derive(Debug)]
struct Row<T> {
    change: Change<T>,
    seq: u64,
}

#[derive(Debug)]
struct ScopeData<T> {
    rows: HashMap<String, Row<T>>,
    /// seq → id, the change feed.
    feed: BTreeMap<u64, String>,
}

impl<T> Default for ScopeData<T> {
    fn default() -> Self {
        ScopeData {
            rows: HashMap::new(),
            feed: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct State<T> {
    scopes: HashMap<SyncScope, ScopeData<T>>,
    /// Applied op ids, per scope: the same op id pushed in another scope is another op.
    applied_ops: HashSet<(SyncScope, String)>,
    seq: u64,
    offline: bool,
    rejected_ids: HashSet<String>,
}

/// An in-process remote. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct InMemoryRemoteStore<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for InMemoryRemoteStore<T> {
    fn default() -> Self {
        InMemoryRemoteStore {
            state: Mutex::new(State {
                scopes: HashMap::new(),
                applied_ops: HashSet::new(),
                seq: 0,
                offline: false,
                rejected_ids: HashSet::new(),
            }),
        }
    }
}

impl<T: Record> InMemoryRemoteStore<T> {
    /// An empty remote.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every call fails with [`Error::Unavailable`] (simulates a lost connection).
    pub fn set_offline(&self, offline: bool) {
        self.lock().offline = offline;
    }

    /// Makes every push touching record `id` fail with [`PushOutcome::Rejected`] (simulates a
    /// validation rule), for poison-op tests.
    pub fn reject_record(&self, id: impl Into<String>) {
        self.lock().rejected_ids.insert(id.into());
    }

    /// Undoes [`reject_record`](Self::reject_record).
    pub fn accept_record(&self, id: &str) {
        self.lock().rejected_ids.remove(id);
    }

    /// Every live record of a scope, ordered by id (for assertions).
    pub fn snapshot(&self, scope: &SyncScope) -> Vec<T> {
        let state = self.lock();
        let mut out: Vec<T> = state
            .scopes
            .get(scope)
            .map(|d| {
                d.rows
                    .values()
                    .filter_map(|r| live(&r.change).cloned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.id().cmp(b.id()));
        out
    }

    /// How many ops were applied (distinct (scope, op id) pairs), for idempotency checks.
    pub fn applied_op_count(&self) -> usize {
        self.lock().applied_ops.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves consistent data (every mutation is a single
        // insert), so poisoning is safe to ignore.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_online(state: &State<T>) -> Result<()> {
        if state.offline {
            Err(Error::Unavailable {
                backend: "memory",
                message: "remote is offline".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }
}

fn live<T: Record>(c: &Change<T>) -> Option<&T> {
    match c {
        Change::Upsert(r) if r.deleted_at().is_none() => Some(r),
        _ => None,
    }
}

fn parse_cursor(c: Option<&Cursor>) -> Result<u64> {
    match c {
        None => Ok(0),
        Some(c) => c
            .as_str()
            .parse()
            .map_err(|_| Error::InvalidInput(format!("bad cursor {:?}", c.as_str()))),
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for InMemoryRemoteStore<T> {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let state = self.lock();
        Self::check_online(&state)?;
        Ok(state
            .scopes
            .get(scope)
            .and_then(|d| d.rows.get(id))
            .and_then(|r| live(&r.change).cloned()))
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let from = parse_cursor(since)?;
        let limit = limit.max(1);
        let state = self.lock();
        Self::check_online(&state)?;
        let mut delta = Delta::empty(Timestamp::now(), since.cloned());
        let Some(data) = state.scopes.get(scope) else {
            return Ok(delta);
        };
        let mut iter = data.feed.range(from + 1..);
        for (seq, id) in iter.by_ref().take(limit) {
            match &data.rows[id].change {
                Change::Upsert(r) => delta.upserts.push(r.clone()),
                Change::Delete(t) => delta.deletes.push(t.clone()),
            }
            delta.cursor = Some(Cursor::new(seq.to_string()));
        }
        delta.has_more = iter.next().is_some();
        Ok(delta)
    }

    async fn count_since(&self, scope: &SyncScope, since: Option<&Cursor>) -> Result<Option<u64>> {
        let from = parse_cursor(since)?;
        let state = self.lock();
        Self::check_online(&state)?;
        Ok(Some(state.scopes.get(scope).map_or(0, |data| {
            data.feed.range(from + 1..).count() as u64
        })))
    }

    /// Evaluates the spec with [`QuerySpec::apply`](crate::QuerySpec::apply) over the scope's live records.
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        query.validate()?;
        {
            let state = self.lock();
            Self::check_online(&state)?;
        }
        let rows = self.snapshot(scope);
        let json = rows
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let picked = query.apply(rows.iter().zip(&json).map(|(r, v)| (r.id(), r, v)))?;
        Ok(Some(picked.into_iter().cloned().collect()))
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        let mut guard = self.lock();
        Self::check_online(&guard)?;
        let state = &mut *guard;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            if &op.scope != scope {
                return Err(Error::InvalidInput(
                    "op scope differs from push scope".into(),
                ));
            }
            let data = state.scopes.entry(scope.clone()).or_default();
            let current = data.rows.get(&op.id).map(|r| &r.change);
            if state
                .applied_ops
                .contains(&(scope.clone(), op.op_id.0.clone()))
            {
                // The version this op wrote back then, not whatever superseded it since.
                outcomes.push(PushOutcome::Applied {
                    version: applied_version(op),
                });
                continue;
            }
            if state.rejected_ids.contains(&op.id) {
                outcomes.push(PushOutcome::Rejected {
                    reason: format!("record {} is refused by a validation rule", op.id),
                });
                continue;
            }
            let cur = current.map(|c| (c.version(), c.is_delete()));
            if !base_matches(op.kind, op.base_version, cur) {
                outcomes.push(PushOutcome::Conflict {
                    current: current.cloned(),
                });
                continue;
            }
            let change = op.change();
            state.seq += 1;
            let seq = state.seq;
            if let Some(old) = data.rows.insert(op.id.clone(), Row { change, seq }) {
                data.feed.remove(&old.seq);
            }
            data.feed.insert(seq, op.id.clone());
            state
                .applied_ops
                .insert((scope.clone(), op.op_id.0.clone()));
            outcomes.push(PushOutcome::Applied {
                version: applied_version(op),
            });
        }
        Ok(outcomes)
    }

    async fn server_time(&self) -> Result<Timestamp> {
        Self::check_online(&self.lock())?;
        Ok(Timestamp::now())
    }
}
