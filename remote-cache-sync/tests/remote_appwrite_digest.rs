//! Reconciliation digests from Appwrite (`RemoteStore::digest`: a `select` listing of ids and
//! versions, digested on the client) against the Appwrite server the `RCS_TEST_APPWRITE_*`
//! variables name, else an in-process stand-in set up with docs/backends/appwrite.md:
//! - the digest equals the reference answer over the live documents, and costs ids and
//!   versions only; an expired or unknown JWT is `Unauthorized`, never an empty listing;
//! - scopes whose key values differ only in case (Appwrite's collation folds case) stay apart
//!   in pulls, queries and digests;
//! - a fault on any page of a query's or a digest's listing never gives a partial answer.
//!
//! The reconciliation scenario itself (hard deletes through the API) is in `reconcile.rs`.
#![cfg(all(
    feature = "appwrite",
    feature = "appwrite-standin",
    feature = "fault-proxy",
    feature = "sqlite"
))]

mod support;

use remote_cache_sync::reconcile::{DigestRequest, DigestResponse, RowSet, canonical_version};
use remote_cache_sync::remote::appwrite::{AppwriteConfig, AppwriteRemoteStore, Credential};
use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault};
use remote_cache_sync::testing::{TestRecord, ts, unique_scope};
use remote_cache_sync::{Error, Filter, QuerySpec, RemoteStore, SyncScope, Tombstone};
use serde_json::json;
use support::appwrite::{DB, Raw, env, keyed};

fn ids(rows: &[TestRecord]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    v.sort();
    v
}

/// Appwrite's digest is the reference answer over the scope's live documents, costs about the
/// ids and versions only (the documents' large titles are not listed), and is never computed
/// from a listing an expired or unknown JWT made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appwrite_digests_list_ids_and_versions_only() {
    let Some(e) = env() else { return };
    let store = keyed(&e);
    let (a, b) = (unique_scope("records"), unique_scope("records"));
    let big = "x".repeat(2_000);
    let rows: Vec<TestRecord> = (0..60)
        .map(|i| TestRecord::new(format!("d{i:02}"), big.clone(), ts(i)))
        .collect();
    store.batch_upsert(&a, &rows).await.unwrap();
    store.batch_upsert(&b, &rows[..5]).await.unwrap();
    store
        .batch_delete(
            &a,
            &[Tombstone {
                id: "d00".into(),
                deleted_at: ts(100),
            }],
        )
        .await
        .unwrap();
    let live = RowSet::new(
        rows[1..]
            .iter()
            .map(|r| (r.id.clone(), canonical_version(r.updated_at))),
    );
    let sorted = |mut d: DigestResponse| {
        d.bytes = 0;
        d.buckets.sort_by(|x, y| x.prefix.cmp(&y.prefix));
        d.rows.sort_by(|x, y| x.id.cmp(&y.id));
        d
    };
    for req in [
        DigestRequest::top(),
        DigestRequest {
            prefixes: Vec::new(),
            length: 0,
            list: vec![String::new()],
        },
    ] {
        let got = store.digest(&a, &req).await.unwrap().expect("a digest");
        eprintln!("appwrite digest: {} bytes for 59 live documents", got.bytes);
        assert!(
            got.bytes > 0 && got.bytes < 60 * 1_000,
            "{} bytes",
            got.bytes
        );
        assert_eq!(sorted(got), sorted(live.answer(&req)), "{req:?}");
    }
    // An expired JWT: Unauthorized before anything is listed, never an empty digest.
    let (user, jwt) = Raw::new(&e).user_with_jwt(1).await;
    let user_store = AppwriteRemoteStore::<TestRecord>::builder(&e.endpoint, &e.project, DB)
        .credential(Credential::jwt(jwt))
        .build()
        .unwrap();
    let mine = SyncScope::new("records", [("owner", user.as_str())]).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let err = user_store
        .digest(&mine, &DigestRequest::top())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    // A JWT the server does not accept: its 401, not a guest's (empty) listing.
    let (_, good) = Raw::new(&e).user_with_jwt(900).await;
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = "forged";
    user_store.set_jwt(parts.join("."));
    let err = user_store
        .digest(&mine, &DigestRequest::top())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

