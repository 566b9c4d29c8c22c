//! The remote benchmarks (`rcs bench pocketbase|appwrite|supabase`) run end to end with tiny
//! arguments and print their keys with sane values. Needs the servers of scripts/test.sh
//! (RCS_TEST_POCKETBASE_*, RCS_TEST_APPWRITE_*, RCS_TEST_SUPABASE_*); skips without them, fails
//! under RCS_TEST_REQUIRE_SERVERS=1.

use std::collections::HashMap;
use std::process::Command;

use remote_cache_sync::testing::require_env;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

/// Runs `rcs bench <which> --rows 200 --page 50 --rounds 1`, returns its `key: value` lines.
fn bench(which: &str) -> HashMap<String, String> {
    let out = Command::new(RCS)
        .args([
            "bench", which, "--rows", "200", "--page", "50", "--rounds", "1",
        ])
        .output()
        .expect("run rcs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "rcs bench {which} failed:\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(keys: &HashMap<String, String>, key: &str) -> f64 {
    let v = keys
        .get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {keys:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("`{key}: {v}` is not a number"))
}

/// The keys every remote benchmark prints, with values in range.
fn check(keys: &HashMap<String, String>) {
    assert_eq!(number(keys, "rows"), 200.0);
    assert_eq!(number(keys, "page_size"), 50.0);
    for rate in [
        "seed_rows_per_s",
        "server_list_rows_per_s",
        "fetch_rows_per_s",
        "pull_rows_per_s",
        "pull_sequential_rows_per_s",
    ] {
        let r = number(keys, rate);
        assert!(r.is_finite() && r > 0.0, "{rate}: {r}");
    }
    for ratio in [
        "fetch_overhead_ratio",
        "client_overhead_ratio",
        "client_overhead_ratio_sequential",
    ] {
        // Tiny runs are noisy: only "a positive, finite time ratio of plausible size".
        let r = number(keys, ratio);
        assert!(r.is_finite() && r > 0.05 && r < 100.0, "{ratio}: {r}");
    }
    let (pull, list) = (number(keys, "pull_s"), number(keys, "server_list_s"));
    let ratio = number(keys, "client_overhead_ratio");
    // Both times are printed to the millisecond: the ratio lies within what that rounding allows.
    let (lo, hi) = (
        (pull - 5e-4) / (list + 5e-4),
        (pull + 5e-4) / (list - 5e-4).max(1e-9),
    );
    assert!(
        lo - 1e-3 <= ratio && ratio <= hi + 1e-3,
        "client_overhead_ratio {ratio} is not pull_s / server_list_s ({pull} / {list})"
    );
}

#[test]
fn bench_pocketbase() {
    if require_env("RCS_TEST_POCKETBASE_URL").is_none() {
        return;
    }
    check(&bench("pocketbase"));
}

#[test]
fn bench_appwrite() {
    if require_env("RCS_TEST_APPWRITE_ENDPOINT").is_none() {
        return;
    }
    check(&bench("appwrite"));
}

#[test]
fn bench_supabase() {
    if require_env("RCS_TEST_SUPABASE_URL").is_none() {
        return;
    }
    check(&bench("supabase"));
}
