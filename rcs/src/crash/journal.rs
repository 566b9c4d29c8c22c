//! The worker's write journal: an intent line before every `enqueue_*` call and an ack line
//! after it returned `Ok`, so the harness knows which writes were made and which were promised.
//!
//! Lines are appended with one `write(2)` each on an `O_APPEND` file. The model is a process
//! crash (SIGKILL), not a power cut: data handed to the kernel survives the process, so no fsync
//! is needed (the SQLite cache promises more: it commits user writes with `synchronous = FULL`,
//! which survives a power cut too; its other commits, with `NORMAL`, survive a process crash).
//! A line cut short by the kill has no newline; the harness drops it and truncates the file
//! before the next worker appends.
//!
//! Format: `I <version_ns> <create|update|delete> <record id>`, `A <version_ns>` (enqueue
//! returned Ok), `F <version_ns>` (enqueue returned an error). Every write of the run has a
//! distinct version (its `updated_at`, or `deleted_at` for deletes), which identifies it: the
//! killed client's versions are even, the other device's (which the harness runs and records
//! with [`History::add_other`]) odd.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};
use remote_cache_sync::OpKind;

/// Worker side: appends lines.
pub struct JournalWriter {
    file: std::fs::File,
}

fn kind_str(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Create => "create",
        OpKind::Update => "update",
        OpKind::Delete => "delete",
    }
}

impl JournalWriter {
    /// Opens `path` for appending (created when missing).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open journal {}", path.display()))?;
        Ok(JournalWriter { file })
    }

    fn line(&mut self, line: String) -> anyhow::Result<()> {
        // One write call per line: the kernel has it once this returns.
        self.file.write_all(line.as_bytes())?;
        Ok(())
    }

    /// Records that a write is about to be enqueued.
    pub fn intent(&mut self, version: i64, kind: OpKind, id: &str) -> anyhow::Result<()> {
        self.line(format!("I {version} {} {id}\n", kind_str(kind)))
    }

    /// Records that the enqueue of the write returned Ok.
    pub fn ack(&mut self, version: i64) -> anyhow::Result<()> {
        self.line(format!("A {version}\n"))
    }

    /// Records that the enqueue of the write returned an error.
    pub fn failed(&mut self, version: i64) -> anyhow::Result<()> {
        self.line(format!("F {version}\n"))
    }
}

/// Who made a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The client process the harness kills (its journal file).
    Killed,
    /// The other device, in the harness process (never killed).
    Other,
}

/// One write a device set out to make.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The write's version in nanoseconds: its identity.
    pub version: i64,
    /// What it does.
    pub kind: OpKind,
    /// The record.
    pub id: String,
    /// Whether `enqueue_*` returned Ok.
    pub acked: bool,
    /// Which device.
    pub device: Device,
}

/// Harness side: everything journaled so far, read incrementally.
#[derive(Default)]
pub struct History {
    /// Every intent, in journal order.
    pub intents: Vec<Intent>,
    by_version: HashMap<i64, usize>,
    /// Intent indexes per record, in the order they were added (the other device's writes of a
    /// round come after the killed client's).
    pub per_record: HashMap<String, Vec<usize>>,
    offset: u64,
    /// Torn lines dropped so far.
    pub torn_lines: usize,
}

impl History {
    /// The intent with this version.
    pub fn by_version(&self, version: i64) -> Option<&Intent> {
        self.by_version.get(&version).map(|&i| &self.intents[i])
    }

    /// Reads what was appended since the last call; drops (and truncates away) a torn last line.
    pub fn catch_up(&mut self, path: &Path) -> anyhow::Result<()> {
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context("open journal"),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if complete < buf.len() {
            self.torn_lines += 1;
            file.set_len(self.offset + complete as u64)?;
        }
        let text = std::str::from_utf8(&buf[..complete]).context("journal is not UTF-8")?;
        for line in text.lines() {
            self.apply(line)
                .with_context(|| format!("bad journal line {line:?}"))?;
        }
        self.offset += complete as u64;
        Ok(())
    }

    fn apply(&mut self, line: &str) -> anyhow::Result<()> {
        let mut parts = line.splitn(4, ' ');
        let tag = parts.next().unwrap_or_default();
        let version: i64 = parts.next().unwrap_or_default().parse()?;
        match tag {
            "I" => {
                let kind = match parts.next() {
                    Some("create") => OpKind::Create,
                    Some("update") => OpKind::Update,
                    Some("delete") => OpKind::Delete,
                    other => bail!("unknown kind {other:?}"),
                };
                let id = parts.next().context("missing id")?.to_owned();
                self.insert(Intent {
                    version,
                    kind,
                    id,
                    acked: false,
                    device: Device::Killed,
                })?;
            }
            "A" => {
                let idx = *self
                    .by_version
                    .get(&version)
                    .context("ack without intent")?;
                self.intents[idx].acked = true;
            }
            "F" => {}
            other => bail!("unknown tag {other:?}"),
        }
        Ok(())
    }

    fn insert(&mut self, intent: Intent) -> anyhow::Result<()> {
        if self.by_version.contains_key(&intent.version) {
            bail!("version {} journaled twice", intent.version);
        }
        let idx = self.intents.len();
        self.by_version.insert(intent.version, idx);
        self.per_record
            .entry(intent.id.clone())
            .or_default()
            .push(idx);
        self.intents.push(intent);
        Ok(())
    }

    /// Adds the other device's writes (made in the harness process, so not journaled).
    pub fn add_other(&mut self, writes: Vec<Intent>) -> anyhow::Result<()> {
        for w in writes {
            anyhow::ensure!(w.device == Device::Other, "not the other device's write");
            self.insert(w)?;
        }
        Ok(())
    }

    /// The killed client's last write, if it was not acknowledged (the kill may have hit its
    /// enqueue).
    pub fn last_unacked(&self) -> Option<&Intent> {
        self.intents
            .iter()
            .rev()
            .find(|i| i.device == Device::Killed)
            .filter(|i| !i.acked)
    }

    /// Acknowledged writes of the other device.
    pub fn acknowledged_other(&self) -> usize {
        self.intents
            .iter()
            .filter(|i| i.acked && i.device == Device::Other)
            .count()
    }

    /// The largest version journaled (writes after a restart must be newer).
    pub fn max_version(&self) -> i64 {
        self.intents.iter().map(|i| i.version).max().unwrap_or(0)
    }

    /// Writes whose enqueue returned Ok.
    pub fn acknowledged(&self) -> usize {
        self.intents.iter().filter(|i| i.acked).count()
    }
}
