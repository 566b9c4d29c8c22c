//! Table mode: plain PostgREST table requests on a table whose `updated_at` a trigger stamps with
//! the server's clock (the guide, section 4). Pulls page on the keyset `(updated_at, id)` with
//! an overlap window and a seen-set (the shared `WindowCursor`); pushes are one conditional
//! request per op.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use super::client::{BACKEND, Client, Reply};
use super::decode::{self, fixed, op_row, row_id, row_state, stamp};
use super::filter::{after, eq, in_list, scope_filters};
use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::base_matches;
use crate::remote::client::window::{CursorKind, Start, WindowCursor};
use crate::scope::SyncScope;

/// Table-mode cursors (`sbt1:` + JSON).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table;

impl CursorKind for Table {
    const PREFIX: &'static str = "sbt1:";
    const NAME: &'static str = "supabase table-mode";
}

const COLUMNS: &str = "id,version,deleted,data,updated_at";

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedResponse {
        backend: BACKEND,
        message: message.into(),
    }
}

fn q(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

async fn list(
    client: &Client,
    scope: &SyncScope,
    query: &[(String, String)],
) -> Result<(Vec<Value>, Reply)> {
    let reply = client
        .send(
            Method::GET,
            client.rest(&[scope.name()])?,
            query,
            None,
            None,
            true,
        )
        .await?;
    if !reply.status.is_success() {
        return Err(reply.error());
    }
    Ok((reply.json()?, reply))
}

pub(crate) async fn pull<T: Record>(
    client: &Client,
    scope: &SyncScope,
    since: Option<&Cursor>,
    limit: usize,
    window: Duration,
) -> Result<Delta<T>> {
    let mut state = WindowCursor::<Table>::decode(since)?;
    let per_page = limit.clamp(1, 1000);
    let window = SignedDuration::try_from(window)
        .map_err(|e| Error::InvalidInput(format!("supabase: overlap window: {e}")))?;
    let mut delta = Delta::empty(Timestamp::now(), None);
    loop {
        let start = state.begin_read();
        let mut query = vec![q("select", COLUMNS)];
        query.extend(scope_filters(scope));
        match &start {
            Start::Beginning => {}
            Start::After(u, i) => query.push(after(u, i)),
            Start::From(u) => query.push(q("updated_at", format!("gte.{u}"))),
        }
        query.push(q("order", "updated_at.asc,id.asc"));
        query.push(q("limit", per_page.to_string()));
        let (rows, reply) = list(client, scope, &query).await?;
        if rows.len() > per_page {
            return Err(malformed(format!(
                "{} rows for limit {per_page}",
                rows.len()
            )));
        }
        let date = reply
            .date()
            .ok_or_else(|| malformed("a table answer without a Date header"))?;
        // The Date header is truncated to the second: one more second of margin.
        let risk_low = fixed(date - window - SignedDuration::from_secs(1));
        let reached_end = rows.len() < per_page;
        let mut last = None;
        for row in &rows {
            let (Some(id), Some(updated)) =
                (row_id(row), row.get("updated_at").and_then(Value::as_str))
            else {
                return Err(malformed(format!(
                    "table {:?} rows lack `id`/`updated_at` (see docs/backends/supabase.md)",
                    scope.name()
                )));
            };
            let updated = stamp(updated)?;
            let outside = match &start {
                Start::Beginning => false,
                Start::After(su, _) | Start::From(su) => updated < *su,
            };
            if outside {
                return Err(malformed(
                    "a listed row is outside the requested keyset range",
                ));
            }
            if !state.was_seen(&updated, id) {
                decode::push_row(&mut delta, row);
                state.mark_seen(&updated, id, &risk_low);
            }
            last = Some((updated, id.to_owned()));
        }
        state.end_read(last, reached_end, risk_low);
        delta.server_time = date;
        delta.has_more = !reached_end;
        // A page made only of already-delivered rows: keep scanning rather than return nothing.
        if !delta.is_empty() || reached_end {
            break;
        }
    }
    delta.cursor = Some(state.encode());
    Ok(delta)
}

/// The rows of `ids` in the scope, by id.
async fn current_rows(
    client: &Client,
    scope: &SyncScope,
    ids: &[&str],
) -> Result<HashMap<String, Value>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(100) {
        let mut query = vec![q("select", COLUMNS)];
        query.extend(scope_filters(scope));
        query.push(q("id", in_list(chunk.iter().copied())));
        let (rows, _) = list(client, scope, &query).await?;
        for row in rows {
            if let Some(id) = row_id(&row) {
                out.insert(id.to_owned(), row);
            }
        }
    }
    Ok(out)
}

pub(crate) async fn get<T: Record>(
    client: &Client,
    scope: &SyncScope,
    id: &str,
) -> Result<Option<T>> {
    if id.contains('\0') {
        return Ok(None);
    }
    let rows = current_rows(client, scope, &[id]).await?;
    match rows.get(id) {
        Some(row) => decode::live(row),
        None => Ok(None),
    }
}

