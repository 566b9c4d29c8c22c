//! Queries answered by REST remotes that narrow on the server and decide on the client
//! (`remote::narrow`): PocketBase (a real server from `scripts/start-pocketbase.sh`) and
//! Supabase (the PostgREST stand-in over a real PostgreSQL, `scripts/start-supabase.sh`).
//! - the query conformance case (`testing::query`), with exactly the documented refusals;
//! - operands full of filter syntax (quotes, backslashes, `LIKE` wildcards, `||`) select
//!   exactly the right records;
//! - a field the remote does not have is `Unsupported` (then the orchestrator reads the cache
//!   after a sync), never a wrong answer or a paused scope;
//! - `Orchestrator::read` with `OnlineOnly` answers from the remote without pulling the scope;
//! - more than 5,000 candidate rows make the query `Unsupported` (then a sync).

mod support;

use remote_cache_sync::testing::{query, require_env, unique_scope};
use remote_cache_sync::{
    CachePolicy, Error, Filter, InMemoryLocalStore, JsonRecord, LocalStore, Orchestrator,
    QuerySpec, Record, RemoteStore, SyncScope,
};
use serde_json::{Value, json};

/// Records whose strings (in the text field `body`) are filter syntax of every backend, and
/// the queries over them with their exact answers.
fn tricky() -> (Vec<JsonRecord>, Vec<(QuerySpec, Vec<&'static str>)>) {
    let at = "2026-01-01T00:00:00Z";
    let titles = [
        ("q1", r#"say "hi""#),
        ("q2", r"back\slash"),
        ("q3", "it's"),
        ("q4", "50% off"),
        ("q5", "50 off"),
        ("q6", "a_b"),
        ("q7", "axb"),
        ("q8", r#"") || 1=1 || (""#),
        ("q9", r#"{"$ne": null}"#),
        ("q10", "Back\\Slash"),
    ];
    let rows = titles
        .iter()
        .map(|(id, t)| {
            JsonRecord::from_value(json!({"id": id, "updated_at": at, "body": t})).unwrap()
        })
        .collect();
    let q = |f: Filter| QuerySpec::new().filter(f);
    let queries = vec![
        (q(Filter::eq("body", r#"say "hi""#)), vec!["q1"]),
        (q(Filter::eq("body", r"back\slash")), vec!["q2"]),
        (q(Filter::eq("body", "it's")), vec!["q3"]),
        (q(Filter::eq("body", r#"") || 1=1 || (""#)), vec!["q8"]),
        (q(Filter::eq("body", r#"{"$ne": null}"#)), vec!["q9"]),
        (q(Filter::eq("body", "*")), vec![]),
        (q(Filter::contains("body", "%")), vec!["q4"]),
        (q(Filter::contains("body", "_")), vec!["q6"]),
        (q(Filter::contains("body", "\\")), vec!["q10", "q2"]),
        (q(Filter::contains("body", "k\\s")), vec!["q2"]),
        (q(Filter::contains("body", "\"")), vec!["q1", "q8", "q9"]),
        (q(Filter::contains("body", "'")), vec!["q3"]),
        (q(Filter::contains("body", "|| 1=1")), vec!["q8"]),
        (q(Filter::contains("body", "*")), vec![]),
        (
            q(Filter::is_in("body", ["it's", "a_b", r#"say "hi""#])),
            vec!["q1", "q3", "q6"],
        ),
        (
            q(Filter::is_in("id", ["q5", "q7", "nope"])),
            vec!["q5", "q7"],
        ),
    ];
    (rows, queries)
}

async fn check_tricky<R: RemoteStore<JsonRecord> + ?Sized>(remote: &R, scope: &SyncScope) {
    let (rows, queries) = tricky();
    remote.batch_upsert(scope, &rows).await.unwrap();
    for (spec, want) in queries {
        let mut got: Vec<String> = remote
            .query(scope, &spec)
            .await
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
            .expect("answers queries")
            .iter()
            .map(|r| r.id().to_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(got, want, "{}: {spec:?}", remote.name());
    }
}

/// A query whose terms leave more than 5,000 candidates is `Unsupported` (the orchestrator
/// syncs instead of listing a large scope, uncached, on every read); at 5,000 it is answered.
async fn candidates_are_capped<R: RemoteStore<JsonRecord> + ?Sized>(remote: &R, scope: &SyncScope) {
    let row = |i: usize| {
        JsonRecord::from_value(
            json!({"id": format!("c{i:05}"), "updated_at": "2026-01-01T00:00:00Z", "body": "many"}),
        )
        .unwrap()
    };
    let rows: Vec<JsonRecord> = (0..5000).map(row).collect();
    for chunk in rows.chunks(500) {
        remote.batch_upsert(scope, chunk).await.unwrap();
    }
    let spec = QuerySpec::new().filter(Filter::eq("body", "many")).limit(3);
    let answer = remote.query(scope, &spec).await.unwrap().unwrap();
    assert_eq!(answer.len(), 3);
    remote.batch_upsert(scope, &[row(5000)]).await.unwrap();
    let e = remote.query(scope, &spec).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
}

/// Runs the case; the refusals are exactly those of a remote that only narrows.
async fn conformance<R: RemoteStore<JsonRecord> + ?Sized>(remote: &R, name: &str, nested: bool) {
    let refused = query::run(remote, &unique_scope(name), &unique_scope(name)).await;
    assert_eq!(
        refused,
        query::refused_by_narrowing(nested),
        "{}",
        remote.name()
    );
}

/// `read` with `OnlineOnly` asks the remote and leaves the cache as it was. A field no row has
/// is refused by a remote with typed fields (`syncs`: the orchestrator answers from the cache
/// after a sync) or is just absent (an empty answer from the remote); either way the scope is
/// not paused.
async fn online_reads<R: RemoteStore<JsonRecord> + 'static>(
    remote: R,
    scope: &SyncScope,
    syncs: bool,
) {
    let at = "2026-01-01T00:00:00Z";
    let rows: Vec<JsonRecord> = (0..5)
        .map(|i| {
            JsonRecord::from_value(json!({"id": format!("r{i}"), "updated_at": at, "title": if i % 2 == 0 { "even" } else { "odd" }}))
                .unwrap()
        })
        .collect();
    remote.batch_upsert(scope, &rows).await.unwrap();
    let orch = Orchestrator::new(InMemoryLocalStore::<JsonRecord>::new(), remote);
    let cached = || async {
        orch.local()
            .query(scope, &QuerySpec::new())
            .await
            .unwrap()
            .len()
    };
    let read = |spec: QuerySpec| {
        let orch = &orch;
        async move {
            let rows = orch
                .read(scope, CachePolicy::OnlineOnly, &spec)
                .await
                .unwrap();
            rows.iter().map(|r| r.id().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        read(QuerySpec::new().filter(Filter::eq("title", "even"))).await,
        ["r0", "r2", "r4"]
    );
    assert_eq!(cached().await, 0, "the scope was pulled");
    let unknown = read(QuerySpec::new().filter(Filter::eq("no_such_field", "x"))).await;
    assert!(unknown.is_empty());
    assert_eq!(cached().await, if syncs { 5 } else { 0 });
    assert!(orch.pause(scope).await.unwrap().is_none());
}

mod pocketbase {
    use remote_cache_sync::remote::pocketbase::{Credentials, PocketBaseRemoteStore};

    use super::*;

    /// The collection the tests use: the guide's bookkeeping fields, the conformance case's
    /// record fields as `json` fields (any JSON value; a missing one reads back as null, and
    /// PocketBase stores numbers as float64 and parses strings that are JSON: the case compares
    /// with what a pull reads back), and `body`, a plain text field.
    const COLLECTION: &str = "rcs_query";

    async fn store() -> Option<PocketBaseRemoteStore<JsonRecord>> {
        let url = require_env("RCS_TEST_POCKETBASE_URL")?;
        let email = std::env::var("RCS_TEST_POCKETBASE_EMAIL").unwrap();
        let password = std::env::var("RCS_TEST_POCKETBASE_PASSWORD").unwrap();
        let http = reqwest::Client::new();
        let auth: Value = http
            .post(format!(
                "{url}/api/collections/_superusers/auth-with-password"
            ))
            .json(&json!({"identity": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = auth["token"].as_str().unwrap();
        let text = |name: &str| json!({"name": name, "type": "text"});
        let any = |name: &str| json!({"name": name, "type": "json"});
        let schema = json!({
            "name": COLLECTION,
            "type": "base",
            "fields": [
                {"name": "id", "type": "text", "primaryKey": true, "system": true,
                 "required": true, "min": 36, "max": 36, "pattern": "^[a-z0-9-]+$",
                 "autogeneratePattern": ""},
                text("record_id"), text("owner"), text("updated_at"), text("deleted_at"),
                any("title"), any("n"), any("tags"), any("meta"), text("body"),
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
            ],
        });
        // Once per run, from scratch (a collection left by an older run may differ).
        static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        CREATED
            .get_or_init(|| async {
                let _ = http
                    .delete(format!("{url}/api/collections/{COLLECTION}"))
                    .header("Authorization", token)
                    .send()
                    .await
                    .unwrap();
                let answer = http
                    .post(format!("{url}/api/collections"))
                    .header("Authorization", token)
                    .json(&schema)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status();
                assert!(
                    status.is_success(),
                    "{status} {}",
                    answer.text().await.unwrap()
                );
            })
            .await;
        Some(PocketBaseRemoteStore::new(&url, Credentials::superuser(&email, &password)).unwrap())
    }

    #[tokio::test]
    async fn answers_the_conformance_case() {
        let Some(store) = store().await else { return };
        conformance(&store, COLLECTION, false).await;
    }

    #[tokio::test]
    async fn operands_full_of_filter_syntax_select_exactly() {
        let Some(store) = store().await else { return };
        check_tricky(&store, &unique_scope(COLLECTION)).await;
    }

    #[tokio::test]
    async fn candidates_past_the_cap_fall_back() {
        let Some(store) = store().await else { return };
        candidates_are_capped(&store, &unique_scope(COLLECTION)).await;
    }

    #[tokio::test]
    async fn online_reads_ask_the_server() {
        let Some(store) = store().await else { return };
        let scope = unique_scope(COLLECTION);
        let e = store
            .query(
                &scope,
                &QuerySpec::new().filter(Filter::eq("no_such_field", "x")),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    backend: "pocketbase",
                    ..
                }
            ),
            "{e:?}"
        );
        online_reads(store, &scope, true).await;
    }
}

#[cfg(feature = "supabase")]
mod supabase {
    use remote_cache_sync::remote::supabase::{Credentials, Mode, SupabaseRemoteStore};

    use super::*;
    use crate::support::supabase::{env, signup};

    /// A new user's store; exact mode keeps every scope in `rcs_records`.
    async fn store() -> Option<SupabaseRemoteStore<JsonRecord>> {
        let e = env()?;
        let (access, refresh) = signup(&e).await;
        Some(
            SupabaseRemoteStore::builder(&e.url)
                .anon_key(&e.anon)
                .credentials(Credentials::session(&access, &refresh))
                .mode(Mode::Exact)
                .build()
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn answers_the_conformance_case() {
        let Some(store) = store().await else { return };
        conformance(&store, "q", true).await;
    }

    #[tokio::test]
    async fn operands_full_of_filter_syntax_select_exactly() {
        let Some(store) = store().await else { return };
        check_tricky(&store, &unique_scope("q")).await;
    }

    #[tokio::test]
    async fn candidates_past_the_cap_fall_back() {
        let Some(store) = store().await else { return };
        candidates_are_capped(&store, &unique_scope("q")).await;
    }

    /// Table mode: the guide's `notes` table, the same requests on another table.
    #[tokio::test]
    async fn table_mode_answers_the_conformance_case() {
        let Some(e) = env() else { return };
        let (access, refresh) = signup(&e).await;
        let store = SupabaseRemoteStore::builder(&e.url)
            .anon_key(&e.anon)
            .credentials(Credentials::session(&access, &refresh))
            .mode(Mode::Table)
            .build()
            .unwrap();
        conformance(&store, "notes", true).await;
        check_tricky(&store, &unique_scope("notes")).await;
    }

    #[tokio::test]
    async fn online_reads_ask_the_server() {
        let Some(store) = store().await else { return };
        let scope = unique_scope("q");
        online_reads(store, &scope, false).await;
    }

    /// Another user's rows of the same scope are not candidates (row-level security), and
    /// another scope's rows never are.
    #[tokio::test]
    async fn other_users_and_scopes_stay_out() {
        let (Some(a), Some(b)) = (store().await, store().await) else {
            return;
        };
        let scope = unique_scope("q");
        let row = |id: &str| {
            JsonRecord::from_value(
                json!({"id": id, "updated_at": "2026-01-01T00:00:00Z", "body": "x"}),
            )
            .unwrap()
        };
        a.batch_upsert(&scope, &[row("mine")]).await.unwrap();
        b.batch_upsert(&scope, &[row("theirs")]).await.unwrap();
        a.batch_upsert(&unique_scope("q"), &[row("elsewhere")])
            .await
            .unwrap();
        let spec = QuerySpec::new().filter(Filter::eq("body", "x"));
        let ids =
            |rows: Vec<JsonRecord>| rows.iter().map(|r| r.id().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            ids(a.query(&scope, &spec).await.unwrap().unwrap()),
            ["mine"]
        );
        assert_eq!(
            ids(b.query(&scope, &spec).await.unwrap().unwrap()),
            ["theirs"]
        );
    }
}
