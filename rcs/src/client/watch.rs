//! `rcs watch`: the scope's records as JSON lines, then every change as it arrives, with a
//! background sync keeping the cache current, until Ctrl-C.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use remote_cache_sync::{JsonRecord, QuerySpec, Record};
use serde_json::Value;

use super::{Client, Conn, parse_filter};

/// `rcs watch` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    /// Only records matching `FIELD OP VALUE` (as for `rcs list`; repeat to AND them).
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    /// Milliseconds between background syncs: a safety net when the remote sends events
    /// (`rcs serve`, PostgreSQL, PocketBase), whose changes show as they happen.
    #[arg(long, default_value_t = 1_000)]
    interval_ms: u64,
    /// How long Ctrl-C waits for queued writes to reach the server (they stay queued in the
    /// cache otherwise), in seconds.
    #[arg(long, default_value_t = 10)]
    flush_timeout: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let c = Client::open(&args.conn).await?;
    let mut spec = QuerySpec::new();
    for f in &args.filters {
        spec = spec.filter(parse_filter(f)?);
    }
    let mut records = c.orch.watch(&c.scope, spec);
    let background = c.orch.start_background_sync(
        vec![c.scope.clone()],
        Duration::from_millis(args.interval_ms.max(1)),
    );
    let mut shown = BTreeMap::<String, String>::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            signal = &mut interrupted => {
                signal?;
                break;
            }
            next = records.next() => match next {
                Some(Ok(rows)) => print_changes(&mut shown, &rows)?,
                Some(Err(e)) => eprintln!("watch: {e}"),
                None => break,
            },
        }
    }
    drop(records);
    background.stop();
    let flushed = c
        .orch
        .flush(Duration::from_secs(args.flush_timeout.max(1)))
        .await;
    c.orch.shutdown().await;
    if let Err(e) = flushed {
        eprintln!("watch: queued writes stay in the cache for the next sync: {e}");
    }
    Ok(())
}

/// Prints the records of `rows` that are new or changed since `shown`, and a deletion line for
/// each record that left the result; then remembers `rows`.
fn print_changes(shown: &mut BTreeMap<String, String>, rows: &[JsonRecord]) -> anyhow::Result<()> {
    let mut now = BTreeMap::new();
    for r in rows {
        let line = serde_json::to_string(&Value::Object(r.value().clone()))?;
        if shown.get(r.id()) != Some(&line) {
            println!("{line}");
        }
        now.insert(r.id().to_owned(), line);
    }
    for id in shown.keys().filter(|id| !now.contains_key(*id)) {
        println!("{}", serde_json::json!({ "id": id, "deleted": true }));
    }
    *shown = now;
    Ok(())
}
