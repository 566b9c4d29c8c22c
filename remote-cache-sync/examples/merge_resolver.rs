//! A custom merge resolver: two devices edit the same shopping list offline; instead of one
//! edit winning, the items of both are kept. Runs without a server (in-memory remote).
//!
//! ```text
//! cargo run -p remote-cache-sync --example merge_resolver
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use remote_cache_sync::{
    CachePolicy, Change, FnResolver, InMemoryLocalStore, InMemoryRemoteStore, Orchestrator, Record,
    Resolution, SyncScope, Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct List {
    id: String,
    items: BTreeSet<String>,
    updated_at: Timestamp,
}

impl Record for List {
    fn id(&self) -> &str {
        &self.id
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
}

/// Union of both sides' items; a deletion on either side wins over the merge.
fn merge(local: &Change<List>, remote: Option<&Change<List>>) -> Resolution<List> {
    match (local, remote) {
        (Change::Upsert(mine), Some(Change::Upsert(theirs))) => Resolution::Merged(List {
            id: mine.id.clone(),
            items: mine.items.union(&theirs.items).cloned().collect(),
            // The merge is a new write; the orchestrator moves its version past both.
            updated_at: mine.updated_at.max(theirs.updated_at),
        }),
        (Change::Delete(_), _) => Resolution::KeepLocal,
        _ => Resolution::TakeRemote,
    }
}

fn list(items: &[&str]) -> List {
    List {
        id: "groceries".into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        updated_at: Timestamp::now(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> remote_cache_sync::Result<()> {
    let remote = Arc::new(InMemoryRemoteStore::<List>::new());
    let device = || {
        Orchestrator::builder(InMemoryLocalStore::new(), remote.clone())
            .resolver(FnResolver::new(merge))
            .sync_after_write(false)
            .build()
    };
    let (phone, laptop) = (device(), device());
    let scope = SyncScope::named("lists")?;

    phone.enqueue_create(&scope, list(&["milk"])).await?;
    phone.synchronize(&scope).await?;
    laptop.synchronize(&scope).await?;

    // Both edit offline.
    phone
        .enqueue_update(&scope, list(&["milk", "eggs"]))
        .await?;
    laptop
        .enqueue_update(&scope, list(&["milk", "bread"]))
        .await?;
    phone.synchronize(&scope).await?;
    let report = laptop.synchronize(&scope).await?;
    println!(
        "laptop: {} conflict(s) {:?}",
        report.conflicts, report.resolved
    );
    laptop.synchronize(&scope).await?;
    phone.synchronize(&scope).await?;

    for (name, d) in [("phone", &phone), ("laptop", &laptop)] {
        let l = d.get(&scope, "groceries", CachePolicy::OfflineOnly).await?;
        let items: Vec<_> = l.map(|l| l.items.into_iter().collect()).unwrap_or_default();
        println!("{name}: {}", items.join(", "));
        assert_eq!(items, ["bread", "eggs", "milk"]);
    }
    Ok(())
}
