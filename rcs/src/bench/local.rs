//! `rcs bench local`: `SqliteLocalStore` against raw rusqlite, in one run, on the same rows.
//!
//! (a) Applying pulled rows: `apply_remote` in pages of `--page` rows (each page and its sync
//!     point in one transaction, queued-op check included) against a raw batched upsert
//!     (`INSERT ... ON CONFLICT DO UPDATE`, a cached statement, one transaction per page).
//! (b) A durable offline write: `enqueue` (local row + pending op in one transaction committed
//!     with `synchronous=FULL`, so it survives a power loss; awaited from a task on a runtime
//!     worker, as an app would) against a raw single-row upsert transaction on a connection
//!     that stays at `synchronous=FULL` (the same durability, with no switching:
//!     `enqueue_ratio`). For scale, the same raw transaction at `synchronous=NORMAL`
//!     (`raw_txn_normal_us`, survives a process crash only) and the cost of switching the level
//!     to FULL and back around a transaction, as the store does (`sync_switch_us`).
//!
//! Both sides use separate files in one temporary folder with the same pragmas (WAL,
//! `synchronous=NORMAL` for pulled pages) and the same `items` table and indexes, start from
//! the same generated rows, and serialize each record to JSON inside the timed region. The
//! sides alternate page for page and write for write (the raw side inline, with no thread hop;
//! who goes first rotates too), so background load hits them alike; figures are totals over
//! `--rounds` fresh pairs of files.
//!
//! `--encrypted` instead compares the store on an encrypted file with the store on a plain one
//! (`encryption_ratio`; see `bench/encrypted.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::{TestRecord, ts};
use remote_cache_sync::{Cursor, Delta, LocalStore, OpKind, PendingOp, SyncPoint, SyncScope};
use rusqlite::{Connection, params};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Rows to apply.
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Rows per pulled page / raw transaction.
    #[arg(long, default_value_t = 1_000)]
    page: usize,
    /// Offline writes to time (one at a time).
    #[arg(long, default_value_t = 2_000)]
    writes: usize,
    /// Rounds, each on a fresh pair of files (figures are totals over all rounds).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Also compare the store on an encrypted file with the store on a plain one
    /// (`encryption_ratio`; needs an rcs built with `--features encryption`).
    #[arg(long)]
    encrypted: bool,
}

/// The raw side's table: the same shape and indexes as the store's `items`.
const RAW_SCHEMA: &str = "
    CREATE TABLE items (
        scope TEXT NOT NULL, id TEXT NOT NULL, data TEXT, updated_at INTEGER NOT NULL,
        deleted_at INTEGER, synced_version INTEGER, PRIMARY KEY (scope, id)
    ) WITHOUT ROWID;
    CREATE INDEX items_since ON items (scope, updated_at, id) WHERE deleted_at IS NULL;
";

const RAW_UPSERT: &str = "INSERT INTO items (scope, id, data, updated_at, synced_version) \
     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, synced_version = excluded.synced_version";

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

/// Records with UUID v7 ids (time-ordered, as the crate recommends) and ~120 bytes of JSON.
fn generate(rows: usize, rng: &mut StdRng) -> Vec<TestRecord> {
    (0..rows)
        .map(|i| {
            let title: Vec<&str> = (0..3)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect();
            TestRecord::new(
                uuid::Uuid::now_v7().to_string(),
                title.join(" "),
                ts(i as i64),
            )
            .with_n(rng.random_range(0..1_000_000))
        })
        .collect()
}

fn open_raw(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(RAW_SCHEMA)?;
    Ok(conn)
}

/// A second connection to the raw file that commits with `synchronous=FULL` (the level is per
/// connection): the baseline of a durable write.
fn open_raw_full(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    anyhow::ensure!(level == 2, "synchronous is {level}, not FULL");
    Ok(conn)
}

fn nanos(r: &TestRecord) -> i64 {
    r.updated_at.as_nanosecond() as i64
}

