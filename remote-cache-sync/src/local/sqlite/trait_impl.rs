//! The [`LocalStore`] implementation of [`SqliteLocalStore`]: each call runs its statements from
//! `db.rs` on the writer or the reader connection (see `blocking`).

use super::*;

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> LocalStore<T> for SqliteLocalStore<T> {
    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        let (scope, id) = (scope.canonical(), id.to_owned());
        self.lookup(move |c| db::get(c, &scope, &id)).await
    }

    async fn version(&self, scope: &SyncScope, id: &str) -> Result<Option<(Timestamp, bool)>> {
        let (scope, id) = (scope.canonical(), id.to_owned());
        self.lookup(move |c| scope_state::version(c, &scope, &id))
            .await
    }

    async fn query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        let scope = scope.canonical();
        let compiled = query::compile(&scope, spec, &self.inner.indexed)?;
        let hinted = compiled.sql.contains(" INDEXED BY ");
        match self.read(move |c| db::query(c, &compiled)).await {
            // Should the planner ever refuse the index hint, run the query without it.
            Err(Error::Storage { message, .. })
                if hinted && message.contains("no query solution") =>
            {
                tracing::warn!(
                    ?spec,
                    "sqlite local store: index hint refused, querying without it"
                );
                let plain = query::compile(&scope, spec, &[])?;
                self.read(move |c| db::query(c, &plain)).await
            }
            other => other,
        }
    }

    async fn query_since(&self, scope: &SyncScope, since: Timestamp) -> Result<Vec<T>> {
        let scope = scope.canonical();
        // Before the representable range: everything; after it: nothing.
        let since = ts_to_sql(since).unwrap_or(if since < Timestamp::UNIX_EPOCH {
            i64::MIN
        } else {
            i64::MAX
        });
        self.read(move |c| db::query_since(c, &scope, since)).await
    }

    async fn upsert_many(&self, scope: &SyncScope, items: &[T]) -> Result<()> {
        let rows = encode_records(items.iter())?;
        let scope = scope.canonical();
        self.run(move |c| db::upsert_lww(c, &scope, &rows)).await
    }

    async fn delete_many(&self, scope: &SyncScope, tombstones: &[Tombstone]) -> Result<()> {
        let mut rows = EncodedRows::with_capacity(tombstones.len());
        for t in tombstones {
            rows.push_tombstone(t)?;
        }
        let rows = rows.finish()?;
        let scope = scope.canonical();
        self.run(move |c| db::upsert_lww(c, &scope, &rows)).await
    }

    async fn sync_point(&self, scope: &SyncScope) -> Result<Option<SyncPoint>> {
        let scope = scope.canonical();
        self.lookup(move |c| db::sync_point(c, &scope)).await
    }

    async fn save_sync_point(&self, scope: &SyncScope, point: &SyncPoint) -> Result<()> {
        let point = db::encode_point(point)?;
        let scope = scope.canonical();
        self.run(move |c| db::save_sync_point(c, &scope, &point))
            .await
    }

    async fn apply_remote(
        &self,
        scope: &SyncScope,
        page: &Delta<T>,
        point: &SyncPoint,
    ) -> Result<Vec<String>> {
        let mut rows = EncodedRows::with_capacity(page.len());
        for r in &page.upserts {
            rows.push_record(r)?;
        }
        for t in &page.deletes {
            rows.push_tombstone(t)?;
        }
        let rows = rows.finish()?;
        let point = db::encode_point(point)?;
        let scope = scope.canonical();
        let quarantined = page.quarantined.clone();
        self.run(move |c| db::apply_remote(c, &scope, &rows, &quarantined, &point))
            .await
    }

    async fn enqueue(&self, op: PendingOp<T>) -> Result<()> {
        check_op(&op)?;
        let op = EncodedOp::new(op)?;
        self.run_durable(move |c| db::enqueue(c, &op)).await
    }

    async fn pending_ops(&self, scope: &SyncScope, limit: usize) -> Result<Vec<PendingOp<T>>> {
        let scope = scope.clone();
        self.read(move |c| db::ops(c, &scope, &scope.canonical(), false, limit))
            .await
    }

    async fn ack_ops(&self, scope: &SyncScope, acks: &[Ack]) -> Result<()> {
        let acks = acks
            .iter()
            .map(|a| {
                Ok((
                    a.id.clone(),
                    op_id_strings(&a.op_ids),
                    a.version.map(ts_to_sql).transpose()?,
                ))
            })
            .collect::<Result<Vec<db::EncodedAck>>>()?;
        let scope = scope.canonical();
        self.run(move |c| db::ack_ops(c, &scope, &acks)).await
    }

    async fn reject_ops(
        &self,
        scope: &SyncScope,
        op_ids: &[OpId],
        error: &str,
        park: bool,
    ) -> Result<()> {
        let (scope, ids, error) = (scope.canonical(), op_id_strings(op_ids), error.to_owned());
        self.run(move |c| db::reject_ops(c, &scope, &ids, &error, park))
            .await
    }

    async fn parked_ops(&self, scope: &SyncScope) -> Result<Vec<PendingOp<T>>> {
        let scope = scope.clone();
        self.read(move |c| db::ops(c, &scope, &scope.canonical(), true, usize::MAX))
            .await
    }

    async fn unpark_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let (scope, ids) = (scope.canonical(), op_id_strings(op_ids));
        self.run_durable(move |c| db::unpark_ops(c, &scope, &ids))
            .await
    }

    async fn discard_ops(&self, scope: &SyncScope, op_ids: &[OpId]) -> Result<()> {
        let (scope, ids) = (scope.canonical(), op_id_strings(op_ids));
        self.run_durable(move |c| db::discard_ops(c, &scope, &ids))
            .await
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
        let local = match &local {
            Some(change) if change.id() != id => {
                return Err(Error::InvalidInput(format!(
                    "settlement for {id:?} carries a change for {:?}",
                    change.id()
                )));
            }
            Some(change) => Some(encode_change(change)?),
            None => None,
        };
        let requeue = match requeue {
            Some(op) => {
                check_op(&op)?;
                if &op.scope != scope {
                    return Err(Error::InvalidInput(
                        "requeued op belongs to another scope".into(),
                    ));
                }
                Some(EncodedOp::new(op)?)
            }
            None => None,
        };
        let s = EncodedSettlement {
            id,
            settled_ops: op_id_strings(&settled_ops),
            remote_version: remote_version.map(ts_to_sql).transpose()?,
            local,
            requeue,
        };
        let scope = scope.canonical();
        // A requeued op is the user's kept write: as durable as its enqueue was. Without one
        // the settlement only replaces ops and rows that a replay would settle again.
        if s.requeue.is_some() {
            self.run_durable(move |c| db::settle_conflict(c, &scope, &s))
                .await
        } else {
            self.run(move |c| db::settle_conflict(c, &scope, &s)).await
        }
    }

    async fn queue_status(&self, scope: &SyncScope) -> Result<QueueStatus> {
        let scope = scope.canonical();
        let (pending, parked, quarantined) = self
            .lookup(move |c| {
                let (pending, parked) = db::queue_status(c, &scope)?;
                Ok((pending, parked, scope_state::quarantine_count(c, &scope)?))
            })
            .await?;
        let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(QueueStatus {
            pending: count(pending),
            parked: count(parked),
            quarantined: count(quarantined),
        })
    }

    async fn quarantined(&self, scope: &SyncScope) -> Result<Vec<QuarantinedRow>> {
        let scope = scope.canonical();
        self.read(move |c| scope_state::quarantined(c, &scope))
            .await
    }

    async fn pause(&self, scope: &SyncScope) -> Result<Option<ScopePause>> {
        let scope = scope.canonical();
        self.lookup(move |c| scope_state::pause(c, &scope)).await
    }

    async fn set_pause(&self, scope: &SyncScope, pause: Option<&ScopePause>) -> Result<()> {
        let scope = scope.canonical();
        let pause = pause
            .map(|p| Ok::<_, Error>((p.reason.clone(), ts_to_sql(p.since)?)))
            .transpose()?;
        self.run(move |c| scope_state::set_pause(c, &scope, pause.as_ref()))
            .await
    }

    async fn scopes(&self) -> Result<Vec<SyncScope>> {
        self.read(db::scopes_mut).await
    }

    /// SQLite's `PRAGMA data_version` on a connection of its own: it changes whenever another
    /// connection (this store's writer, another store on the file, another process) committed.
    /// `None` for an in-memory database and in the browser, where no other connection writes.
    async fn change_token(&self) -> Result<Option<u64>> {
        change::token(self).await
    }

    /// One scan of the scope's rows (`items` primary key), no JSON decoded.
    async fn reconcile_rows(&self, scope: &SyncScope) -> Result<Vec<(String, Timestamp)>> {
        let scope = scope.canonical();
        let rows = self.read(move |c| reconcile::rows(c, &scope)).await?;
        rows.into_iter()
            .map(|(id, v)| Ok((id, error::ts_from_sql(v)?)))
            .collect()
    }

    async fn apply_reconciled(
        &self,
        scope: &SyncScope,
        fetched: &[T],
        removed: &[(String, Timestamp)],
    ) -> Result<Vec<String>> {
        let fetched = encode_records(fetched.iter())?;
        let removed = removed
            .iter()
            .map(|(id, v)| Ok((id.clone(), ts_to_sql(*v)?)))
            .collect::<Result<Vec<_>>>()?;
        let scope = scope.canonical();
        self.run(move |c| reconcile::apply(c, &scope, &fetched, &removed))
            .await
    }
}
