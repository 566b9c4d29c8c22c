//! `rcs appwrite-standin`: the Appwrite-compatible test server
//! (`remote_cache_sync::testing::appwrite`), for `scripts/start-appwrite.sh`.
//!
//! Prints `listening: http://ADDR/v1` on stdout once bound (port 0 picks a free port). The API
//! key is read from `RCS_STANDIN_APPWRITE_KEY` (never from the command line, which other users
//! of the machine can read).

use anyhow::Context;
use remote_cache_sync::testing::appwrite::{StandinConfig, serve};

/// Arguments of `rcs appwrite-standin`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// SQLite file holding the data (created when missing).
    #[arg(long)]
    data: std::path::PathBuf,
    /// Project id to answer for.
    #[arg(long, default_value = "rcs-test")]
    project: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let api_key = std::env::var("RCS_STANDIN_APPWRITE_KEY")
        .context("RCS_STANDIN_APPWRITE_KEY (the API key to accept) is not set")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("listening: http://{}/v1", listener.local_addr()?);
    let config = StandinConfig {
        project: args.project,
        api_key,
    };
    serve(listener, config, Some(&args.data)).await?;
    Ok(())
}
