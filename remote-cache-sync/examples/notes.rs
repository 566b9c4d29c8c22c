//! A notes app on a SQLite cache, synced with `rcs serve`.
//!
//! ```text
//! cargo run -p rcs -- serve --db notes-server.sqlite --token dev-token:notes,owner=*
//! cargo run -p remote-cache-sync --features http --example notes -- add "buy milk"
//! cargo run -p remote-cache-sync --features http --example notes -- list
//! cargo run -p remote-cache-sync --features http --example notes -- done <id>
//! cargo run -p remote-cache-sync --features http --example notes -- sync
//! ```
//!
//! Settings come from `RCS_REMOTE` (default `http://127.0.0.1:8080`), `RCS_TOKEN` (default
//! `dev-token`), `NOTES_CACHE` (default `notes.sqlite`) and `NOTES_OWNER` (default `alice`).
//! Every command works offline; what is queued reaches the server on the next run that can.

use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    CachePolicy, Direction, Orchestrator, QuerySpec, Record, SyncScope, Timestamp,
};
use serde::{Deserialize, Serialize};

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

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let local = SqliteLocalStore::<Note>::open(env("NOTES_CACHE", "notes.sqlite")).await?;
    let remote = HttpRemoteStore::<Note>::builder(env("RCS_REMOTE", "http://127.0.0.1:8080"))
        .token(env("RCS_TOKEN", "dev-token"))
        .timeout(Duration::from_secs(5))
        .build()?;
    let notes = Orchestrator::builder(local, remote)
        // The command syncs once at its end instead of after every write.
        .sync_after_write(false)
        .build();
    let scope = SyncScope::new("notes", [("owner", env("NOTES_OWNER", "alice"))])?;

    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["add", text @ ..] => {
            let now = Timestamp::now();
            let note = Note {
                id: format!("n{}", now.as_millisecond()),
                text: text.join(" "),
                done: false,
                updated_at: now,
            };
            println!("added {}", note.id);
            notes.enqueue_create(&scope, note).await?;
        }
        ["done", id] => {
            let Some(mut note) = notes.get(&scope, id, CachePolicy::OfflineOnly).await? else {
                return Err(format!("no note {id}").into());
            };
            note.done = true;
            note.updated_at = Timestamp::now();
            notes.enqueue_update(&scope, note).await?;
        }
        ["list"] => {}
        ["sync"] => {
            let report = notes.synchronize(&scope).await?;
            println!(
                "pushed {}, pulled {}, conflicts {}",
                report.pushed, report.pulled, report.conflicts
            );
        }
        _ => return Err("usage: notes add TEXT | done ID | list | sync".into()),
    }
    // Best effort: push what is queued; offline is fine, the writes wait in the cache.
    if let Err(e) = notes.flush(Duration::from_secs(5)).await {
        eprintln!("not synced ({e}); your changes are kept and sent next time");
    }
    let by_time = QuerySpec::new().order_by("updated_at", Direction::Asc);
    for n in notes
        .read(&scope, CachePolicy::OfflineOnly, &by_time)
        .await?
    {
        println!("[{}] {} {}", if n.done { "x" } else { " " }, n.id, n.text);
    }
    notes.shutdown().await;
    Ok(())
}
