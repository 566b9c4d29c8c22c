//! `AppwriteRemoteStore` against an Appwrite server: the one `RCS_TEST_APPWRITE_ENDPOINT`,
//! `_PROJECT` and `_KEY` name (`scripts/start-appwrite.sh` starts the stand-in and sets it up
//! with docs/backends/appwrite.md), else an in-process Appwrite stand-in
//! (`remote_cache_sync::testing::appwrite`) set up here with the guide's blocks, verbatim.
#![cfg(all(
    feature = "appwrite",
    feature = "appwrite-standin",
    feature = "fault-proxy",
    feature = "sqlite"
))]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::remote::appwrite::{
    AppwriteConfig, AppwriteRemoteStore, Credential, document_id,
};
use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault};
use remote_cache_sync::testing::{TestRecord, remote as suite, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Error, InMemoryLocalStore, LocalStore, OpKind, Orchestrator, OrchestratorConfig,
    PendingOp, PushOutcome, QuerySpec, RemoteStore, SyncScope, Timestamp,
};
use serde_json::{Value, json};
use support::appwrite::{DB, Raw, env, keyed, store_at};

fn scope() -> SyncScope {
    unique_scope("records")
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

fn update(scope: &SyncScope, r: TestRecord, base: Option<Timestamp>) -> PendingOp<TestRecord> {
    let mut op = PendingOp::upsert(scope.clone(), OpKind::Update, r);
    op.base_version = base;
    op
}

#[tokio::test]
async fn conformance_suite() {
    let Some(e) = env() else { return };
    suite::run_all(&keyed(&e), scope).await;
}

#[tokio::test]
async fn conformance_suite_as_a_user() {
    let Some(e) = env() else { return };
    let (user, jwt) = Raw::new(&e).user_with_jwt(900).await;
    let store = store_at(&e, &e.endpoint, Credential::jwt(jwt));
    suite::run_all(&store, || {
        SyncScope::new(
            "records",
            [("owner", format!("{user}-{}", uuid::Uuid::now_v7().simple()))],
        )
        .unwrap()
    })
    .await;
}

#[tokio::test]
async fn each_user_sees_only_their_documents() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e);
    let (a, jwt_a) = raw.user_with_jwt(900).await;
    let (b, jwt_b) = raw.user_with_jwt(900).await;
    let store_a = store_at(&e, &e.endpoint, Credential::jwt(jwt_a));
    let store_b = store_at(&e, &e.endpoint, Credential::jwt(jwt_b));
    let sa = SyncScope::new("records", [("owner", a.as_str())]).unwrap();
    let ra = TestRecord::new("mine", "a's", ts(1));
    let out = store_a.push(&sa, &[create(&sa, ra.clone())]).await.unwrap();
    assert!(matches!(out[0], PushOutcome::Applied { .. }), "{out:?}");
    assert_eq!(
        store_a.get_by_id(&sa, "mine").await.unwrap(),
        Some(ra.clone())
    );
    // b reads a's scope: nothing, neither by id nor by pull.
    assert_eq!(store_b.get_by_id(&sa, "mine").await.unwrap(), None);
    let (seen, _) = suite::pull_all(&store_b, &sa, None, 100).await;
    assert!(seen.is_empty(), "b saw a's documents: {seen:?}");
    // b writing over a's document is refused for the whole request (401), never applied.
    let over = update(&sa, TestRecord::new("mine", "b's", ts(2)), Some(ts(1)));
    let err = store_b.push(&sa, &[over]).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(store_a.get_by_id(&sa, "mine").await.unwrap(), Some(ra));

    // With an API key and `owner_key`, documents carry the owner's permissions.
    let server = AppwriteRemoteStore::<TestRecord>::builder(&e.endpoint, &e.project, DB)
        .credential(Credential::api_key(&e.key))
        .owner_key("owner")
        .build()
        .unwrap();
    let sb = SyncScope::new("records", [("owner", b.as_str())]).unwrap();
    let rb = TestRecord::new("from-server", "for b", ts(3));
    server.push(&sb, &[create(&sb, rb.clone())]).await.unwrap();
    assert_eq!(
        store_b.get_by_id(&sb, "from-server").await.unwrap(),
        Some(rb.clone())
    );
    assert_eq!(store_a.get_by_id(&sb, "from-server").await.unwrap(), None);
    let (seen, _) = suite::pull_all(&store_b, &sb, None, 100).await;
    assert_eq!(seen.get("from-server"), Some(&Some(rb)));
    // Without `owner_key`, a key-written document has no permissions: no user reads it.
    let sc = SyncScope::new("records", [("owner", b.as_str())]).unwrap();
    keyed(&e)
        .push(&sc, &[create(&sc, TestRecord::new("no-perms", "x", ts(4)))])
        .await
        .unwrap();
    assert_eq!(store_b.get_by_id(&sc, "no-perms").await.unwrap(), None);
}

