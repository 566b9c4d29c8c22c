//! The client process the harness kills: random offline creates, updates and deletes through an
//! [`Orchestrator`] over a SQLite cache file, synced against the server over HTTP, forever.
//!
//! Every write gets a version (`updated_at` / `deleted_at`) newer than any before it (and even;
//! the other device's versions are odd), journaled
//! as an intent before `enqueue_*` and acknowledged after it returns Ok. Right before each
//! enqueue the worker prints `E` on stdout, so the harness can aim a kill at the enqueue's
//! transaction.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remote_cache_sync::orchestrator::Backoff;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    CachePolicy, JsonRecord, LastWriteWins, OpKind, Orchestrator, OrchestratorConfig, SyncScope,
    Timestamp,
};

use super::journal::JournalWriter;
use super::tap::nanos;

/// What the harness tells a worker.
pub struct WorkerArgs {
    pub cache: PathBuf,
    pub journal: PathBuf,
    pub remote: String,
    pub token: String,
    pub scope: SyncScope,
    pub seed: u64,
    /// Versions must be newer than this (the journal's largest).
    pub after_ns: i64,
    /// Record ids are `c-0 .. c-{records-1}`.
    pub records: usize,
}

/// The client's record ids.
pub fn client_id(n: usize) -> String {
    format!("c-{n:04}")
}

/// Records both devices write half of the time, so their writes meet often.
const HOT_RECORDS: usize = 12;

/// A record id to write, out of `records`: half of the time one of the first few.
pub fn pick_record(rng: &mut StdRng, records: usize) -> String {
    let n = if rng.random_bool(0.5) {
        rng.random_range(0..records.min(HOT_RECORDS))
    } else {
        rng.random_range(0..records)
    };
    client_id(n)
}

/// A device's next write: a record ([`pick_record`]) and what to do with it: create it when the
/// device's cache does not hold it live, else update it, or delete it a quarter of the time.
pub async fn pick_write(
    rng: &mut StdRng,
    orch: &Orchestrator<JsonRecord>,
    scope: &SyncScope,
    records: usize,
) -> anyhow::Result<(String, OpKind)> {
    let id = pick_record(rng, records);
    let live = orch
        .get(scope, &id, CachePolicy::OfflineOnly)
        .await?
        .is_some();
    let kind = match live {
        false => OpKind::Create,
        true if rng.random_bool(0.25) => OpKind::Delete,
        true => OpKind::Update,
    };
    Ok((id, kind))
}

/// Runs until killed.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let local = Arc::new(
        crate::cache::open::<JsonRecord>(&args.cache)
            .await
            .context("open cache")?,
    );
    let remote = HttpRemoteStore::<JsonRecord>::builder(args.remote.clone())
        .token(args.token.clone())
        .timeout(Duration::from_secs(20))
        .build()?;
    // Vary the batching so kills land in different shapes of push and pull.
    let config = OrchestratorConfig::default()
        .push_batch_size([1, 3, 8, 50][rng.random_range(0..4)])
        .pull_page_size([2, 4, 16][rng.random_range(0..3)])
        .sync_after_write(rng.random_bool(0.5))
        .backoff(Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(100),
            max_retries: 3,
        });
    let orch = Orchestrator::with(
        local,
        Arc::new(remote),
        Arc::new(LastWriteWins::new()),
        config,
    );
    let mut journal = JournalWriter::open(&args.journal)?;
    let mut last = args.after_ns;
    let mut n = 0u64;
    loop {
        for _ in 0..rng.random_range(1..=12) {
            let (id, kind) = pick_write(&mut rng, &orch, &args.scope, args.records).await?;
            // A version newer than every earlier write, also across restarts, and even (the
            // other device's are odd, so no two writes share one).
            let version = nanos(Timestamp::now()).max(last + 1);
            let version = version + (version & 1);
            last = version;
            n += 1;
            journal.intent(version, kind, &id)?;
            {
                let mut out = std::io::stdout().lock();
                out.write_all(b"E\n")?;
                out.flush()?;
            }
            let at = Timestamp::from_nanosecond(i128::from(version))?;
            let result = match kind {
                OpKind::Delete => orch.enqueue_delete_at(&args.scope, &id, at).await,
                kind => {
                    let pad: String = (0..rng.random_range(0..120))
                        .map(|_| rng.random_range(b'a'..=b'z') as char)
                        .collect();
                    let record = JsonRecord::from_value(serde_json::json!({
                        "id": id,
                        "updated_at": at.to_string(),
                        "wid": version.to_string(),
                        "n": n,
                        "seed": args.seed,
                        "pad": pad,
                    }))?;
                    if kind == OpKind::Create {
                        orch.enqueue_create(&args.scope, record).await
                    } else {
                        orch.enqueue_update(&args.scope, record).await
                    }
                }
            };
            match result {
                Ok(_) => journal.ack(version)?,
                Err(e) => {
                    journal.failed(version)?;
                    tracing::error!(error = %e, "enqueue failed");
                }
            }
        }
        if rng.random_bool(0.7)
            && let Err(e) = orch.synchronize(&args.scope).await
        {
            tracing::debug!(error = %e, "sync failed");
        }
        if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
    }
}