/// One raw page: one transaction, one cached statement.
fn raw_page(conn: &mut Connection, scope: &str, rows: &[TestRecord]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(RAW_UPSERT)?;
        for r in rows {
            let json = serde_json::to_string(r)?;
            stmt.execute(params![scope, r.id, json, nanos(r)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// One raw single-row upsert transaction.
fn raw_write(conn: &mut Connection, scope: &str, r: &TestRecord) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let json = serde_json::to_string(r)?;
        tx.prepare_cached(RAW_UPSERT)?
            .execute(params![scope, r.id, json, nanos(r)])?;
    }
    tx.commit()?;
    Ok(())
}

/// Pulled pages applied through the store, interleaved page for page with the raw upsert so
/// both see the same background noise. Returns (ours, raw) total times.
async fn apply(
    store: &SqliteLocalStore<TestRecord>,
    raw: &mut Connection,
    scope: &SyncScope,
    pages: &[Delta<TestRecord>],
) -> anyhow::Result<(Duration, Duration)> {
    let canonical = scope.canonical();
    let (mut ours, mut raws) = (Duration::ZERO, Duration::ZERO);
    for (i, p) in pages.iter().enumerate() {
        let point = SyncPoint {
            cursor: p.cursor.clone(),
            server_time: p.server_time,
        };
        for side in [i % 2, 1 - i % 2] {
            let start = Instant::now();
            if side == 0 {
                let skipped = store.apply_remote(scope, p, &point).await?;
                ours += start.elapsed();
                anyhow::ensure!(
                    skipped.is_empty(),
                    "nothing is queued, nothing may be skipped"
                );
            } else {
                // The raw side runs inline: no thread hop, the bare cost of the transaction.
                raw_page(raw, &canonical, &p.upserts)?;
                raws += start.elapsed();
            }
        }
    }
    Ok((ours, raws))
}

/// Latencies of the write sides.
#[derive(Default)]
struct WriteTimes {
    /// `enqueue` (FULL).
    ours: Vec<Duration>,
    /// Raw single-row transaction at FULL: the baseline.
    raw_full: Vec<Duration>,
    /// Raw single-row transaction at NORMAL, for scale.
    raw_normal: Vec<Duration>,
    /// `PRAGMA synchronous = FULL` then `= NORMAL`, as the store runs around a durable write.
    switch: Vec<Duration>,
}

/// Offline writes, interleaved one for one with raw transactions (who goes first rotates) so
/// all sides see the same background noise.
async fn writes(
    store: &SqliteLocalStore<TestRecord>,
    raw: &mut Connection,
    raw_full: &mut Connection,
    scope: &SyncScope,
    edits: &[TestRecord],
    t: &mut WriteTimes,
) -> anyhow::Result<()> {
    let canonical = scope.canonical();
    for (i, r) in edits.iter().enumerate() {
        let mut op = Some(PendingOp::upsert(scope.clone(), OpKind::Update, r.clone()));
        for k in 0..3 {
            let start = Instant::now();
            // The raw sides run inline: no thread hop, the bare cost of the transaction.
            match (i + k) % 3 {
                0 => {
                    store.enqueue(op.take().expect("once")).await?;
                    t.ours.push(start.elapsed());
                }
                1 => {
                    raw_write(raw_full, &canonical, r)?;
                    t.raw_full.push(start.elapsed());
                }
                _ => {
                    raw_write(raw, &canonical, r)?;
                    t.raw_normal.push(start.elapsed());
                }
            }
        }
        let start = Instant::now();
        raw.execute_batch("PRAGMA synchronous = FULL")?;
        raw.execute_batch("PRAGMA synchronous = NORMAL")?;
        t.switch.push(start.elapsed());
    }
    Ok(())
}

/// `--encrypted`: the store on an encrypted file against the store on a plain file.
async fn encrypted(
    dir: &Path,
    args: &Args,
    scope: &SyncScope,
    pages: &[Delta<TestRecord>],
    edits: &[TestRecord],
) -> anyhow::Result<()> {
    let mut plain = super::encrypted::Side::default();
    let mut enc = super::encrypted::Side::default();
    for round in 0..args.rounds {
        let (p, e) = super::encrypted::round(dir, round, scope, pages, edits).await?;
        eprintln!(
            "round {round}: apply {:.0} rows/s encrypted vs {:.0} rows/s plain",
            per_s(args.rows, e.apply),
            per_s(args.rows, p.apply),
        );
        plain.apply += p.apply;
        plain.enqueue.extend(p.enqueue);
        enc.apply += e.apply;
        enc.enqueue.extend(e.enqueue);
    }
    let total_rows = args.rows * args.rounds;
    println!("rows: {}", args.rows);
    println!("rounds: {}", args.rounds);
    println!("page_rows: {}", args.page);
    println!(
        "plain_apply_rows_per_s: {:.0}",
        per_s(total_rows, plain.apply)
    );
    println!(
        "encrypted_apply_rows_per_s: {:.0}",
        per_s(total_rows, enc.apply)
    );
    println!(
        "encryption_ratio: {:.3}",
        enc.apply.as_secs_f64() / plain.apply.as_secs_f64()
    );
    println!("writes: {}", args.writes);
    println!("plain_enqueue_us: {:.1}", mean_us(&plain.enqueue));
    println!("encrypted_enqueue_us: {:.1}", mean_us(&enc.enqueue));
    println!(
        "encryption_enqueue_ratio: {:.3}",
        mean_us(&enc.enqueue) / mean_us(&plain.enqueue)
    );
    Ok(())
}

fn per_s(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

fn mean_us(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6 / d.len().max(1) as f64
}

fn p50_us(mut d: Vec<Duration>) -> f64 {
    d.sort();
    d.get(d.len() / 2).map_or(0.0, |x| x.as_secs_f64() * 1e6)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Measure from a spawned task, i.e. on a runtime worker thread, like application code.
    tokio::spawn(measure(args)).await?
}

async fn measure(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rows > 0 && args.page > 0 && args.rounds > 0,
        "rows, page and rounds must be positive"
    );
    let mut rng = StdRng::seed_from_u64(7);
    let rows = generate(args.rows, &mut rng);
    let avg_json = rows
        .iter()
        .take(1000)
        .map(|r| serde_json::to_string(r).map(|s| s.len()))
        .sum::<Result<usize, _>>()?
        / rows.len().min(1000);
    let scope = SyncScope::new("records", [("owner", "bench")])?;
    let pages: Vec<Delta<TestRecord>> = rows
        .chunks(args.page)
        .enumerate()
        .map(|(i, chunk)| Delta {
            quarantined: Vec::new(),
            upserts: chunk.to_vec(),
            deletes: Vec::new(),
            server_time: ts(i as i64),
            cursor: Some(Cursor::new(i.to_string())),
            has_more: true,
        })
        .collect();
    // Offline edits of existing rows, spread over the table.
    let edits: Vec<TestRecord> = (0..args.writes)
        .map(|i| {
            let mut r = rows[rng.random_range(0..rows.len())].clone();
            r.title = format!("edited {i}");
            r.updated_at = ts(args.rows as i64 + i as i64);
            r
        })
        .collect();

    let dir = tempfile::tempdir().context("temporary folder")?;
    if args.encrypted {
        return encrypted(dir.path(), &args, &scope, &pages, &edits).await;
    }
    let (mut ours_apply, mut raw_apply) = (Duration::ZERO, Duration::ZERO);
    let mut w = WriteTimes::default();
    for round in 0..args.rounds {
        let raw_path = dir.path().join(format!("raw-{round}.db"));
        let mut raw = open_raw(&raw_path)?;
        let mut raw_full = open_raw_full(&raw_path)?;
        let store =
            SqliteLocalStore::<TestRecord>::open(dir.path().join(format!("ours-{round}.db")))
                .await?;
        let (oa, ra) = apply(&store, &mut raw, &scope, &pages).await?;
        let mut rw = WriteTimes::default();
        writes(&store, &mut raw, &mut raw_full, &scope, &edits, &mut rw).await?;
        let status = store.queue_status(&scope).await?;
        anyhow::ensure!(status.pending == args.writes, "every write is queued");
        eprintln!(
            "round {round}: apply {:.0} rows/s vs raw {:.0} rows/s; enqueue {:.1} us vs raw FULL {:.1} us (NORMAL {:.1} us)",
            per_s(args.rows, oa),
            per_s(args.rows, ra),
            mean_us(&rw.ours),
            mean_us(&rw.raw_full),
            mean_us(&rw.raw_normal),
        );
        ours_apply += oa;
        raw_apply += ra;
        w.ours.extend(rw.ours);
        w.raw_full.extend(rw.raw_full);
        w.raw_normal.extend(rw.raw_normal);
        w.switch.extend(rw.switch);
    }
    // Totals over every round.
    let total_rows = args.rows * args.rounds;
    let apply_rate = per_s(total_rows, ours_apply);
    let raw_rate = per_s(total_rows, raw_apply);
    let (enqueue_us, raw_txn_us) = (mean_us(&w.ours), mean_us(&w.raw_full));
    println!("rows: {}", args.rows);
    println!("rounds: {}", args.rounds);
    println!("page_rows: {}", args.page);
    println!("avg_json_bytes: {avg_json}");
    println!("apply_rows_per_s: {apply_rate:.0}");
    println!("raw_rows_per_s: {raw_rate:.0}");
    println!("apply_ratio: {:.3}", apply_rate / raw_rate);
    println!("writes: {}", args.writes);
    println!("enqueue_us: {enqueue_us:.1}");
    println!("raw_txn_us: {raw_txn_us:.1}");
    println!("enqueue_ratio: {:.3}", enqueue_us / raw_txn_us);
    println!("enqueue_p50_us: {:.1}", p50_us(w.ours));
    println!("raw_txn_p50_us: {:.1}", p50_us(w.raw_full));
    println!("raw_txn_normal_us: {:.1}", mean_us(&w.raw_normal));
    println!("sync_switch_us: {:.1}", mean_us(&w.switch));
    Ok(())
}
