//! Folding the queued ops of one record into the single op that is pushed.

use crate::op::{OpId, OpKind, PendingOp};
use crate::record::Record;

/// The queued ops of one record, folded.
#[derive(Debug, Clone)]
pub(crate) struct Coalesced<T> {
    /// What to push.
    pub op: PendingOp<T>,
    /// Every queued op folded in; all leave the queue together.
    pub constituents: Vec<PendingOp<T>>,
}

impl<T> Coalesced<T> {
    pub fn op_ids(&self) -> Vec<OpId> {
        self.constituents.iter().map(|o| o.op_id.clone()).collect()
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        &self.constituents[0].id
    }

    /// The newest queued op.
    pub fn last(&self) -> &PendingOp<T> {
        self.constituents.last().expect("a group is never empty")
    }
}

/// Net effect of a run of ops on one record, as far as the remote is concerned.
enum Net {
    Create,
    Update,
    Delete,
}

fn step(net: Option<Net>, kind: OpKind) -> Net {
    match (net, kind) {
        (None, OpKind::Create) => Net::Create,
        (None, OpKind::Update) => Net::Update,
        (None, OpKind::Delete) => Net::Delete,
        (Some(Net::Create), OpKind::Create | OpKind::Update) => Net::Create,
        // Created and deleted again: still a delete. Another device may have created the same
        // id meanwhile (or our create may have landed with its answer lost): the tombstone is
        // a write like any other, and the newest write must win.
        (Some(Net::Create), OpKind::Delete) => Net::Delete,
        (Some(Net::Update | Net::Delete), OpKind::Create | OpKind::Update) => Net::Update,
        (Some(Net::Update | Net::Delete), OpKind::Delete) => Net::Delete,
    }
}

/// Groups ops by record (in order of first appearance) and folds each group:
/// create+update → create with the latest payload; create+delete → delete;
/// update+delete → delete; delete+create → update. The pushed op takes the last op's id as its
/// idempotency key, its payload and time, and the first op's base version.
pub(crate) fn coalesce<T: Record>(ops: Vec<PendingOp<T>>) -> Vec<Coalesced<T>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<PendingOp<T>>> = Default::default();
    for op in ops {
        if !groups.contains_key(&op.id) {
            order.push(op.id.clone());
        }
        groups.entry(op.id.clone()).or_default().push(op);
    }
    order
        .into_iter()
        .map(|id| {
            let constituents = groups.remove(&id).expect("grouped above");
            let mut net = None;
            for op in &constituents {
                net = Some(step(net, op.kind));
            }
            let first = &constituents[0];
            let last = constituents.last().expect("non-empty group");
            let kind = match net.expect("non-empty group") {
                Net::Create => OpKind::Create,
                Net::Update => OpKind::Update,
                Net::Delete => OpKind::Delete,
            };
            let op = PendingOp {
                op_id: last.op_id.clone(),
                scope: last.scope.clone(),
                kind,
                id: id.clone(),
                payload: if kind == OpKind::Delete {
                    None
                } else {
                    last.payload.clone()
                },
                updated_at: last.updated_at,
                base_version: first.base_version,
                attempts: constituents.iter().map(|o| o.attempts).max().unwrap_or(0),
                last_error: last.last_error.clone(),
            };
            Coalesced { op, constituents }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestRecord, ts, unique_scope};

    fn ops(kinds: &[OpKind]) -> Vec<PendingOp<TestRecord>> {
        let scope = unique_scope("c");
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                OpKind::Delete => PendingOp::delete(scope.clone(), "x", ts(i as i64)),
                k => PendingOp::upsert(
                    scope.clone(),
                    *k,
                    TestRecord::new("x", format!("v{i}"), ts(i as i64)),
                ),
            })
            .collect()
    }

    fn folded(kinds: &[OpKind]) -> (OpKind, Option<String>) {
        let mut c = coalesce(ops(kinds));
        assert_eq!(c.len(), 1);
        let c = c.remove(0);
        assert_eq!(c.constituents.len(), kinds.len());
        (c.op.kind, c.op.payload.map(|p| p.title))
    }

    #[test]
    fn folding_rules() {
        use OpKind::*;
        assert_eq!(
            folded(&[Create, Update, Update]),
            (Create, Some("v2".into()))
        );
        assert_eq!(folded(&[Create, Update, Delete]), (Delete, None));
        assert_eq!(folded(&[Update, Delete]), (Delete, None));
        assert_eq!(folded(&[Delete, Create]), (Update, Some("v1".into())));
        assert_eq!(
            folded(&[Create, Delete, Create]),
            (Update, Some("v2".into()))
        );
        assert_eq!(folded(&[Update, Update]), (Update, Some("v1".into())));
    }

    #[test]
    fn pushed_op_uses_last_id_and_first_base() {
        let mut v = ops(&[OpKind::Update, OpKind::Update]);
        v[0].base_version = Some(ts(-5));
        v[1].base_version = Some(ts(-5));
        let last_id = v[1].op_id.clone();
        let c = coalesce(v).remove(0);
        let op = c.op;
        assert_eq!(op.op_id, last_id);
        assert_eq!(op.base_version, Some(ts(-5)));
    }
}