#[tokio::test]
async fn scope_values_cannot_inject_queries() {
    let Some(e) = env() else { return };
    let store = keyed(&e);
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let nasty = [
        format!("{tag}\""),
        format!("{tag}\\"),
        format!("{tag}\\\""),
        format!("{tag}'; DROP TABLE documents; --"),
        format!("{tag}\"]}},{{\"method\":\"notEqual\",\"attribute\":\"owner\",\"values\":[\"x"),
        format!("{tag}\"],\"method\":\"isNotNull"),
        format!("{tag}\nline2"),
        format!("{tag}%22%5D"),
    ];
    let victim = SyncScope::new("records", [("owner", tag.as_str())]).unwrap();
    store
        .push(
            &victim,
            &[create(&victim, TestRecord::new("v", "victim", ts(1)))],
        )
        .await
        .unwrap();
    for (i, value) in nasty.iter().enumerate() {
        let s = SyncScope::new("records", [("owner", value.as_str())]).unwrap();
        let (seen, _) = suite::pull_all(&store, &s, None, 100).await;
        assert!(seen.is_empty(), "{value:?} matched other scopes: {seen:?}");
        assert_eq!(store.get_by_id(&s, "v").await.unwrap(), None);
        let r = TestRecord::new(format!("n{i}"), value.clone(), ts(2));
        store.push(&s, &[create(&s, r.clone())]).await.unwrap();
        let (seen, _) = suite::pull_all(&store, &s, None, 100).await;
        assert_eq!(seen.len(), 1, "{value:?}");
        assert_eq!(seen.get(&r.id), Some(&Some(r)));
    }
    let (seen, _) = suite::pull_all(&store, &victim, None, 100).await;
    assert_eq!(seen.len(), 1, "the victim scope changed: {seen:?}");
}

#[tokio::test]
async fn two_concurrent_writers_never_both_apply() {
    let Some(e) = env() else { return };
    let s = scope();
    let (w1, w2) = (keyed(&e), keyed(&e));
    w1.push(&s, &[create(&s, TestRecord::new("hot", "v0", ts(0)))])
        .await
        .unwrap();
    let mut base = ts(0);
    let (mut wins1, mut wins2) = (0, 0);
    for round in 1..=25i64 {
        let r1 = TestRecord::new("hot", format!("w1-{round}"), ts(round * 10 + 1));
        let r2 = TestRecord::new("hot", format!("w2-{round}"), ts(round * 10 + 2));
        let (op1, op2) = (
            [update(&s, r1.clone(), Some(base))],
            [update(&s, r2.clone(), Some(base))],
        );
        let (o1, o2) = tokio::join!(w1.push(&s, &op1), w2.push(&s, &op2));
        let (o1, o2) = (o1.unwrap().remove(0), o2.unwrap().remove(0));
        let applied = |o: &PushOutcome<TestRecord>| matches!(o, PushOutcome::Applied { .. });
        assert!(
            applied(&o1) != applied(&o2),
            "round {round}: exactly one writer applies: {o1:?} / {o2:?}"
        );
        let winner = if applied(&o1) {
            wins1 += 1;
            assert!(
                matches!(&o2, PushOutcome::Conflict { current: Some(_) }),
                "{o2:?}"
            );
            r1
        } else {
            wins2 += 1;
            assert!(
                matches!(&o1, PushOutcome::Conflict { current: Some(_) }),
                "{o1:?}"
            );
            r2
        };
        assert_eq!(w1.get_by_id(&s, "hot").await.unwrap(), Some(winner.clone()));
        base = winner.updated_at;
    }
    eprintln!("wins: w1 {wins1}, w2 {wins2}");
}

