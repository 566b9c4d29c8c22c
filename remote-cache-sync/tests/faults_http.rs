//! Fault injection over real HTTP, through `testing::FaultProxy`:
//! - the proxy's fault kinds each reach the HTTP adapter as the right typed error;
//! - several clients (Orchestrator + SQLite cache + HttpRemoteStore) make random writes and syncs
//!   through the proxy, with random faults, against our real sync server (SQLite storage) on
//!   127.0.0.1; after a clean final round every cache equals the server and every acknowledged
//!   write is there, nothing lost and nothing invented (the same against PocketBase when
//!   `RCS_TEST_POCKETBASE_URL` is set);
//!
//! Retry backoff under faults is `faults_backoff.rs`.
//!
//! `RCS_FAULT_SEED` picks the seed of the random run (default fixed, printed).
#![cfg(all(
    feature = "fault-proxy",
    feature = "server",
    feature = "http",
    feature = "sqlite"
))]

mod support;

use support::server::{TestServer, http_remote};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault, RequestRecord};
use remote_cache_sync::testing::{TestRecord, remote::pull_all, unique_scope};
use remote_cache_sync::{
    CachePolicy, Error, LastWriteWins, LocalStore, Orchestrator, OrchestratorConfig, QuerySpec,
    RemoteStore, SyncScope, Timestamp,
};

