//! Records, ops and versions encoded for SQLite before they reach the blocking thread (JSON
//! text, nanosecond timestamps), and decoded back.

use serde::de::DeserializeOwned;

use super::error::{corrupt, ts_to_sql};
use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp};
use crate::record::{Record, Tombstone};

/// Rows encoded into one buffer: one allocation per batch, JSON serialized once.
#[derive(Debug, Default)]
pub(crate) struct EncodedRows {
    buf: Vec<u8>,
    rows: Vec<EncRow>,
}

#[derive(Debug, Clone, Copy)]
struct EncRow {
    id: (usize, usize),
    data: Option<(usize, usize)>,
    version: i64,
    deleted_at: Option<i64>,
}

impl EncodedRows {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        EncodedRows {
            buf: Vec::with_capacity(rows * 160),
            rows: Vec::with_capacity(rows),
        }
    }

    fn push_str(&mut self, s: &str) -> (usize, usize) {
        let start = self.buf.len();
        self.buf.extend_from_slice(s.as_bytes());
        (start, self.buf.len())
    }

    /// A record (a payload tombstone when its `deleted_at` is set).
    pub(crate) fn push_record<T: Record>(&mut self, r: &T) -> Result<()> {
        if r.id().is_empty() {
            return Err(Error::InvalidInput("record id must not be empty".into()));
        }
        let deleted_at = r.deleted_at().map(ts_to_sql).transpose()?;
        let version = match deleted_at {
            Some(d) => d,
            None => ts_to_sql(r.updated_at())?,
        };
        let id = self.push_str(r.id());
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, r)?;
        self.rows.push(EncRow {
            id,
            data: Some((start, self.buf.len())),
            version,
            deleted_at,
        });
        Ok(())
    }

    /// A deletion without payload.
    pub(crate) fn push_tombstone(&mut self, t: &Tombstone) -> Result<()> {
        if t.id.is_empty() {
            return Err(Error::InvalidInput("record id must not be empty".into()));
        }
        let at = ts_to_sql(t.deleted_at)?;
        let id = self.push_str(&t.id);
        self.rows.push(EncRow {
            id,
            data: None,
            version: at,
            deleted_at: Some(at),
        });
        Ok(())
    }

    /// Validates the buffer once so rows can be bound as text.
    pub(crate) fn finish(self) -> Result<Encoded> {
        let buf = String::from_utf8(self.buf).map_err(|e| Error::Codec(e.to_string()))?;
        Ok(Encoded {
            buf,
            rows: self.rows,
        })
    }
}

/// Finished [`EncodedRows`].
#[derive(Debug)]
pub(crate) struct Encoded {
    buf: String,
    rows: Vec<EncRow>,
}

impl Encoded {
    fn slice(&self, (a, b): (usize, usize)) -> &str {
        &self.buf[a..b]
    }

    /// Whether no row is encoded.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>, i64, Option<i64>)> {
        self.rows.iter().map(|r| {
            (
                self.slice(r.id),
                r.data.map(|d| self.slice(d)),
                r.version,
                r.deleted_at,
            )
        })
    }
}

/// A pending op, encoded.
#[derive(Debug)]
pub(crate) struct EncodedOp {
    pub op_id: String,
    pub scope: String,
    pub kind: &'static str,
    pub id: String,
    /// The op's payload JSON, which is also the local row's data for creates and updates.
    pub payload: Option<String>,
    pub updated_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The local row the op writes: `(data is payload, version, deleted_at)`.
    pub row_version: i64,
    pub row_deleted_at: Option<i64>,
    pub row_has_data: bool,
}

pub(super) fn kind_str(k: OpKind) -> &'static str {
    match k {
        OpKind::Create => "create",
        OpKind::Update => "update",
        OpKind::Delete => "delete",
    }
}

pub(super) fn kind_from(s: &str) -> Result<OpKind> {
    match s {
        "create" => Ok(OpKind::Create),
        "update" => Ok(OpKind::Update),
        "delete" => Ok(OpKind::Delete),
        other => Err(corrupt(format!("unknown op kind {other:?}"))),
    }
}

impl EncodedOp {
    /// Encodes a (checked) op: the payload is serialized once.
    pub(crate) fn new<T: Record>(op: PendingOp<T>) -> Result<Self> {
        let updated_at = ts_to_sql(op.updated_at)?;
        let payload = op.payload.as_ref().map(serde_json::to_string).transpose()?;
        let (row_version, row_deleted_at, row_has_data) = match (&op.payload, op.kind) {
            (Some(p), OpKind::Create | OpKind::Update) => {
                let deleted = p.deleted_at().map(ts_to_sql).transpose()?;
                let version = match deleted {
                    Some(d) => d,
                    None => ts_to_sql(p.updated_at())?,
                };
                (version, deleted, true)
            }
            _ => (updated_at, Some(updated_at), false),
        };
        Ok(EncodedOp {
            op_id: op.op_id.0,
            scope: op.scope.canonical(),
            kind: kind_str(op.kind),
            id: op.id,
            payload,
            updated_at,
            attempts: i64::from(op.attempts),
            last_error: op.last_error,
            row_version,
            row_deleted_at,
            row_has_data,
        })
    }
}

pub(super) fn decode<T: DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::Codec(format!("stored record does not decode: {e}")))
}
