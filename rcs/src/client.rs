//! Client commands against a remote URL with a local cache file (placeholder).

/// Client commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show pending and parked ops and the last sync.
    Status,
}

pub async fn run(_cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
