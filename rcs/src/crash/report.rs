//! What the crash test counted, and its `key: value` report.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use remote_cache_sync::local::sqlite::is_plain_sqlite;

use super::kill_point::{KILL_POINTS, KillPoint};
use anyhow::bail;

use super::Harness;

#[derive(Default)]
pub(super) struct Figures {
    pub(super) kills: BTreeMap<&'static str, usize>,
    /// Aimed kills whose point was reached before the kill, per point.
    pub(super) hits: BTreeMap<&'static str, usize>,
    /// Aimed kills whose point was not reached within the deadline (killed anyway).
    pub(super) missed_aims: usize,
    pub(super) enqueue_kills_committed: usize,
    pub(super) enqueue_kills_not_committed: usize,
    pub(super) lost: HashSet<i64>,
    pub(super) duplicated: HashSet<i64>,
    pub(super) phantom: HashSet<i64>,
    pub(super) diverged: usize,
    /// Kills that landed while a transaction was writing its commit to the WAL.
    pub(super) torn_wal_commits: usize,
    pub(super) torn_wal_frames: usize,
    pub(super) recovery_pushed: usize,
    pub(super) recovery_conflicts: usize,
    /// Conflicts the other device's resolver settled.
    pub(super) other_settled_conflicts: usize,
    pub(super) max_recovery: Duration,
}

impl Harness {
    pub(super) fn report(&self, kills: usize, elapsed: Duration) -> anyhow::Result<()> {
        let f = &self.figures;
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
        line("kill_points", kills.to_string());
        for p in KILL_POINTS {
            line(
                &format!("kills_{}", p.name()),
                f.kills.get(p.name()).copied().unwrap_or(0).to_string(),
            );
        }
        let mut never_reached = Vec::new();
        for p in KILL_POINTS
            .iter()
            .filter(|p| p.trigger().is_some() || **p == KillPoint::Enqueue)
        {
            let hits = f.hits.get(p.name()).copied().unwrap_or(0);
            line(&format!("hits_{}", p.name()), hits.to_string());
            if hits == 0 && f.kills.get(p.name()).copied().unwrap_or(0) > 0 {
                never_reached.push(p.name());
            }
        }
        line("kills_hit_aim", f.hits.values().sum::<usize>().to_string());
        line("kills_missed_aim", f.missed_aims.to_string());
        line(
            "aimed_points_never_reached",
            never_reached.len().to_string(),
        );
        line(
            "enqueue_kills_committed",
            f.enqueue_kills_committed.to_string(),
        );
        line(
            "enqueue_kills_not_committed",
            f.enqueue_kills_not_committed.to_string(),
        );
        line("kills_mid_commit", f.torn_wal_commits.to_string());
        line("uncommitted_wal_frames", f.torn_wal_frames.to_string());
        line("writes", self.history.intents.len().to_string());
        line(
            "acknowledged_writes",
            self.history.acknowledged().to_string(),
        );
        line(
            "other_device_acknowledged_writes",
            self.history.acknowledged_other().to_string(),
        );
        line("client_push_conflicts", self.tap.conflicts().to_string());
        line(
            "other_device_push_conflicts",
            self.other_tap.conflicts().to_string(),
        );
        let other_settled =
            f.other_settled_conflicts + self.other.as_ref().map_or(0, |o| o.settled_conflicts);
        line("other_device_settled_conflicts", other_settled.to_string());
        line(
            "applied_ops",
            self.tap
                .applied()
                .by_version
                .values()
                .map(|(_, ops)| ops.len())
                .sum::<usize>()
                .to_string(),
        );
        line("recovery_pushed", f.recovery_pushed.to_string());
        line("recovery_conflicts", f.recovery_conflicts.to_string());
        line("torn_journal_lines", self.history.torn_lines.to_string());
        line("cache_encrypted", {
            // Not a plain SQLite file (`RCS_CACHE_KEY` set): its first bytes are not
            // SQLite's header.
            let cache = self.cache_path();
            u8::from(cache.exists() && !is_plain_sqlite(&cache)).to_string()
        });
        line("lost_writes", f.lost.len().to_string());
        line("duplicated_writes", f.duplicated.len().to_string());
        line("phantom_writes", f.phantom.len().to_string());
        line("diverged_caches", f.diverged.to_string());
        line("max_recovery_ms", f.max_recovery.as_millis().to_string());
        line("seed", self.seed.to_string());
        line("elapsed_s", format!("{:.1}", elapsed.as_secs_f64()));
        print!("{out}");
        if !never_reached.is_empty() {
            bail!(
                "crash test failed: aimed kill points never reached: {}",
                never_reached.join(", ")
            );
        }
        if !f.lost.is_empty() || !f.duplicated.is_empty() || !f.phantom.is_empty() || f.diverged > 0
        {
            bail!(
                "crash test failed: {} lost, {} duplicated, {} phantom, {} diverged",
                f.lost.len(),
                f.duplicated.len(),
                f.phantom.len(),
                f.diverged
            );
        }
        Ok(())
    }
}
