//! `rcs bench local --encrypted`: the store on an encrypted file (SQLCipher, feature
//! `encryption`) against the same store on a plain file, in one run, on the same rows: pulled
//! pages applied (`encryption_ratio`, target ≤ 1.5) and durable offline writes
//! (`encryption_enqueue_ratio`). The two sides alternate page for page and write for write (who
//! goes first rotates), so background load hits them alike.

use std::path::Path;
use std::time::{Duration, Instant};

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{Delta, LocalStore, OpKind, PendingOp, SyncPoint, SyncScope};

/// Totals of one side.
#[derive(Default)]
pub struct Side {
    pub apply: Duration,
    pub enqueue: Vec<Duration>,
}

/// Runs one round in `dir`: returns (plain, encrypted).
pub async fn round(
    dir: &Path,
    round: usize,
    scope: &SyncScope,
    pages: &[Delta<TestRecord>],
    edits: &[TestRecord],
) -> anyhow::Result<(Side, Side)> {
    let plain = SqliteLocalStore::<TestRecord>::open(dir.join(format!("plain-{round}.db"))).await?;
    let encrypted = open_encrypted(&dir.join(format!("encrypted-{round}.db"))).await?;
    let stores = [&plain, &encrypted];
    let mut sides = [Side::default(), Side::default()];
    for (i, p) in pages.iter().enumerate() {
        let point = SyncPoint {
            cursor: p.cursor.clone(),
            server_time: p.server_time,
        };
        for side in [i % 2, 1 - i % 2] {
            let start = Instant::now();
            stores[side].apply_remote(scope, p, &point).await?;
            sides[side].apply += start.elapsed();
        }
    }
    for (i, r) in edits.iter().enumerate() {
        for side in [i % 2, 1 - i % 2] {
            let op = PendingOp::upsert(scope.clone(), OpKind::Update, r.clone());
            let start = Instant::now();
            stores[side].enqueue(op).await?;
            sides[side].enqueue.push(start.elapsed());
        }
    }
    let [plain, encrypted] = sides;
    Ok((plain, encrypted))
}

#[cfg(feature = "encryption")]
async fn open_encrypted(path: &Path) -> anyhow::Result<SqliteLocalStore<TestRecord>> {
    Ok(SqliteLocalStore::builder(path)
        .key("rcs bench local --encrypted")
        .open()
        .await?)
}

#[cfg(not(feature = "encryption"))]
async fn open_encrypted(_path: &Path) -> anyhow::Result<SqliteLocalStore<TestRecord>> {
    anyhow::bail!("--encrypted needs an rcs built with `--features encryption`")
}
