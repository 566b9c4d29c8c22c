//! `rcs bench live` runs end to end with small numbers and prints sane figures, over one
//! `rcs serve` on SQLite and over two sharing PostgreSQL (`RCS_TEST_PG_URL`).

use std::collections::HashMap;
use std::process::Command;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

/// Runs `rcs bench live` with small numbers (and `env`), returning its `key: value` lines.
fn bench(env: &[(&str, &str)]) -> HashMap<String, String> {
    let out = Command::new(RCS)
        .args([
            "bench",
            "live",
            "--clients",
            "3",
            "--changes",
            "50",
            "--rate",
            "100",
            "--idle",
            "20",
            "--baseline-rounds",
            "20",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run rcs bench live");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rcs bench live failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(figures: &HashMap<String, String>, key: &str) -> f64 {
    let v = figures
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {figures:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {v:?}"))
}

fn check(figures: &HashMap<String, String>) {
    assert_eq!(number(figures, "clients"), 3.0);
    // Every client saw every change.
    assert_eq!(number(figures, "samples"), 150.0);
    let (p50, p99) = (
        number(figures, "write_to_visible_p50_ms"),
        number(figures, "write_to_visible_p99_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} p99 {p99}");
    // Far below the one-minute sync interval: the event stream did it.
    assert!(p99 < 10_000.0, "p99 {p99}");
    let base = number(figures, "baseline_push_pull_p50_ms");
    assert!(base > 0.0 && base < 10_000.0, "{base}");
    assert!(number(figures, "p50_ratio_vs_push_pull") > 0.0);
    let rss = number(figures, "server_rss_mb");
    assert!(rss > 1.0 && rss < 4_096.0, "server_rss_mb {rss}");
    // 20 idle streams: a rough figure, but a server that kept megabytes per stream fails.
    let idle = number(figures, "kb_per_idle_client");
    assert!(idle.abs() < 1_000.0, "kb_per_idle_client {idle}");
    number(figures, "client_kb_per_idle_client");
    number(figures, "load_avg_1m");
}

#[test]
fn bench_live_over_one_sqlite_server() {
    let figures = bench(&[]);
    assert_eq!(figures["servers"], "1 (SQLite)");
    check(&figures);
}

#[test]
fn bench_live_over_two_servers_sharing_postgres() {
    let Some(url) = remote_cache_sync::testing::require_env("RCS_TEST_PG_URL") else {
        return;
    };
    let figures = bench(&[("RCS_BENCH_POSTGRES", url.as_str())]);
    assert!(figures["servers"].starts_with("2 "), "{figures:?}");
    check(&figures);
    assert!(number(&figures, "writer_server_rss_mb") > 1.0);
}
