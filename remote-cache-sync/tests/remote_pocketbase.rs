//! `PocketBaseRemoteStore` against a real PocketBase (`scripts/start-pocketbase.sh` starts one and
//! applies docs/backends/pocketbase.md). Skips when `RCS_TEST_POCKETBASE_URL` is unset.
#![cfg(feature = "pocketbase")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use remote_cache_sync::remote::pocketbase::{
    Credentials, PocketBaseConfig, PocketBaseRemoteStore, pocketbase_id,
};
use remote_cache_sync::remote::{RemoteEvent, RemoteEvents};
use remote_cache_sync::testing::{TestRecord, remote as suite, require_env, ts, unique_scope};
use remote_cache_sync::{
    CachePolicy, Cursor, Error, InMemoryLocalStore, LocalStore, OpKind, Orchestrator,
    OrchestratorConfig, PendingOp, PushOutcome, QuerySpec, RemoteStore, SyncScope, Timestamp,
};
use serde_json::{Value, json};

struct Env {
    url: String,
    email: String,
    password: String,
}

fn env() -> Option<Env> {
    let url = require_env("RCS_TEST_POCKETBASE_URL")?;
    Some(Env {
        url,
        email: std::env::var("RCS_TEST_POCKETBASE_EMAIL").expect("RCS_TEST_POCKETBASE_EMAIL"),
        password: std::env::var("RCS_TEST_POCKETBASE_PASSWORD")
            .expect("RCS_TEST_POCKETBASE_PASSWORD"),
    })
}

fn superuser(e: &Env) -> PocketBaseRemoteStore<TestRecord> {
    PocketBaseRemoteStore::new(&e.url, Credentials::superuser(&e.email, &e.password)).unwrap()
}

