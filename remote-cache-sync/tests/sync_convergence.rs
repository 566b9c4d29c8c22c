//! Property test: 2–3 clients make random offline edits and sync in random order through one
//! remote, some syncs failing at random; after a final round every cache equals the remote, and
//! every record holds the write with the newest version (last write wins).
//!
//! Clients behave like apps: they create records with fresh ids and edit or delete records they
//! can see in their own cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::{FaultyRemote, TestRecord, ts};
use remote_cache_sync::{
    CachePolicy, InMemoryLocalStore, LocalStore, Orchestrator, OrchestratorConfig, QuerySpec,
    RemoteStore, SyncScope,
};
use remote_cache_sync::{InMemoryRemoteStore, LastWriteWins};

#[derive(Debug, Clone)]
enum Action {
    Create {
        client: usize,
    },
    /// Edit the `pick`-th record (modulo) of the client's cache.
    Update {
        client: usize,
        pick: usize,
    },
    /// Delete the `pick`-th record (modulo) of the client's cache.
    Delete {
        client: usize,
        pick: usize,
    },
    Sync {
        client: usize,
    },
}

fn action(clients: usize) -> impl Strategy<Value = Action> {
    let c = 0..clients;
    prop_oneof![
        c.clone().prop_map(|client| Action::Create { client }),
        (c.clone(), any::<usize>()).prop_map(|(client, pick)| Action::Update { client, pick }),
        (c.clone(), any::<usize>()).prop_map(|(client, pick)| Action::Delete { client, pick }),
        c.prop_map(|client| Action::Sync { client }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Action>, u64, f64)> {
    (2usize..=3).prop_flat_map(|clients| {
        (
            Just(clients),
            prop::collection::vec(action(clients), 1..60),
            any::<u64>(),
            prop_oneof![Just(0.0), Just(0.3)],
        )
    })
}

fn config() -> OrchestratorConfig {
    OrchestratorConfig::default()
        .sync_after_write(false)
        .push_batch_size(2)
        .pull_page_size(3)
}

/// The latest write per id: `Some(title)` for upserts, `None` for deletes.
type Expected = BTreeMap<String, (i64, Option<String>)>;

async fn run(
    clients: usize,
    actions: Vec<Action>,
    seed: u64,
    fault_rate: f64,
    sqlite: Option<&std::path::Path>,
) -> Result<(), TestCaseError> {
    let scope = SyncScope::new("records", [("user", "u1")]).unwrap();
    let remote = Arc::new(InMemoryRemoteStore::<TestRecord>::new());
    let flaky: Arc<dyn RemoteStore<TestRecord>> =
        Arc::new(FaultyRemote::new(remote.clone()).with_random_failures(seed, fault_rate));
    let mut locals: Vec<Arc<dyn LocalStore<TestRecord>>> = Vec::new();
    for i in 0..clients {
        locals.push(match sqlite {
            None => Arc::new(InMemoryLocalStore::new()),
            Some(dir) => Arc::new(
                SqliteLocalStore::open(dir.join(format!("client{i}.db")))
                    .await
                    .unwrap(),
            ),
        });
    }
    let devices: Vec<_> = locals
        .iter()
        .map(|l| {
            Orchestrator::with(
                l.clone(),
                flaky.clone(),
                Arc::new(LastWriteWins::new()),
                config(),
            )
        })
        .collect();

    let mut expected = Expected::new();
    for (t, a) in actions.into_iter().enumerate() {
        let t = t as i64 + 1;
        let pick_from = |client: usize, pick: usize| {
            let d = devices[client].clone();
            let scope = scope.clone();
            async move {
                let visible = d
                    .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
                    .await
                    .unwrap();
                (!visible.is_empty()).then(|| visible[pick % visible.len()].id.clone())
            }
        };
        match a {
            Action::Create { client } => {
                let (id, title) = (format!("c{client}-t{t}"), format!("c{client} t{t}"));
                expected.insert(id.clone(), (t, Some(title.clone())));
                devices[client]
                    .enqueue_create(&scope, TestRecord::new(id, title, ts(t)))
                    .await
                    .unwrap();
            }
            Action::Update { client, pick } => {
                if let Some(id) = pick_from(client, pick).await {
                    let title = format!("c{client} t{t}");
                    expected.insert(id.clone(), (t, Some(title.clone())));
                    devices[client]
                        .enqueue_update(&scope, TestRecord::new(id, title, ts(t)))
                        .await
                        .unwrap();
                }
            }
            Action::Delete { client, pick } => {
                if let Some(id) = pick_from(client, pick).await {
                    expected.insert(id.clone(), (t, None));
                    devices[client]
                        .enqueue_delete_at(&scope, &id, ts(t))
                        .await
                        .unwrap();
                }
            }
            Action::Sync { client } => {
                // Failures are expected under injected faults; nothing may be lost either way.
                let _ = devices[client].synchronize(&scope).await;
            }
        }
    }

    // Final round on a healthy network: everybody pushes, then everybody pulls.
    let healthy: Vec<_> = locals
        .iter()
        .map(|l| {
            Orchestrator::with(
                l.clone(),
                remote.clone(),
                Arc::new(LastWriteWins::new()),
                config(),
            )
        })
        .collect();
    for d in healthy.iter().chain(healthy.iter()) {
        d.synchronize(&scope).await.unwrap();
    }

    let snapshot = remote.snapshot(&scope);
    for (i, d) in healthy.iter().enumerate() {
        let cache = d
            .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
            .await
            .unwrap();
        prop_assert_eq!(&cache, &snapshot, "client {} diverged from the remote", i);
        let status = d.status(&scope).await.unwrap();
        prop_assert_eq!(
            (status.pending, status.parked),
            (0, 0),
            "client {} kept ops",
            i
        );
    }
    let on_remote: BTreeMap<_, _> = snapshot
        .iter()
        .map(|r| (r.id.clone(), r.title.clone()))
        .collect();
    for (id, (_, title)) in &expected {
        prop_assert_eq!(
            on_remote.get(id),
            title.as_ref(),
            "record {} does not hold its newest write",
            id
        );
    }
    prop_assert_eq!(
        on_remote.len(),
        expected.values().filter(|(_, t)| t.is_some()).count()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn clients_converge_to_the_newest_writes((clients, actions, seed, fault_rate) in scenario()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(clients, actions, seed, fault_rate, None))?;
    }
}

proptest! {
    // Same property on real SQLite cache files (fewer cases: each opens fresh files).
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn clients_with_sqlite_caches_converge((clients, actions, seed, fault_rate) in scenario()) {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(clients, actions, seed, fault_rate, Some(dir.path())))?;
    }
}
