//! `rcs bench live --clients N`: write-to-screen latency and the memory of idle subscribers.
//!
//! 1. Starts `rcs serve` as a child process over a SQLite file (or, with `--postgres URL`, two
//!    `rcs serve` sharing that database: the writer talks to server 1, every other client to
//!    server 2, so each change crosses `LISTEN/NOTIFY`). The servers are processes of their
//!    own so their memory is measured apart from the clients'.
//! 2. **Idle clients**: `--idle` event-stream subscriptions (`RemoteStore::subscribe` of the
//!    HTTP remote, each its own connection and scope: what a connected app that changes nothing
//!    costs the server) are opened and each waits for the server's `ready`.
//!    `kb_per_idle_client` is the growth of the (watchers') server's resident memory divided by
//!    their number; `client_kb_per_idle_client` is the same for this process. They stay
//!    subscribed for the rest of the run.
//! 3. **Baseline**: a bare push through server 1 followed by a pull through server 2 until the
//!    change shows, sequentially (`baseline_push_pull_*`): the least work any client must do to
//!    see a change, without events, caches or watches.
//! 4. **Latency**: `--clients` watching clients, each a full app (own SQLite cache,
//!    [`Orchestrator`] with background sync driven by the
//!    event stream and a one-minute safety interval, a `watch` on the scope), and a writer app
//!    that enqueues `--changes` updates at a steady `--rate` (each pushed at once by its
//!    sync-after-write). For every client and change, the time from just before the writer's
//!    enqueue to the watch yielding a result that shows it: `write_to_visible_p50_ms`,
//!    `write_to_visible_p99_ms` (`--clients` × `--changes` samples). `p50_ratio_vs_push_pull`
//!    compares with the baseline.
//! 5. `server_rss_mb` is the (watchers') server's resident memory at the end, with the idle
//!    subscriptions and the clients still connected.
//!
//! Everything shares the machine: `load_avg_1m` is printed to tell a quiet run from a busy one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::postgres::redact_connection_string;
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::{
    LastWriteWins, OpKind, Orchestrator, OrchestratorConfig, PendingOp, RemoteStore, SyncScope,
    Timestamp,
};

mod clients;
mod process;

use clients::{Client, Plan, Warm};
use process::{ServeProcess, load_average, self_rss_kb};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Watching clients (full apps with their own cache).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Changes the writer makes.
    #[arg(long, default_value_t = 1_000)]
    changes: usize,
    /// Changes per second the writer enqueues.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Records the changes rotate over (the size of every watch's result).
    #[arg(long, default_value_t = 10)]
    records: usize,
    /// Idle subscribed clients whose memory is measured.
    #[arg(long, default_value_t = 1_000)]
    idle: usize,
    /// Rounds of the push-then-pull baseline.
    #[arg(long, default_value_t = 200)]
    baseline_rounds: usize,
    /// Runs two `rcs serve` sharing this PostgreSQL database instead of one over SQLite.
    #[arg(
        long,
        value_name = "URL",
        env = "RCS_BENCH_POSTGRES",
        hide_env_values = true
    )]
    postgres: Option<String>,
}

/// The `q` quantile of sorted `samples` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "unknown".into(),
        |kb| format!("{:.1}", kb as f64 / 1024.0),
    )
}

fn per_client(before: Option<u64>, after: Option<u64>, n: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => format!("{:.1}", (a as f64 - b as f64) / n as f64),
        _ => "unknown".into(),
    }
}

/// The servers: one, or two sharing PostgreSQL (`writer` and `watchers` differ then).
struct Servers {
    writer: ServeProcess,
    watchers: Option<ServeProcess>,
}

impl Servers {
    fn watchers(&self) -> &ServeProcess {
        self.watchers.as_ref().unwrap_or(&self.writer)
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.clients > 0 && args.changes > 0 && args.records > 0 && args.rate > 0.0,
        "--clients, --changes, --records and --rate must be positive"
    );
    let dir = tempfile::tempdir()?;
    let run_id = format!("{:016x}", rand::random::<u64>());
    let token = format!("{:032x}", rand::random::<u128>());
    let spec = format!("{token}:records,bench=*");
    let servers = match &args.postgres {
        None => {
            let db = dir.path().join("server.sqlite");
            let db = db.to_str().context("temporary path is not UTF-8")?;
            Servers {
                writer: ServeProcess::start(db, &spec, &dir.path().join("serve.log")).await?,
                watchers: None,
            }
        }
        Some(url) => {
            let start = |n: u32| {
                let log = dir.path().join(format!("serve{n}.log"));
                let (url, spec) = (url.clone(), spec.clone());
                async move {
                    ServeProcess::start(&url, &spec, &log)
                        .await
                        .with_context(|| format!("on {}", redact_connection_string(&url)))
                }
            };
            Servers {
                writer: start(1).await?,
                watchers: Some(start(2).await?),
            }
        }
    };
    let remote = |url: &str| {
        HttpRemoteStore::<TestRecord>::builder(url)
            .token(token.clone())
            .build()
    };
    let scope = SyncScope::new("records", [("bench", run_id.as_str())])?;
    let watch_url = servers.watchers().url.clone();

    // Idle subscribers.
    let idle_remote = remote(&watch_url)?;
    // One health round trip first, so the server's lazily built parts exist before measuring.
    idle_remote.server_time().await.context("server health")?;
    let (server_before, client_before) = (servers.watchers().rss_kb(), self_rss_kb());
    let mut idle = Vec::with_capacity(args.idle);
    for i in 0..args.idle {
        let s = SyncScope::new("records", [("bench", format!("{run_id}-idle-{i}"))])?;
        idle.push(
            idle_remote
                .subscribe(&[s])
                .context("the HTTP remote must subscribe")?,
        );
    }
    let ready = futures::future::join_all(
        idle.iter_mut()
            .map(|s| tokio::time::timeout(Duration::from_secs(60), s.next())),
    )
    .await;
    ensure!(
        ready.iter().all(|r| matches!(r, Ok(Some(_)))),
        "an idle subscription never became ready"
    );
    // Let the server's per-connection buffers settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (server_after, client_after) = (servers.watchers().rss_kb(), self_rss_kb());