#[tokio::test]
async fn expired_or_unknown_jwts_are_unauthorized() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e);
    let (user, jwt) = raw.user_with_jwt(1).await;
    let proxy = FaultProxy::start(e.endpoint.trim_end_matches("/v1").to_owned())
        .await
        .unwrap();
    let store = store_at(&e, &format!("{}/v1", proxy.url()), Credential::jwt(jwt));
    let s = SyncScope::new("records", [("owner", user.as_str())]).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    proxy.reset_log();
    for r in [
        store.fetch_since(&s, None, 10).await.map(|_| ()),
        store.get_by_id(&s, "x").await.map(|_| ()),
        store
            .push(&s, &[create(&s, TestRecord::new("x", "t", ts(1)))])
            .await
            .map(|_| ()),
    ] {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert!(err.pauses_scope() || err.is_auth(), "{err:?}");
    }
    assert_eq!(proxy.request_count(), 0, "an expired JWT must not be sent");
    // A JWT the server does not know (its payload still valid): the server's 401.
    let (_, good) = raw.user_with_jwt(900).await;
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = "forged";
    store.set_jwt(parts.join("."));
    let err = store.fetch_since(&s, None, 10).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message, .. } if message.contains("user_jwt_invalid")),
        "{err:?}"
    );
    assert!(
        !format!("{store:?}").contains(&good[..20]),
        "the JWT leaked into Debug"
    );
    // A fresh JWT works again.
    store.set_jwt(good);
    assert!(store.fetch_since(&s, None, 10).await.is_ok());
}

