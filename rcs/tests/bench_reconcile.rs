//! `rcs bench reconcile` runs end to end on a small scope: it finds every difference made behind
//! the feed (it fails otherwise) and transfers far fewer bytes than a full pull.

use std::collections::HashMap;
use std::process::Command;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

#[test]
fn bench_reconcile_prints_its_figures() {
    let out = Command::new(RCS)
        .args([
            "bench",
            "reconcile",
            "--rows",
            "20000",
            "--differences",
            "10",
        ])
        .output()
        .expect("run rcs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "rcs bench reconcile failed:\n{stdout}\n{stderr}"
    );
    let keys: HashMap<&str, f64> = stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k, v.parse().unwrap_or(f64::NAN)))
        .collect();
    assert_eq!(keys["rows"], 20_000.0, "{stdout}");
    let ratio = keys["reconcile_bytes_ratio"];
    assert!(ratio > 0.0 && ratio < 0.2, "{stdout}");
    assert!(keys["reconcile_s"] > 0.0);
    assert!(
        keys["unchanged_bytes"] < keys["full_pull_bytes"] / 5.0,
        "{stdout}"
    );
}
