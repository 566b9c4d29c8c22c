//! Poison ops and auth failures, end to end: SQLite cache → Orchestrator → HttpRemoteStore →
//! our server on 127.0.0.1 → SQLite storage behind a validation hook that permanently rejects
//! some records.
//!
//! - An op the remote rejects is retried until `max_rejections`, then parked with its error;
//!   writes behind it, in the same batch, the same scope and other scopes, still sync.
//! - A whole request refused with a 4xx is split until the offending op is found.
//! - The app lists, retries (after the remote's objection is fixed) and discards parked ops.
//! - A 401 pauses the queue: no attempts burnt, nothing parked, the background loop reports
//!   `is_paused_for_auth()`, and everything syncs once the credentials are fixed.
#![cfg(all(feature = "server", feature = "http", feature = "sqlite"))]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Cursor, Delta, Error, JsonRecord, LastWriteWins, LocalStore, Orchestrator,
    OrchestratorConfig, PendingOp, PushOutcome, QuerySpec, Record, RemoteStore, SyncScope,
    Timestamp,
};

const GOOD_TOKEN: &str = "poison-test-good-token";

/// Server storage with a validation hook: a record titled `POISON…` is rejected per op; a push
/// carrying a record titled `BATCHPOISON…` is refused as a whole (422), like backends whose
/// batch endpoint fails the request. `strict = false` models the server-side fix.
struct Validating {
    inner: SqliteRemoteStore<JsonRecord>,
    strict: AtomicBool,
    /// How often each record id was sent in a push.
    sent: Mutex<HashMap<String, usize>>,
}

fn title(op: &PendingOp<JsonRecord>) -> &str {
    op.payload
        .as_ref()
        .and_then(|p| p.value().get("title"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
}

#[async_trait]
impl RemoteStore<JsonRecord> for Validating {
    fn name(&self) -> &'static str {
        "validating"
    }
    async fn get_by_id(
        &self,
        scope: &SyncScope,
        id: &str,
    ) -> remote_cache_sync::Result<Option<JsonRecord>> {
        self.inner.get_by_id(scope, id).await
    }
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> remote_cache_sync::Result<Delta<JsonRecord>> {
        self.inner.fetch_since(scope, since, limit).await
    }
    async fn push(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<JsonRecord>],
    ) -> remote_cache_sync::Result<Vec<PushOutcome<JsonRecord>>> {
        {
            let mut sent = self.sent.lock().unwrap();
            for op in ops {
                *sent.entry(op.id.clone()).or_default() += 1;
            }
        }
        let strict = self.strict.load(Ordering::SeqCst);
        if strict && ops.iter().any(|op| title(op).starts_with("BATCHPOISON")) {
            return Err(Error::InvalidInput(
                "batch refused: a record fails validation".into(),
            ));
        }
        let mut outcomes: Vec<Option<PushOutcome<JsonRecord>>> = vec![None; ops.len()];
        let mut accepted = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if strict && title(op).starts_with("POISON") {
                outcomes[i] = Some(PushOutcome::Rejected {
                    reason: "validation: title must not start with POISON".into(),
                });
            } else {
                accepted.push((i, op.clone()));
            }
        }
        let pushed: Vec<_> = accepted.iter().map(|(_, op)| op.clone()).collect();
        let answers = self.inner.push(scope, &pushed).await?;
        for ((i, _), answer) in accepted.into_iter().zip(answers) {
            outcomes[i] = Some(answer);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every op answered"))
            .collect())
    }
    async fn server_time(&self) -> remote_cache_sync::Result<Timestamp> {
        self.inner.server_time().await
    }
}

struct Env {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    storage: Arc<Validating>,
}

