//! `rcs crash-test`: kills a syncing client process with SIGKILL at random moments and checks
//! that no write is lost, duplicated or invented, and that the cache converges with the remote.
//!
//! The harness runs our HTTP server in-process (the same [`Server`] as `rcs serve`, with bearer
//! tokens, over a SQLite file via [`SqliteRemoteStore`]) with a [`tap::Tap`] between the server
//! and its storage. Then, for each kill:
//!
//! 1. It picks a kill point: while an `enqueue_*` transaction runs; a push held before the remote
//!    applies it; a push applied and committed whose answer is held (between the remote's
//!    acknowledgement and the local queue update); just after a push was answered (the client's
//!    ack transaction); a follow-up pull page held (earlier pages committed); just after a page
//!    was answered (the client's apply transaction); or a uniformly random time.
//! 2. It starts a worker — this binary, `crash-test --worker` — that makes random offline writes
//!    through an [`Orchestrator`] over the SQLite cache file (the same file every round) and
//!    syncs. Meanwhile, in the harness process, **another device** (an [`Orchestrator`] with its
//!    own SQLite cache, through a second server on the same storage, never killed) makes random
//!    offline writes to the **same record ids** and syncs, so the killed client's pushes meet
//!    conflicts (settled by last-write-wins, requeued when the local write is newer) and its
//!    pulls bring the other device's writes; the harness also writes other records straight
//!    into the storage so pulls have pages to deliver. When the kill point is reached, SIGKILL.
//! 3. It syncs the other device until its queue is empty, reopens the killed client's cache and
//!    syncs it until its queue is empty, lets the other device pull, and checks against the
//!    worker's journal ([`journal`]), the other device's writes and the log of applied ops:
//!    - *lost*: a record does not end as last-write-wins says it must. Its final remote state
//!      must be a write of that record (either device) whose version is at least that of the
//!      newest acknowledged write to it (an enqueue that returned Ok): that write, or a newer
//!      one the killed client made but could not acknowledge before the kill. An acknowledged
//!      write that lost a conflict to a newer write, or was folded into a newer write of its
//!      own queue, is superseded, not lost. A deleted record and an absent one read the same,
//!      so any tombstone (or none) satisfies a delete among those writes;
//!    - *duplicated*: one write (identified by its unique version) applied by more than one op;
//!    - *phantom*: a remote state or applied op that matches no write of either device;
//!    - *diverged*: either cache's live records differ from the remote's after the sync, or ops
//!      stay queued or parked.
//!
//!    Every kill aimed at a point (all but `random`) counts as a hit when the point was
//!    reached before the kill; the run fails when an aimed point was chosen but never reached,
//!    since then the kills did not test what they claim.
//!
//! Prints `key: value` lines and fails when anything is lost, duplicated, invented or diverged,
//! or an aimed kill point was never reached.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::{
    JsonRecord, LastWriteWins, LocalStore, OpKind, Orchestrator, OrchestratorConfig, PendingOp,
    Record, RemoteStore, SyncScope,
};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};

mod check;
mod journal;
mod kill_point;
mod other_device;
mod report;
mod tap;
mod worker;

use check::{Final, live_records, remote_state};
use journal::History;
use kill_point::{KILL_POINTS, KillPoint};
use other_device::{OtherDevice, direct_writes};
use report::Figures;
use tap::{AppliedLog, Tap, Trigger, nanos};

/// Arguments of `rcs crash-test`.
#[derive(clap::Args)]
pub struct Args {
    /// How many times to kill the client.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Seed of the kill schedule and the workload (random when not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Client record ids to write to (a small pool makes updates, deletes and re-creates common).
    #[arg(long, default_value_t = 150)]
    records: usize,
    /// Keep the server database, cache and journal in this folder (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: run as the client process the harness kills.
    #[arg(long, hide = true)]
    worker: bool,
    #[arg(long, hide = true)]
    cache: Option<PathBuf>,
    #[arg(long, hide = true)]
    journal: Option<PathBuf>,
    #[arg(long, hide = true)]
    remote: Option<String>,
    #[arg(long, hide = true)]
    run_id: Option<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    after_ns: Option<i64>,
    /// Internal, to prove the checks can fail: after each kill, `drop-queued` discards the
    /// newest queued op from the cache (a lost write), `duplicate` pushes an applied write again
    /// under a new op id (a duplicated write); `blind` never lets an aimed point fire (kills
    /// that miss their aim).
    #[arg(long, hide = true, value_parser = ["drop-queued", "duplicate", "blind"])]
    sabotage: Option<String>,
}

