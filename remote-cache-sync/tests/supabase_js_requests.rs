//! Our Supabase adapter's requests against the ones the official client builds.
//!
//! The adapter makes its calls (table-mode pulls with hostile scope values, the keyset page,
//! the push pre-read, insert and compare-and-set update, the exact-mode RPCs and record read,
//! the refresh grant) against a local server that records every request. Then
//! `scripts/supabase-js-requests.mjs` makes the same calls through `@supabase/supabase-js`
//! (2.119.0, with a recording `fetch`), and each pair is compared:
//!
//! - method and path, exactly;
//! - query parameters as PostgREST reads them (percent-decoded; their order does not matter
//!   to PostgREST); an `in.(…)` list is compared by the values it names under PostgREST's
//!   grammar (supabase-js quotes only values holding `,()`, we quote every value, which
//!   PostgREST reads as the same values), and supabase-js's `select=*` on a write's
//!   `.select()` is PostgREST's default;
//! - every header the adapter sends (`apikey`, `Authorization`, `Prefer`, `Content-Type`), by
//!   value;
//! - the JSON body, parsed.
//!
//! One difference is not an equivalence, and the ids of the `in` list avoid it: for a value
//! holding `"` or `\`, supabase-js's `in()` writes the quotes without escaping (`a,b"c` becomes
//! `"a,b"c"`, which PostgREST reads as another value), while ours escapes them
//! (`"a,b\"c"`); `our_in_lists_round_trip` shows ours reads back as the values given.
//! Scope values (top-level `eq.` filters, taken literally) do carry `,`, `.`, `)`, `"` and `\`.
//!
//! Needs Node and the package: `RCS_SUPABASE_JS_NODE_PATH` is its `node_modules` (set by
//! `scripts/test.sh`); without it the test skips, or fails under `RCS_TEST_REQUIRE_SERVERS=1`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use remote_cache_sync::op::{OpKind, PendingOp};
use remote_cache_sync::remote::RemoteStore;
use remote_cache_sync::remote::supabase::{Credentials, Mode, SupabaseRemoteStore};
use remote_cache_sync::testing::{TestRecord, require_env, ts};
use remote_cache_sync::{Filter, QuerySpec, SyncScope};
use serde_json::{Value, json};

const ANON: &str = "anon-key-for-the-comparison";

/// One recorded request.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

fn jwt(exp_in: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    let b = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b(json!({"alg": "HS256", "typ": "JWT"})),
        b(json!({"sub": "u1", "role": "authenticated", "iat": now, "exp": now + exp_in}))
    )
}

fn row(id: &str, version: &str, stamp: &str) -> Value {
    json!({"id": id, "version": version, "deleted": false,
           "data": {"id": id, "title": "t", "n": 0, "updated_at": version}, "updated_at": stamp})
}

/// The canned answers of the recording server.
fn answer(method: &Method, path: &str, query: &str, token: &str) -> (u16, Value) {
    let q = query.to_owned();
    match (method.as_str(), path) {
        ("GET", "/rest/v1/notes") if q.contains("id=in.") => (
            200,
            json!([row(
                "x)",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00.000001Z"
            )]),
        ),
        ("GET", "/rest/v1/notes") if q.contains("or=") => (200, json!([])),
        ("GET", "/rest/v1/notes") => (
            200,
            json!([row(
                "x)",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00.000001Z"
            )]),
        ),
        ("POST" | "PATCH", "/rest/v1/notes") => (201, json!([{"id": "written"}])),
        ("GET", "/rest/v1/rcs_records") => (200, json!([])),
        ("POST", "/rest/v1/rpc/rcs_pull") => {
            (200, json!({"now": "2026-01-01T00:00:00Z", "rows": []}))
        }
        ("POST", "/rest/v1/rpc/rcs_push") => (200, json!([{"status": "applied"}])),
        ("POST", "/rest/v1/rpc/rcs_now") => (200, json!("2026-01-01T00:00:00Z")),
        ("POST", "/auth/v1/token") => (
            200,
            json!({"access_token": token, "refresh_token": "r2", "token_type": "bearer", "expires_in": 3600}),
        ),
        _ => (
            404,
            json!({"code": "PGRST000", "message": "not in this test"}),
        ),
    }
}

