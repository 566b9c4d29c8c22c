//! Checks every local store runs on a write before touching anything.

use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp};
use crate::record::Record;

/// Checks a local write before it touches any store: non-empty ids, and a payload whose id is
/// the op's id for creates and updates.
pub(crate) fn check_op<T: Record>(op: &PendingOp<T>) -> Result<()> {
    if op.id.is_empty() {
        return Err(Error::InvalidInput(
            "pending op has an empty record id".into(),
        ));
    }
    if op.op_id.as_str().is_empty() {
        return Err(Error::InvalidInput("pending op has an empty op id".into()));
    }
    match (op.kind, &op.payload) {
        (OpKind::Create | OpKind::Update, None) => Err(Error::InvalidInput(format!(
            "{:?} op for {:?} has no payload",
            op.kind, op.id
        ))),
        (_, Some(p)) if p.id() != op.id => Err(Error::InvalidInput(format!(
            "op targets id {:?} but its payload has id {:?}",
            op.id,
            p.id()
        ))),
        _ => Ok(()),
    }
}

/// Rejects records with an empty id.
pub(crate) fn check_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
    if ids.into_iter().any(str::is_empty) {
        return Err(Error::InvalidInput("record id must not be empty".into()));
    }
    Ok(())
}
