//! The notes app against PocketBase: each user syncs their own notes under PocketBase's API
//! rules. Set the server up with `docs/backends/pocketbase.md` (collection `notes` with the
//! guide's fields, `owner` as the scope key), then:
//!
//! ```text
//! PB_URL=http://127.0.0.1:8090 PB_EMAIL=me@example.com PB_PASSWORD=… \
//!   cargo run -p remote-cache-sync --features pocketbase --example notes_pocketbase -- "buy milk"
//! ```

use std::time::Duration;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::pocketbase::{Credentials, PocketBaseRemoteStore};
use remote_cache_sync::{CachePolicy, Orchestrator, QuerySpec, Record, SyncScope, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    let (url, email, password) = (var("PB_URL")?, var("PB_EMAIL")?, var("PB_PASSWORD")?);
    // A user of the `users` auth collection; the token is refreshed before it expires.
    let remote =
        PocketBaseRemoteStore::<Note>::new(&url, Credentials::user("users", email, password))?;
    let local = SqliteLocalStore::<Note>::open("notes-pocketbase.sqlite").await?;
    let notes = Orchestrator::new(local, remote);
    // The scope's keys are record fields: PocketBase's API rules decide who sees what.
    let owner = std::env::var("PB_USER_ID").unwrap_or_else(|_| "me".into());
    let scope = SyncScope::new("notes", [("owner", owner)])?;

    let text: Vec<String> = std::env::args().skip(1).collect();
    if !text.is_empty() {
        let now = Timestamp::now();
        let note = Note {
            id: format!("n{}", now.as_millisecond()),
            text: text.join(" "),
            updated_at: now,
        };
        notes.enqueue_create(&scope, note).await?;
    }
    let report = notes.synchronize(&scope).await?;
    println!("pushed {}, pulled {}", report.pushed, report.pulled);
    for n in notes
        .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await?
    {
        println!("{}: {}", n.id, n.text);
    }
    notes.flush(Duration::from_secs(5)).await?;
    notes.shutdown().await;
    Ok(())
}