async fn recorder(token: String) -> (SocketAddr, Arc<Mutex<Vec<Sent>>>) {
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (l, token) = (l.clone(), token.clone());
            async move {
                let raw_query = uri.query().unwrap_or("").to_owned();
                l.lock().unwrap().push(Sent {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    query: reqwest::Url::parse(&format!("http://h/?{raw_query}"))
                        .unwrap()
                        .query_pairs()
                        .into_owned()
                        .collect(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: serde_json::from_slice(&body).ok(),
                });
                let (status, v) = answer(&method, uri.path(), &raw_query, &token);
                let mut resp = axum::response::Response::new(Body::from(v.to_string()));
                *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                let h = resp.headers_mut();
                h.insert("content-type", "application/json".parse().unwrap());
                h.insert(
                    "date",
                    jiff::Timestamp::now()
                        .strftime("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string()
                        .parse()
                        .unwrap(),
                );
                resp
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

/// PostgREST's reading of `in.(…)`: the values, quoted ones unescaped.
fn in_values(v: &str) -> Option<Vec<String>> {
    let inner = v.strip_prefix("in.(")?.strip_suffix(')')?;
    let (mut out, mut cur, mut chars) = (Vec::new(), String::new(), inner.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if cur.is_empty() => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => cur.extend(chars.next()),
                        '"' => break,
                        c => cur.push(c),
                    }
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    Some(out)
}

/// Query parameters as PostgREST reads them, sorted.
fn canonical_query(q: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = q
        .iter()
        .filter(|(k, v)| !(k == "select" && v == "*"))
        .map(|(k, v)| match in_values(v) {
            Some(vals) => (k.clone(), format!("in{vals:?}")),
            None => (k.clone(), v.clone()),
        })
        .collect();
    out.sort();
    out
}

fn compare(ours: &Sent, theirs: &Value) -> Result<(), String> {
    let url = reqwest::Url::parse(theirs["url"].as_str().unwrap()).unwrap();
    let their_query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let what = format!("{} {}", ours.method, ours.path);
    if theirs["method"] != ours.method.as_str() || url.path() != ours.path {
        return Err(format!(
            "{what}: supabase-js sent {} {}",
            theirs["method"],
            url.path()
        ));
    }
    let (a, b) = (canonical_query(&ours.query), canonical_query(&their_query));
    if a != b {
        return Err(format!("{what}: query\n  ours  {a:?}\n  theirs {b:?}"));
    }
    for name in ["apikey", "authorization", "prefer", "content-type"] {
        if let Some(v) = ours.headers.get(name) {
            let t = theirs["headers"][name].as_str();
            // supabase-js adds `; charset=utf-8`-free JSON types and may add other `Prefer`
            // tokens; ours must be among them.
            let same = match (name, t) {
                ("prefer", Some(t)) => v
                    .split(',')
                    .all(|p| t.split(',').any(|q| q.trim() == p.trim())),
                ("content-type", Some(t)) => t.starts_with(v.as_str()),
                (_, Some(t)) => t == v,
                (_, None) => false,
            };
            if !same {
                return Err(format!(
                    "{what}: header {name}: ours {v:?}, supabase-js {t:?}"
                ));
            }
        }
    }
    let their_body: Option<Value> = theirs["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok());
    if ours.body != their_body {
        return Err(format!(
            "{what}: body\n  ours  {:?}\n  theirs {their_body:?}",
            ours.body
        ));
    }
    Ok(())
}

#[tokio::test]
async fn the_adapter_sends_what_supabase_js_sends() {
    let Some(node_path) = require_env("RCS_SUPABASE_JS_NODE_PATH") else {
        return;
    };
    let token = jwt(3600);
    let (addr, log) = recorder(token.clone()).await;
    let url = format!("http://{addr}");
    let store = |mode: Mode, creds: Credentials| {
        SupabaseRemoteStore::<TestRecord>::builder(&url)
            .anon_key(ANON)
            .credentials(creds)
            .mode(mode)
            .timeout(Duration::from_secs(10))
            // One request per call, as supabase-js makes: no background fetch of the next page.
            .prefetch(false)
            .build()
            .unwrap()
    };
    // Scope values that a badly escaped filter would turn into syntax.
    let hostile = "a,owner.neq.x";
    let scope = SyncScope::new("notes", [("owner", hostile), ("tag", "x)\"\\")]).unwrap();
    let table = store(Mode::Table, Credentials::token(token.clone()));
    let first = table.fetch_since(&scope, None, 1).await.unwrap();
    assert!(first.has_more);
    table
        .fetch_since(&scope, first.cursor.as_ref(), 1)
        .await
        .unwrap();
    let mut update = PendingOp::upsert(
        scope.clone(),
        OpKind::Update,
        TestRecord::new("x)", "u", ts(5)),
    );
    update.base_version = Some(ts(0));
    let create = PendingOp::upsert(
        scope.clone(),
        OpKind::Create,
        TestRecord::new("a,b", "c", ts(6)),
    );
    let out = table.push(&scope, &[create, update]).await.unwrap();
    assert_eq!(out.len(), 2);
    let exact_scope = SyncScope::new("records", [("owner", hostile)]).unwrap();
    let exact = store(Mode::Exact, Credentials::token(token.clone()));
    exact.fetch_since(&exact_scope, None, 10).await.unwrap();
    exact
        .push(
            &exact_scope,
            &[PendingOp::upsert(
                exact_scope.clone(),
                OpKind::Create,
                TestRecord::new("r)", "t", ts(1)),
            )],
        )
        .await
        .unwrap();
    exact.server_time().await.unwrap();
    assert!(
        exact
            .get_by_id(&exact_scope, "r,\"1")
            .await
            .unwrap()
            .is_none()
    );
    // A query, narrowed by PostgREST filters on `data`.
    let spec = QuerySpec::new()
        .filter(Filter::eq("title", "a,\"b)"))
        .filter(Filter::contains("meta.note", "50%_x"));
    let answer = exact.query(&exact_scope, &spec).await.unwrap();
    assert_eq!(answer.map(|rows| rows.len()), Some(0));
    // A session due for renewal: the refresh grant goes first.
    let renewing = store(Mode::Exact, Credentials::session(jwt(0), "r1"));
    renewing.server_time().await.unwrap();

    let ours: Vec<Sent> = log.lock().unwrap().clone();
    // The same calls, described for supabase-js.
    let stamp = "2026-01-01T00:00:00.000001Z";
    let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let eqs = json!([["owner", hostile], ["tag", "x)\"\\"]]);
    let columns = "id,version,deleted,data,updated_at";
    let body_of = |method: &str, path: &str| {
        ours.iter()
            .find(|s| s.method == method && s.path == path)
            .and_then(|s| s.body.clone())
            .unwrap_or(Value::Null)
    };
    let mut update_eq = eqs.as_array().unwrap().clone();
    update_eq.extend([
        json!(["id", "x)"]),
        json!(["version", "2026-01-01T00:00:00Z"]),
        json!(["deleted", "false"]),
    ]);
    let calls = json!([
        {"kind": "select", "table": "notes", "columns": columns, "eq": eqs, "in": null, "or": null,
         "order": ["updated_at", "id"], "limit": 1},
        {"kind": "select", "table": "notes", "columns": columns, "eq": eqs, "in": null,
         "or": format!("updated_at.gt.{},and(updated_at.eq.{},id.gt.{})", q(stamp), q(stamp), q("x)")),
         "order": ["updated_at", "id"], "limit": 1},
        {"kind": "select", "table": "notes", "columns": columns, "eq": eqs, "in": ["id", ["a,b", "x)"]],
         "or": null, "order": [], "limit": null},
        {"kind": "insert", "table": "notes", "body": body_of("POST", "/rest/v1/notes")},
        {"kind": "update", "table": "notes", "body": body_of("PATCH", "/rest/v1/notes"), "eq": update_eq},
        {"kind": "rpc", "fn": "rcs_pull", "args": {"p_scope": exact_scope.canonical(), "p_cursor": 0, "p_limit": 11}},
        {"kind": "rpc", "fn": "rcs_push", "args": body_of("POST", "/rest/v1/rpc/rcs_push")},
        {"kind": "rpc", "fn": "rcs_now", "args": {}},
        {"kind": "select", "table": "rcs_records", "columns": "id,version,deleted,data",
         "eq": [["scope", exact_scope.canonical()], ["id", "r,\"1"]], "in": null, "or": null, "order": [], "limit": null},
        {"kind": "select", "table": "rcs_records", "columns": "id,version,deleted,data",
         "eq": [["scope", exact_scope.canonical()]], "is": [["deleted", false]], "in": null,
         "or": [
             format!("data->>title.in.({}),data->>title.like.\"[*\"", q("a,\"b)")),
             format!("data->meta->>note.like.{},data->meta->>note.like.\"[*\"", q("*50\\%\\_x*")),
         ],
         "order": ["id"], "limit": 1000},
        {"kind": "refresh", "refresh_token": "r1"},
    ]);
    let input = json!({"url": url, "anon": ANON, "token": token, "calls": calls});
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/supabase-js-requests.mjs"
    );
    let mut child = std::process::Command::new("node")
        .arg(script)
        .env("NODE_PATH", &node_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "supabase-js-requests.mjs failed");
    let theirs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    // The renewing store's own call (after the grant) repeats `rcs_now`: not compared again.
    let ours: Vec<&Sent> = ours.iter().take(11).collect();
    assert_eq!(theirs.len(), 11, "{theirs:#?}");
    let failures: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter_map(|(o, t)| compare(o, t).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The hostile values reached the server as data: the scope filters are `eq.` + the value.
    let first = &ours[0];
    assert!(
        first
            .query
            .contains(&("owner".into(), format!("eq.{hostile}")))
    );
}

/// Our `in.(…)` encoding of hostile ids reads back, under PostgREST's grammar, as exactly the
/// ids (the values supabase-js's `in()` mis-encodes included).
#[tokio::test]
async fn our_in_lists_round_trip() {
    let token = jwt(3600);
    let (addr, log) = recorder(token.clone()).await;
    let store = SupabaseRemoteStore::<TestRecord>::builder(format!("http://{addr}"))
        .anon_key(ANON)
        .credentials(Credentials::token(token))
        .mode(Mode::Table)
        .prefetch(false)
        .build()
        .unwrap();
    let scope = SyncScope::new("notes", [("owner", "o")]).unwrap();
    let ids = ["a,b\"c", "x)", "back\\slash", "q\"", "(\")"];
    for id in ids {
        let _ = store.get_by_id(&scope, id).await.unwrap();
    }
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), ids.len());
    for (s, id) in sent.iter().zip(ids) {
        let list = s
            .query
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.as_str());
        assert_eq!(list.and_then(in_values), Some(vec![id.to_owned()]), "{s:?}");
    }
}
