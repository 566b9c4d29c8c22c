//! `SupabaseRemoteStore` against the Supabase stand-in (`scripts/start-supabase.sh`: PostgREST's
//! and GoTrue's documented behaviour over a real PostgreSQL, where the guide's tables, functions
//! and RLS policies live). Skips when `RCS_TEST_SUPABASE_URL` is unset, fails under
//! `RCS_TEST_REQUIRE_SERVERS=1`.
#![cfg(all(feature = "supabase", feature = "postgres"))]

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use remote_cache_sync::remote::supabase::{Credentials, Mode, SupabaseRemoteStore};
use remote_cache_sync::testing::{TestRecord, remote as suite, require_env, ts, unique_scope};
use remote_cache_sync::{
    Cursor, Error, OpKind, PendingOp, PushOutcome, RemoteStore, SyncScope, Timestamp,
};
use serde_json::{Value, json};

struct Env {
    url: String,
    anon: String,
    service: String,
    secret: String,
    db_url: String,
}

fn env() -> Option<Env> {
    let url = require_env("RCS_TEST_SUPABASE_URL")?;
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    Some(Env {
        url,
        anon: var("RCS_TEST_SUPABASE_ANON_KEY"),
        service: var("RCS_TEST_SUPABASE_SERVICE_KEY"),
        secret: var("RCS_TEST_SUPABASE_JWT_SECRET"),
        db_url: var("RCS_TEST_SUPABASE_DB_URL"),
    })
}

/// A signed-up user.
struct User {
    id: String,
    access: String,
    refresh: String,
}

