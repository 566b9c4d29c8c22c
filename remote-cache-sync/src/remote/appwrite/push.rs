//! Pushes to Appwrite: each chunk of ops in one transaction (create, stage, commit), decided
//! against the documents as read before the commit, with idempotent replays and per-op
//! outcomes (see the [module docs](super)).

use std::collections::HashMap;

use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::BACKEND;
use super::decode::{decode_doc, doc_version, document_id, holds, in_scope, op_data, record_id};
use super::query;
use super::store::AppwriteRemoteStore;
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::base_matches;
use crate::scope::SyncScope;

/// A document as read before a commit.
struct Current {
    raw: Map<String, Value>,
    version: Timestamp,
    deleted: bool,
    unreadable: Option<String>,
}

/// An op still to be written: its index in the push and the attributes staged for it.
#[derive(Clone)]
struct Pending {
    index: usize,
    doc_id: String,
    data: Map<String, Value>,
}

/// How one transaction ended.
enum Round {
    /// Committed: every pending op applied.
    Committed,
    /// Some ops were decided without writing (or the commit lost a race): try again.
    Again,
    /// The server refused the batch for one of its ops (a structure error): find which.
    Isolate(String),
}

impl<T: Record> AppwriteRemoteStore<T> {
    /// [`RemoteStore::push`](crate::RemoteStore::push): chunks of at most `batch_size` ops.
    pub(super) async fn push_ops(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
    ) -> Result<Vec<PushOutcome<T>>> {
        self.validate(scope)?;
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
        let mut todo = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            match op_data(scope, op, &self.config.json_attributes) {
                Ok(data) => todo.push(Pending {
                    index,
                    doc_id: document_id(scope, &op.id),
                    data,
                }),
                Err(reason) => outcomes[index] = Some(PushOutcome::Rejected { reason }),
            }
        }
        // Chunks of at most `batch_size` ops, one transaction each, in order: a later chunk's
        // ops are decided against what the earlier chunks committed.
        while !todo.is_empty() {
            let rest = todo.split_off(todo.len().min(self.config.batch_size));
            let chunk = std::mem::replace(&mut todo, rest);
            self.push_pending(scope, ops, chunk, &mut outcomes).await?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every op has an outcome"))
            .collect())
    }

    /// The current documents of `doc_ids`, whatever their scope, by document id.
    async fn current_docs(
        &self,
        collection: &str,
        doc_ids: &[&str],
    ) -> Result<HashMap<String, Current>> {
        let mut out = HashMap::new();
        let mut ids = doc_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in query::id_chunks(ids) {
            let queries = [query::equal("$id", &chunk), query::limit(chunk.len())];
            let (docs, _) = self.list(collection, &queries).await?;
            for raw in docs {
                let Some(id) = raw.get("$id").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let (version, deleted, unreadable) = match doc_version(&raw) {
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

    /// `POST /databases/transactions {"ttl"}` → the transaction id
    /// (<https://appwrite.io/docs/products/databases/transactions#create-a-transaction>).
    async fn begin(&self) -> Result<String> {
        let url = self.client.url(&["databases", "transactions"])?;
        let body = json!({ "ttl": self.config.transaction_ttl_s });
        let reply = self
            .client
            .send(Method::POST, url, &[], Some(&body))
            .await?;
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let v: Value = reply.json()?;
        v.get("$id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::MalformedResponse {
                backend: BACKEND,
                message: "transaction answer without $id".into(),
            })
    }

    /// `PATCH /databases/transactions/{id}` with `{"commit":true}` or `{"rollback":true}`.
    async fn finish(&self, tx: &str, commit: bool) -> Result<super::client::Reply> {
        let url = self.client.url(&["databases", "transactions", tx])?;
        let body = if commit {
            json!({ "commit": true })
        } else {
            json!({ "rollback": true })
        };
        self.client.send(Method::PATCH, url, &[], Some(&body)).await
    }

    /// Rolls back, best effort: the transaction expires after its TTL anyway.
    async fn rollback(&self, tx: &str) {
        if let Err(e) = self.finish(tx, false).await {
            tracing::debug!(error = %e, "appwrite: rollback failed (the transaction will expire)");
        }
    }

    /// The permissions written with a document, from [`AppwriteConfig::owner_key`].
    fn permissions(&self, scope: &SyncScope) -> Option<Value> {
        let key = self.config.owner_key.as_deref()?;
        let user = scope.keys().get(key)?;
        let role = serde_json::to_string(&format!("user:{user}")).ok()?;
        Some(json!([
            format!("read({role})"),
            format!("update({role})"),
            format!("delete({role})"),
        ]))
    }

    /// Pushes `todo` (ops of one scope) through transactions until each has an outcome.
    async fn push_pending(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
        mut todo: Vec<Pending>,
        outcomes: &mut [Option<PushOutcome<T>>],
    ) -> Result<()> {
        let mut rounds = 0;
        while !todo.is_empty() {
            rounds += 1;
            if rounds > self.config.max_rounds {
                return Err(Error::Unavailable {
                    backend: BACKEND,
                    message: format!(
                        "the documents of this push kept changing: {} transactions conflicted",
                        self.config.max_rounds
                    ),
                    source: None,
                });
            }
            let tx = self.begin().await?;
            let round = self.round(scope, ops, &tx, &mut todo, outcomes).await;
            match round {
                Ok(Round::Committed) => return Ok(()),
                Ok(Round::Again) => {}
                Ok(Round::Isolate(reason)) => {
                    if todo.len() == 1 {
                        let p = todo.pop().expect("one op");
                        outcomes[p.index] = Some(PushOutcome::Rejected { reason });
                        return Ok(());
                    }
                    // One transaction per op, in order, to find the one the server refuses.
                    for p in std::mem::take(&mut todo) {
                        Box::pin(self.push_pending(scope, ops, vec![p], outcomes)).await?;
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.rollback(&tx).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One transaction: stage every pending op, read the documents, decide each op against
    /// what it read, then commit only if every op is to be written.
    async fn round(
        &self,
        scope: &SyncScope,
        ops: &[PendingOp<T>],
        tx: &str,
        todo: &mut Vec<Pending>,
        outcomes: &mut [Option<PushOutcome<T>>],
    ) -> Result<Round> {
        // 1. Stage: `POST /databases/transactions/{id}/operations` with `upsert` operations
        //    (<https://appwrite.io/docs/products/databases/transactions#create-operations>).
        //    Each staged operation is stamped with the time it was staged; on commit Appwrite
        //    fails the transaction (409 `transaction_conflict`) when a document it writes was
        //    updated after that stamp.
        let permissions = self.permissions(scope);
        let staged: Vec<Value> = todo
            .iter()
            .map(|p| {
                let mut data = p.data.clone();
                if let Some(perm) = &permissions {
                    data.insert("$permissions".into(), perm.clone());
                }
                json!({
                    "action": "upsert",
                    "databaseId": self.database,
                    "collectionId": scope.name(),
                    "documentId": p.doc_id,
                    "data": data,
                })
            })
            .collect();
        let url = self
            .client
            .url(&["databases", "transactions", tx, "operations"])?;
        let reply = self
            .client
            .send(
                Method::POST,
                url,
                &[],
                Some(&json!({ "operations": staged })),
            )
            .await?;
        if !reply.status.is_success() {
            let kind = reply.detail().code.unwrap_or_default();
            return match reply.status.as_u16() {
                404 if kind == "collection_not_found" || kind == "database_not_found" => {
                    Err(self.missing(scope.name(), &reply))
                }
                400 => Ok(Round::Isolate(format!("{kind}: {}", reply.message()))),
                _ => Err(reply.error()),
            };
        }
        // 2. Read after staging: a write stamped before the staging is visible now, one
        //    stamped after it fails the commit. Stamps have millisecond resolution and the
        //    commit check is strict (`$updatedAt > S`): waiting 2 ms first makes a write that
        //    commits after our read carry a stamp later than `S`, not equal to it.
        crate::rt::sleep(std::time::Duration::from_millis(2)).await;
        let doc_ids: Vec<&str> = todo.iter().map(|p| p.doc_id.as_str()).collect();
        let mut current = self.current_docs(scope.name(), &doc_ids).await?;
        // 3. Decide in order, each op against the state the ops before it leave.
        let mut decided = Vec::new();
        for (k, p) in todo.iter().enumerate() {
            let op = &ops[p.index];
            let cur = current.get(&p.doc_id);
            let verdict = if let Some(c) = cur
                && (!in_scope(&c.raw, scope) || record_id(&c.raw) != Some(op.id.as_str()))
            {
                Some(PushOutcome::Rejected {
                    reason: format!(
                        "document {} (record {:?}) already exists outside this scope",
                        p.doc_id, op.id
                    ),
                })
            } else if let Some(reason) = cur.and_then(|c| c.unreadable.as_ref()) {
                Some(PushOutcome::undecodable_current(reason))
            } else {
                let change = op.change();
                let (version, deleting) = (change.version(), change.is_delete());
                let state = cur.map(|c| (c.version, c.deleted));
                let replay = state == Some((version, deleting));
                if !replay && !base_matches(op.kind, op.base_version, state) {
                    let c = cur.expect("a mismatch needs a current document");
                    Some(
                        match decode_doc(c.raw.clone(), &self.config.json_attributes) {
                            Ok(c) => PushOutcome::Conflict { current: Some(c) },
                            Err(e) => PushOutcome::undecodable_current(e),
                        },
                    )
                } else if replay && cur.is_some_and(|c| holds(&c.raw, &p.data)) {
                    Some(PushOutcome::Applied { version })
                } else {
                    let mut raw = p.data.clone();
                    if let Some(c) = cur {
                        for (key, v) in &c.raw {
                            raw.entry(key.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    current.insert(
                        p.doc_id.clone(),
                        Current {
                            raw,
                            version,
                            deleted: deleting,
                            unreadable: None,
                        },
                    );
                    None
                }
            };
            if let Some(v) = verdict {
                decided.push((k, v));
            }
        }
        if !decided.is_empty() {
            // Those ops need no write (or must not be written): drop them and stage the rest
            // in a new transaction, so nothing is committed on a stale decision.
            self.rollback(tx).await;
            for (k, v) in decided.into_iter().rev() {
                let p = todo.remove(k);
                outcomes[p.index] = Some(v);
            }
            return Ok(Round::Again);
        }
        // 4. Commit (<https://appwrite.io/docs/products/databases/transactions#commit-or-roll-back>).
        let reply = self.finish(tx, true).await?;
        if reply.status.is_success() {
            for p in todo.drain(..) {
                let version = ops[p.index].change().version();
                outcomes[p.index] = Some(PushOutcome::Applied { version });
            }
            return Ok(Round::Committed);
        }
        let kind = reply.detail().code.unwrap_or_default();
        match reply.status.as_u16() {
            // A document changed after staging (or vanished): decide again on fresh reads.
            409 | 404 if kind != "transaction_not_found" => {
                tracing::debug!(kind, "appwrite: commit lost a race; staging again");
                Ok(Round::Again)
            }
            400 => Ok(Round::Isolate(format!("{kind}: {}", reply.message()))),
            _ => Err(reply.error()),
        }
    }
}