#[tokio::test]
async fn a_document_committed_late_with_an_earlier_stamp_is_still_pulled() {
    let Some(e) = env() else { return };
    let store = AppwriteRemoteStore::<TestRecord>::builder(&e.endpoint, &e.project, DB)
        .credential(Credential::api_key(&e.key))
        .overlap_window(Duration::from_secs(5))
        .build()
        .unwrap();
    let s = scope();
    store
        .push(&s, &[create(&s, TestRecord::new("early", "e", ts(1)))])
        .await
        .unwrap();
    // Another writer's transaction: stamped now, visible 1.5 s later.
    let raw = Raw::new(&e);
    let (st, tx) = raw
        .call(
            reqwest::Method::POST,
            "/databases/transactions",
            &[],
            Some(json!({"ttl": 60})),
        )
        .await;
    assert_eq!(st, 201, "{tx}");
    let tx = tx["$id"].as_str().unwrap().to_owned();
    let late_doc = document_id(&s, "late");
    let owner = s.keys()["owner"].clone();
    let (st, v) = raw
        .call(
            reqwest::Method::POST,
            &format!("/databases/transactions/{tx}/operations"),
            &[],
            Some(json!({"operations": [{"action": "create", "databaseId": DB, "collectionId": "records",
                "documentId": late_doc, "data": {"record_id": "late", "owner": owner, "title": "l",
                "n": 0, "updated_at": ts(2).to_string(), "deleted_at": null}}]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let commit = tokio::spawn(async move {
        let e = env().unwrap();
        Raw::new(&e)
            .call(
                reqwest::Method::PATCH,
                &format!("/databases/transactions/{tx}"),
                &[("X-Rcs-Standin-Commit-Delay-Ms", "1500")],
                Some(json!({"commit": true})),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A write stamped after the late one, visible at once; a pull reaches the end past both.
    store
        .push(&s, &[create(&s, TestRecord::new("after", "a", ts(3)))])
        .await
        .unwrap();
    let (first, cursor) = suite::pull_all(&store, &s, None, 1).await;
    assert!(
        first.contains_key("after") && !first.contains_key("late"),
        "{first:?}"
    );
    let (st, v) = commit.await.unwrap();
    assert_eq!(st, 200, "{v}");
    let (next, cursor) = suite::pull_all(&store, &s, cursor, 1).await;
    assert_eq!(
        next.keys().collect::<Vec<_>>(),
        ["late"],
        "the late document is pulled once, nothing else is repeated"
    );
    let (again, _) = suite::pull_all(&store, &s, cursor, 1).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_poison_op_is_rejected_and_the_others_apply() {
    let Some(e) = env() else { return };
    let store =
        AppwriteRemoteStore::<remote_cache_sync::JsonRecord>::builder(&e.endpoint, &e.project, DB)
            .credential(Credential::api_key(&e.key))
            .build()
            .unwrap();
    let s = scope();
    let rec = |v: Value| remote_cache_sync::JsonRecord::from_value(v).unwrap();
    let ops = vec![
        PendingOp::upsert(
            s.clone(),
            OpKind::Create,
            rec(json!({"id": "ok1", "title": "fine", "updated_at": ts(1).to_string()})),
        ),
        PendingOp::upsert(
            s.clone(),
            OpKind::Create,
            rec(
                json!({"id": "bad", "colour": "no such attribute", "updated_at": ts(1).to_string()}),
            ),
        ),
        PendingOp::upsert(
            s.clone(),
            OpKind::Create,
            rec(json!({"id": "ok2", "n": 5, "updated_at": ts(1).to_string()})),
        ),
    ];
    let out = store.push(&s, &ops).await.unwrap();
    assert!(matches!(out[0], PushOutcome::Applied { .. }), "{out:?}");
    assert!(
        matches!(&out[1], PushOutcome::Rejected { reason } if reason.contains("document_invalid_structure")),
        "{out:?}"
    );
    assert!(matches!(out[2], PushOutcome::Applied { .. }), "{out:?}");
    assert!(store.get_by_id(&s, "ok2").await.unwrap().is_some());
    assert!(store.get_by_id(&s, "bad").await.unwrap().is_none());
}

#[tokio::test]
async fn missing_collections_and_foreign_documents() {
    let Some(e) = env() else { return };
    let store = keyed(&e);
    let missing = SyncScope::new("nosuchcollection", [("owner", "x")]).unwrap();
    for r in [
        store.fetch_since(&missing, None, 10).await.map(|_| ()),
        store.get_by_id(&missing, "a").await.map(|_| ()),
        store
            .push(
                &missing,
                &[create(&missing, TestRecord::new("a", "t", ts(1)))],
            )
            .await
            .map(|_| ()),
    ] {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert!(err.pauses_scope(), "{err:?}");
    }
    // A document another app wrote is pulled; one whose version does not parse is
    // quarantined, never blocking the scope.
    let s = scope();
    let owner = s.keys()["owner"].clone();
    let raw = Raw::new(&e);
    // Ids of their own: the test can run again against the same server.
    let tag = format!("{:016x}", rand::random::<u64>());
    for (id, data) in [
        (
            format!("other1-{tag}"),
            json!({"record_id": "o1", "owner": owner, "title": "from elsewhere",
                "updated_at": "2026-01-01T00:00:00Z"}),
        ),
        (
            format!("other2-{tag}"),
            json!({"record_id": "o2", "owner": owner, "title": "bad version",
                "updated_at": "yesterday"}),
        ),
    ] {
        let (st, v) = raw
            .call(
                reqwest::Method::POST,
                "/databases/rcs/collections/records/documents",
                &[],
                Some(json!({"documentId": id, "data": data})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let page = store.fetch_since(&s, None, 100).await.unwrap();
    assert_eq!(page.upserts.len(), 1, "{page:?}");
    assert_eq!(page.upserts[0].title, "from elsewhere");
    assert_eq!(page.quarantined.len(), 1, "{page:?}");
}

#[tokio::test]
async fn faults_through_the_proxy_lose_nothing() {
    let Some(e) = env() else { return };
    let proxy = FaultProxy::builder(e.endpoint.trim_end_matches("/v1").to_owned())
        .hang(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let config = AppwriteConfig {
        request_timeout: Duration::from_secs(1),
        ..AppwriteConfig::default()
    };
    let store =
        AppwriteRemoteStore::<TestRecord>::builder(&format!("{}/v1", proxy.url()), &e.project, DB)
            .credential(Credential::api_key(&e.key))
            .config(config)
            .build()
            .unwrap();
    let s = scope();
    let clean = keyed(&e);
    let pass = HttpFault::Delay(Duration::ZERO);
    let mut n = 0;
    for fault in HttpFault::all_kinds() {
        // A push makes four requests: begin, stage, read, commit. Fault each in turn.
        for at in 0..4 {
            n += 1;
            let r = TestRecord::new(format!("r{n}"), format!("{fault:?}@{at}"), ts(n));
            let op = create(&s, r.clone());
            let mut script = vec![pass; at];
            script.push(fault);
            proxy.script(script);
            let first = store.push(&s, std::slice::from_ref(&op)).await;
            proxy.clear_faults();
            if let Ok(out) = &first {
                assert!(
                    matches!(out[0], PushOutcome::Applied { .. }),
                    "{fault:?}@{at}: {out:?}"
                );
            }
            // The app replays what it was not told was saved: exactly once in effect.
            let again = store.push(&s, std::slice::from_ref(&op)).await.unwrap();
            assert!(
                matches!(again[0], PushOutcome::Applied { version } if version == r.updated_at),
                "{fault:?}@{at}: replay answered {again:?} after {first:?}"
            );
            assert_eq!(clean.get_by_id(&s, &r.id).await.unwrap(), Some(r));
        }
        // A pull under the fault fails or returns exactly the clean page.
        proxy.script([fault]);
        let faulty = store.fetch_since(&s, None, 1000).await;
        proxy.clear_faults();
        let good = clean.fetch_since(&s, None, 1000).await.unwrap();
        if let Ok(page) = faulty {
            assert_eq!(page.upserts, good.upserts, "{fault:?}");
        }
    }
    let (all, _) = suite::pull_all(&clean, &s, None, 1000).await;
    assert_eq!(all.len(), n as usize);
}

#[tokio::test]
async fn two_orchestrators_converge_through_appwrite() {
    let Some(e) = env() else { return };
    let s = scope();
    let remote: Arc<dyn RemoteStore<TestRecord>> = Arc::new(keyed(&e));
    let config = || {
        OrchestratorConfig::default()
            .sync_after_write(false)
            .pull_page_size(3)
    };
    let la: Arc<dyn LocalStore<TestRecord>> = Arc::new(InMemoryLocalStore::new());
    let lb: Arc<dyn LocalStore<TestRecord>> = Arc::new(InMemoryLocalStore::new());
    let lww = || Arc::new(remote_cache_sync::LastWriteWins::new());
    let a = Orchestrator::with(la.clone(), remote.clone(), lww(), config());
    let b = Orchestrator::with(lb.clone(), remote.clone(), lww(), config());
    let now = Timestamp::now();
    let at = |ms: i64| now + jiff::SignedDuration::from_millis(ms);
    for i in 0..7 {
        a.enqueue_create(&s, TestRecord::new(format!("r{i}"), format!("a{i}"), at(i)))
            .await
            .unwrap();
    }
    a.synchronize(&s).await.unwrap();
    b.synchronize(&s).await.unwrap();
    let q = QuerySpec::new();
    assert_eq!(
        b.read(&s, CachePolicy::OfflineOnly, &q)
            .await
            .unwrap()
            .len(),
        7
    );
    a.enqueue_update(&s, TestRecord::new("r1", "a edit", at(100)))
        .await
        .unwrap();
    b.enqueue_update(&s, TestRecord::new("r1", "b edit", at(200)))
        .await
        .unwrap();
    b.enqueue_delete_at(&s, "r2", at(150)).await.unwrap();
    a.enqueue_create(&s, TestRecord::new("r9", "new from a", at(120)))
        .await
        .unwrap();
    b.enqueue_create(&s, TestRecord::new("r8", "new from b", at(130)))
        .await
        .unwrap();
    for _ in 0..2 {
        a.synchronize(&s).await.unwrap();
        b.synchronize(&s).await.unwrap();
    }
    let ra = a.read(&s, CachePolicy::OfflineOnly, &q).await.unwrap();
    let rb = b.read(&s, CachePolicy::OfflineOnly, &q).await.unwrap();
    assert_eq!(ra, rb, "the two caches differ");
    let (remote_state, _) = suite::pull_all(remote.as_ref(), &s, None, 100).await;
    let live: Vec<_> = remote_state.into_values().flatten().collect();
    assert_eq!(ra, live, "caches differ from the remote");
    let titles: BTreeMap<_, _> = ra.iter().map(|r| (r.id.clone(), r.title.clone())).collect();
    assert_eq!(titles.get("r1").map(String::as_str), Some("b edit"));
    assert!(!titles.contains_key("r2"), "the delete propagated");
    assert!(titles.contains_key("r8") && titles.contains_key("r9"));
    assert_eq!(la.queue_status(&s).await.unwrap().pending, 0);
    assert_eq!(lb.queue_status(&s).await.unwrap().pending, 0);
}

#[tokio::test]
async fn the_url_form_builds_a_json_record_store() {
    let Some(e) = env() else { return };
    let hostport = e
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let url = format!(
        "appwrite://{hostport}/v1?project={}&database={DB}",
        e.project
    );
    let key = e.key.clone();
    let options = remote_cache_sync::remote::RemoteOptions::new()
        .env(move |k| (k == "RCS_APPWRITE_KEY").then(|| key.clone()));
    let remote =
        remote_cache_sync::remote::from_url_with::<remote_cache_sync::JsonRecord>(&url, options)
            .await
            .unwrap();
    assert_eq!(remote.name(), "appwrite");
    let s = scope();
    let r = remote_cache_sync::JsonRecord::from_value(
        json!({"id": "j1", "title": "json", "updated_at": ts(1).to_string()}),
    )
    .unwrap();
    let out = remote
        .push(
            &s,
            &[PendingOp::upsert(s.clone(), OpKind::Create, r.clone())],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], PushOutcome::Applied { .. }), "{out:?}");
    let got = remote.get_by_id(&s, "j1").await.unwrap().unwrap();
    assert_eq!(got.value()["title"], "json");
    let t = remote.server_time().await.unwrap();
    assert!((t - Timestamp::now()).get_seconds().abs() < 5);
}
