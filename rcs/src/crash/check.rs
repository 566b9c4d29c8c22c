//! Judging a round: what the remote holds against every write of both devices.

use std::collections::BTreeMap;

use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::{
    JsonRecord, LocalStore, OpKind, QuerySpec, Record, RemoteStore, SyncScope, Tombstone,
};
use serde_json::Value;

use super::journal::Intent;
use super::tap::nanos;
use super::{Harness, KillPoint};

impl Harness {
    /// Lost, duplicated and phantom writes, judged on the whole history so far.
    pub(super) fn check_writes(&mut self, remote: &BTreeMap<String, Final>, point: KillPoint) {
        let applied = self.tap.applied();
        for (version, (id, ops)) in &applied.by_version {
            match self.history.by_version(*version) {
                Some(i) if &i.id == id => {}
                _ => {
                    if self.figures.phantom.insert(*version) {
                        eprintln!("crash-test: PHANTOM applied op on {id} at version {version}");
                    }
                }
            }
            if ops.len() > 1 && self.figures.duplicated.insert(*version) {
                eprintln!(
                    "crash-test: DUPLICATED write {version} on {id}, applied by {} ops (after a {} kill)",
                    ops.len(),
                    point.name()
                );
            }
        }
        drop(applied);
        for (id, idxs) in &self.history.per_record {
            let writes: Vec<&Intent> = idxs.iter().map(|&i| &self.history.intents[i]).collect();
            // The write the remote's final state is (`None`: absent, or phantom).
            let holds = match remote.get(id) {
                None => None,
                Some(f) => {
                    let (version, is_delete, wid_ok) = match f {
                        Final::Live(r) => (
                            nanos(r.updated_at()),
                            false,
                            r.value().get("wid").and_then(Value::as_str)
                                == Some(nanos(r.updated_at()).to_string().as_str()),
                        ),
                        Final::Gone(t) => (nanos(t.deleted_at), true, true),
                    };
                    let w = writes
                        .iter()
                        .find(|w| w.version == version && (w.kind == OpKind::Delete) == is_delete)
                        .copied();
                    if w.is_none() || !wid_ok {
                        if self.figures.phantom.insert(version) {
                            eprintln!(
                                "crash-test: PHANTOM remote state of {id} at version {version}"
                            );
                        }
                        continue;
                    }
                    w
                }
            };
            // Last write wins: the record ends as its newest acknowledged write, or as a newer
            // one that is unacknowledged because the kill hit its enqueue (it may or may not
            // have committed). Deleted and absent read the same to the app, so any tombstone,
            // or none, satisfies a delete among those (a create and a delete of a record fold
            // into nothing when the remote has not got it or holds a tombstone).
            let Some(newest) = writes.iter().filter(|w| w.acked).max_by_key(|w| w.version) else {
                continue;
            };
            let may_end_deleted = writes
                .iter()
                .any(|w| w.version >= newest.version && w.kind == OpKind::Delete);
            let kept = match (remote.get(id), holds) {
                (None | Some(Final::Gone(_)), _) if may_end_deleted => true,
                (Some(_), Some(h)) => h.version >= newest.version,
                _ => false,
            };
            if !kept && self.figures.lost.insert(newest.version) {
                let holds = match holds {
                    Some(h) => {
                        format!("{:?} at {} by the {:?} device", h.kind, h.version, h.device)
                    }
                    None => "nothing".to_owned(),
                };
                // The record's latest writes, oldest first, to tell what happened.
                let mut by_version = writes.clone();
                by_version.sort_by_key(|w| w.version);
                let latest: Vec<String> = by_version
                    .iter()
                    .rev()
                    .take(6)
                    .rev()
                    .map(|w| {
                        let acked = if w.acked { "" } else { " (unacknowledged)" };
                        format!("{:?} {:?} at {}{acked}", w.device, w.kind, w.version)
                    })
                    .collect();
                eprintln!(
                    "crash-test: LOST {:?} of {id} at version {} by the {:?} device (the newest acknowledged write of {}; the remote holds {holds}; after a {} kill); latest writes: {}",
                    newest.kind,
                    newest.version,
                    newest.device,
                    writes.len(),
                    point.name(),
                    latest.join(", ")
                );
            }
        }
    }
}

/// A record's state on the remote.
pub(super) enum Final {
    Live(JsonRecord),
    Gone(Tombstone),
}

pub(super) async fn remote_state(
    storage: &SqliteRemoteStore<JsonRecord>,
    scope: &SyncScope,
) -> anyhow::Result<BTreeMap<String, Final>> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = storage.fetch_since(scope, cursor.as_ref(), 5000).await?;
        for r in page.upserts {
            let f = match r.deleted_at() {
                Some(at) => Final::Gone(Tombstone {
                    id: r.id().to_owned(),
                    deleted_at: at,
                }),
                None => Final::Live(r),
            };
            out.insert(f_id(&f), f);
        }
        for t in page.deletes {
            out.insert(t.id.clone(), Final::Gone(t));
        }
        cursor = page.cursor.or(cursor);
        if !page.has_more {
            return Ok(out);
        }
    }
}

fn f_id(f: &Final) -> String {
    match f {
        Final::Live(r) => r.id().to_owned(),
        Final::Gone(t) => t.id.clone(),
    }
}

/// Live records of a cache, as JSON values by id.
pub(super) async fn live_records(
    local: &SqliteLocalStore<JsonRecord>,
    scope: &SyncScope,
) -> anyhow::Result<BTreeMap<String, Value>> {
    Ok(local
        .query(scope, &QuerySpec::new())
        .await?
        .into_iter()
        .map(|r| (r.id().to_owned(), Value::Object(r.into_value())))
        .collect())
}