const TOKEN_ENV: &str = "RCS_CRASH_TOKEN";
/// Records the harness writes directly into the storage (`s-NN`), so pulls have pages.
const DIRECT_RECORDS: usize = 40;

fn scope_for(run_id: &str) -> anyhow::Result<SyncScope> {
    Ok(SyncScope::new("crash", [("run", run_id)])?)
}

/// Entry point of `rcs crash-test`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.worker {
        let need =
            |o: Option<PathBuf>, what: &str| o.with_context(|| format!("--{what} is required"));
        return worker::run(worker::WorkerArgs {
            cache: need(args.cache, "cache")?,
            journal: need(args.journal, "journal")?,
            remote: args.remote.context("--remote is required")?,
            token: std::env::var(TOKEN_ENV).context("token missing")?,
            scope: scope_for(args.run_id.as_deref().context("--run-id is required")?)?,
            seed: args.seed.unwrap_or(0),
            after_ns: args.after_ns.unwrap_or(0),
            records: args.records.max(1),
        })
        .await;
    }
    Harness::run(args).await
}

struct Harness {
    rng: StdRng,
    seed: u64,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    url: String,
    token: String,
    run_id: String,
    scope: SyncScope,
    storage: Arc<SqliteRemoteStore<JsonRecord>>,
    /// The killed client's way to the storage (the only one armed).
    tap: Arc<Tap>,
    /// The other device's way to the same storage.
    other_tap: Arc<Tap>,
    /// The other device; taken while a round runs it.
    other: Option<OtherDevice>,
    events: mpsc::UnboundedReceiver<Trigger>,
    release: watch::Sender<u64>,
    http: Arc<HttpRemoteStore<JsonRecord>>,
    history: History,
    figures: Figures,
    records: usize,
    sabotage: Option<String>,
}

impl Harness {
    async fn run(args: Args) -> anyhow::Result<()> {
        let started = Instant::now();
        let seed = args.seed.unwrap_or_else(rand::random);
        let (tmp, dir) = match &args.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::tempdir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let storage = Arc::new(
            SqliteRemoteStore::<JsonRecord>::open(dir.join("server.sqlite"))
                .await
                .context("open server storage")?,
        );
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (release, release_rx) = watch::channel(0u64);
        let applied = Arc::new(Mutex::new(AppliedLog::default()));
        let tap = Arc::new(Tap::new(
            storage.clone(),
            ev_tx.clone(),
            release_rx.clone(),
            applied.clone(),
        ));
        // Never armed: the other device's requests must not fire the killed client's triggers.
        let other_tap = Arc::new(Tap::new(storage.clone(), ev_tx, release_rx, applied));
        let token = format!("{:032x}", rand::random::<u128>());
        let mut tokens = StaticTokens::new();
        tokens.grant(token.clone(), ScopePattern::new(Some("crash".into()), []))?;
        let tokens = Arc::new(tokens);
        let mut urls = Vec::new();
        for t in [&tap, &other_tap] {
            let router = Server::from_arcs(t.clone(), tokens.clone()).into_router();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            urls.push(format!("http://{}", listener.local_addr()?));
            tokio::spawn(serve(listener, router, std::future::pending()));
        }
        let (url, other_url) = (urls[0].clone(), urls[1].clone());
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        let http_to = |url: &str| {
            HttpRemoteStore::<JsonRecord>::builder(url.to_owned())
                .token(token.clone())
                .timeout(Duration::from_secs(20))
                .build()
        };
        let http = Arc::new(http_to(&url)?);
        let scope = scope_for(&run_id)?;
        let other = OtherDevice::open(
            &dir.join("other-device.sqlite"),
            Arc::new(http_to(&other_url)?),
            scope.clone(),
            args.records.max(1),
        )
        .await?;
        let mut h = Harness {
            rng: StdRng::seed_from_u64(seed),
            seed,
            dir,
            _tmp: tmp,
            url,
            token,
            scope,
            run_id,
            storage,
            tap,
            other_tap,
            other: Some(other),
            events,
            release,
            http,
            history: History::default(),
            figures: Figures::default(),
            records: args.records.max(1),
            sabotage: args.sabotage.clone(),
        };
        eprintln!(
            "crash-test: seed {seed}, {} kills, files in {}",
            args.kills,
            h.dir.display()
        );
        for i in 0..args.kills {
            h.round(i)
                .await
                .with_context(|| format!("kill {}", i + 1))?;
            if (i + 1) % 100 == 0 {
                eprintln!(
                    "crash-test: {} kills, {:.0?} elapsed, lost {} duplicated {} diverged {}",
                    i + 1,
                    started.elapsed(),
                    h.figures.lost.len(),
                    h.figures.duplicated.len(),
                    h.figures.diverged
                );
            }
        }
        h.report(args.kills, started.elapsed())
    }