/// Appwrite compares strings with MariaDB's default collation, which folds case: the scope
/// `owner=…A` lists `owner=…a`'s documents too. Pulls, queries and digests keep only their
/// own scope's.
#[tokio::test]
async fn scopes_whose_values_differ_only_in_case_stay_apart() {
    let Some(e) = env() else { return };
    let store = keyed(&e);
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let upper = SyncScope::new("records", [("owner", format!("{tag}A"))]).unwrap();
    let lower = SyncScope::new("records", [("owner", format!("{tag}a"))]).unwrap();
    store
        .batch_upsert(&upper, &[TestRecord::new("u", "same", ts(1))])
        .await
        .unwrap();
    store
        .batch_upsert(
            &lower,
            &[
                TestRecord::new("l1", "same", ts(1)),
                TestRecord::new("l2", "same", ts(1)),
            ],
        )
        .await
        .unwrap();
    // The server does fold case (what the adapter must cope with).
    let (st, v) = Raw::new(&e)
        .call(
            reqwest::Method::GET,
            &format!(
                "/databases/{DB}/collections/records/documents?queries[0]={}",
                urlencode(
                    &json!({"method": "equal", "attribute": "owner",
                    "values": [format!("{tag}A")]})
                    .to_string()
                )
            ),
            &[],
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["documents"].as_array().unwrap().len(), 3, "{v}");
    for (scope, expected) in [(&upper, vec!["u"]), (&lower, vec!["l1", "l2"])] {
        let (pulled, _) =
            remote_cache_sync::testing::remote::pull_all(&store, scope, None, 1).await;
        assert_eq!(pulled.keys().collect::<Vec<_>>(), expected);
        let got = store
            .query(scope, &QuerySpec::new().filter(Filter::eq("title", "same")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&got), expected);
        let d = store
            .digest(
                scope,
                &DigestRequest {
                    prefixes: Vec::new(),
                    length: 0,
                    list: vec![String::new()],
                },
            )
            .await
            .unwrap()
            .unwrap();
        let mut listed: Vec<String> = d.rows.into_iter().map(|r| r.id).collect();
        listed.sort();
        assert_eq!(listed, expected);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A fault on any page of a query's or a digest's listing gives an error or exactly the clean
/// answer: never a partial candidate set (a wrong answer) nor a partial listing (a digest that
/// would remove rows from caches).
#[tokio::test]
async fn faults_on_any_page_never_give_a_partial_answer() {
    let Some(e) = env() else { return };
    let s = unique_scope("records");
    let seed: Vec<TestRecord> = (0..7)
        .map(|i| TestRecord::new(format!("f{i}"), "same", ts(i)))
        .collect();
    keyed(&e).batch_upsert(&s, &seed).await.unwrap();
    let proxy = FaultProxy::builder(e.endpoint.trim_end_matches("/v1").to_owned())
        .hang(std::time::Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let config = AppwriteConfig {
        max_page_size: 2,
        request_timeout: std::time::Duration::from_secs(1),
        prefetch: false,
        ..AppwriteConfig::default()
    };
    let store =
        AppwriteRemoteStore::<TestRecord>::builder(&format!("{}/v1", proxy.url()), &e.project, DB)
            .credential(Credential::api_key(&e.key))
            .config(config)
            .build()
            .unwrap();
    let spec = QuerySpec::new().filter(Filter::eq("title", "same"));
    let top = DigestRequest::top();
    let clean_rows = store.query(&s, &spec).await.unwrap().unwrap();
    assert_eq!(clean_rows.len(), 7);
    let mut clean_digest = store.digest(&s, &top).await.unwrap().unwrap();
    clean_digest.bytes = 0;
    let pass = HttpFault::Delay(std::time::Duration::ZERO);
    let (mut errors, mut answers) = (0, 0);
    for fault in HttpFault::all_kinds() {
        // Four pages (2 + 2 + 2 + 1): fault the first, a middle and the last.
        for at in [0, 2, 3] {
            let mut script = vec![pass; at];
            script.push(fault);
            proxy.script(script.clone());
            match store.query(&s, &spec).await {
                Ok(rows) => {
                    answers += 1;
                    assert_eq!(rows.unwrap(), clean_rows, "{fault:?}@{at}");
                }
                Err(err) => {
                    errors += 1;
                    assert!(
                        !matches!(err, Error::Unsupported { .. }),
                        "{fault:?}@{at}: {err:?}"
                    );
                }
            }
            proxy.script(script);
            match store.digest(&s, &top).await {
                Ok(d) => {
                    let mut d = d.unwrap();
                    d.bytes = 0;
                    assert_eq!(d, clean_digest, "{fault:?}@{at}");
                }
                Err(err) => assert!(!matches!(err, Error::Unsupported { .. }), "{err:?}"),
            }
            proxy.clear_faults();
        }
    }
    assert!(
        errors > 0 && answers > 0,
        "{errors} errors, {answers} answers"
    );
}
