//! `rcs bench ...`: each benchmark measures our code and a baseline in the same run.

use clap::Subcommand;

mod appwrite;
mod encrypted;
mod local;
mod pocketbase;
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
    /// Pulls from a real PocketBase vs bare listing.
    Pocketbase(pocketbase::Args),
    /// Pulls from Appwrite (the stand-in of scripts/start-appwrite.sh) vs bare listing.
    Appwrite(appwrite::Args),
    /// The library in headless Chromium: initial sync into OPFS, apply vs raw SQLite there.
    Web(web::Args),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.which {
        Which::Local(a) => local::run(a).await,
        Which::Sync(a) => sync::run(a).await,
        Which::Pocketbase(a) => pocketbase::run(a).await,
        Which::Appwrite(a) => appwrite::run(a).await,
        Which::Web(a) => web::run(a).await,
    }
}
