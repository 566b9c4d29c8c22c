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

fn rcs(pb: &Pb, cache: &std::path::Path, owner: &str, args: &[&str]) -> Output {
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
    assert!(out.status.success(), "rcs {args:?} failed: {stderr}");
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
