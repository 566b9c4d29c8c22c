//! Pushes: the current rows are read first, each op is decided against them
//! ([`base_matches`]), and the writes go through `/api/batch` with their compare-and-set
//! headers, a failing sub-request isolated so one poison op never blocks the others (see the
//! module docs, "Conflict detection" and "Failures").

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use super::client::{BACKEND, status_error};
use super::decode::{
    BatchFailure, batch_failure, decode_row, dropped_fields, holds, in_scope, op_body, row_version,
    text_field,
};
use super::filter::{self, validate_scope};
use super::store::PocketBaseRemoteStore;
use super::{RECORD_ID_FIELD, pocketbase_id};
use crate::error::{Error, Result};
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::base_matches;
use crate::scope::SyncScope;

/// A current row as read before a push.
struct Current {
    raw: Map<String, Value>,
    version: Timestamp,
    deleted: bool,
    /// Why the row's version cannot be read (a row another app wrote), if it cannot.
    unreadable: Option<String>,
}

/// One write waiting for a batch.
struct Write {
    index: usize,
    body: Value,
    headers: Option<Value>,
    version: Timestamp,
    /// Already retried once after a bare failure.
    retried: bool,
}

impl<T: Record> PocketBaseRemoteStore<T> {
    /// The current rows of `ids` in the scope's collection, whatever their scope (so a push can
    /// refuse an id owned by another scope instead of moving it).
    async fn current_rows(
        &self,
        scope: &SyncScope,
        ids: &[&str],
    ) -> Result<HashMap<String, Current>> {
        let mut out = HashMap::new();
        let pb_ids: Vec<String> = ids.iter().map(|id| pocketbase_id(scope, id)).collect();
        for chunk in filter::id_chunks(None, pb_ids.iter().map(String::as_str)) {
            let (items, _) = self.list(scope.name(), &chunk, 1000).await?;
            for raw in items {
                let Some(id) = raw
                    .get(RECORD_ID_FIELD)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                // A row another app wrote with a bad version is still current: ops on it get
                // a verdict of their own below, the rest of the push goes on.
                let (version, deleted, unreadable) = match row_version(&raw) {
                    Ok((v, d)) => (v, d, None),
                    Err(e) => (Timestamp::UNIX_EPOCH, false, Some(e.to_string())),
                };
                out.insert(
                    id,
                    Current {
                        raw,
                        version,
                        deleted,
                        unreadable,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Sends writes in batches, isolating failing sub-requests. Returns the outcome per index.
    async fn write_batches(
        &self,
        scope: &SyncScope,
        writes: Vec<Write>,
        outcomes: &mut [Option<PushOutcome<T>>],
    ) -> Result<()> {
        let url = self.client.url(&["api", "batch"])?;
        let records_path = format!("/api/collections/{}/records", scope.name());
        let mut queue: Vec<Write> = writes;
        while !queue.is_empty() {
            let rest = queue.split_off(queue.len().min(self.config.batch_size));
            let mut chunk = std::mem::replace(&mut queue, rest);
            while !chunk.is_empty() {
                let requests: Vec<Value> = chunk
                    .iter()
                    .map(|w| {
                        let mut r = serde_json::json!({"method": "PUT", "url": records_path, "body": w.body});
                        if let Some(h) = &w.headers {
                            r["headers"] = h.clone();
                        }
                        r
                    })
                    .collect();
                let body = serde_json::json!({ "requests": requests });
                let reply = self
                    .client
                    .send(Method::POST, url.clone(), &[], Some(&body))
                    .await?;
                if reply.status.is_success() {
                    // Only an answer confirming every sub-request acknowledges the writes (a 200
                    // from anything else, e.g. a misbehaving proxy, must not drop queued ops).
                    let answers: Vec<Value> = reply.json()?;
                    let confirmed = answers.len() == chunk.len()
                        && answers.iter().all(|a| {
                            a.get("status")
                                .and_then(Value::as_u64)
                                .is_some_and(|s| (200..300).contains(&s))
                        });
                    if !confirmed {
                        return Err(Error::MalformedResponse {
                            backend: BACKEND,
                            message: format!(
                                "the batch answer does not confirm its {} writes",
                                chunk.len()
                            ),
                        });
                    }
                    for (w, answer) in chunk.drain(..).zip(&answers) {
                        outcomes[w.index] = Some(match dropped_fields(&w.body, answer) {
                            // PocketBase silently ignores fields the collection does not have:
                            // park the op with the reason instead of losing the value quietly.
                            Some(missing) => {
                                tracing::error!(
                                    collection = scope.name(),
                                    fields = %missing,
                                    "pocketbase dropped record fields the collection lacks"
                                );
                                PushOutcome::Rejected {
                                    reason: format!(
                                        "collection {:?} has no field(s) {missing}: their values were dropped; \
                                         add the fields (see docs/backends/pocketbase.md) and retry",
                                        scope.name()
                                    ),
                                }
                            }
                            None => PushOutcome::Applied { version: w.version },
                        });
                    }
                    break;
                }
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                let failed = batch_failure(&v);
                let Some(BatchFailure {
                    index: k,
                    status: sub_status,
                    reason,
                    bare,
                }) = failed.filter(|f| f.index < chunk.len())
                else {
                    if reply.status == StatusCode::FORBIDDEN && reply.message().contains("Batch") {
                        return Err(Error::Refused {
                            backend: BACKEND,
                            status: Some(403),
                            code: Some("batch_disabled".into()),
                            message: "the batch API is disabled on this server: enable it (PATCH /api/settings \
                                      {\"batch\":{\"enabled\":true,…}}, see docs/backends/pocketbase.md)"
                                .into(),
                        });
                    }
                    return Err(reply.error());
                };
                if sub_status == 400 && bare {
                    // Ambiguous: retry the same batch once before blaming the op.
                    if !chunk[k].retried {
                        chunk[k].retried = true;
                        crate::rt::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    if self.client.is_superuser() {
                        // Superusers bypass rules: a bare 400 twice is a server-side failure.
                        return Err(Error::Unavailable {
                            backend: BACKEND,
                            message: format!("batch failed twice without a reason: {reason}"),
                            source: None,
                        });
                    }
                }
                let w = chunk.remove(k);
                let op_outcome = match sub_status {
                    404 | 409 if w.headers.is_some() => {
                        // The compare-and-set rule failed, or the row is not ours: look again.
                        let id = w.body[RECORD_ID_FIELD]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        match self.current_rows(scope, &[id.as_str()]).await?.remove(&id) {
                            Some(cur) if in_scope(&cur.raw, scope) => {
                                match self.decode_change(cur.raw) {
                                    Ok(c) => PushOutcome::Conflict { current: Some(c) },
                                    Err(e) => PushOutcome::undecodable_current(e),
                                }
                            }
                            _ => PushOutcome::Rejected {
                                reason: format!(
                                    "record {id} was not found or is not writable: {reason}"
                                ),
                            },
                        }
                    }
                    400 | 403 | 404 | 409 | 413 | 422 => PushOutcome::Rejected { reason },
                    s => {
                        return Err(status_error(
                            StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
                            &reply.headers,
                            reason,
                        ));
                    }
                };
                outcomes[w.index] = Some(op_outcome);
            }
        }
        Ok(())
    }

    /// [`RemoteStore::push`](crate::remote::RemoteStore::push): pre-read, decide per op, write
    /// in batches.
    pub(super) async fn push_ops(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
    ) -> Result<Vec<PushOutcome<T>>> {
        validate_scope(scope)?;
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<&str> = ops.iter().map(|o| o.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut current = self.current_rows(scope, &ids).await?;
        let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
        let mut writes: Vec<Write> = Vec::new();
        // Ops on the same id are decided in order, each against the state the previous left.
        for (index, op) in ops.iter().enumerate() {
            let cur = current.get(&op.id);
            if let Some(c) = cur
                && !in_scope(&c.raw, scope)
            {
                outcomes[index] = Some(PushOutcome::Rejected {
                    reason: format!("record id {:?} already exists outside this scope", op.id),
                });
                continue;
            }
            if let Some(reason) = cur.and_then(|c| c.unreadable.as_ref()) {
                outcomes[index] = Some(PushOutcome::undecodable_current(reason));
                continue;
            }
            let change = op.change();
            let (version, deleting) = (change.version(), change.is_delete());
            let state = cur.map(|c| (c.version, c.deleted));
            // The row already holds this op's version: a replay of an applied op.
            let replay = state == Some((version, deleting));
            if !replay && !base_matches(op.kind, op.base_version, state) {
                let cur = current.get(&op.id).expect("a mismatch needs a current row");
                outcomes[index] = Some(match decode_row(cur.raw.clone()) {
                    Ok(c) => PushOutcome::Conflict { current: Some(c) },
                    Err(e) => PushOutcome::undecodable_current(e),
                });
                continue;
            }
            let body = match op_body(scope, op, cur.is_some()) {
                Ok(b) => b,
                Err(reason) => {
                    outcomes[index] = Some(PushOutcome::Rejected { reason });
                    continue;
                }
            };
            if replay && cur.is_some_and(|c| holds(&c.raw, &body)) {
                // Same version and same content: nothing to write.
                outcomes[index] = Some(PushOutcome::Applied { version });
                continue;
            }
            // A replay whose content differs (e.g. a field the collection lacked earlier) is
            // written again, still checked against the row it was read from.
            let conditional = replay || op.base_version.is_some() || op.kind == OpKind::Create;
            let headers = conditional.then(|| match cur {
                Some(c) => serde_json::json!({
                    // Empty for rows written without `updated_at` by other clients: no check.
                    "x-rcs-if-updated": text_field(&c.raw, "updated_at").unwrap_or(""),
                    "x-rcs-if-deleted": text_field(&c.raw, "deleted_at").unwrap_or(""),
                }),
                None => serde_json::json!({ "x-rcs-if-updated": "-" }),
            });
            // Later ops on the same id see this write.
            let mut raw = body.as_object().cloned().unwrap_or_default();
            if let Some(c) = cur {
                for (k, v) in &c.raw {
                    raw.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            current.insert(
                op.id.clone(),
                Current {
                    raw,
                    version,
                    deleted: deleting,
                    unreadable: None,
                },
            );
            writes.push(Write {
                index,
                body,
                headers,
                version,
                retried: false,
            });
        }
        self.write_batches(scope, writes, &mut outcomes).await?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every op has an outcome"))
            .collect())
    }
}