fn seed() -> u64 {
    let seed = std::env::var("RCS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d);
    println!("RCS_FAULT_SEED={seed}");
    seed
}

/// Counts requests per fault kind, for the figures printed by the tests.
fn fault_summary(log: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for r in log {
        let k = match r.fault {
            None => "none".to_owned(),
            Some(HttpFault::Delay(_)) => "Delay".to_owned(),
            Some(HttpFault::Status(s)) => format!("Status({s})"),
            Some(f) => format!("{f:?}"),
        };
        *by.entry(k).or_insert(0) += 1;
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_reaches_the_adapter_as_a_typed_error() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::builder(server.url())
        .hang(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let via = http_remote(&proxy.url(), Duration::from_millis(500));
    let direct = http_remote(&server.url(), Duration::from_secs(5));
    let scope = unique_scope("records");
    let t0 = Timestamp::now();
    let rec =
        |id: &str, ms: i64| TestRecord::new(id, id, t0 + jiff::SignedDuration::from_millis(ms));

    // Untouched: forwarded both ways, token included.
    via.batch_upsert(&scope, &[rec("a", 1)]).await.unwrap();
    assert_eq!(via.get_by_id(&scope, "a").await.unwrap().unwrap().id, "a");

    type Check = fn(&Error) -> bool;
    let cases: Vec<(HttpFault, Check)> = vec![
        (HttpFault::DropBeforeForward, |e| {
            matches!(e, Error::Unavailable { .. })
        }),
        (HttpFault::DropAfterForward, |e| {
            matches!(e, Error::Unavailable { .. })
        }),
        (HttpFault::Status(503), |e| {
            matches!(e, Error::Unavailable { .. })
        }),
        (HttpFault::Status(500), |e| {
            matches!(e, Error::Unavailable { .. })
        }),
        (HttpFault::RateLimited { retry_after: None }, |e| {
            matches!(
                e,
                Error::RateLimited {
                    retry_after: None,
                    ..
                }
            )
        }),
        (
            HttpFault::RateLimited {
                retry_after: Some(7),
            },
            |e| e.retry_after() == Some(Duration::from_secs(7)),
        ),
        (HttpFault::Hang, |e| matches!(e, Error::Unavailable { .. })),
        (HttpFault::HangAfterForward, |e| {
            matches!(e, Error::Unavailable { .. })
        }),
        (HttpFault::TruncatedBody, |e| {
            matches!(
                e,
                Error::Unavailable { .. } | Error::MalformedResponse { .. }
            )
        }),
        (HttpFault::GarbageBody, |e| {
            matches!(e, Error::MalformedResponse { .. })
        }),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        let id = format!("f{i}");
        proxy.script([fault]);
        let started = std::time::Instant::now();
        let err = via
            .batch_upsert(&scope, &[rec(&id, 10 + i as i64)])
            .await
            .unwrap_err();
        assert!(expected(&err), "{fault:?} gave {err:?}");
        if matches!(fault, HttpFault::Hang | HttpFault::HangAfterForward) {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the client's timeout must fire"
            );
        }
        // Faults that forward reach the server; the others never do.
        let landed = direct.get_by_id(&scope, &id).await.unwrap().is_some();
        assert_eq!(landed, fault.forwards(), "{fault:?}: landed = {landed}");
    }
    // A delay forwards normally.
    proxy.script([HttpFault::Delay(Duration::from_millis(150))]);
    let started = std::time::Instant::now();
    via.server_time().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Pulls through truncated and garbage bodies fail cleanly too.
    for fault in [HttpFault::TruncatedBody, HttpFault::GarbageBody] {
        proxy.script([fault]);
        let err = via.fetch_since(&scope, None, 100).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unavailable { .. } | Error::MalformedResponse { .. }
            ),
            "{fault:?}: {err:?}"
        );
    }
    // Faults can be aimed at some paths only: pushes fail, pulls go through.
    proxy.only_paths(["/v1/push"]);
    proxy.set_always(Some(HttpFault::Status(503)));
    via.fetch_since(&scope, None, 100).await.unwrap();
    let err = via
        .batch_upsert(&scope, &[rec("p", 100)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    proxy.set_always(None);
    proxy.only_paths(Vec::<String>::new());
    let log = proxy.requests();
    assert_eq!(log.len(), proxy.request_count());
    assert_eq!(
        log.iter().filter(|r| r.fault.is_some()).count(),
        14,
        "{log:?}"
    );
}

/// The shared picture of what was written: the newest acknowledged write per id.
struct Ledger {
    clock: AtomicI64,
    base: Timestamp,
    /// id → (logical time, title or `None` for a delete).
    newest: tokio::sync::Mutex<BTreeMap<String, (i64, Option<String>)>>,
}

impl Ledger {
    fn new() -> Self {
        Ledger {
            clock: AtomicI64::new(0),
            base: Timestamp::now(),
            newest: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

/// One client's random session: creates, edits and deletes records it sees, and syncs; sync
/// failures are expected and ignored. Every write whose `enqueue_*` returned Ok goes in the ledger.
async fn client_session(
    client: usize,
    device: Orchestrator<TestRecord>,
    scope: SyncScope,
    ledger: Arc<Ledger>,
    seed: u64,
    steps: usize,
) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
    let (mut syncs_ok, mut syncs_failed) = (0, 0);
    for _ in 0..steps {
        let roll = rng.random_range(0..10);
        if roll >= 7 {
            match device.synchronize(&scope).await {
                Ok(_) => syncs_ok += 1,
                Err(e) => {
                    syncs_failed += 1;
                    assert!(
                        matches!(
                            e,
                            Error::Unavailable { .. }
                                | Error::RateLimited { .. }
                                | Error::MalformedResponse { .. }
                        ),
                        "unexpected sync error: {e:?}"
                    );
                }
            }
            continue;
        }
        let visible = device
            .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
            .await
            .unwrap();
        // The ledger lock orders logical times with the writes that carry them.
        let mut newest = ledger.newest.lock().await;
        let t = ledger.clock.fetch_add(1, Ordering::SeqCst) + 1;
        let at = ledger.base + jiff::SignedDuration::from_millis(t);
        let title = format!("c{client} t{t}");
        let pick =
            (!visible.is_empty()).then(|| visible[rng.random_range(0..visible.len())].id.clone());
        match (roll, pick) {
            (0..=3, _) | (_, None) => {
                let id = format!("c{client}-{t}");
                device
                    .enqueue_create(&scope, TestRecord::new(&id, &title, at).with_n(t))
                    .await
                    .unwrap();
                newest.insert(id, (t, Some(title)));
            }
            (4..=5, Some(id)) => {
                device
                    .enqueue_update(&scope, TestRecord::new(&id, &title, at).with_n(t))
                    .await
                    .unwrap();
                newest.insert(id, (t, Some(title)));
            }
            (_, Some(id)) => {
                device.enqueue_delete_at(&scope, &id, at).await.unwrap();
                newest.insert(id, (t, None));
            }
        }
    }
    (syncs_ok, syncs_failed)
}

fn sync_config() -> OrchestratorConfig {
    OrchestratorConfig::default()
        .sync_after_write(false)
        .push_batch_size(3)
        .pull_page_size(4)
}

/// How a convergence run is shaped.
struct RunShape {
    clients: usize,
    /// Steps per client.
    steps: usize,
    /// Clients run as concurrent tasks (else one random client's step at a time).
    concurrent: bool,
    seed: u64,
}

/// Runs `clients` random sessions through `faulty` (concurrently or interleaved one step at a
/// time), heals the network, runs two clean rounds, and checks convergence against `clean`.
async fn converge(
    faulty: Arc<dyn RemoteStore<TestRecord>>,
    healed: Arc<dyn RemoteStore<TestRecord>>,
    clean: Arc<dyn RemoteStore<TestRecord>>,
    proxy: &FaultProxy,
    scope: SyncScope,
    run: RunShape,
) {
    let RunShape {
        clients,
        steps,
        concurrent,
        seed,
    } = run;
    let dir = tempfile::tempdir().unwrap();
    let mut locals: Vec<Arc<dyn LocalStore<TestRecord>>> = Vec::new();
    for i in 0..clients {
        locals.push(Arc::new(
            SqliteLocalStore::open(dir.path().join(format!("client{i}.db")))
                .await
                .unwrap(),
        ));
    }
    let device = |local: &Arc<dyn LocalStore<TestRecord>>,
                  remote: &Arc<dyn RemoteStore<TestRecord>>| {
        Orchestrator::with(
            local.clone(),
            remote.clone(),
            Arc::new(LastWriteWins::new()),
            sync_config(),
        )
    };
    let ledger = Arc::new(Ledger::new());
    let started = std::time::Instant::now();
    let mut syncs = (0, 0);
    if concurrent {
        let tasks: Vec<_> = locals
            .iter()
            .enumerate()
            .map(|(i, l)| {
                tokio::spawn(client_session(
                    i,
                    device(l, &faulty),
                    scope.clone(),
                    ledger.clone(),
                    seed,
                    steps,
                ))
            })
            .collect();
        for t in tasks {
            let (ok, failed) = t.await.unwrap();
            syncs = (syncs.0 + ok, syncs.1 + failed);
        }
    } else {
        // One step of a random client at a time.
        let mut rng = StdRng::seed_from_u64(seed);
        for step in 0..steps * clients {
            let i = rng.random_range(0..clients);
            let (ok, failed) = client_session(
                i,
                device(&locals[i], &faulty),
                scope.clone(),
                ledger.clone(),
                seed ^ step as u64,
                1,
            )
            .await;
            syncs = (syncs.0 + ok, syncs.1 + failed);
        }
    }
    let faulty_phase = started.elapsed();
    let log = proxy.requests();
    proxy.clear_faults();

    // Clean final round through the healed proxy (with a generous timeout, so a loaded machine
    // cannot fail it): push everything, then pull everything.
    let healed: Vec<_> = locals.iter().map(|l| device(l, &healed)).collect();
    for d in healed.iter().chain(healed.iter()) {
        d.synchronize(&scope).await.unwrap();
    }

    let (server, _) = pull_all(clean.as_ref(), &scope, None, 100).await;
    let live: Vec<TestRecord> = server.values().flatten().cloned().collect();
    for (i, d) in healed.iter().enumerate() {
        let cache = d
            .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
            .await
            .unwrap();
        assert_eq!(cache, live, "client {i}'s cache differs from the server");
        let status = d.status(&scope).await.unwrap();
        assert_eq!(
            (status.pending, status.parked),
            (0, 0),
            "client {i} kept queued or parked ops"
        );
    }
    let newest = ledger.newest.lock().await;
    let mut lost = 0;
    for (id, (t, title)) in newest.iter() {
        let on_server = server.get(id).and_then(|r| r.as_ref()).map(|r| &r.title);
        if on_server != title.as_ref() {
            lost += 1;
            eprintln!("record {id}: newest write t{t} = {title:?}, server holds {on_server:?}");
        }
    }
    let invented: Vec<_> = live
        .iter()
        .filter(|r| !newest.contains_key(&r.id))
        .map(|r| r.id.clone())
        .collect();
    let writes = ledger.clock.load(Ordering::SeqCst);
    let faults = log.iter().filter(|r| r.fault.is_some()).count();
    println!(
        "clients: {clients}\nacknowledged_writes: {writes}\nrecords: {}\nlive_records: {}\n\
         syncs_ok: {}\nsyncs_failed: {}\nrequests_with_faults: {}\nrequests_faulted: {faults}\n\
         faults_by_kind: {:?}\nfaulty_phase_ms: {}\nlost_writes: {lost}\ninvented_records: {}",
        newest.len(),
        live.len(),
        syncs.0,
        syncs.1,
        log.len(),
        fault_summary(&log),
        faulty_phase.as_millis(),
        invented.len(),
    );
    assert_eq!(lost, 0, "acknowledged writes were lost (see above)");
    assert!(invented.is_empty(), "records nobody wrote: {invented:?}");
    assert!(
        faults >= 5 && syncs.1 > 0,
        "the run injected too few faults to mean anything ({faults})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_converge_through_random_http_faults() {
    let seed = seed();
    let server = TestServer::start().await;
    let proxy = FaultProxy::builder(server.url())
        .hang(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    proxy.set_random(seed, 0.3, HttpFault::all_kinds());
    let faulty: Arc<dyn RemoteStore<TestRecord>> =
        Arc::new(http_remote(&proxy.url(), Duration::from_millis(600)));
    let healed: Arc<dyn RemoteStore<TestRecord>> =
        Arc::new(http_remote(&proxy.url(), Duration::from_secs(30)));
    let clean: Arc<dyn RemoteStore<TestRecord>> =
        Arc::new(http_remote(&server.url(), Duration::from_secs(30)));
    converge(
        faulty,
        healed,
        clean,
        &proxy,
        unique_scope("records"),
        RunShape {
            clients: 3,
            steps: 60,
            concurrent: true,
            seed,
        },
    )
    .await;
}

#[cfg(feature = "pocketbase")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_converge_through_random_http_faults_to_pocketbase() {
    use remote_cache_sync::remote::pocketbase::{
        Credentials, PocketBaseConfig, PocketBaseRemoteStore,
    };
    let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_POCKETBASE_URL") else {
        return;
    };
    let email = std::env::var("RCS_TEST_POCKETBASE_EMAIL").expect("RCS_TEST_POCKETBASE_EMAIL");
    let password =
        std::env::var("RCS_TEST_POCKETBASE_PASSWORD").expect("RCS_TEST_POCKETBASE_PASSWORD");
    let seed = seed();
    let proxy = FaultProxy::builder(url.as_str())
        .hang(Duration::from_secs(4))
        .start()
        .await
        .unwrap();
    proxy.set_random(seed, 0.25, HttpFault::all_kinds());
    let config = PocketBaseConfig {
        request_timeout: Duration::from_secs(2),
        ..PocketBaseConfig::default()
    };
    let faulty: Arc<dyn RemoteStore<TestRecord>> = Arc::new(
        PocketBaseRemoteStore::with_config(
            &proxy.url(),
            Credentials::superuser(&email, &password),
            config,
        )
        .unwrap(),
    );
    let clean: Arc<dyn RemoteStore<TestRecord>> = Arc::new(
        PocketBaseRemoteStore::new(&url, Credentials::superuser(&email, &password)).unwrap(),
    );
    // Concurrent clients: the guide's compare-and-set hook guards every writer, superusers too.
    let healed: Arc<dyn RemoteStore<TestRecord>> = Arc::new(
        PocketBaseRemoteStore::new(&proxy.url(), Credentials::superuser(&email, &password))
            .unwrap(),
    );
    converge(
        faulty,
        healed,
        clean,
        &proxy,
        unique_scope("records"),
        RunShape {
            clients: 3,
            steps: 25,
            concurrent: true,
            seed,
        },
    )
    .await;
}

/// Three clients (Orchestrator + SQLite) writing through random HTTP faults to the Supabase
/// stand-in (exact mode, one user's session) converge with nothing lost.
#[cfg(feature = "supabase")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_converge_through_random_http_faults_to_supabase() {
    use remote_cache_sync::remote::supabase::{Credentials, SupabaseRemoteStore};
    let Some(e) = support::supabase::env() else {
        return;
    };
    let (access, refresh) = support::supabase::signup(&e).await;
    let support::supabase::Env { url, anon } = e;
    let seed = seed();
    let proxy = FaultProxy::builder(url.as_str())
        .hang(Duration::from_secs(4))
        .start()
        .await
        .unwrap();
    proxy.set_random(seed, 0.25, HttpFault::all_kinds());
    // Faults only on the data API: a refresh token lost in a dropped answer would end the
    // session (GoTrue rotates them), which is a credentials problem, not this test's subject.
    proxy.only_paths(["/rest/"]);
    let make = |base: &str, timeout: u64| -> Arc<dyn RemoteStore<TestRecord>> {
        Arc::new(
            SupabaseRemoteStore::builder(base)
                .anon_key(&anon)
                .credentials(Credentials::session(&access, &refresh))
                .timeout(Duration::from_secs(timeout))
                .build()
                .unwrap(),
        )
    };
    converge(
        make(&proxy.url(), 2),
        make(&proxy.url(), 30),
        make(&url, 30),
        &proxy,
        unique_scope("records"),
        RunShape {
            clients: 3,
            steps: 25,
            concurrent: true,
            seed,
        },
    )
    .await;
}