    let baseline = sorted(
        baseline(
            &remote(&servers.writer.url)?,
            &remote(&watch_url)?,
            &run_id,
            args.baseline_rounds,
        )
        .await?,
    );

    // Watching clients.
    let plan = Plan::new(args.records, args.changes);
    let warm = Arc::new(Warm::default());
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        clients.push(
            Client::start(
                i,
                dir.path(),
                remote(&watch_url)?,
                &scope,
                plan.clone(),
                warm.clone(),
            )
            .await?,
        );
    }

    // The writer: creates the records (the warm-up every client must see), then changes them.
    let writer = Orchestrator::with(
        Arc::new(SqliteLocalStore::<TestRecord>::open(dir.path().join("writer.sqlite")).await?),
        Arc::new(remote(&servers.writer.url)?),
        Arc::new(LastWriteWins::default()),
        OrchestratorConfig::default().sync_after_write(true),
    );
    for j in 0..args.records {
        writer
            .enqueue_create(
                &scope,
                TestRecord::new(Plan::id(j), "live", Timestamp::now()),
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while warm.count.load(std::sync::atomic::Ordering::SeqCst) < args.clients {
        let left = deadline
            .checked_duration_since(Instant::now())
            .context("the clients never showed the warm-up records")?;
        let notified = warm.notify.notified();
        if warm.count.load(std::sync::atomic::Ordering::SeqCst) >= args.clients {
            break;
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
    }

    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    for s in 1..=args.changes {
        tick.tick().await;
        let record =
            TestRecord::new(Plan::id(s % args.records), "live", Timestamp::now()).with_n(s as i64);
        let _ = plan.enqueued[s].set(Instant::now());
        writer.enqueue_update(&scope, record).await?;
    }
    let writing = started.elapsed();
    let mut latencies = Vec::with_capacity(args.clients * args.changes);
    for client in clients {
        latencies.extend(client.finish(Duration::from_secs(120)).await?);
    }
    writer.flush(Duration::from_secs(30)).await?;
    writer.shutdown().await;
    let latencies = sorted(latencies);
    let server_rss = servers.watchers().rss_kb();
    let server_peak = servers.watchers().peak_rss_kb();
    drop(idle);

    let p50 = quantile(&latencies, 0.50);
    let base50 = quantile(&baseline, 0.50);
    match &args.postgres {
        None => println!("servers: 1 (SQLite)"),
        Some(_) => println!("servers: 2 (shared PostgreSQL; writer on 1, clients on 2)"),
    }
    println!("clients: {}", args.clients);
    println!("changes: {}", args.changes);
    println!(
        "rate_per_s: {:.1}",
        args.changes as f64 / writing.as_secs_f64()
    );
    println!("samples: {}", latencies.len());
    println!("write_to_visible_p50_ms: {p50:.2}");
    println!("write_to_visible_p99_ms: {:.2}", quantile(&latencies, 0.99));
    println!(
        "write_to_visible_max_ms: {:.2}",
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("baseline_push_pull_p50_ms: {base50:.2}");
    println!(
        "baseline_push_pull_p99_ms: {:.2}",
        quantile(&baseline, 0.99)
    );
    println!("p50_ratio_vs_push_pull: {:.2}", p50 / base50);
    println!("idle_clients: {}", args.idle);
    println!(
        "kb_per_idle_client: {}",
        per_client(server_before, server_after, args.idle)
    );
    println!(
        "client_kb_per_idle_client: {}",
        per_client(client_before, client_after, args.idle)
    );
    println!("server_rss_mb: {}", mb(server_rss));
    println!("server_peak_rss_mb: {}", mb(server_peak));
    if servers.watchers.is_some() {
        println!("writer_server_rss_mb: {}", mb(servers.writer.rss_kb()));
    }
    match load_average() {
        Some(l) => println!("load_avg_1m: {l:.2}"),
        None => println!("load_avg_1m: unknown"),
    }
    Ok(())
}

/// Push one change through `writer`, then pull through `reader` until it shows; `rounds`
/// times. Returns each round's time in ms.
async fn baseline(
    writer: &HttpRemoteStore<TestRecord>,
    reader: &HttpRemoteStore<TestRecord>,
    run_id: &str,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let scope = SyncScope::new("records", [("bench", format!("{run_id}-base"))])?;
    let mut cursor = None;
    let mut times = Vec::with_capacity(rounds);
    let mut version = None;
    for i in 1..=rounds {
        let record = TestRecord::new("b", "base", Timestamp::now()).with_n(i as i64);
        let kind = if version.is_some() {
            OpKind::Update
        } else {
            OpKind::Create
        };
        let mut op = PendingOp::upsert(scope.clone(), kind, record);
        op.base_version = version;
        let t = Instant::now();
        let outcome = writer.push(&scope, std::slice::from_ref(&op)).await?;
        ensure!(
            matches!(
                outcome.first(),
                Some(remote_cache_sync::PushOutcome::Applied { .. })
            ),
            "baseline push not applied: {outcome:?}"
        );
        loop {
            let page = reader.fetch_since(&scope, cursor.as_ref(), 100).await?;
            cursor = page.cursor.clone();
            if let Some(r) = page.upserts.iter().find(|r| r.id == "b") {
                version = Some(r.updated_at);
                if r.n == i as i64 {
                    break;
                }
            }
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "the baseline change never showed"
            );
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}
