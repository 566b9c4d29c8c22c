//! `rcs bench ...`: each benchmark measures our code and a baseline in the same run.

use clap::Subcommand;

mod appwrite;
mod encrypted;
mod live;
mod local;
mod overhead;
mod pocketbase;
mod reconcile;
mod supabase;
mod sync;
mod web;

/// Benchmark arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// SqliteLocalStore apply and offline writes vs raw rusqlite.
    Local(local::Args),
    /// Initial and delta sync through an embedded `rcs serve`.
    Sync(sync::Args),
    /// Write-to-watch latency with N live clients, and the memory of idle subscribers.
    Live(live::Args),
    /// Reconciliation of a large scope with a few differences vs a full pull of it.
    Reconcile(reconcile::Args),
    /// Pulls from a real PocketBase vs bare listing.
    Pocketbase(pocketbase::Args),
    /// Pulls from Appwrite (the stand-in of scripts/start-appwrite.sh) vs bare listing.
    Appwrite(appwrite::Args),
    /// Exact-mode pulls from Supabase (the stand-in of scripts/start-supabase.sh) vs bare
    /// `rcs_pull` calls.
    Supabase(supabase::Args),
    /// The library in headless Chromium: initial sync into OPFS, apply vs raw SQLite there.
    Web(web::Args),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.which {
        Which::Local(a) => local::run(a).await,
        Which::Sync(a) => sync::run(a).await,
        Which::Live(a) => live::run(a).await,
        Which::Reconcile(a) => reconcile::run(a).await,
        Which::Pocketbase(a) => pocketbase::run(a).await,
        Which::Appwrite(a) => appwrite::run(a).await,
        Which::Supabase(a) => supabase::run(a).await,
        Which::Web(a) => web::run(a).await,
    }
}
