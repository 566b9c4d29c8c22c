//! `rcs crash-test` with a small kill count: a client process SIGKILLed at random moments
//! (mid-enqueue, mid-push before and after the remote applied it, mid-pull) while another
//! device writes the same records loses, duplicates and invents nothing, conflicts end as
//! last-write-wins says, and both caches converge. Also checks that the harness's checks can
//! fail, including when kills miss the point they aim at.

use std::collections::HashMap;
use std::process::Command;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

fn crash_test(extra: &[&str]) -> (bool, HashMap<String, String>, String) {
    let out = Command::new(RCS)
        .arg("crash-test")
        .args(extra)
        .output()
        .expect("run rcs crash-test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let figures = stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), figures, report)
}

fn figure(f: &HashMap<String, String>, key: &str) -> usize {
    f.get(key)
        .unwrap_or_else(|| panic!("no {key} line"))
        .parse()
        .unwrap()
}

#[test]
fn fifteen_kills_lose_nothing() {
    let (ok, f, report) = crash_test(&["--kills", "15"]);
    assert!(ok, "crash test failed:\n{report}");
    assert_eq!(figure(&f, "kill_points"), 15, "{report}");
    assert!(figure(&f, "acknowledged_writes") > 0, "{report}");
    assert!(
        figure(&f, "other_device_acknowledged_writes") > 0,
        "{report}"
    );
    assert!(
        figure(&f, "client_push_conflicts") + figure(&f, "other_device_push_conflicts") > 0,
        "the devices' writes never met:\n{report}"
    );
    assert_eq!(
        figure(&f, "kills_hit_aim") + figure(&f, "kills_missed_aim") + figure(&f, "kills_random"),
        15,
        "{report}"
    );
    assert_eq!(figure(&f, "cache_encrypted"), 0, "no key, a plain cache");
    for key in [
        "aimed_points_never_reached",
        "lost_writes",
        "duplicated_writes",
        "phantom_writes",
        "diverged_caches",
    ] {
        assert_eq!(figure(&f, key), 0, "{key}:\n{report}");
    }
}

/// The same on an encrypted cache (`RCS_CACHE_KEY`): SQLCipher's pages and WAL survive kills
/// as SQLite's do.
#[cfg(feature = "encryption")]
#[test]
fn kills_on_an_encrypted_cache_lose_nothing() {
    let out = Command::new(RCS)
        .args(["crash-test", "--kills", "8"])
        .env("RCS_CACHE_KEY", "crash test key")
        .output()
        .expect("run rcs crash-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "crash test failed:\n{report}");
    let f: HashMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(figure(&f, "cache_encrypted"), 1, "{report}");
    assert!(figure(&f, "acknowledged_writes") > 0, "{report}");
    for key in [
        "lost_writes",
        "duplicated_writes",
        "phantom_writes",
        "diverged_caches",
    ] {
        assert_eq!(figure(&f, key), 0, "{key}:\n{report}");
    }
}

/// Without the feature, a key in the environment is refused, not ignored.
#[cfg(not(feature = "encryption"))]
#[test]
fn a_cache_key_without_the_feature_is_refused() {
    let out = Command::new(RCS)
        .args(["list", "--cache", "/nonexistent/never-created.sqlite"])
        .env("RCS_CACHE_KEY", "k")
        .output()
        .expect("run rcs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("encryption"));
}

#[test]
fn the_checks_catch_a_lost_write() {
    let (ok, f, report) = crash_test(&["--kills", "8", "--sabotage", "drop-queued"]);
    assert!(!ok, "a dropped queued op went unnoticed:\n{report}");
    assert!(figure(&f, "lost_writes") > 0, "{report}");
}

#[test]
fn the_checks_catch_a_duplicated_write() {
    let (ok, f, report) = crash_test(&["--kills", "8", "--sabotage", "duplicate"]);
    assert!(!ok, "a write applied twice went unnoticed:\n{report}");
    assert!(figure(&f, "duplicated_writes") > 0, "{report}");
}

#[test]
fn the_checks_catch_kills_that_miss_their_aim() {
    // Seed 1 aims the first kill at a point (not `random`); `blind` keeps every point from firing.
    let (ok, f, report) = crash_test(&["--kills", "2", "--seed", "1", "--sabotage", "blind"]);
    assert!(!ok, "kills that missed their aim went unnoticed:\n{report}");
    assert!(figure(&f, "kills_missed_aim") > 0, "{report}");
    assert!(figure(&f, "aimed_points_never_reached") > 0, "{report}");
    assert_eq!(figure(&f, "kills_hit_aim"), 0, "{report}");
    assert_eq!(figure(&f, "lost_writes"), 0, "{report}");
}
