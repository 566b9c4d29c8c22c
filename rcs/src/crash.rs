//! `rcs crash-test` (placeholder).

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// How many times to kill the client.
    #[arg(long, default_value_t = 20)]
    kills: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet ({} kills)", args.kills)
}
