//! `rcs`: the remote-cache-sync command line (demo, benchmarks, sync server, client commands).

use clap::{Parser, Subcommand};

mod bench;
mod cache;
mod client;
mod crash;
mod demo;
mod serve;
mod standin;
mod web_setup;

#[derive(Parser)]
#[command(
    name = "rcs",
    version,
    about = "remote-cache-sync: offline-first cache sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Two devices with their own SQLite caches converge through an in-process remote.
    Demo(demo::Args),
    /// Benchmarks that print `key: value` figures measured against a baseline in the same run.
    Bench(bench::Args),
    /// Run our HTTP sync server.
    Serve(serve::Args),
    /// Write the browser package (JS/TS API, worker, wasm) and an example todo page to a folder.
    WebSetup(web_setup::Args),
    /// Kill a syncing client process at random moments and check that no write is lost.
    CrashTest(crash::Args),
    /// Run the Appwrite-compatible test server (for scripts/start-appwrite.sh).
    #[command(hide = true)]
    AppwriteStandin(standin::Args),
    #[command(flatten)]
    Client(client::Command),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RCS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Serve(a) => serve::run(a).await,
            Command::CrashTest(a) => crash::run(a).await,
            Command::AppwriteStandin(a) => standin::run(a).await,
            Command::WebSetup(a) => web_setup::run(a).await,
            Command::Client(c) => client::run(c).await,
        }
    })
}