/// The outcome of a write whose condition failed: a conflict with the row as it is now.
async fn lost_race<T: Record>(
    client: &Client,
    scope: &SyncScope,
    id: &str,
) -> Result<(PushOutcome<T>, Option<Value>)> {
    let now = current_rows(client, scope, &[id]).await?.remove(id);
    Ok(match now {
        Some(row) => (
            match decode::decode_row(&row) {
                Ok(c) => PushOutcome::Conflict { current: Some(c) },
                Err(e) => PushOutcome::undecodable_current(e),
            },
            Some(row),
        ),
        None => (
            PushOutcome::Rejected {
                reason: format!(
                    "record id {id:?} exists but is not visible to this user (row-level security)"
                ),
            },
            None,
        ),
    })
}

pub(crate) async fn push<T: Record>(
    client: &Client,
    scope: &SyncScope,
    ops: &[PendingOp<T>],
) -> Result<Vec<PushOutcome<T>>> {
    let mut ids: Vec<&str> = ops
        .iter()
        .map(|o| o.id.as_str())
        .filter(|i| !i.contains('\0'))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut current = current_rows(client, scope, &ids).await?;
    let url = client.rest(&[scope.name()])?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let row = match op_row(op) {
            Ok(r) => r,
            Err(reason) => {
                outcomes.push(PushOutcome::Rejected { reason });
                continue;
            }
        };
        let cur = current.get(&op.id);
        let state = match cur.map(row_state).transpose() {
            Ok(s) => s,
            Err(e) => {
                outcomes.push(PushOutcome::undecodable_current(e));
                continue;
            }
        };
        let change = op.change();
        let (version, deleting) = (change.version(), change.is_delete());
        // The row already holds this op's version: a replay of an applied op.
        if state == Some((version, deleting)) {
            outcomes.push(PushOutcome::Applied { version });
            continue;
        }
        if !base_matches(op.kind, op.base_version, state) {
            let cur = cur.expect("a mismatch needs a current row");
            outcomes.push(match decode::decode_row(cur) {
                Ok(c) => PushOutcome::Conflict { current: Some(c) },
                Err(e) => PushOutcome::undecodable_current(e),
            });
            continue;
        }
        let reply = match cur {
            None => {
                let mut body: Map<String, Value> = scope
                    .keys()
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                body.extend(row.clone());
                client
                    .send(
                        Method::POST,
                        url.clone(),
                        &[],
                        Some(&Value::Object(body)),
                        Some("return=representation"),
                        false,
                    )
                    .await?
            }
            Some(c) => {
                // Compare-and-set: only the row as it was read is updated.
                let mut query = scope_filters(scope);
                query.push(eq("id", &op.id));
                query.push(eq(
                    "version",
                    c.get("version").and_then(Value::as_str).unwrap_or_default(),
                ));
                query.push(eq(
                    "deleted",
                    if state.is_some_and(|s| s.1) {
                        "true"
                    } else {
                        "false"
                    },
                ));
                let mut body = row.clone();
                body.remove("id");
                client
                    .send(
                        Method::PATCH,
                        url.clone(),
                        &query,
                        Some(&Value::Object(body)),
                        Some("return=representation"),
                        false,
                    )
                    .await?
            }
        };
        let written: Option<Value> = match reply.status {
            s if s.is_success() => {
                let rows: Vec<Value> = reply.json()?;
                rows.into_iter().next()
            }
            // Created meanwhile by another writer, or owned by another user.
            StatusCode::CONFLICT => None,
            // A data error is a verdict on this op; refusals (401, 403, 404) pause the scope.
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                outcomes.push(PushOutcome::Rejected {
                    reason: reply.error().to_string(),
                });
                continue;
            }
            _ => return Err(reply.error()),
        };
        match written {
            Some(w) => {
                current.insert(op.id.clone(), w);
                outcomes.push(PushOutcome::Applied { version });
            }
            None => {
                let (outcome, now) = lost_race(client, scope, &op.id).await?;
                match now {
                    Some(r) => current.insert(op.id.clone(), r),
                    None => current.remove(&op.id),
                };
                outcomes.push(outcome);
            }
        }
    }
    tracing::debug!(scope = %scope, ops = ops.len(), "supabase push (table)");
    Ok(outcomes)
}

/// The server's clock from the `Date` header of GoTrue's health endpoint (1 s resolution).
pub(crate) async fn now(client: &Client) -> Result<Timestamp> {
    let url = client.http().url(&["auth", "v1", "health"])?;
    let reply = client.send(Method::GET, url, &[], None, None, true).await?;
    if !reply.status.is_success() {
        return Err(reply.error());
    }
    reply.date().ok_or_else(|| malformed("no Date header"))
}