fn scope() -> SyncScope {
    unique_scope("records")
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

/// Raw HTTP helper for set-up and for showing the server's own behaviour.
struct Raw {
    http: reqwest::Client,
    url: String,
}

impl Raw {
    fn new(url: &str) -> Self {
        Raw {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&self, collection: &str, identity: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/collections/{collection}/auth-with-password"),
                None,
                Some(json!({"identity": identity, "password": password})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Creates a user; returns (id, email, password).
    async fn new_user(&self) -> (String, String, String) {
        let email = format!("u{}@example.com", uuid::Uuid::now_v7().simple());
        let password = "user-password-123".to_owned();
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/api/collections/users/records",
                None,
                Some(json!({"email": email, "password": password, "passwordConfirm": password})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        (v["id"].as_str().unwrap().to_owned(), email, password)
    }
}

/// Pulls from `cursor` until `has_more` is false; returns latest state per id and the cursor.
async fn pull(
    store: &PocketBaseRemoteStore<TestRecord>,
    scope: &SyncScope,
    cursor: Option<Cursor>,
    limit: usize,
) -> (BTreeMap<String, Option<TestRecord>>, Option<Cursor>) {
    suite::pull_all(store, scope, cursor, limit).await
}

#[tokio::test]
async fn conformance_suite() {
    let Some(e) = env() else { return };
    suite::run_all(&superuser(&e), scope).await;
}

#[tokio::test]
async fn scope_values_cannot_inject_filters() {
    let Some(e) = env() else { return };
    let store = superuser(&e);
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let nasty = [
        format!("{tag}\" || owner != \""),
        format!("{tag}' || owner != '"),
        format!("{tag}\\\" || 1=1 || owner = \\\""),
        format!("{tag}\\"),
        format!("{tag}\nline2 || \"x\""),
        format!("{tag} && (owner ~ \"%\")"),
    ];
    let plain = SyncScope::new("records", [("owner", tag.clone())]).unwrap();
    store
        .batch_upsert(&plain, &[TestRecord::new("p1", "plain", ts(1))])
        .await
        .unwrap();
    for (i, v) in nasty.iter().enumerate() {
        let s = SyncScope::new("records", [("owner", v.clone())]).unwrap();
        store
            .batch_upsert(&s, &[TestRecord::new(format!("n{i}"), v.clone(), ts(1))])
            .await
            .unwrap();
    }
    for (i, v) in nasty.iter().enumerate() {
        let s = SyncScope::new("records", [("owner", v.clone())]).unwrap();
        let (state, _) = pull(&store, &s, None, 100).await;
        let ids: Vec<_> = state.keys().cloned().collect();
        assert_eq!(
            ids,
            vec![format!("n{i}")],
            "scope value {v:?} must see exactly its own record"
        );
        assert_eq!(state[&format!("n{i}")].as_ref().unwrap().title, *v);
        assert_eq!(
            store
                .get_by_id(&s, &format!("n{i}"))
                .await
                .unwrap()
                .unwrap()
                .title,
            *v
        );
        assert_eq!(store.get_by_id(&s, "p1").await.unwrap(), None);
    }
    let (state, _) = pull(&store, &plain, None, 100).await;
    assert_eq!(
        state.keys().cloned().collect::<Vec<_>>(),
        vec!["p1".to_owned()]
    );
    // Names that would be spliced into filters or URLs are refused outright.
    let bad = SyncScope::new("records", [("owner = \"x\" || owner", "v")]).unwrap();
    assert!(matches!(
        store.fetch_since(&bad, None, 10).await,
        Err(Error::InvalidScope(_))
    ));
    let bad = SyncScope::new("records/../_superusers", [("owner", "v")]).unwrap();
    assert!(matches!(
        store.get_by_id(&bad, "x").await,
        Err(Error::InvalidScope(_))
    ));
}

#[tokio::test]
async fn poison_op_is_rejected_and_the_others_apply() {
    let Some(e) = env() else { return };
    let store = superuser(&e);
    let s = scope();
    let too_long = "x".repeat(6000); // the guide caps `title` at 5000 characters
    let ops = vec![
        create(&s, TestRecord::new("a", "ok a", ts(1))),
        create(&s, TestRecord::new("poison", too_long, ts(1))),
        create(&s, TestRecord::new("b", "ok b", ts(1))),
        create(&s, TestRecord::new("poison2", "x".repeat(5001), ts(1))),
        create(&s, TestRecord::new("c", "ok c", ts(1))),
    ];
    let out = store.push(&s, &ops).await.unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    match &out[1] {
        PushOutcome::Rejected { reason } => assert!(reason.contains("title"), "{reason}"),
        other => panic!("poison op must be rejected, got {other:?}"),
    }
    assert!(
        matches!(out[2], PushOutcome::Applied { .. }),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(out[3], PushOutcome::Rejected { .. }),
        "{:?}",
        out[3]
    );
    assert!(
        matches!(out[4], PushOutcome::Applied { .. }),
        "{:?}",
        out[4]
    );
    let (state, _) = pull(&store, &s, None, 100).await;
    assert_eq!(state.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[tokio::test]
async fn many_ids_are_chunked_under_filter_limits() {
    let Some(e) = env() else { return };
    let store = superuser(&e);
    let s = scope();
    // 450 ids of 36 chars: one `id = …` filter would be ~20k characters and 450 expressions.
    let records: Vec<_> = (0..450)
        .map(|i| TestRecord::new(uuid::Uuid::now_v7().to_string(), format!("r{i}"), ts(i)))
        .collect();
    store.batch_upsert(&s, &records).await.unwrap();
    // Re-pushing pre-reads all 450 ids: they must all be found (replays answer Applied).
    let ops: Vec<_> = records.iter().map(|r| create(&s, r.clone())).collect();
    let out = store.push(&s, &ops).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, PushOutcome::Applied { .. })));
    let (state, _) = pull(&store, &s, None, 1000).await;
    assert_eq!(state.len(), 450);
}

#[tokio::test]
async fn a_user_token_only_sees_that_users_records() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let (u1, email1, pw1) = raw.new_user().await;
    let (u2, _, _) = raw.new_user().await;
    let admin = superuser(&e);
    let s1 = SyncScope::new("records", [("owner", u1.clone())]).unwrap();
    let s2 = SyncScope::new("records", [("owner", u2.clone())]).unwrap();
    admin
        .batch_upsert(&s1, &[TestRecord::new("mine", "u1's", ts(1))])
        .await
        .unwrap();
    admin
        .batch_upsert(
            &s2,
            &[
                TestRecord::new("theirs", "u2's", ts(1)),
                TestRecord::new("mine", "u2's mine", ts(1)),
            ],
        )
        .await
        .unwrap();

    let user: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::user("users", &email1, &pw1)).unwrap();
    user.authenticate().await.unwrap();
    let (own, _) = pull(&user, &s1, None, 100).await;
    assert_eq!(own.keys().cloned().collect::<Vec<_>>(), ["mine"]);
    assert_eq!(own["mine"].as_ref().unwrap().title, "u1's");
    let (other, _) = pull(&user, &s2, None, 100).await;
    assert!(other.is_empty(), "u1 must not see u2's rows: {other:?}");
    assert_eq!(user.get_by_id(&s2, "theirs").await.unwrap(), None);
    // A scope without keys lists the whole collection: the rules still filter it to u1's rows.
    let everything = SyncScope::named("records").unwrap();
    let mut cursor = None;
    loop {
        let page = user
            .fetch_since(&everything, cursor.as_ref(), 1000)
            .await
            .unwrap();
        for r in &page.upserts {
            assert_eq!(
                r.title, "u1's",
                "the keyless scope leaked another user's row"
            );
        }
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    // Writing into u2's scope is refused, and changes nothing there.
    let out = user
        .push(&s2, &[create(&s2, TestRecord::new("intruder", "x", ts(2)))])
        .await
        .unwrap();
    assert!(
        matches!(out[0], PushOutcome::Rejected { .. }),
        "{:?}",
        out[0]
    );
    let mut upd = PendingOp::upsert(
        s2.clone(),
        OpKind::Update,
        TestRecord::new("theirs", "hijacked", ts(3)),
    );
    upd.base_version = Some(ts(1));
    let out = user.push(&s2, &[upd]).await.unwrap();
    assert!(
        !matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    assert_eq!(
        admin.get_by_id(&s2, "theirs").await.unwrap().unwrap().title,
        "u2's"
    );
    assert_eq!(admin.get_by_id(&s2, "intruder").await.unwrap(), None);
    // Its own scope works end to end.
    let mut upd = PendingOp::upsert(
        s1.clone(),
        OpKind::Update,
        TestRecord::new("mine", "edited", ts(5)),
    );
    upd.base_version = Some(ts(1));
    let out = user.push(&s1, &[upd]).await.unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
}

/// Two writers push an update on the same base, 30 rounds: exactly one may apply each time, the
/// other must get a `Conflict` carrying the winner's version. Returns the rounds both applied.
async fn race_two_writers(
    a: &PocketBaseRemoteStore<TestRecord>,
    b: &PocketBaseRemoteStore<TestRecord>,
    s: &SyncScope,
) -> usize {
    let mut base = ts(0);
    a.push(s, &[create(s, TestRecord::new("hot", "v0", base))])
        .await
        .unwrap();
    let mut both_won = 0;
    for round in 1..=30i64 {
        let op = |who: &str, t: i64| {
            let mut op = PendingOp::upsert(
                s.clone(),
                OpKind::Update,
                TestRecord::new("hot", format!("{who}{round}"), ts(t)),
            );
            op.base_version = Some(base);
            op
        };
        let (oa, ob) = (op("a", round * 10), op("b", round * 10 + 1));
        let (ra, rb) = tokio::join!(
            a.push(s, std::slice::from_ref(&oa)),
            b.push(s, std::slice::from_ref(&ob))
        );
        let (ra, rb) = (ra.unwrap().remove(0), rb.unwrap().remove(0));
        let won_a = matches!(ra, PushOutcome::Applied { .. });
        let won_b = matches!(rb, PushOutcome::Applied { .. });
        assert!(
            won_a || won_b,
            "round {round}: someone must win: {ra:?} {rb:?}"
        );
        let now = a.get_by_id(s, "hot").await.unwrap().unwrap();
        if won_a && won_b {
            both_won += 1;
        } else {
            let loser = if won_a { &rb } else { &ra };
            match loser {
                PushOutcome::Conflict {
                    current: Some(remote_cache_sync::Change::Upsert(cur)),
                } => assert_eq!(cur, &now, "round {round}: the conflict carries the winner"),
                other => panic!("round {round}: the loser must conflict, got {other:?}"),
            }
        }
        base = now.updated_at;
    }
    both_won
}

#[tokio::test]
async fn user_writes_are_compare_and_set_inside_the_transaction() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let (uid, email, pw) = raw.new_user().await;
    let s = SyncScope::new("records", [("owner", uid.clone())]).unwrap();
    let user =
        || PocketBaseRemoteStore::new(&e.url, Credentials::user("users", &email, &pw)).unwrap();
    let both = race_two_writers(&user(), &user(), &s).await;
    assert_eq!(
        both, 0,
        "two users on the same base both applied: a lost update"
    );
}

/// Superusers bypass API rules; the guide's compare-and-set hook still serializes them.
#[tokio::test]
async fn superuser_writes_are_compare_and_set_through_the_hook() {
    let Some(e) = env() else { return };
    let both = race_two_writers(&superuser(&e), &superuser(&e), &scope()).await;
    assert_eq!(
        both, 0,
        "two superusers on the same base both applied: a lost update"
    );
}

#[tokio::test]
async fn expired_or_invalid_tokens_are_unauthorized() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let (uid, email, pw) = raw.new_user().await;
    let s = SyncScope::new("records", [("owner", uid.clone())]).unwrap();
    superuser(&e)
        .batch_upsert(&s, &[TestRecord::new("r", "visible", ts(1))])
        .await
        .unwrap();

    // A real, server-signed token that expires after one second.
    let admin_token = raw.login("_superusers", &e.email, &e.password).await;
    let (st, v) = raw
        .call(
            reqwest::Method::POST,
            &format!("/api/collections/users/impersonate/{uid}"),
            Some(&admin_token),
            Some(json!({"duration": 1})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let short = v["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The server's own behaviour: the expired token reads as a guest, an empty 200.
    let (st, v) = raw
        .call(
            reqwest::Method::GET,
            "/api/collections/records/records",
            Some(&short),
            None,
        )
        .await;
    assert_eq!(
        (st, v["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "the pitfall this guards against"
    );
    let expired: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::token(short.clone())).unwrap();
    let err = expired.fetch_since(&s, None, 100).await.unwrap_err();
    assert!(
        err.is_auth(),
        "expired token must be Unauthorized, got {err:?}"
    );
    // A reconciliation's listing would read as "the remote has nothing" and empty the cache.
    let err = expired
        .digest(&s, &remote_cache_sync::reconcile::DigestRequest::top())
        .await
        .unwrap_err();
    assert!(err.is_auth(), "an expired token's digest: {err:?}");
    assert!(!err.to_string().contains(&short));
    assert!(expired.get_by_id(&s, "r").await.unwrap_err().is_auth());
    assert!(
        expired.push(&s, &[]).await.is_ok(),
        "an empty push needs no server"
    );

    // A well-formed token with a forged signature (and far-future exp) is refused by the server.
    let good = raw.login("users", &email, &pw).await;
    let forged = format!("{}.AAAA", good.rsplit_once('.').unwrap().0);
    let store: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::token(forged.clone())).unwrap();
    let err = store.fetch_since(&s, None, 100).await.unwrap_err();
    assert!(
        err.is_auth(),
        "forged token must be Unauthorized, got {err:?}"
    );
    assert!(!format!("{err} {err:?} {store:?}").contains(&forged));
    // Garbage, wrong password.
    let garbage: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::token("not-a-token")).unwrap();
    assert!(
        garbage
            .fetch_since(&s, None, 10)
            .await
            .unwrap_err()
            .is_auth()
    );
    let wrong: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::new(
        &e.url,
        Credentials::user("users", &email, "wrong-password-xyz"),
    )
    .unwrap();
    let err = wrong.fetch_since(&s, None, 10).await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert!(!format!("{err} {wrong:?}").contains("wrong-password-xyz"));
    // The valid token works, and sees the record.
    let ok: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::token(good)).unwrap();
    let (state, _) = pull(&ok, &s, None, 10).await;
    assert_eq!(state.len(), 1);
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&format!("http://127.0.0.1:{port}"), Credentials::Anonymous)
            .unwrap();
    let err = store.fetch_since(&scope(), None, 10).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_pull_during_a_1000_record_batch_loses_nothing() {
    let Some(e) = env() else { return };
    let s = scope();
    let writer: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::with_config(
        &e.url,
        Credentials::superuser(&e.email, &e.password),
        PocketBaseConfig {
            batch_size: 1000,
            ..PocketBaseConfig::default()
        },
    )
    .unwrap();
    let trickle = superuser(&e);
    let puller = superuser(&e);
    let done = Arc::new(AtomicBool::new(false));

    let big: Vec<_> = (0..1000)
        .map(|i| TestRecord::new(format!("big{i:04}"), "big", ts(i)))
        .collect();
    let big_task = {
        let (s, big) = (s.clone(), big.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Err(e) = writer.batch_upsert(&s, &big).await {
                assert!(e.is_retryable(), "{e:?}");
            }
        })
    };
    // Four writers keep committing small writes around the big batch, so the puller's cursor
    // moves through `updated` stamps while other transactions are still open.
    let trickle_task = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for w in 0..4 {
                let (s, done, trickle) = (s.clone(), done.clone(), trickle.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    while !done.load(Ordering::Relaxed) {
                        let r = TestRecord::new(format!("small{w}-{n:04}"), "small", ts(n));
                        // Like an app: retry what the adapter calls retryable.
                        while let Err(e) = trickle.batch_upsert(&s, std::slice::from_ref(&r)).await
                        {
                            assert!(e.is_retryable(), "{e:?}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        n += 1;
                    }
                    n
                }));
            }
            let mut counts = Vec::new();
            for t in tasks {
                counts.push(t.await.unwrap());
            }
            counts
        })
    };
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    let mut pulls = 0;
    let mut finished_at = None;
    loop {
        let page = puller.fetch_since(&s, cursor.as_ref(), 20).await.unwrap();
        pulls += 1;
        for r in &page.upserts {
            seen.insert(r.id.clone());
        }
        cursor = page.cursor.clone();
        if big_task.is_finished() && finished_at.is_none() {
            finished_at = Some(pulls);
            done.store(true, Ordering::Relaxed);
        }
        // Keep pulling for a while after everything was written, as an app would on its next syncs.
        if finished_at.is_some_and(|f| pulls > f + 20) && !page.has_more {
            break;
        }
        if !page.has_more {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    big_task.await.unwrap();
    let small = trickle_task.await.unwrap();
    // One last incremental pull picks up the trickle's final writes.
    let (rest, _) = pull(&puller, &s, cursor, 500).await;
    seen.extend(rest.into_keys());
    let missing: Vec<_> = big
        .iter()
        .filter(|r| !seen.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();
    assert!(
        missing.is_empty(),
        "{} big-batch records were never pulled: {:?}…",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    for (w, count) in small.iter().enumerate() {
        for n in 0..*count {
            assert!(
                seen.contains(&format!("small{w}-{n:04}")),
                "small{w}-{n:04} was never pulled"
            );
        }
    }
    println!("pulls: {pulls}, small writes: {small:?}");
}

/// Simulates the race the overlap window exists for: a row whose `updated` stamp is older than
/// the puller's cursor becomes visible only after the cursor moved past it (PocketBase stamps
/// `updated` before the write commits). The row is written straight into PocketBase's SQLite
/// file, the only way to choose `updated`; a window-less keyset cursor misses it.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_row_committed_late_with_an_earlier_stamp_is_still_pulled() {
    let Some(e) = env() else { return };
    let Some(dir) = require_env("RCS_TEST_POCKETBASE_DIR") else {
        return;
    };
    let s = scope();
    let store = superuser(&e);
    let naive: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::with_config(
        &e.url,
        Credentials::superuser(&e.email, &e.password),
        PocketBaseConfig {
            overlap_window: Duration::ZERO,
            ..PocketBaseConfig::default()
        },
    )
    .unwrap();
    store
        .batch_upsert(
            &s,
            &[
                TestRecord::new("a", "a", ts(1)),
                TestRecord::new("b", "b", ts(1)),
            ],
        )
        .await
        .unwrap();
    let (first, cursor) = pull(&store, &s, None, 100).await;
    let (first_naive, cursor_naive) = pull(&naive, &s, None, 100).await;
    assert_eq!(first.len(), 2);
    assert_eq!(first_naive.len(), 2);

    // "Commit" a row stamped 5 s before the newest row the pullers have seen (inside the 15 s
    // window, outside the 1 s margin a window-less cursor still keeps for the `Date` header).
    let newest: String = {
        let db = rusqlite::Connection::open(format!("{dir}/pb_data/data.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        let newest: String = db
            .query_row(
                "SELECT max(updated) FROM records WHERE owner = ?1",
                [s.key("owner").unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        let t: Timestamp = newest.replacen(' ', "T", 1).parse().unwrap();
        let late = (t - jiff::SignedDuration::from_secs(5))
            .strftime("%Y-%m-%d %H:%M:%S%.3fZ")
            .to_string();
        db.execute(
            "INSERT INTO records (id, record_id, owner, title, n, updated_at, deleted_at, created, updated)
             VALUES (?1, 'late', ?2, 'late', 0, ?3, '', ?4, ?4)",
            rusqlite::params![pocketbase_id(&s, "late"), s.key("owner").unwrap(), ts(5).to_string(), late],
        )
        .unwrap();
        newest
    };
    let (next, _) = pull(&store, &s, cursor, 100).await;
    assert!(
        next.get("late")
            .is_some_and(|r| r.as_ref().is_some_and(|r| r.title == "late")),
        "the late row must be pulled (newest seen {newest}): got {next:?}"
    );
    assert!(
        !next.contains_key("a") && !next.contains_key("b"),
        "already-delivered rows are not repeated: {next:?}"
    );
    let (next_naive, _) = pull(&naive, &s, cursor_naive, 100).await;
    assert!(
        !next_naive.contains_key("late"),
        "without the window the row is lost; the test would not bite"
    );
}

#[tokio::test]
async fn two_clients_converge_through_pocketbase() {
    let Some(e) = env() else { return };
    let s = scope();
    let remote: Arc<dyn RemoteStore<TestRecord>> = Arc::new(superuser(&e));
    let config = || {
        OrchestratorConfig::default()
            .sync_after_write(false)
            .pull_page_size(3)
    };
    let la: Arc<dyn LocalStore<TestRecord>> = Arc::new(InMemoryLocalStore::new());
    let lb: Arc<dyn LocalStore<TestRecord>> = Arc::new(InMemoryLocalStore::new());
    let a = Orchestrator::with(
        la.clone(),
        remote.clone(),
        Arc::new(remote_cache_sync::LastWriteWins::new()),
        config(),
    );
    let b = Orchestrator::with(
        lb.clone(),
        remote.clone(),
        Arc::new(remote_cache_sync::LastWriteWins::new()),
        config(),
    );
    let now = Timestamp::now();
    let at = |ms: i64| now + jiff::SignedDuration::from_millis(ms);

    for i in 0..5 {
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
        5
    );

    // Offline edits on both sides, including a concurrent edit of r1 (b's is newer).
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
    assert_eq!(ra, live, "caches differ from PocketBase");
    let titles: BTreeMap<_, _> = ra.iter().map(|r| (r.id.clone(), r.title.clone())).collect();
    assert_eq!(
        titles.get("r1").map(String::as_str),
        Some("b edit"),
        "last write wins on r1"
    );
    assert!(!titles.contains_key("r2"), "the delete propagated");
    assert!(titles.contains_key("r8") && titles.contains_key("r9"));
    assert_eq!(la.queue_status(&s).await.unwrap().pending, 0);
    assert_eq!(lb.queue_status(&s).await.unwrap().pending, 0);
}

/// A TCP proxy whose connections the test can cut, to make the realtime stream drop.
struct Proxy {
    port: u16,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let c2 = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c2.lock().unwrap().push(h);
            }
        });
        Proxy { port, conns }
    }

    fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

async fn next_event(sub: &mut RemoteEvents) -> RemoteEvent {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("no realtime event within 20 s")
        .expect("subscription closed")
}

#[tokio::test]
async fn realtime_notifies_changes_and_resyncs_after_reconnect() {
    let Some(e) = env() else { return };
    let proxy = Proxy::start(&e.url).await;
    let via_proxy: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::new(
        &format!("http://127.0.0.1:{}", proxy.port),
        Credentials::superuser(&e.email, &e.password),
    )
    .unwrap();
    let writer = superuser(&e);
    let watched = SyncScope::new(
        "records",
        [("owner", format!("rt\"{}\\ || x", uuid::Uuid::now_v7()))],
    )
    .unwrap();
    let other = scope();
    let mut sub = via_proxy.subscribe(std::slice::from_ref(&watched)).unwrap();
    assert_eq!(next_event(&mut sub).await, RemoteEvent::Reconnected);

    // A write in another scope is not reported; one in the watched scope is.
    writer
        .batch_upsert(&other, &[TestRecord::new("o", "other", ts(1))])
        .await
        .unwrap();
    writer
        .batch_upsert(&watched, &[TestRecord::new("w", "watched", ts(1))])
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        RemoteEvent::Changed(watched.clone())
    );

    // Cut the stream: the subscription reconnects, resubscribes and asks for a resync.
    proxy.cut();
    loop {
        match next_event(&mut sub).await {
            RemoteEvent::Reconnected => break,
            RemoteEvent::Changed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // A change made while disconnected is found by the resync pull; new changes notify again.
    let mut upd = PendingOp::upsert(
        watched.clone(),
        OpKind::Update,
        TestRecord::new("w", "after", ts(2)),
    );
    upd.base_version = Some(ts(1));
    writer.push(&watched, &[upd]).await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        RemoteEvent::Changed(watched.clone())
    );
    drop(sub);
}

#[tokio::test]
async fn the_url_form_builds_a_json_record_store() {
    let Some(e) = env() else { return };
    let rest = e.url.trim_start_matches("http://");
    let vars = |k: &str| match k {
        "RCS_POCKETBASE_IDENTITY" => Some(e.email.clone()),
        "RCS_POCKETBASE_PASSWORD" => Some(e.password.clone()),
        _ => None,
    };
    let store = remote_cache_sync::remote::pocketbase::from_url_with(
        &format!("pocketbase://{rest}?batch_size=10"),
        vars,
    )
    .unwrap();
    let s = scope();
    let rec = remote_cache_sync::JsonRecord::from_value(json!({
        "id": "Mixed-Case_ID", "updated_at": "2026-01-01T00:00:00.123456789Z", "title": "json", "n": 4
    }))
    .unwrap();
    store
        .batch_upsert(&s, std::slice::from_ref(&rec))
        .await
        .unwrap();
    let got = store.get_by_id(&s, "Mixed-Case_ID").await.unwrap().unwrap();
    assert_eq!(got.value()["title"], "json");
    assert_eq!(got.value()["n"], 4);
    assert_eq!(
        got.value()["updated_at"],
        "2026-01-01T00:00:00.123456789Z",
        "versions keep full precision"
    );
    assert_eq!(
        got.value()["owner"],
        s.key("owner").unwrap(),
        "scope key fields come back"
    );
    assert_eq!(
        store.get_by_id(&s, "mixed-case_id").await.unwrap(),
        None,
        "ids are case-sensitive"
    );
    let anonymous = remote_cache_sync::remote::pocketbase::from_url_with(
        &format!("pocketbase://{rest}"),
        |_| None,
    )
    .unwrap();
    let st = anonymous.fetch_since(&s, None, 10).await.unwrap();
    assert!(
        st.is_empty(),
        "a guest sees nothing through the per-user rules"
    );
}

/// A refreshable token is renewed before it expires: a 10-second token (the shortest allowed) (from an auth collection
/// made for this test) keeps working well past its original expiry without any password.
#[tokio::test]
async fn a_refreshable_token_is_renewed_before_expiry() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let admin = raw.login("_superusers", &e.email, &e.password).await;
    let name = "rcs_test_short_tokens";
    let (st, _) = raw
        .call(
            reqwest::Method::GET,
            &format!("/api/collections/{name}"),
            Some(&admin),
            None,
        )
        .await;
    if st != 200 {
        let (st, v) = raw
            .call(
                reqwest::Method::POST,
                "/api/collections",
                Some(&admin),
                Some(json!({"name": name, "type": "auth", "authToken": {"duration": 10},
                            "createRule": "", "passwordAuth": {"enabled": true, "identityFields": ["email"]}})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let email = format!("s{}@example.com", uuid::Uuid::now_v7().simple());
    let (st, v) = raw
        .call(
            reqwest::Method::POST,
            &format!("/api/collections/{name}/records"),
            None,
            Some(json!({"email": email, "password": "short-password-1", "passwordConfirm": "short-password-1"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let uid = v["id"].as_str().unwrap().to_owned();
    let token = raw.login(name, &email, "short-password-1").await;
    let s = SyncScope::new("records", [("owner", uid)]).unwrap();
    let store: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::token(token)).unwrap();
    for i in 0..6i64 {
        let out = store
            .push(
                &s,
                &[create(&s, TestRecord::new(format!("t{i}"), "x", ts(i)))],
            )
            .await
            .unwrap();
        assert!(
            matches!(out[0], PushOutcome::Applied { .. }),
            "round {i}: {:?}",
            out[0]
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    // 15 s after a 10 s token was issued: still authorized, and the list is not a guest's.
    let (state, _) = pull(&store, &s, None, 10).await;
    assert_eq!(state.len(), 6);
}

/// A field the collection lacks would be dropped silently by PocketBase: the op is rejected with
/// the field's name instead.
#[tokio::test]
async fn fields_missing_from_the_collection_are_reported() {
    let Some(e) = env() else { return };
    let rest = e.url.trim_start_matches("http://");
    let vars = |k: &str| match k {
        "RCS_POCKETBASE_IDENTITY" => Some(e.email.clone()),
        "RCS_POCKETBASE_PASSWORD" => Some(e.password.clone()),
        _ => None,
    };
    let store =
        remote_cache_sync::remote::pocketbase::from_url_with(&format!("pocketbase://{rest}"), vars)
            .unwrap();
    let s = scope();
    let ok = remote_cache_sync::JsonRecord::from_value(
        json!({"id": "ok", "updated_at": "2026-01-01T00:00:00Z", "title": "t"}),
    )
    .unwrap();
    let extra = remote_cache_sync::JsonRecord::from_value(
        json!({"id": "extra", "updated_at": "2026-01-01T00:00:00Z", "title": "t", "colour": "blue"}),
    )
    .unwrap();
    let ops = vec![
        PendingOp::upsert(s.clone(), OpKind::Create, ok),
        PendingOp::upsert(s.clone(), OpKind::Create, extra),
    ];
    let out = store.push(&s, &ops).await.unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    match &out[1] {
        PushOutcome::Rejected { reason } => assert!(reason.contains("colour"), "{reason}"),
        other => panic!("a dropped field must be reported, got {other:?}"),
    }
    // Retrying without fixing the schema reports it again (the version is already stored, but
    // not the content): the retry is not mistaken for an applied replay.
    let again = store.push(&s, &ops[1..]).await.unwrap();
    assert!(
        matches!(again[0], PushOutcome::Rejected { .. }),
        "{:?}",
        again[0]
    );
    // A plain replay of the applied op is recognised and writes nothing new.
    let replay = store.push(&s, &ops[..1]).await.unwrap();
    assert!(
        matches!(replay[0], PushOutcome::Applied { .. }),
        "{:?}",
        replay[0]
    );
}

/// A token revoked on the server (the user changed password) while its `exp` is still in the
/// future: PocketBase would list as a guest (empty 200); the adapter re-checks the token before
/// trusting an empty page and reports `Unauthorized`.
#[tokio::test]
async fn a_revoked_token_is_unauthorized_not_empty() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let (uid, email, pw) = raw.new_user().await;
    let s = SyncScope::new("records", [("owner", uid.clone())]).unwrap();
    let config = PocketBaseConfig {
        auth_recheck: Duration::ZERO,
        ..PocketBaseConfig::default()
    };
    let by_token: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::with_config(
        &e.url,
        Credentials::token(raw.login("users", &email, &pw).await),
        config.clone(),
    )
    .unwrap();
    let by_password: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::with_config(&e.url, Credentials::user("users", &email, &pw), config)
            .unwrap();
    assert!(by_token.fetch_since(&s, None, 10).await.unwrap().is_empty());
    assert!(
        by_password
            .fetch_since(&s, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let admin = raw.login("_superusers", &e.email, &e.password).await;
    let (st, v) = raw
        .call(
            reqwest::Method::PATCH,
            &format!("/api/collections/users/records/{uid}"),
            Some(&admin),
            Some(
                json!({"password": "another-password-9", "passwordConfirm": "another-password-9"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let err = by_token.fetch_since(&s, None, 10).await.unwrap_err();
    assert!(err.is_auth(), "revoked token: {err:?}");
    let err = by_password.fetch_since(&s, None, 10).await.unwrap_err();
    assert!(err.is_auth(), "old password: {err:?}");
}

/// Rows written by other PocketBase clients (no `updated_at`) sync with the server stamp as
/// their version; a scope naming a missing collection is `NotFound`.
#[tokio::test]
async fn rows_from_other_clients_and_missing_collections() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let admin = raw.login("_superusers", &e.email, &e.password).await;
    let store = superuser(&e);
    let s = scope();
    let (st, v) = raw
        .call(
            reqwest::Method::POST,
            "/api/collections/records/records",
            Some(&admin),
            Some(
                json!({"id": pocketbase_id(&s, "foreign"), "record_id": "foreign",
                        "owner": s.key("owner").unwrap(), "title": "from the dashboard"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (state, _) = pull(&store, &s, None, 10).await;
    let got = state["foreign"].clone().expect("live");
    assert_eq!(got.title, "from the dashboard");
    let mut upd = PendingOp::upsert(
        s.clone(),
        OpKind::Update,
        TestRecord::new("foreign", "synced", ts(9)),
    );
    upd.base_version = Some(got.updated_at);
    let out = store.push(&s, &[upd]).await.unwrap();
    assert!(
        matches!(out[0], PushOutcome::Applied { .. }),
        "{:?}",
        out[0]
    );
    assert_eq!(
        store.get_by_id(&s, "foreign").await.unwrap().unwrap().title,
        "synced"
    );

    let missing = SyncScope::new("no_such_collection", [("owner", "x")]).unwrap();
    let err = store.fetch_since(&missing, None, 10).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Realtime with a user token: the list rule applies to events too.
#[tokio::test]
async fn realtime_events_follow_the_users_rules() {
    let Some(e) = env() else { return };
    let raw = Raw::new(&e.url);
    let (u1, email1, pw1) = raw.new_user().await;
    let (u2, _, _) = raw.new_user().await;
    let s1 = SyncScope::new("records", [("owner", u1)]).unwrap();
    let s2 = SyncScope::new("records", [("owner", u2)]).unwrap();
    let user: PocketBaseRemoteStore<TestRecord> =
        PocketBaseRemoteStore::new(&e.url, Credentials::user("users", &email1, &pw1)).unwrap();
    let admin = superuser(&e);
    // u1 also asks for u2's scope: the rules must keep those events away.
    let mut sub = user.subscribe(&[s1.clone(), s2.clone()]).unwrap();
    assert_eq!(next_event(&mut sub).await, RemoteEvent::Reconnected);
    admin
        .batch_upsert(&s2, &[TestRecord::new("x", "u2's", ts(1))])
        .await
        .unwrap();
    admin
        .batch_upsert(&s1, &[TestRecord::new("y", "u1's", ts(1))])
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, RemoteEvent::Changed(s1.clone()));
    // Nothing else is pending (in particular no event for u2's record).
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(extra.is_err(), "unexpected event {extra:?}");
}

/// Realtime drives the background sync: with a one-hour interval, only a realtime event can
/// explain that another client's write reaches this cache within seconds, and the change made
/// while the stream was cut arrives after the reconnect (a real resync pull).
#[tokio::test]
async fn realtime_wakes_the_background_sync_and_resyncs_after_a_cut() {
    let Some(e) = env() else { return };
    let proxy = Proxy::start(&e.url).await;
    let reader: PocketBaseRemoteStore<TestRecord> = PocketBaseRemoteStore::new(
        &format!("http://127.0.0.1:{}", proxy.port),
        Credentials::superuser(&e.email, &e.password),
    )
    .unwrap();
    let writer = superuser(&e);
    let s = scope();
    let local = Arc::new(InMemoryLocalStore::<TestRecord>::new());
    let device = Orchestrator::with(
        local.clone(),
        Arc::new(reader),
        Arc::new(remote_cache_sync::LastWriteWins::new()),
        OrchestratorConfig::default().sync_after_write(false),
    );
    let bg = device.start_background_sync(vec![s.clone()], Duration::from_secs(3600));
    let has = |title: &'static str, id: &'static str| {
        let local = local.clone();
        let s = s.clone();
        async move {
            local
                .get_by_id(&s, id)
                .await
                .unwrap()
                .is_some_and(|r| r.title == title)
        }
    };
    let wait_for = |title: &'static str, id: &'static str, what: &'static str| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !has(title, id).await {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Let the first pass (and the subscription) settle, then write elsewhere.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    writer
        .batch_upsert(&s, &[TestRecord::new("a", "first", ts(1))])
        .await
        .unwrap();
    wait_for(
        "first",
        "a",
        "the realtime event never woke the background sync",
    )
    .await;

    // Cut the stream, write while no stream listens, and see the change arrive on reconnect.
    proxy.cut();
    writer
        .batch_upsert(&s, &[TestRecord::new("b", "while cut", ts(2))])
        .await
        .unwrap();
    wait_for("while cut", "b", "the change made while cut never arrived").await;
    bg.stop();
}
