//! Pushes into the storage: one `BEGIN IMMEDIATE` transaction per push, each applied op taking
//! the next sequence value, replays answered from the per-scope applied-op ids (see the parent
//! module's docs).

use jiff::Timestamp;
use rusqlite::{TransactionBehavior, params};

use super::{SqliteRemoteStore, parse_version, read_row, scope_id, sql_err};
use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::record::{Change, Record};
use crate::remote::{applied_version, base_matches};
use crate::scope::SyncScope;

impl<T: Record> SqliteRemoteStore<T> {
    /// [`RemoteStore::push`](crate::RemoteStore::push).
    pub(super) async fn push_ops(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
    ) -> Result<Vec<PushOutcome<T>>> {
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // Encode outside the lock.
        let mut prepared = Vec::with_capacity(ops.len());
        for op in ops {
            let body = match (&op.payload, op.kind) {
                (Some(p), OpKind::Create | OpKind::Update) => serde_json::to_string(p)?,
                _ => String::new(),
            };
            prepared.push((op.clone(), body));
        }
        let scope = scope.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let canonical = scope.canonical();
            tx.prepare_cached("INSERT OR IGNORE INTO rcs_remote_scopes (canonical) VALUES (?1)")
                .map_err(sql_err)?
                .execute([&canonical])
                .map_err(sql_err)?;
            let sid = scope_id(&tx, &scope)?.ok_or_else(|| Error::storage("scope row vanished"))?;
            let mut seq: i64 = tx
                .query_row("SELECT value FROM rcs_remote_meta WHERE key = 'seq'", [], |r| r.get(0))
                .map_err(sql_err)?;
            let start_seq = seq;
            let now_ms = Timestamp::now().as_millisecond();
            let mut outcomes = Vec::with_capacity(prepared.len());
            {
                let mut seen = tx
                    .prepare_cached(
                        "SELECT 1 FROM rcs_remote_applied_ops WHERE scope_id = ?1 AND op_id = ?2",
                    )
                    .map_err(sql_err)?;
                let mut seen_v1 = tx
                    .prepare_cached("SELECT 1 FROM rcs_remote_applied_ops_v1 WHERE op_id = ?1")
                    .map_err(sql_err)?;
                let mut mark = tx
                    .prepare_cached(
                        "INSERT INTO rcs_remote_applied_ops (scope_id, op_id, applied_at)
                         VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_err)?;
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO rcs_remote_records (seq, scope_id, id, kind, deleted, version, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (scope_id, id) DO UPDATE SET
                           seq = excluded.seq, kind = excluded.kind, deleted = excluded.deleted,
                           version = excluded.version, body = excluded.body",
                    )
                    .map_err(sql_err)?;
                for (op, body) in &prepared {
                    let current = read_row(&tx, sid, &op.id)?;
                    let version = applied_version(op);
                    if seen.exists(params![sid, op.op_id.as_str()]).map_err(sql_err)? {
                        // The version this op wrote back then, not whatever superseded it since.
                        outcomes.push(PushOutcome::Applied { version });
                        continue;
                    }
                    // An id remembered by schema version 1 (scope unknown) counts only where
                    // the record still holds exactly what the op wrote.
                    if let Some(row) = &current
                        && parse_version(&row.version)? == version
                        && row.deleted == op.change().is_delete()
                        && seen_v1.exists([op.op_id.as_str()]).map_err(sql_err)?
                    {
                        outcomes.push(PushOutcome::Applied { version });
                        continue;
                    }
                    if let Some(reason) = validate_op(op) {
                        outcomes.push(PushOutcome::Rejected { reason });
                        continue;
                    }
                    let cur = match &current {
                        Some(row) => Some((parse_version(&row.version)?, row.deleted)),
                        None => None,
                    };
                    if !base_matches(op.kind, op.base_version, cur) {
                        // A stored version that does not decode is a verdict on this op only.
                        outcomes.push(match current.as_ref().map(|row| row.change::<T>(&op.id)) {
                            None => PushOutcome::Conflict { current: None },
                            Some(Ok(c)) => PushOutcome::Conflict { current: Some(c) },
                            Some(Err(e)) => PushOutcome::undecodable_current(e),
                        });
                        continue;
                    }
                    let change = op.change();
                    let kind = i64::from(matches!(change, Change::Delete(_)));
                    seq += 1;
                    upsert
                        .execute(params![
                            seq,
                            sid,
                            op.id,
                            kind,
                            i64::from(change.is_delete()),
                            version.to_string(),
                            body
                        ])
                        .map_err(sql_err)?;
                    mark.execute(params![sid, op.op_id.as_str(), now_ms])
                        .map_err(sql_err)?;
                    outcomes.push(PushOutcome::Applied { version });
                }
            }
            if seq != start_seq {
                tx.execute("UPDATE rcs_remote_meta SET value = ?1 WHERE key = 'seq'", [seq])
                    .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)?;
            Ok(outcomes)
        })
        .await
    }
}

/// Checks an op's shape before applying it; `Some(reason)` rejects it.
fn validate_op<T: Record>(op: &PendingOp<T>) -> Option<String> {
    match (op.kind, &op.payload) {
        (OpKind::Create | OpKind::Update, None) => {
            Some(format!("{:?} op for {} carries no record", op.kind, op.id))
        }
        (OpKind::Create | OpKind::Update, Some(p)) if p.id() != op.id => Some(format!(
            "op targets id {:?} but its record has id {:?}",
            op.id,
            p.id()
        )),
        _ => None,
    }
}
