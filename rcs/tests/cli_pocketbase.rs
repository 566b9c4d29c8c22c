//! `rcs` client commands against a real PocketBase (`pocketbase://` remote URL): two processes
//! with their own cache files converge. Needs scripts/start-pocketbase.sh (RCS_TEST_POCKETBASE_*).

use std::process::{Command, Output};

use remote_cache_sync::testing::require_env;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

struct Pb {
    url: String,
    email: String,
    password: String,
}

fn pocketbase() -> Option<Pb> {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    Some(Pb {
        url: require_env("RCS_TEST_POCKETBASE_URL")?,
        email: var("RCS_TEST_POCKETBASE_EMAIL"),
        password: var("RCS_TEST_POCKETBASE_PASSWORD"),
    })
}

/// Tests here share one PocketBase and one of them switches its batch API off: one at a time.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rcs(pb: &Pb, cache: &std::path::Path, owner: &str, args: &[&str]) -> Output {
    let out = try_rcs(pb, cache, owner, args);
    assert!(
        out.status.success(),
        "rcs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn try_rcs(pb: &Pb, cache: &std::path::Path, owner: &str, args: &[&str]) -> Output {
    let remote = format!(
        "pocketbase://{}?auth=superuser",
        pb.url.trim_start_matches("http://")
    );
    let (cmd, rest) = args.split_first().unwrap();
    let out = Command::new(RCS)
        .arg(cmd)
        .args(["--remote", &remote, "--cache", cache.to_str().unwrap()])
        .args(["--scope", "records", "--key", &format!("owner={owner}")])
        .args(rest)
        .env("RCS_POCKETBASE_IDENTITY", &pb.email)
        .env("RCS_POCKETBASE_PASSWORD", &pb.password)
        .output()
        .expect("run rcs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&pb.password),
        "the password leaked into rcs output"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn two_rcs_processes_converge_through_pocketbase() {
    let Some(pb) = pocketbase() else {
        return;
    };
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    let owner = format!("cli{}", uuid::Uuid::now_v7().simple());

    rcs(
        &pb,
        &a,
        &owner,
        &["put", "n1", r#"{"title":"from a","n":1}"#, "--sync"],
    );
    rcs(
        &pb,
        &b,
        &owner,
        &["put", "n2", r#"{"title":"from b","n":2}"#, "--sync"],
    );
    rcs(&pb, &a, &owner, &["sync"]);
    rcs(&pb, &b, &owner, &["delete", "n1", "--sync"]);
    rcs(&pb, &a, &owner, &["sync"]);

    for cache in [&a, &b] {
        let list = stdout(&rcs(&pb, cache, &owner, &["list"]));
        assert!(list.contains("from b"), "{cache:?} misses n2: {list}");
        assert!(
            !list.contains("from a"),
            "{cache:?} still shows the deleted n1: {list}"
        );
        let status = stdout(&rcs(&pb, cache, &owner, &["status"]));
        assert!(
            status.contains("pending: 0"),
            "{cache:?} has queued ops: {status}"
        );
    }
}

fn value_of<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} in {output:?}"))
}

/// PocketBase's own API as a superuser, for what another app (or an admin) does.
fn admin(pb: &Pb, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let login: serde_json::Value = http
            .post(format!(
                "{}/api/collections/_superusers/auth-with-password",
                pb.url
            ))
            .json(&serde_json::json!({"identity": pb.email, "password": pb.password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap().to_owned();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http
            .request(method, format!("{}{path}", pb.url))
            .header("Authorization", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    })
}

/// Issue 8, case 3: another app writes a row into the scope that does not decode
/// (`updated_at: "yesterday"`). `rcs sync` quarantines it and goes on; `rcs status` and
/// `rcs ops` show it; once the row is fixed on the server it arrives.
/// Case 2 on PocketBase: with the batch API switched off, the scope pauses and parks nothing.
#[test]
fn a_bad_row_is_quarantined_and_a_disabled_batch_api_pauses() {
    let Some(pb) = pocketbase() else {
        return;
    };
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.sqlite");
    let owner = format!("q{}", uuid::Uuid::now_v7().simple());
    let row = |id: &str, updated_at: &str| {
        let pb_id = uuid::Uuid::now_v7().to_string();
        serde_json::json!({"id": pb_id, "record_id": id, "owner": owner, "title": id,
            "updated_at": updated_at})
    };
    let records = "/api/collections/records/records";
    admin(&pb, "POST", records, row("good1", "2026-01-01T00:00:01Z"));
    let bad = admin(&pb, "POST", records, row("bad1", "yesterday"));
    admin(&pb, "POST", records, row("good2", "2026-01-01T00:00:03Z"));

    let out = stdout(&rcs(&pb, &cache, &owner, &["sync", "--quiet"]));
    assert_eq!(value_of(&out, "quarantined"), "1", "{out}");
    let ids: Vec<String> = stdout(&rcs(&pb, &cache, &owner, &["list"]))
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["good1", "good2"], "rows after the bad one arrive");
    let status = stdout(&rcs(&pb, &cache, &owner, &["status"]));
    assert_eq!(value_of(&status, "quarantined"), "1");
    let ops = stdout(&rcs(&pb, &cache, &owner, &["ops"]));
    assert!(ops.contains("quarantined bad1 reason="), "{ops}");
    // The next sync does not fail on it again.
    let out = stdout(&rcs(&pb, &cache, &owner, &["sync", "--quiet"]));
    assert_eq!(value_of(&out, "quarantined"), "0");

    // Fixed on the server: retried because it changed.
    let path = format!("{records}/{}", bad["id"].as_str().unwrap());
    admin(
        &pb,
        "PATCH",
        &path,
        serde_json::json!({"updated_at": "2026-01-01T00:00:04Z"}),
    );
    rcs(&pb, &cache, &owner, &["sync", "--quiet"]);
    let status = stdout(&rcs(&pb, &cache, &owner, &["status"]));
    assert_eq!(value_of(&status, "quarantined"), "0", "{status}");
    assert!(stdout(&rcs(&pb, &cache, &owner, &["get", "bad1"])).contains("bad1"));

    // The batch API switched off: a refusal of the request, not of any op.
    rcs(&pb, &cache, &owner, &["put", "n1", r#"{"title":"queued"}"#]);
    rcs(&pb, &cache, &owner, &["put", "n2", r#"{"title":"queued"}"#]);
    admin(
        &pb,
        "PATCH",
        "/api/settings",
        serde_json::json!({"batch": {"enabled": false}}),
    );
    let out = try_rcs(&pb, &cache, &owner, &["sync", "--quiet"]);
    admin(
        &pb,
        "PATCH",
        "/api/settings",
        serde_json::json!({"batch": {"enabled": true}}),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("paused") && err.contains("batch"), "{err}");
    let status = stdout(&rcs(&pb, &cache, &owner, &["status"]));
    assert_eq!(
        (value_of(&status, "pending"), value_of(&status, "parked")),
        ("2", "0")
    );
    assert!(value_of(&status, "paused").contains("batch"), "{status}");
    let out = stdout(&rcs(&pb, &cache, &owner, &["sync", "--quiet"]));
    assert_eq!(value_of(&out, "pushed"), "2", "{out}");
    assert_eq!(
        value_of(&stdout(&rcs(&pb, &cache, &owner, &["status"])), "paused"),
        "no"
    );
}
