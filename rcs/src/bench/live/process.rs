//! The servers of `rcs bench live`: real `rcs serve` processes (this binary), so each one's
//! memory can be read apart from the clients'.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// One `rcs serve` child process; killed when dropped.
pub(super) struct ServeProcess {
    child: Child,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub(super) url: String,
    /// Kept open: the server may still write to its stdout.
    _stdout: BufReader<ChildStdout>,
}

impl ServeProcess {
    /// Starts `rcs serve` on a free loopback port over `db` (a SQLite path or a PostgreSQL
    /// URL, passed through the environment so it never shows in the process list), granting
    /// `token_spec` (`TOKEN:PATTERN`, also through the environment). Its log goes to `log`.
    pub(super) async fn start(db: &str, token_spec: &str, log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the rcs binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RCS_SERVE_DB", db)
            .env("RCS_SERVE_TOKENS", token_spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start rcs serve")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut line = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            stdout.read_line(&mut line),
        )
        .await;
        let url = match read {
            Ok(Ok(_)) => line.trim().strip_prefix("listening: ").map(str::to_owned),
            _ => None,
        };
        let Some(url) = url else {
            let _ = child.start_kill();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("rcs serve did not start: {line:?}\n{log}");
        };
        Ok(ServeProcess {
            child,
            url,
            _stdout: stdout,
        })
    }

    /// Its resident memory now (`VmRSS`), in KiB.
    pub(super) fn rss_kb(&self) -> Option<u64> {
        proc_status_kb(self.child.id()?, "VmRSS:")
    }

    /// Its peak resident memory (`VmHWM`), in KiB.
    pub(super) fn peak_rss_kb(&self) -> Option<u64> {
        proc_status_kb(self.child.id()?, "VmHWM:")
    }
}

/// A `kB` field of `/proc/PID/status`.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    read_status_kb(&format!("/proc/{pid}/status"), field)
}

/// This process's resident memory now, in KiB.
pub(super) fn self_rss_kb() -> Option<u64> {
    read_status_kb("/proc/self/status", "VmRSS:")
}

fn read_status_kb(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's 1-minute load average (other processes compete for the cores).
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
