//! `rcs demo`: two devices, each with its own SQLite cache file, edit offline, conflict, delete,
//! and converge through an in-process remote. Exits non-zero if they do not converge.

use std::sync::Arc;

use anyhow::{Context, bail};
use jiff::{Timestamp, ToSpan};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::{
    CachePolicy, Change, ConflictResolver, FnResolver, InMemoryRemoteStore, LastWriteWins,
    Orchestrator, OrchestratorConfig, QuerySpec, Record, RemoteStore, Resolution, SyncScope,
};
use serde::{Deserialize, Serialize};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Keep the cache files in this folder instead of a temporary one.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// The demo's record type: a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
    updated_at: Timestamp,
}

impl Record for Note {
    fn id(&self) -> &str {
        &self.id
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
}

fn describe(c: Option<&Change<Note>>) -> String {
    match c {
        Some(Change::Upsert(n)) => format!(
            "{:?} (edited {})",
            n.text,
            n.updated_at.strftime("%H:%M:%S")
        ),
        Some(Change::Delete(t)) => format!("deleted at {}", t.deleted_at.strftime("%H:%M:%S")),
        None => "absent".into(),
    }
}

/// Last-write-wins, narrated.
fn narrated_lww(device: &'static str) -> Arc<dyn ConflictResolver<Note>> {
    let lww = LastWriteWins::<Note>::new();
    Arc::new(FnResolver::new(
        move |local: &Change<Note>, remote: Option<&Change<Note>>| {
            let decision = lww.resolve(local, remote);
            let verdict = match &decision {
                Resolution::KeepLocal => "keep the local edit (it is newer)",
                Resolution::TakeRemote => "take the remote version (it is newer)",
                Resolution::Merged(_) => "merge",
            };
            println!(
                "  ! conflict on {:?} while {device} syncs: local {} vs remote {} -> last write wins: {verdict}",
                local.id(),
                describe(Some(local)),
                describe(remote)
            );
            decision
        },
    ))
}

struct Device {
    name: &'static str,
    sync: Orchestrator<Note>,
}

impl Device {
    async fn open(
        name: &'static str,
        dir: &std::path::Path,
        remote: Arc<dyn RemoteStore<Note>>,
    ) -> anyhow::Result<Self> {
        let path = dir.join(format!("{name}.sqlite"));
        let local = SqliteLocalStore::<Note>::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let config = OrchestratorConfig::default().sync_after_write(false);
        println!("  {name}: cache file {}", path.display());
        Ok(Device {
            name,
            sync: Orchestrator::with(Arc::new(local), remote, narrated_lww(name), config),
        })
    }

    async fn notes(&self, scope: &SyncScope) -> anyhow::Result<Vec<Note>> {
        Ok(self
            .sync
            .read(scope, CachePolicy::OfflineOnly, &QuerySpec::new())
            .await?)
    }

    async fn sync(&self, scope: &SyncScope) -> anyhow::Result<()> {
        let r = self.sync.synchronize(scope).await?;
        println!(
            "  {} synced: pushed {}, pulled {}, conflicts {}",
            self.name, r.pushed, r.pulled, r.conflicts
        );
        Ok(())
    }

    async fn show(&self, scope: &SyncScope) -> anyhow::Result<()> {
        let notes = self.notes(scope).await?;
        let texts: Vec<_> = notes
            .iter()
            .map(|n| format!("{}={:?}", n.id, n.text))
            .collect();
        println!("  {} sees [{}]", self.name, texts.join(", "));
        Ok(())
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let remote = Arc::new(InMemoryRemoteStore::<Note>::new());
    let scope = SyncScope::new("notes", [("userId", "alice")])?;
    let t0 = Timestamp::now();
    let note = |id: &str, text: &str, at: Timestamp| Note {
        id: id.into(),
        text: text.into(),
        updated_at: at,
    };

    println!("== 1. Two devices share scope {scope} through one remote");
    let laptop = Device::open("laptop", &dir, remote.clone()).await?;
    let phone = Device::open("phone", &dir, remote.clone()).await?;
    for (id, text) in [
        ("groceries", "milk"),
        ("old-idea", "a bad idea"),
        ("todo", "write demo"),
    ] {
        laptop
            .sync
            .enqueue_create(&scope, note(id, text, t0))
            .await?;
    }
    laptop.sync(&scope).await?;
    phone.sync(&scope).await?;
    phone.show(&scope).await?;

    println!("== 2. The network goes down; both devices keep working offline");
    remote.set_offline(true);
    laptop
        .sync
        .enqueue_update(&scope, note("groceries", "milk, eggs", t0 + 1.second()))
        .await?;
    laptop
        .sync
        .enqueue_create(&scope, note("plan", "ship it", t0 + 2.seconds()))
        .await?;
    phone
        .sync
        .enqueue_update(&scope, note("groceries", "milk, bread", t0 + 3.seconds()))
        .await?;
    phone
        .sync
        .enqueue_delete_at(&scope, "old-idea", t0 + 4.seconds())
        .await?;
    println!(
        "  laptop: edited groceries, created plan; phone: edited groceries later, deleted old-idea"
    );
    match laptop.sync.synchronize(&scope).await {
        Err(e) if e.is_retryable() => println!("  laptop tried to sync: {e} -> writes stay queued"),
        other => bail!("expected the offline sync to fail, got {other:?}"),
    }
    for d in [&laptop, &phone] {
        let s = d.sync.status(&scope).await?;
        println!("  {} has {} pending ops", d.name, s.pending);
    }
    laptop.show(&scope).await?;
    phone.show(&scope).await?;

    println!("== 3. Back online: sync in any order");
    remote.set_offline(false);
    laptop.sync(&scope).await?;
    phone.sync(&scope).await?;
    laptop.sync(&scope).await?;

    println!("== 4. Result");
    laptop.show(&scope).await?;
    phone.show(&scope).await?;
    let (a, b) = (laptop.notes(&scope).await?, phone.notes(&scope).await?);
    let on_remote = remote.snapshot(&scope);
    let pending =
        laptop.sync.status(&scope).await?.pending + phone.sync.status(&scope).await?.pending;
    let converged = a == b && a == on_remote && pending == 0;
    println!(
        "converged: {} ({} notes on each device and on the remote, {} ops pending)",
        if converged { "yes" } else { "NO" },
        on_remote.len(),
        pending
    );
    if !converged {
        bail!("the devices did not converge");
    }
    Ok(())
}
