//! Placeholder benchmark.

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Rows to use.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet ({} rows)", args.rows)
}
