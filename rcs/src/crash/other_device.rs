//! The other device and the direct writers: the killed client's concurrent peers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::{
    JsonRecord, LastWriteWins, OpKind, Orchestrator, OrchestratorConfig, RemoteStore, SyncScope,
    Timestamp, Tombstone,
};

use super::journal::{Device, Intent};
use super::tap::nanos;
use super::{DIRECT_RECORDS, worker};

/// The other device: an [`Orchestrator`] with its own SQLite cache, in the harness process
/// (never killed), writing the killed client's record ids through its own server on the same
/// storage.
pub(super) struct OtherDevice {
    pub(super) orch: Orchestrator<JsonRecord>,
    pub(super) local: Arc<SqliteLocalStore<JsonRecord>>,
    pub(super) scope: SyncScope,
    pub(super) records: usize,
    /// Its newest version (its versions are odd and increasing).
    pub(super) last: i64,
    /// Conflicts its resolver settled while writing.
    pub(super) settled_conflicts: usize,
}

impl OtherDevice {
    pub(super) async fn open(
        cache: &std::path::Path,
        remote: Arc<HttpRemoteStore<JsonRecord>>,
        scope: SyncScope,
        records: usize,
    ) -> anyhow::Result<Self> {
        let local = Arc::new(
            crate::cache::open::<JsonRecord>(cache)
                .await
                .context("open the other device's cache")?,
        );
        let orch = Orchestrator::with(
            local.clone(),
            remote,
            Arc::new(LastWriteWins::new()),
            OrchestratorConfig::default()
                .sync_after_write(false)
                .push_batch_size(8)
                .pull_page_size(16),
        );
        Ok(OtherDevice {
            orch,
            local,
            scope,
            records,
            last: 0,
            settled_conflicts: 0,
        })
    }

    /// Random creates, updates and deletes of the killed client's record ids, a few
    /// milliseconds apart, with a sync after about every third, until `stop`. Returns the
    /// writes (a write is acknowledged when its enqueue returned Ok).
    pub(super) async fn write_until(
        &mut self,
        seed: u64,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) -> anyhow::Result<Vec<Intent>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut writes = Vec::new();
        loop {
            // Stop only between writes and syncs, never inside one.
            tokio::select! {
                _ = &mut stop => return Ok(writes),
                _ = tokio::time::sleep(Duration::from_millis(rng.random_range(1..8))) => {}
            }
            let (id, kind) =
                worker::pick_write(&mut rng, &self.orch, &self.scope, self.records).await?;
            // Odd: the killed client's versions are even.
            let version = nanos(Timestamp::now()).max(self.last + 1) | 1;
            self.last = version;
            let at = Timestamp::from_nanosecond(i128::from(version))?;
            let result = match kind {
                OpKind::Delete => self.orch.enqueue_delete_at(&self.scope, &id, at).await,
                kind => {
                    let record = JsonRecord::from_value(serde_json::json!({
                        "id": id,
                        "updated_at": at.to_string(),
                        "wid": version.to_string(),
                        "by": "other device",
                    }))?;
                    if kind == OpKind::Create {
                        self.orch.enqueue_create(&self.scope, record).await
                    } else {
                        self.orch.enqueue_update(&self.scope, record).await
                    }
                }
            };
            if let Err(e) = &result {
                eprintln!("crash-test: the other device's enqueue failed: {e}");
            }
            writes.push(Intent {
                version,
                kind,
                id,
                acked: result.is_ok(),
                device: Device::Other,
            });
            if rng.random_bool(0.3) {
                match self.orch.synchronize(&self.scope).await {
                    Ok(report) => self.settled_conflicts += report.conflicts,
                    Err(e) => eprintln!("crash-test: the other device's sync failed: {e}"),
                }
            }
        }
    }
}

/// Writes of records of their own (`s-NN`) straight into the storage while the worker runs, so
/// the worker's pulls have pages to deliver.
pub(super) async fn direct_writes(
    storage: Arc<SqliteRemoteStore<JsonRecord>>,
    scope: SyncScope,
    seed: u64,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(rng.random_range(1..6))) => {}
        }
        let id = format!("s-{:02}", rng.random_range(0..DIRECT_RECORDS));
        let now = Timestamp::now();
        if rng.random_bool(0.2) {
            storage
                .batch_delete(
                    &scope,
                    &[Tombstone {
                        id,
                        deleted_at: now,
                    }],
                )
                .await?;
        } else {
            let r = JsonRecord::from_value(serde_json::json!({
                "id": id, "updated_at": now.to_string(), "by": "other device", "x": rng.random::<u32>(),
            }))?;
            storage.batch_upsert(&scope, &[r]).await?;
        }
    }
}
