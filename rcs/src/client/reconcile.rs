//! `rcs reconcile`: sync, then repair the cache against the remote
//! ([`Orchestrator::reconcile`](remote_cache_sync::Orchestrator::reconcile)).

use anyhow::{Context, bail};

use super::Client;

/// Syncs quietly, reconciles, prints the report as `key: value` lines.
pub(super) async fn run(c: &Client) -> anyhow::Result<()> {
    match c.orch.synchronize(&c.scope).await {
        Ok(_) => {}
        Err(e) if e.pauses_scope() => {
            bail!("sync paused: {e} (queued writes are kept; `rcs reconcile` again once fixed)")
        }
        Err(e) => return Err(e).context("sync failed"),
    }
    let started = std::time::Instant::now();
    let report = c
        .orch
        .reconcile(&c.scope)
        .await
        .context("reconcile failed")?;
    println!("checked: {}", report.checked);
    println!("missing: {}", report.missing);
    println!("extra: {}", report.extra);
    println!("stale: {}", report.stale);
    println!("skipped: {}", report.skipped);
    println!("bytes_transferred: {}", report.bytes_transferred);
    println!("rounds: {}", report.rounds);
    println!("reconcile_s: {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