async fn signup(e: &Env) -> User {
    let email = format!("u{}@example.com", uuid::Uuid::now_v7().simple());
    let v: Value = reqwest::Client::new()
        .post(format!("{}/auth/v1/signup", e.url))
        .header("apikey", &e.anon)
        .json(&json!({"email": email, "password": "password-123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    User {
        id: v["user"]["id"].as_str().unwrap().to_owned(),
        access: v["access_token"].as_str().unwrap().to_owned(),
        refresh: v["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// An HS256 JWT with `claims`, signed with `secret`.
fn mint(secret: &str, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!(
        "{h}.{p}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A user access token for `user_id` expiring `exp_in` seconds from now.
fn user_token(secret: &str, user_id: &str, exp_in: i64) -> String {
    let now = Timestamp::now().as_second();
    mint(
        secret,
        &json!({"sub": user_id, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + exp_in}),
    )
}

fn store(e: &Env, credentials: Credentials, mode: Mode) -> SupabaseRemoteStore<TestRecord> {
    SupabaseRemoteStore::builder(&e.url)
        .anon_key(&e.anon)
        .credentials(credentials)
        .mode(mode)
        .build()
        .unwrap()
}

async fn user_store(e: &Env, mode: Mode) -> (SupabaseRemoteStore<TestRecord>, User) {
    let u = signup(e).await;
    (
        store(e, Credentials::session(&u.access, &u.refresh), mode),
        u,
    )
}

fn create(scope: &SyncScope, r: TestRecord) -> PendingOp<TestRecord> {
    PendingOp::upsert(scope.clone(), OpKind::Create, r)
}

async fn push_ok(
    s: &SupabaseRemoteStore<TestRecord>,
    scope: &SyncScope,
    ops: &[PendingOp<TestRecord>],
) {
    let out = s.push(scope, ops).await.unwrap();
    assert!(
        out.iter().all(|o| matches!(o, PushOutcome::Applied { .. })),
        "{out:?}"
    );
}

async fn pull(
    s: &SupabaseRemoteStore<TestRecord>,
    scope: &SyncScope,
    cursor: Option<Cursor>,
    limit: usize,
) -> (BTreeMap<String, Option<TestRecord>>, Option<Cursor>) {
    suite::pull_all(s, scope, cursor, limit).await
}

async fn db(e: &Env) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&e.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// Starts a transaction as `user` (what PostgREST does per request) on `c`.
async fn as_user(c: &tokio_postgres::Client, user: &User) {
    c.batch_execute("BEGIN").await.unwrap();
    let claims = json!({"sub": user.id, "role": "authenticated"}).to_string();
    c.execute(
        "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
        &[&claims],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn conformance_exact_mode() {
    let Some(e) = env() else { return };
    let (s, _) = user_store(&e, Mode::Exact).await;
    suite::run_all(&s, || unique_scope("records")).await;
}

#[tokio::test]
async fn conformance_table_mode() {
    let Some(e) = env() else { return };
    let (s, _) = user_store(&e, Mode::Table).await;
    suite::run_all(&s, || unique_scope("notes")).await;
}

/// User A's rows are invisible to user B, B cannot overwrite them (a per-op verdict, B's other
/// ops land), anon is refused (the scope pauses), and the service role bypasses RLS, in both
/// modes.
#[tokio::test]
async fn row_level_security_isolates_users() {
    let Some(e) = env() else { return };
    for (mode, name) in [(Mode::Exact, "records"), (Mode::Table, "notes")] {
        let (a, _) = user_store(&e, mode).await;
        let (b, _) = user_store(&e, mode).await;
        let scope = unique_scope(name);
        let ra = TestRecord::new("r1", "A's", ts(1_000));
        push_ok(&a, &scope, &[create(&scope, ra.clone())]).await;

        let (seen, _) = pull(&b, &scope, None, 100).await;
        assert!(seen.is_empty(), "{mode:?}: B read A's rows: {seen:?}");
        assert_eq!(b.get_by_id(&scope, "r1").await.unwrap(), None);

        // B writing A's record among valid ops: a verdict on that op alone (exact: `rcs_push`
        // answers `forbidden`; table: the insert hits A's key, which B cannot see). B's other
        // ops land, and A's row is unchanged.
        let rb = TestRecord::new("r1", "B's", ts(2_000));
        let (b0, b2) = (
            TestRecord::new("b0", "B's own", ts(2_000)),
            TestRecord::new("b2", "B's other", ts(2_000)),
        );
        let out = b
            .push(
                &scope,
                &[
                    create(&scope, b0.clone()),
                    create(&scope, rb),
                    create(&scope, b2.clone()),
                ],
            )
            .await
            .unwrap_or_else(|err| panic!("{mode:?}: the whole push failed: {err:?}"));
        assert!(
            matches!(
                &out[..],
                [
                    PushOutcome::Applied { .. },
                    PushOutcome::Rejected { .. },
                    PushOutcome::Applied { .. }
                ]
            ),
            "{mode:?}: {out:?}"
        );
        assert_eq!(b.get_by_id(&scope, "b0").await.unwrap(), Some(b0));
        assert_eq!(b.get_by_id(&scope, "b2").await.unwrap(), Some(b2));
        assert_eq!(b.get_by_id(&scope, "r1").await.unwrap(), None);
        assert_eq!(a.get_by_id(&scope, "r1").await.unwrap(), Some(ra.clone()));
        let (seen, _) = pull(&a, &scope, None, 100).await;
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            ["r1"],
            "{mode:?}: A sees only its row"
        );
        if mode == Mode::Exact {
            // Reconciliation digests (`rcs_digest`) follow RLS too: each user's cover their
            // own rows only.
            let top = remote_cache_sync::reconcile::DigestRequest::top();
            let count = |d: Option<remote_cache_sync::reconcile::DigestResponse>| {
                d.expect("exact mode digests")
                    .buckets
                    .iter()
                    .map(|b| b.count)
                    .sum::<u64>()
            };
            assert_eq!(count(a.digest(&scope, &top).await.unwrap()), 1);
            assert_eq!(count(b.digest(&scope, &top).await.unwrap()), 2);
            let err = store(&e, Credentials::Anonymous, mode)
                .digest(&scope, &top)
                .await
                .unwrap_err();
            assert!(err.pauses_scope(), "anon digest: {err:?}");
        }

        let anon = store(&e, Credentials::Anonymous, mode);
        let err = anon.fetch_since(&scope, None, 10).await.unwrap_err();
        assert!(
            err.pauses_scope(),
            "{mode:?}: anon must be refused, got {err:?}"
        );
        assert!(anon.get_by_id(&scope, "r1").await.is_err());
        let err = anon
            .push(
                &scope,
                &[create(&scope, TestRecord::new("n1", "anon", ts(3_000)))],
            )
            .await
            .unwrap_err();
        assert!(
            err.pauses_scope(),
            "{mode:?}: anon's push must be refused, got {err:?}"
        );

        let service = store(&e, Credentials::service_role(&e.service), mode);
        let (all, _) = pull(&service, &scope, None, 100).await;
        assert_eq!(
            all.get("r1"),
            Some(&Some(ra)),
            "{mode:?}: service role bypasses RLS"
        );
    }
}

/// Hostile scope values and ids select nothing but their own rows (PostgREST's reserved
/// characters in top-level filters, in `or=(…)` keysets and in `in.(…)` lists).
#[tokio::test]
async fn hostile_values_select_only_their_own_rows() {
    let Some(e) = env() else { return };
    let (s, _) = user_store(&e, Mode::Table).await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let plain = SyncScope::new("notes", [("owner", format!("x{tag}"))]).unwrap();
    push_ok(
        &s,
        &plain,
        &[create(&plain, TestRecord::new("victim", "v", ts(1)))],
    )
    .await;
    let hostile = [
        format!("x{tag},owner.neq.x"),
        format!("a,owner.neq.x{tag}"),
        format!("x{tag})"),
        format!("x{tag}\")"),
        format!("\"x{tag}\""),
        format!("x{tag}\\"),
        format!("x{tag}*"),
        format!("%{tag}"),
        format!("not.eq.x{tag}"),
        format!("x{tag}&owner=neq.x"),
    ];
    let ids = ["x)", "a,b", "c\"d", "e\\f", "g.h:i", "(j)", "k l"];
    for (n, v) in hostile.iter().enumerate() {
        let scope = SyncScope::new("notes", [("owner", v.clone())]).unwrap();
        let (seen, _) = pull(&s, &scope, None, 2).await;
        assert!(seen.is_empty(), "scope owner={v:?} read {seen:?}");
        assert_eq!(s.get_by_id(&scope, "victim").await.unwrap(), None, "{v:?}");
        let ops: Vec<_> = ids
            .iter()
            .map(|id| {
                create(
                    &scope,
                    TestRecord::new(*id, format!("h{n}"), ts(10 + n as i64)),
                )
            })
            .collect();
        push_ok(&s, &scope, &ops).await;
        // Paged two at a time: the keyset carries the hostile ids.
        let (seen, _) = pull(&s, &scope, None, 2).await;
        assert_eq!(
            seen.keys().map(String::as_str).collect::<Vec<_>>().len(),
            ids.len(),
            "{v:?}: {seen:?}"
        );
        assert!(
            seen.values().flatten().all(|r| r.title == format!("h{n}")),
            "{v:?}"
        );
        for id in ids {
            assert!(
                s.get_by_id(&scope, id).await.unwrap().is_some(),
                "{v:?} {id:?}"
            );
        }
    }
    let (victim_scope, _) = pull(&s, &plain, None, 100).await;
    assert_eq!(victim_scope.len(), 1, "{victim_scope:?}");
    // Exact mode: the scope is an RPC argument, bound as a value.
    let (x, _) = user_store(&e, Mode::Exact).await;
    let a = SyncScope::new("records", [("owner", format!("x{tag}"))]).unwrap();
    push_ok(&x, &a, &[create(&a, TestRecord::new("victim", "v", ts(1)))]).await;
    for v in &hostile {
        let scope = SyncScope::new("records", [("owner", v.clone())]).unwrap();
        assert!(pull(&x, &scope, None, 10).await.0.is_empty(), "{v:?}");
        assert_eq!(x.get_by_id(&scope, "victim").await.unwrap(), None, "{v:?}");
    }
}

/// Exact mode: a push that has taken its sequence value but not committed holds back later
/// pushes to the scope, and a pull in between cannot move past it; a writer that bypasses the
/// guide's lock is missed, which is the hole the lock closes.
#[tokio::test]
async fn exact_mode_pulls_a_late_commit() {
    let Some(e) = env() else { return };
    let (s, user) = user_store(&e, Mode::Exact).await;
    let scope = unique_scope("records");
    push_ok(
        &s,
        &scope,
        &[create(&scope, TestRecord::new("r0", "first", ts(1)))],
    )
    .await;
    let (_, cursor) = pull(&s, &scope, None, 100).await;

    // W1: rcs_push through SQL, as the user, held open after it took its seq.
    let w1 = db(&e).await;
    as_user(&w1, &user).await;
    let ops = json!([{"op_id": uuid::Uuid::now_v7().to_string(), "id": "late", "base_version": null,
        "version": ts(2).to_string(), "deleted": false,
        "data": TestRecord::new("late", "late", ts(2))}]);
    w1.query_one(
        "SELECT rcs_push($1, $2::text::jsonb)",
        &[&scope.canonical(), &ops.to_string()],
    )
    .await
    .unwrap();
    // W2: a later push through the API waits for the scope's lock.
    let s2 = s.clone();
    let scope2 = scope.clone();
    let w2 = tokio::spawn(async move {
        s2.push(
            &scope2,
            &[create(&scope2, TestRecord::new("after", "after", ts(3)))],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !w2.is_finished(),
        "the later push must wait for the scope's lock"
    );
    let mid = s.fetch_since(&scope, cursor.as_ref(), 100).await.unwrap();
    assert!(mid.is_empty(), "nothing committed yet: {mid:?}");
    let cursor = mid.cursor.or(cursor);
    w1.batch_execute("COMMIT").await.unwrap();
    w2.await.unwrap().unwrap();
    let (got, _) = pull(&s, &scope, cursor, 100).await;
    assert!(
        got.contains_key("late"),
        "the late commit was skipped: {got:?}"
    );
    assert!(got.contains_key("after"), "{got:?}");

    // The same race with a writer that skips the lock: its row is missed.
    let (_, cursor) = pull(&s, &scope, None, 100).await;
    let w1 = db(&e).await;
    as_user(&w1, &user).await;
    w1.execute(
        "INSERT INTO rcs_records (scope, id, seq, version, deleted, data)
         VALUES ($1, 'bypass', nextval('rcs_seq'), $2, false, NULL)",
        &[&scope.canonical(), &ts(4).to_string()],
    )
    .await
    .unwrap();
    push_ok(
        &s,
        &scope,
        &[create(&scope, TestRecord::new("after2", "a", ts(5)))],
    )
    .await;
    let (got, cursor) = pull(&s, &scope, cursor, 100).await;
    assert!(got.contains_key("after2"));
    w1.batch_execute("COMMIT").await.unwrap();
    let (got, _) = pull(&s, &scope, cursor, 100).await;
    assert!(
        !got.contains_key("bypass"),
        "without the lock the late row is skipped (what the lock prevents)"
    );
}

/// Table mode: a row stamped before later rows but committed after a pull reached the end is
/// delivered by the next pull (the overlap window), once.
#[tokio::test]
async fn table_mode_window_covers_a_late_commit() {
    let Some(e) = env() else { return };
    let (s, user) = user_store(&e, Mode::Table).await;
    let scope = unique_scope("notes");
    let owner = scope.keys()["owner"].clone();
    let w1 = db(&e).await;
    as_user(&w1, &user).await;
    let late = TestRecord::new("late", "late", ts(1));
    w1.execute(
        "INSERT INTO notes (owner, id, version, deleted, data) VALUES ($1, 'late', $2, false, $3::text::jsonb)",
        &[&owner, &ts(1).to_string(), &serde_json::to_string(&late).unwrap()],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    push_ok(
        &s,
        &scope,
        &[create(&scope, TestRecord::new("after", "after", ts(2)))],
    )
    .await;
    let (first, cursor) = pull(&s, &scope, None, 100).await;
    assert_eq!(first.keys().collect::<Vec<_>>(), ["after"]);
    w1.batch_execute("COMMIT").await.unwrap();
    let (second, cursor) = pull(&s, &scope, cursor, 100).await;
    assert_eq!(
        second.get("late"),
        Some(&Some(late)),
        "the late commit must be delivered: {second:?}"
    );
    assert!(
        !second.contains_key("after"),
        "already delivered rows are not repeated"
    );
    let (third, _) = pull(&s, &scope, cursor, 100).await;
    assert!(third.is_empty(), "{third:?}");
}

/// Expired, forged and unrenewable tokens are `Unauthorized`, never an empty page.
#[tokio::test]
async fn bad_tokens_are_unauthorized() {
    let Some(e) = env() else { return };
    let u = signup(&e).await;
    let scope = unique_scope("records");
    for mode in [Mode::Exact, Mode::Table] {
        let scope = if mode == Mode::Table {
            unique_scope("notes")
        } else {
            scope.clone()
        };
        let expired = store(
            &e,
            Credentials::token(user_token(&e.secret, &u.id, -120)),
            mode,
        );
        let err = expired.fetch_since(&scope, None, 10).await.unwrap_err();
        assert!(err.is_auth(), "{err:?}");
        let forged = store(
            &e,
            Credentials::token(user_token("x".repeat(40).as_str(), &u.id, 600)),
            mode,
        );
        let err = forged.fetch_since(&scope, None, 10).await.unwrap_err();
        assert!(err.is_auth(), "{err:?}");
        assert!(err.to_string().contains("PGRST301"), "{err}");
        let no_way_back = store(
            &e,
            Credentials::session(user_token(&e.secret, &u.id, -120), "revoked-or-unknown"),
            mode,
        );
        let err = no_way_back.fetch_since(&scope, None, 10).await.unwrap_err();
        assert!(err.is_auth(), "{err:?}");
        let msg = format!("{err} {err:?} {expired:?} {forged:?}");
        assert!(
            !msg.contains(&e.secret) && !msg.contains(&e.anon) && !msg.contains("eyJ"),
            "{msg}"
        );
    }
}

/// A session is renewed through the refresh grant before its access token expires, and once
/// after the server refuses it.
#[tokio::test]
async fn sessions_are_refreshed_before_expiry() {
    let Some(e) = env() else { return };
    let u = signup(&e).await;
    let scope = unique_scope("records");
    // An 8 s access token: due a quarter of its lifetime before expiry (6 s after it was got).
    let s = store(
        &e,
        Credentials::session(user_token(&e.secret, &u.id, 8), &u.refresh),
        Mode::Exact,
    );
    push_ok(
        &s,
        &scope,
        &[create(&scope, TestRecord::new("a", "a", ts(1)))],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    // Still valid (expires at 8 s), but due: the adapter refreshes before sending.
    assert_eq!(pull(&s, &scope, None, 10).await.0.len(), 1);
    let reused = reqwest::Client::new()
        .post(format!("{}/auth/v1/token?grant_type=refresh_token", e.url))
        .header("apikey", &e.anon)
        .json(&json!({"refresh_token": u.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reused.status(),
        400,
        "the adapter must have used (rotated) the refresh token"
    );
    // A refused token (signed with another secret): one refresh, then the request succeeds.
    let u2 = signup(&e).await;
    let s2 = store(
        &e,
        Credentials::session(user_token(&"y".repeat(40), &u2.id, 3600), &u2.refresh),
        Mode::Exact,
    );
    assert!(pull(&s2, &scope, None, 10).await.0.is_empty());
    // Password sign-in works too, and a wrong password is Unauthorized.
    let bad = store(
        &e,
        Credentials::password("nobody@example.com", "nope-nope"),
        Mode::Exact,
    );
    assert!(bad.authenticate().await.unwrap_err().is_auth());
}

/// Missing tables and functions are `NotFound` naming the guide (the scope pauses).
#[tokio::test]
async fn missing_tables_are_not_found() {
    let Some(e) = env() else { return };
    let (s, _) = user_store(&e, Mode::Table).await;
    let scope = unique_scope("no_such_table");
    let err = s.fetch_since(&scope, None, 10).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what } if what.contains("supabase.md")),
        "{err:?}"
    );
    assert!(err.pauses_scope());
}
