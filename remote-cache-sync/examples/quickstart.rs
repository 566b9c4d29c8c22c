use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    CachePolicy, Filter, Orchestrator, QuerySpec, Record, SyncScope, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Your record type: any serde type with an id and an `updated_at` version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
    done: bool,
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

#[tokio::main]
async fn main() -> remote_cache_sync::Result<()> {
    let url = std::env::var("RCS_REMOTE").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("RCS_TOKEN").unwrap_or_else(|_| "dev-token".into());
    let cache = std::env::var("NOTES_CACHE").unwrap_or_else(|_| "notes.sqlite".into());

    // The cache is a SQLite file; the remote is `rcs serve`.
    let local = SqliteLocalStore::<Note>::open(&cache).await?;
    let remote = HttpRemoteStore::<Note>::builder(url).token(token).build()?;
    let notes = Orchestrator::new(local, remote);
    let scope = SyncScope::new("notes", [("owner", "alice")])?;

    // A write works offline: it is in the cache and queued once this returns.
    let now = Timestamp::now();
    let id = format!("note-{}", now.as_nanosecond());
    let note = Note {
        id,
        text: "buy milk".into(),
        done: false,
        updated_at: now,
    };
    notes.enqueue_create(&scope, note).await?;

    // Push the queue, pull everyone else's changes, decide conflicts.
    let report = notes.synchronize(&scope).await?;
    println!(
        "pushed {}, pulled {}, conflicts {}",
        report.pushed, report.pulled, report.conflicts
    );

    // Read from the cache.
    let open = QuerySpec::new().filter(Filter::eq("done", false));
    for note in notes.read(&scope, CachePolicy::OfflineOnly, &open).await? {
        println!("{}: {}", note.id, note.text);
    }

    // Before exiting: push anything still queued (bounded), stop background tasks.
    notes.flush(Duration::from_secs(10)).await?;
    notes.shutdown().await;
    Ok(())
}