    fn cache_path(&self) -> PathBuf {
        self.dir.join("cache.sqlite")
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.txt")
    }

    async fn round(&mut self, i: usize) -> anyhow::Result<()> {
        let point = KILL_POINTS[self.rng.random_range(0..KILL_POINTS.len())];
        let blind = self.sabotage.as_deref() == Some("blind");
        while self.events.try_recv().is_ok() {}
        if let Some(t) = point.trigger() {
            let skip = self.rng.random_range(0..4);
            self.tap.arm(t, if blind { u32::MAX } else { skip });
        }
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("crash-test")
            .arg("--worker")
            .arg("--cache")
            .arg(self.cache_path())
            .arg("--journal")
            .arg(self.journal_path())
            .arg("--remote")
            .arg(&self.url)
            .arg("--run-id")
            .arg(&self.run_id)
            .arg(format!("--after-ns={}", self.history.max_version()))
            .arg(format!("--seed={}", self.seed.wrapping_add(i as u64)))
            .arg(format!("--records={}", self.records))
            .env(TOKEN_ENV, &self.token)
            .env("RCS_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start worker")?;
        // Drain the worker's stdout (an `E` line before each enqueue).
        let stdout = child.stdout.take().context("worker stdout")?;
        let (enq_tx, mut enq_rx) = mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "E" {
                    let _ = enq_tx.send(());
                }
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let direct = tokio::spawn(direct_writes(
            self.storage.clone(),
            self.scope.clone(),
            self.rng.random(),
            stop_rx,
        ));
        let (stop_other_tx, stop_other_rx) = tokio::sync::oneshot::channel();
        let mut other = self.other.take().context("the other device is running")?;
        let other_seed = self.rng.random();
        let other = tokio::spawn(async move {
            let writes = other.write_until(other_seed, stop_other_rx).await;
            (other, writes)
        });

        let deadline = Duration::from_secs(3);
        let hit = match point {
            KillPoint::Random => {
                let ms = self.rng.random_range(5..600);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                true
            }
            KillPoint::Enqueue => {
                let nth = self.rng.random_range(1..40);
                let nth = if blind { usize::MAX } else { nth };
                let reached = tokio::time::timeout(deadline, async {
                    for _ in 0..nth {
                        if enq_rx.recv().await.is_none() {
                            return false;
                        }
                    }
                    true
                })
                .await
                .unwrap_or(false);
                if reached {
                    spin(Duration::from_micros(self.rng.random_range(0..600)));
                }
                reached
            }
            _ => {
                let reached = matches!(
                    tokio::time::timeout(deadline, self.events.recv()).await,
                    Ok(Some(_))
                );
                if reached && matches!(point, KillPoint::PushAnswered | KillPoint::PageAnswered) {
                    spin(Duration::from_micros(self.rng.random_range(0..1500)));
                }
                reached
            }
        };
        child.start_kill().context("kill worker")?;
        let status = child.wait().await?;
        if status.code().is_some() {
            bail!("the worker exited by itself ({status}) instead of being killed");
        }
        *self.figures.kills.entry(point.name()).or_default() += 1;
        match (point, hit) {
            (KillPoint::Random, _) => {}
            (_, true) => *self.figures.hits.entry(point.name()).or_default() += 1,
            (_, false) => self.figures.missed_aims += 1,
        }
        self.tap.disarm();
        self.release.send_modify(|e| *e += 1);
        let _ = stop_tx.send(());
        let _ = stop_other_tx.send(());
        direct.await??;
        let (other, other_writes) = other.await?;
        self.other = Some(other);
        self.history.add_other(other_writes?)?;
        let t = Instant::now();
        while self.tap.inflight() > 0 {
            if t.elapsed() > Duration::from_secs(15) {
                bail!("server requests still running 15 s after the kill");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.history.catch_up(&self.journal_path())?;
        let wal = PathBuf::from(format!("{}-wal", self.cache_path().display()));
        if let Some(frames) = uncommitted_wal_frames(&wal)? {
            self.figures.torn_wal_commits += 1;
            self.figures.torn_wal_frames += frames;
        }
        self.recover_and_check(point).await
    }

    async fn recover_and_check(&mut self, point: KillPoint) -> anyhow::Result<()> {
        let local = Arc::new(
            crate::cache::open::<JsonRecord>(self.cache_path())
                .await
                .context("reopen cache after the kill")?,
        );
        // Was the write being enqueued at the kill committed? (Kills should land on both sides.)
        let last = self.history.last_unacked().cloned();
        if let (KillPoint::Enqueue, Some(last)) = (point, last) {
            let queued = local
                .pending_ops(&self.scope, usize::MAX)
                .await?
                .iter()
                .any(|op| nanos(op.updated_at) == last.version);
            let applied = self.tap.applied().by_version.contains_key(&last.version);
            if queued || applied {
                self.figures.enqueue_kills_committed += 1;
            } else {
                self.figures.enqueue_kills_not_committed += 1;
            }
        }
        self.sabotage(&local).await?;
        // The other device pushes what it still has queued (meeting the killed client's pushes
        // that reached the remote before the kill).
        self.drain_other().await?;
        let orch = Orchestrator::with(
            local.clone(),
            self.http.clone(),
            Arc::new(LastWriteWins::new()),
            OrchestratorConfig::default().sync_after_write(false),
        );
        let t = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            match orch.synchronize(&self.scope).await {
                Ok(report) => {
                    self.figures.recovery_pushed += report.pushed;
                    self.figures.recovery_conflicts += report.conflicts;
                    if orch.status(&self.scope).await?.pending == 0 {
                        break;
                    }
                }
                Err(e) => eprintln!("crash-test: recovery sync failed: {e}"),
            }
            if tries == 5 {
                break;
            }
        }
        self.figures.max_recovery = self.figures.max_recovery.max(t.elapsed());
        let status = orch.status(&self.scope).await?;
        let local_live = live_records(local.as_ref(), &self.scope).await?;
        drop(orch);
        drop(local);
        // Then it pulls what the recovered client pushed.
        self.drain_other().await?;
        let other = self.other.as_ref().context("the other device is running")?;
        let other_status = other.orch.status(&self.scope).await?;
        let other_live = live_records(other.local.as_ref(), &self.scope).await?;
        let remote = remote_state(&self.storage, &self.scope).await?;
        let remote_live: BTreeMap<String, Value> = remote
            .iter()
            .filter_map(|(id, s)| match s {
                Final::Live(r) => Some((id.clone(), Value::Object(r.value().clone()))),
                Final::Gone(_) => None,
            })
            .collect();
        for (device, live, status) in [
            ("cache", &local_live, status),
            ("other device's cache", &other_live, other_status),
        ] {
            if *live != remote_live || status.pending > 0 || status.parked > 0 {
                self.figures.diverged += 1;
                let only_local: Vec<_> = live
                    .iter()
                    .filter(|(k, v)| remote_live.get(*k) != Some(v))
                    .map(|(k, _)| k)
                    .collect();
                let only_remote: Vec<_> = remote_live
                    .iter()
                    .filter(|(k, v)| live.get(*k) != Some(v))
                    .map(|(k, _)| k)
                    .collect();
                eprintln!(
                    "crash-test: DIVERGED after a {} kill: {device}: pending {} parked {}, differing in the cache {only_local:?}, on remote {only_remote:?}",
                    point.name(),
                    status.pending,
                    status.parked
                );
            }
        }
        self.check_writes(&remote, point);
        Ok(())
    }

    /// Syncs the other device until its queue is empty (at most 5 syncs).
    async fn drain_other(&mut self) -> anyhow::Result<()> {
        let other = self.other.as_ref().context("the other device is running")?;
        for _ in 0..5 {
            match other.orch.synchronize(&self.scope).await {
                Ok(report) => {
                    self.figures.other_settled_conflicts += report.conflicts;
                    if other.orch.status(&self.scope).await?.pending == 0 {
                        break;
                    }
                }
                Err(e) => eprintln!("crash-test: the other device's sync failed: {e}"),
            }
        }
        Ok(())
    }

    /// Breaks the rules on purpose (`--sabotage`), so a test can show the checks catch it.
    async fn sabotage(&self, local: &SqliteLocalStore<JsonRecord>) -> anyhow::Result<()> {
        match self.sabotage.as_deref() {
            Some("drop-queued") => {
                let ops = local.pending_ops(&self.scope, usize::MAX).await?;
                if let Some(op) = ops.last() {
                    local
                        .discard_ops(&self.scope, std::slice::from_ref(&op.op_id))
                        .await?;
                }
            }
            Some("duplicate") => {
                let remote = remote_state(&self.storage, &self.scope).await?;
                let live = remote.values().find_map(|f| match f {
                    Final::Live(r) if r.id().starts_with("c-") => Some(r.clone()),
                    _ => None,
                });
                if let Some(r) = live {
                    let mut op = PendingOp::upsert(self.scope.clone(), OpKind::Update, r.clone());
                    op.base_version = Some(r.updated_at());
                    self.http.push(&self.scope, &[op]).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether the cache's WAL ends in frames of a transaction that never committed (the kill hit
/// while SQLite was writing the commit): `Some(frames)` past the last commit frame, counting a
/// partly written frame. Read before anything reopens the file (recovery discards them).
///
/// WAL format: a 32-byte header (page size at 8, salts at 16 and 20), then frames of a 24-byte
/// header (commit size at 4, non-zero on a commit frame; salts at 8 and 12, equal to the
/// header's for frames of the current generation) and one page.
fn uncommitted_wal_frames(wal: &std::path::Path) -> anyhow::Result<Option<usize>> {
    let bytes = match std::fs::read(wal) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if bytes.len() < 32 {
        return Ok(None);
    }
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if be(0) & !1 != 0x377f_0682 {
        return Ok(None);
    }
    let page = be(8) as usize;
    let salts = (be(16), be(20));
    let frame = 24 + page;
    let mut at = 32;
    let mut since_commit = 0;
    while at + 24 <= bytes.len() && (be(at + 8), be(at + 12)) == salts {
        if at + frame > bytes.len() {
            since_commit += 1; // cut short mid-frame
            break;
        }
        since_commit = if be(at + 4) != 0 { 0 } else { since_commit + 1 };
        at += frame;
    }
    Ok((since_commit > 0).then_some(since_commit))
}

/// Busy-waits (timers have millisecond resolution; kill points are finer).
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}
