//! Exact mode: the guide's functions, called through PostgREST (`POST /rest/v1/rpc/<fn>`).
//!
//! - `rcs_pull(p_scope, p_cursor, p_limit)`: the rows after the cursor in server-sequence order,
//!   one snapshot; the sequence is handed out in commit order per scope (the guide), so the
//!   cursor (the last `seq`) never skips a late commit;
//! - `rcs_push(p_scope, p_ops)`: compare-and-set, op-id idempotency per scope and per-op
//!   outcomes (`applied`, `conflict`, `forbidden` for another user's row) in one transaction;
//! - `rcs_now()`: the database clock;
//! - `rcs_digest(p_scope, p_length, p_prefixes, p_list)`: a reconciliation round's digests.

use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{BACKEND, Client};
use super::decode::{self, RawRow, op_row};
use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::reconcile::{DigestRequest, DigestResponse};
use crate::record::Record;
use crate::remote::applied_version;
use crate::scope::SyncScope;

/// The table the functions write (read directly by id).
pub(super) const RECORDS: &str = "rcs_records";

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedResponse {
        backend: BACKEND,
        message: message.into(),
    }
}

fn parse_cursor(c: Option<&Cursor>) -> Result<i64> {
    match c {
        None => Ok(0),
        Some(c) => c
            .as_str()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::InvalidInput(format!("bad supabase cursor {:?}", c.as_str()))),
    }
}

/// `rcs_pull`'s answer, its rows left as JSON text (each decoded straight into the record).
#[derive(serde::Deserialize)]
struct PullAnswer<'a> {
    now: Option<String>,
    #[serde(borrow)]
    rows: Option<Vec<&'a serde_json::value::RawValue>>,
}

pub(crate) async fn pull<T: Record>(
    client: &Client,
    scope: &SyncScope,
    since: Option<&Cursor>,
    limit: usize,
) -> Result<Delta<T>> {
    let from = parse_cursor(since)?;
    let limit = limit.clamp(1, 100_000);
    let args = json!({"p_scope": scope.canonical(), "p_cursor": from, "p_limit": limit + 1});
    let reply = client.rpc("rcs_pull", &args, true).await?;
    let answer: PullAnswer = serde_json::from_slice(&reply.body)
        .map_err(|e| malformed(format!("rcs_pull answered something else: {e}")))?;
    let now: Timestamp = answer
        .now
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("rcs_pull answered without `now`"))?;
    let rows = answer
        .rows
        .ok_or_else(|| malformed("rcs_pull answered without `rows`"))?;
    let mut delta = Delta::empty(now, since.cloned());
    delta.has_more = rows.len() > limit;
    let mut last = from;
    for text in rows.iter().take(limit) {
        let row = RawRow::parse(text.get())?;
        let seq = row
            .seq()
            .ok_or_else(|| malformed("an rcs_pull row has no seq"))?;
        if seq <= last {
            return Err(malformed("rcs_pull rows are not in increasing seq order"));
        }
        last = seq;
        row.push_to(&mut delta, text.get());
        delta.cursor = Some(Cursor::new(seq.to_string()));
    }
    Ok(delta)
}

pub(crate) async fn get<T: Record>(
    client: &Client,
    scope: &SyncScope,
    id: &str,
) -> Result<Option<T>> {
    if id.contains('\0') {
        return Ok(None);
    }
    let query = [
        ("select".to_owned(), "id,version,deleted,data".to_owned()),
        ("scope".to_owned(), format!("eq.{}", scope.canonical())),
        ("id".to_owned(), format!("eq.{id}")),
    ];
    let reply = client
        .send(
            Method::GET,
            client.rest(&[RECORDS])?,
            &query,
            None,
            None,
            true,
        )
        .await?;
    if !reply.status.is_success() {
        return Err(reply.error());
    }
    let rows: Vec<Value> = reply.json()?;
    match rows.first() {
        Some(row) => decode::live(row),
        None => Ok(None),
    }
}

pub(crate) async fn push<T: Record>(
    client: &Client,
    scope: &SyncScope,
    ops: &[PendingOp<T>],
    batch: usize,
) -> Result<Vec<PushOutcome<T>>> {
    let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
    let mut sendable = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op_row(op) {
            Ok(mut row) => {
                row.insert("op_id".into(), op.op_id.as_str().into());
                row.insert(
                    "base_version".into(),
                    op.base_version.map(|v| v.to_string()).into(),
                );
                sendable.push((i, Value::Object(row)));
            }
            Err(reason) => outcomes[i] = Some(PushOutcome::Rejected { reason }),
        }
    }
    for chunk in sendable.chunks(batch.max(1)) {
        let rows: Vec<&Value> = chunk.iter().map(|(_, r)| r).collect();
        let args = json!({"p_scope": scope.canonical(), "p_ops": rows});
        let answers: Vec<Value> = client.rpc("rcs_push", &args, false).await?.json()?;
        if answers.len() != chunk.len() {
            return Err(malformed(format!(
                "rcs_push answered {} outcomes for {} ops",
                answers.len(),
                chunk.len()
            )));
        }
        for ((i, _), answer) in chunk.iter().zip(answers) {
            let op = &ops[*i];
            outcomes[*i] = Some(match answer.get("status").and_then(Value::as_str) {
                Some("applied") => PushOutcome::Applied {
                    version: applied_version(op),
                },
                Some("conflict") => {
                    let mut current = answer.get("current").cloned().unwrap_or(Value::Null);
                    current["id"] = op.id.clone().into();
                    match decode::decode_row::<T>(&current) {
                        Ok(c) => PushOutcome::Conflict { current: Some(c) },
                        Err(e) => PushOutcome::undecodable_current(e),
                    }
                }
                // A record row-level security hides from this user (another user's row): a
                // verdict on this op alone; the call's other ops stand.
                Some("forbidden") => PushOutcome::Rejected {
                    reason: format!(
                        "supabase: {}",
                        answer
                            .get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("row-level security refused this write")
                    ),
                },
                _ => return Err(malformed(format!("rcs_push answered {answer}"))),
            });
        }
    }
    tracing::debug!(scope = %scope, ops = ops.len(), "supabase push (exact)");
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every op has an outcome"))
        .collect())
}

pub(crate) async fn now(client: &Client) -> Result<Timestamp> {
    let v: Value = client.rpc("rcs_now", &json!({}), true).await?.json()?;
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("rcs_now answered {v}")))
}

/// `rcs_digest`: one round of reconciliation computed by PostgreSQL under the caller's RLS;
/// `None` where the guide's function is not installed (an older install): the orchestrator then
/// lists the feed instead.
pub(crate) async fn digest(
    client: &Client,
    scope: &SyncScope,
    req: &DigestRequest,
) -> Result<Option<DigestResponse>> {
    req.validate()?;
    let args = json!({
        "p_scope": scope.canonical(),
        "p_length": req.length,
        "p_prefixes": req.prefixes,
        "p_list": req.list,
    });
    let reply = match client.rpc("rcs_digest", &args, true).await {
        Ok(reply) => reply,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut answer: DigestResponse = reply.json()?;
    answer.bytes = reply.body.len() as u64;
    Ok(Some(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some(&Cursor::new("7"))).unwrap(), 7);
        for bad in ["-1", "x", "sbt1:{}"] {
            assert!(parse_cursor(Some(&Cursor::new(bad))).is_err());
        }
    }
}
