//! The push transaction: the scope's lock, the op-id check, [`base_matches`] per op, one batched
//! write.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Current, PostgresRemoteStore, column};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::{applied_version, base_matches};
use crate::scope::SyncScope;
use jiff::Timestamp;

impl<T: Record> PostgresRemoteStore<T> {
    /// [`RemoteStore::push`]: one transaction under the scope's lock (see the module docs).
    pub(super) async fn push_ops(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
    ) -> Result<Vec<PushOutcome<T>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        // Encode and validate before touching the database.
        let mut prepared = Vec::with_capacity(ops.len());
        for op in ops {
            let change = op.change();
            let data = match change.record() {
                Some(r) => Some(serde_json::to_value(r)?),
                None => None,
            };
            let invalid = self.invalid_op(op, &change, data.as_ref());
            prepared.push((change, data, invalid));
        }
        let canonical = scope.canonical();
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            ops.iter()
                .map(|o| o.id.as_str())
                .filter(|id| seen.insert(*id))
                .collect()
        };
        let op_ids: Vec<&str> = ops.iter().map(|o| o.op_id.as_str()).collect();

        let mut client = self.client().await?;
        let broken = client.broken.clone();
        let e = |e: tokio_postgres::Error| self.fail(&broken, &e);
        let tx = client.transaction().await.map_err(e)?;
        // See the module docs: this lock is what keeps the cursor exact.
        let lock_key = format!("{}{canonical}", self.sql.lock_key_prefix);
        let (settings, lock, applied_stmt, current_stmt) = tokio::try_join!(
            tx.prepare_cached(&self.sql.tx_settings),
            tx.prepare_cached(&self.sql.lock_scope),
            tx.prepare_cached(&self.sql.applied_check),
            tx.prepare_cached(&self.sql.current_for_update),
        )
        .map_err(e)?;
        let [lock_timeout, idle_timeout] = &self.tx_settings;
        let settings_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [lock_timeout, idle_timeout];
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_key];
        // Pipelined: the settings apply before the lock wait starts.
        tokio::try_join!(
            tx.execute(&settings, &settings_params),
            tx.execute(&lock, &lock_params)
        )
        .map_err(e)?;
        let applied_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&canonical, &op_ids];
        let current_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&canonical, &ids];
        let (applied_rows, current_rows) = tokio::try_join!(
            tx.query(&applied_stmt, &applied_params),
            tx.query(&current_stmt, &current_params),
        )
        .map_err(e)?;
        let mut applied: HashSet<String> = applied_rows
            .iter()
            .map(|r| column(r, "op_id"))
            .collect::<Result<_>>()?;
        let mut current: HashMap<String, Current> = HashMap::with_capacity(current_rows.len());
        // Rows another writer left malformed: ops on them cannot be checked, so they are
        // rejected (with the reason) and the other ops of the push go on.
        let mut unreadable: HashMap<String, Error> = HashMap::new();
        for row in &current_rows {
            let id: String = column(row, "id")?;
            match Self::current_row(row, &id) {
                Ok(cur) => {
                    current.insert(id, cur);
                }
                Err(err) => {
                    tracing::warn!(id = %id, error = %err, "postgres row is malformed");
                    unreadable.insert(id, err);
                }
            }
        }

        let mut outcomes = Vec::with_capacity(ops.len());
        // Ids to write, in first-write order; their final state is in `current`.
        let mut written: Vec<&str> = Vec::new();
        let mut written_set: HashSet<&str> = HashSet::new();
        let mut new_applied: Vec<&str> = Vec::new();
        for (op, (change, data, invalid)) in ops.iter().zip(prepared) {
            let cur = current.get(&op.id);
            if applied.contains(op.op_id.as_str()) {
                // The version this op wrote back then, not whatever superseded it since.
                outcomes.push(PushOutcome::Applied {
                    version: applied_version(op),
                });
                continue;
            }
            if let Some(reason) = invalid {
                outcomes.push(PushOutcome::Rejected { reason });
                continue;
            }
            if let Some(err) = unreadable.get(&op.id) {
                outcomes.push(PushOutcome::undecodable_current(err));
                continue;
            }
            if !base_matches(
                op.kind,
                op.base_version,
                cur.map(|c| (c.version, c.deleted)),
            ) {
                let cur = cur.expect("base_matches accepts every op on a missing record");
                match self.current_change(&op.id, cur) {
                    Ok(c) => outcomes.push(PushOutcome::Conflict { current: Some(c) }),
                    Err(err) => outcomes.push(PushOutcome::undecodable_current(err)),
                }
                continue;
            }
            current.insert(
                op.id.clone(),
                Current {
                    version: change.version(),
                    deleted: change.is_delete(),
                    data,
                },
            );
            if written_set.insert(op.id.as_str()) {
                written.push(op.id.as_str());
            }
            applied.insert(op.op_id.0.clone());
            new_applied.push(op.op_id.as_str());
            outcomes.push(PushOutcome::Applied {
                version: applied_version(op),
            });
        }

        if !written.is_empty() {
            let finals: Vec<&Current> = written.iter().map(|id| &current[*id]).collect();
            let w_versions: Vec<String> = finals.iter().map(|c| c.version.to_string()).collect();
            let w_times: Vec<Timestamp> = finals.iter().map(|c| c.version).collect();
            let w_deleted: Vec<bool> = finals.iter().map(|c| c.deleted).collect();
            let w_data: Vec<Option<&Value>> = finals.iter().map(|c| c.data.as_ref()).collect();
            let (upsert, insert_applied) = tokio::try_join!(
                tx.prepare_cached(&self.sql.upsert_rows),
                tx.prepare_cached(&self.sql.insert_applied),
            )
            .map_err(e)?;
            tx.execute(
                &upsert,
                &[
                    &canonical,
                    &written,
                    &w_versions,
                    &w_times,
                    &w_deleted,
                    &w_data,
                ],
            )
            .await
            .map_err(e)?;
            tx.execute(&insert_applied, &[&canonical, &new_applied])
                .await
                .map_err(e)?;
            // Delivered to every listener when (and only if) the transaction commits.
            let payload = super::listen::notify_payload(&canonical);
            tx.execute(&self.sql.notify, &[&self.sql.channel, &payload])
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        tracing::debug!(
            scope = %scope,
            ops = ops.len(),
            written = written.len(),
            "postgres push committed"
        );
        Ok(outcomes)
    }
}
