//! `rcs bench local` runs and prints its figures (tiny sizes: a smoke test, not a measurement).

use std::collections::HashMap;
use std::process::Command;

const RCS: &str = env!("CARGO_BIN_EXE_rcs");

fn bench(extra: &[&str]) -> HashMap<String, f64> {
    let out = Command::new(RCS)
        .args([
            "bench", "local", "--rows", "2000", "--page", "500", "--writes", "40",
        ])
        .args(["--rounds", "1"])
        .args(extra)
        .output()
        .expect("run rcs bench local");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

#[test]
fn the_local_bench_prints_its_ratios() {
    let f = bench(&[]);
    for key in [
        "apply_rows_per_s",
        "raw_rows_per_s",
        "apply_ratio",
        "enqueue_ratio",
    ] {
        let v = f[key];
        assert!(v.is_finite() && v > 0.0, "{key}: {v}");
    }
}

#[cfg(feature = "encryption")]
#[test]
fn the_encrypted_bench_prints_the_encryption_ratio() {
    let f = bench(&["--encrypted"]);
    for key in [
        "plain_apply_rows_per_s",
        "encrypted_apply_rows_per_s",
        "encryption_ratio",
        "encryption_enqueue_ratio",
    ] {
        let v = f[key];
        assert!(v.is_finite() && v > 0.0, "{key}: {v}");
    }
}