impl Env {
    async fn start() -> Env {
        let storage = Arc::new(Validating {
            inner: SqliteRemoteStore::in_memory().unwrap(),
            strict: AtomicBool::new(true),
            sent: Mutex::new(HashMap::new()),
        });
        let mut tokens = StaticTokens::new();
        tokens.grant(GOOD_TOKEN, ScopePattern::any()).unwrap();
        let router = Server::from_arcs(storage.clone(), Arc::new(tokens)).into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, std::future::pending()));
        Env {
            dir: tempfile::tempdir().unwrap(),
            addr,
            storage,
        }
    }

    fn http(&self, token: &str) -> HttpRemoteStore<TestRecord> {
        HttpRemoteStore::builder(format!("http://{}", self.addr))
            .token(token)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn cache(&self, name: &str) -> Arc<SqliteLocalStore<TestRecord>> {
        Arc::new(
            SqliteLocalStore::open(self.dir.path().join(name))
                .await
                .unwrap(),
        )
    }

    fn device(
        &self,
        local: Arc<SqliteLocalStore<TestRecord>>,
        remote: impl RemoteStore<TestRecord>,
        max_rejections: u32,
    ) -> Orchestrator<TestRecord> {
        Orchestrator::with(
            local,
            Arc::new(remote),
            Arc::new(LastWriteWins::new()),
            OrchestratorConfig::default()
                .sync_after_write(false)
                .max_rejections(max_rejections)
                .push_batch_size(10),
        )
    }

    /// Titles of the live records the remote holds in `scope`, by id.
    async fn remote_titles(&self, scope: &SyncScope) -> HashMap<String, String> {
        let page = self
            .storage
            .inner
            .fetch_since(scope, None, 1000)
            .await
            .unwrap();
        page.upserts
            .iter()
            .filter(|r| r.deleted_at().is_none())
            .map(|r| {
                (
                    r.id().to_owned(),
                    r.value()["title"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn sent(&self, id: &str) -> usize {
        self.storage
            .sent
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

fn rec(id: &str, title: &str, at: i64) -> TestRecord {
    TestRecord::new(id, title, ts(at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_op_is_parked_after_max_rejections_and_the_rest_syncs() {
    let env = Env::start().await;
    let device = env.device(env.cache("a.db").await, env.http(GOOD_TOKEN), 3);
    let (a, b) = (unique_scope("notes"), unique_scope("notes"));

    device
        .enqueue_create(&a, rec("bad", "POISON pill", 1))
        .await
        .unwrap();
    device
        .enqueue_create(&a, rec("ok1", "fine", 2))
        .await
        .unwrap();
    device
        .enqueue_create(&b, rec("okb", "other scope", 3))
        .await
        .unwrap();

    // Attempts 1 and 2: rejected but still queued; the write behind it (same batch) lands.
    for attempt in 1..=2u32 {
        let report = device.synchronize(&a).await.unwrap();
        assert_eq!(
            (report.rejected, report.parked),
            (1, 0),
            "attempt {attempt}: {report:?}"
        );
        let queued = device.local().pending_ops(&a, 10).await.unwrap();
        assert_eq!(queued.len(), 1, "only the poison op stays queued");
        assert_eq!(queued[0].id, "bad");
        assert_eq!(queued[0].attempts, attempt);
        assert!(queued[0].last_error.as_deref().unwrap().contains("POISON"));
        if attempt == 1 {
            // A write queued behind the poison op in the same scope syncs on the next round.
            device
                .enqueue_create(&a, rec("ok2", "after the poison", 4))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        env.remote_titles(&a).await,
        HashMap::from([
            ("ok1".into(), "fine".into()),
            ("ok2".into(), "after the poison".into())
        ])
    );

    // Attempt 3 reaches max_rejections: parked with its error, out of the queue.
    let report = device.synchronize(&a).await.unwrap();
    assert_eq!((report.rejected, report.parked), (0, 1), "{report:?}");
    let status = device.status(&a).await.unwrap();
    assert_eq!((status.pending, status.parked), (0, 1));
    let parked = device.parked_ops(&a).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, "bad");
    assert_eq!(parked[0].attempts, 3);
    assert!(
        parked[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("title must not start with POISON")
    );

    // A parked op is not sent again: further syncs leave the remote alone.
    let sent = env.sent("bad");
    assert_eq!(sent, 3, "bounded attempts");
    device
        .enqueue_update(&a, rec("ok1", "fine again", 10))
        .await
        .unwrap();
    device.synchronize(&a).await.unwrap();
    assert_eq!(
        env.sent("bad"),
        3,
        "a parked op is never pushed again by itself"
    );
    assert_eq!(env.remote_titles(&a).await["ok1"], "fine again");
    // The local write stays visible while parked, and a pull does not overwrite it.
    let local = device
        .get(&a, "bad", CachePolicy::OfflineOnly)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.title, "POISON pill");

    // The other scope was never blocked.
    device.synchronize(&b).await.unwrap();
    assert_eq!(env.remote_titles(&b).await["okb"], "other scope");
    assert_eq!(device.status(&b).await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_request_refused_with_a_4xx_is_split_to_isolate_the_poison_op() {
    let env = Env::start().await;
    let device = env.device(env.cache("a.db").await, env.http(GOOD_TOKEN), 1);
    let scope = unique_scope("notes");
    for (i, t) in ["one", "two", "BATCHPOISON three", "four", "five", "six"]
        .iter()
        .enumerate()
    {
        device
            .enqueue_create(&scope, rec(&format!("r{i}"), t, i as i64))
            .await
            .unwrap();
    }
    let report = device.synchronize(&scope).await.unwrap();
    assert_eq!((report.pushed, report.parked), (5, 1), "{report:?}");
    let titles = env.remote_titles(&scope).await;
    assert_eq!(titles.len(), 5, "{titles:?}");
    assert!(!titles.contains_key("r2"));
    let parked = device.parked_ops(&scope).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, "r2");
    let error = parked[0].last_error.as_deref().unwrap();
    assert!(error.contains("batch refused"), "{error}");
    assert!(
        env.sent("r2") <= 4,
        "bisection sends the poison op O(log n) times: {}",
        env.sent("r2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_every_op_alike_pauses_the_scope_and_parks_nothing() {
    let env = Env::start().await;
    let local = env.cache("a.db").await;
    // max_rejections = 1: a single counted failure would park an op.
    let device = env.device(local.clone(), env.http(GOOD_TOKEN), 1);
    let scope = unique_scope("notes");
    for i in 0..4 {
        device
            .enqueue_create(&scope, rec(&format!("r{i}"), "BATCHPOISON", i))
            .await
            .unwrap();
    }
    // Every op, sent alone, is refused with the same reason: the request is refused, not the
    // ops (a misconfigured server refuses every push alike).
    for _ in 0..2 {
        let err = device.synchronize(&scope).await.unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        assert!(
            err.pauses_scope() && err.to_string().contains("batch refused"),
            "{err}"
        );
    }
    assert_untouched(&local, &scope, 4).await;
    let pause = device
        .pause(&scope)
        .await
        .unwrap()
        .expect("the scope is paused");
    assert!(pause.reason.contains("refused alike"), "{pause:?}");
    assert!(env.remote_titles(&scope).await.is_empty());

    // The server is fixed: the first sync pushes everything and lifts the pause.
    env.storage.strict.store(false, Ordering::SeqCst);
    let report = device.synchronize(&scope).await.unwrap();
    assert_eq!((report.pushed, report.parked), (4, 0), "{report:?}");
    assert_eq!(device.pause(&scope).await.unwrap(), None);
    assert_eq!(env.remote_titles(&scope).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_lists_retries_and_discards_parked_ops() {
    let env = Env::start().await;
    let device = env.device(env.cache("a.db").await, env.http(GOOD_TOKEN), 1);
    let scope = unique_scope("notes");
    // A record that syncs fine, then a poison update of it; and a poison create.
    device
        .enqueue_create(&scope, rec("kept", "good", 1))
        .await
        .unwrap();
    device.synchronize(&scope).await.unwrap();
    device
        .enqueue_update(&scope, rec("kept", "POISON edit", 2))
        .await
        .unwrap();
    device
        .enqueue_create(&scope, rec("fixme", "POISON draft", 3))
        .await
        .unwrap();
    device
        .enqueue_create(&scope, rec("gone", "POISON spam", 4))
        .await
        .unwrap();
    let report = device.synchronize(&scope).await.unwrap();
    assert_eq!(report.parked, 3, "{report:?}");

    let parked = device.parked_ops(&scope).await.unwrap();
    let ids: Vec<_> = parked.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["kept", "fixme", "gone"], "listed in enqueue order");
    let op_of = |id: &str| parked.iter().find(|o| o.id == id).unwrap().op_id.clone();

    // Discard: the cache goes back to what the remote holds (or loses a record it never had).
    device
        .discard_parked(&scope, &[op_of("kept"), op_of("gone")])
        .await
        .unwrap();
    let kept = device
        .get(&scope, "kept", CachePolicy::OfflineOnly)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.title, "good");
    assert!(
        device
            .get(&scope, "gone", CachePolicy::OfflineOnly)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(device.status(&scope).await.unwrap().parked, 1);

    // Retry after the server-side fix: back in the queue with attempts reset, then it syncs.
    env.storage.strict.store(false, Ordering::SeqCst);
    device
        .retry_parked(&scope, &[op_of("fixme")])
        .await
        .unwrap();
    let queued = device.local().pending_ops(&scope, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].id.as_str(), queued[0].attempts), ("fixme", 0));
    device.synchronize(&scope).await.unwrap();
    assert_eq!(device.status(&scope).await.unwrap(), Default::default());
    let titles = env.remote_titles(&scope).await;
    assert_eq!(
        titles,
        HashMap::from([
            ("kept".into(), "good".into()),
            ("fixme".into(), "POISON draft".into())
        ])
    );
    // A later sync keeps the cache equal to the remote.
    device.synchronize(&scope).await.unwrap();
    let mut local: Vec<_> = device
        .read(&scope, CachePolicy::OfflineOnly, &QuerySpec::new())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.title))
        .collect();
    local.sort();
    assert_eq!(
        local,
        [
            ("fixme".into(), "POISON draft".into()),
            ("kept".into(), "good".into())
        ]
    );
}

/// The app's credential holder: a remote whose token can be replaced at run time.
struct Credentials {
    current: RwLock<HttpRemoteStore<TestRecord>>,
}

impl Credentials {
    fn current(&self) -> HttpRemoteStore<TestRecord> {
        self.current.read().unwrap().clone()
    }
}

#[async_trait]
impl RemoteStore<TestRecord> for Credentials {
    fn name(&self) -> &'static str {
        "http"
    }
    async fn get_by_id(
        &self,
        scope: &SyncScope,
        id: &str,
    ) -> remote_cache_sync::Result<Option<TestRecord>> {
        self.current().get_by_id(scope, id).await
    }
    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> remote_cache_sync::Result<Delta<TestRecord>> {
        self.current().fetch_since(scope, since, limit).await
    }
    async fn push(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<TestRecord>],
    ) -> remote_cache_sync::Result<Vec<PushOutcome<TestRecord>>> {
        self.current().push(scope, ops).await
    }
    async fn server_time(&self) -> remote_cache_sync::Result<Timestamp> {
        self.current().server_time().await
    }
}

async fn assert_untouched(local: &SqliteLocalStore<TestRecord>, scope: &SyncScope, n: usize) {
    let queued = local.pending_ops(scope, 100).await.unwrap();
    assert_eq!(queued.len(), n);
    for op in &queued {
        assert_eq!(
            op.attempts, 0,
            "an auth failure must not count as a rejection: {op:?}"
        );
        assert_eq!(op.last_error, None);
    }
    assert_eq!(local.queue_status(scope).await.unwrap().parked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_failure_pauses_the_queue_until_credentials_are_fixed() {
    let env = Env::start().await;
    let scope = unique_scope("notes");
    let local = env.cache("a.db").await;
    // max_rejections = 1: a single counted failure would park an op.
    let device = env.device(local.clone(), env.http("wrong-token"), 1);
    for i in 0..3 {
        device
            .enqueue_create(&scope, rec(&format!("r{i}"), "offline", i))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        let err = device.synchronize(&scope).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert!(err.is_auth() && !err.is_retryable());
        assert!(
            !format!("{err}").contains("wrong-token"),
            "credentials never in errors: {err}"
        );
    }
    assert_untouched(&local, &scope, 3).await;
    assert!(env.remote_titles(&scope).await.is_empty());

    // Fixed by building the remote again with the right token: everything syncs.
    let fixed = env.device(local.clone(), env.http(GOOD_TOKEN), 1);
    let report = fixed.synchronize(&scope).await.unwrap();
    assert_eq!(report.pushed, 3, "{report:?}");
    assert_eq!(
        local.queue_status(&scope).await.unwrap(),
        Default::default()
    );
    assert_eq!(env.remote_titles(&scope).await.len(), 3);
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_pauses_for_auth_and_resumes_when_credentials_are_refreshed() {
    let env = Env::start().await;
    let (a, b) = (unique_scope("notes"), unique_scope("notes"));
    let local = env.cache("a.db").await;
    let creds = Arc::new(Credentials {
        current: RwLock::new(env.http("expired-token")),
    });
    let device = env.device(local.clone(), creds.clone(), 1);
    device
        .enqueue_create(&a, rec("r1", "one", 1))
        .await
        .unwrap();
    device
        .enqueue_create(&b, rec("r2", "two", 2))
        .await
        .unwrap();

    let bg = device.start_background_sync(vec![a.clone(), b.clone()], Duration::from_millis(20));
    wait_for("the auth pause", async || bg.is_paused_for_auth()).await;
    // Paused: several intervals pass without attempts burnt or ops parked.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(bg.is_paused_for_auth());
    assert_untouched(&local, &a, 1).await;
    assert_untouched(&local, &b, 1).await;
    let sent_while_paused = env.sent("r1") + env.sent("r2");
    assert_eq!(
        sent_while_paused, 0,
        "401s come before the storage sees anything"
    );

    // The app refreshes the token and tells the loop.
    *creds.current.write().unwrap() = env.http(GOOD_TOKEN);
    bg.credentials_refreshed();
    wait_for("both scopes to drain", async || {
        local.queue_status(&a).await.unwrap().pending == 0
            && local.queue_status(&b).await.unwrap().pending == 0
    })
    .await;
    assert!(!bg.is_paused_for_auth());
    assert_eq!(env.remote_titles(&a).await["r1"], "one");
    assert_eq!(env.remote_titles(&b).await["r2"], "two");
    bg.stop();
}
