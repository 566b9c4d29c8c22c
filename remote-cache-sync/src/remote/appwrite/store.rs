//! [`AppwriteRemoteStore`]: the [`RemoteStore`] implementation (pulls, pushes, reads).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::builder::{AppwriteBuilder, AppwriteConfig};
use super::client::{BACKEND, Client};
use super::credential::Credential;
use super::cursor::{CursorState, Start};
use super::decode::{
    decode_doc, doc_version, document_id, format_stamp, holds, in_scope, op_data, parse_stamp,
    record_id,
};
use super::query;
use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record};
use crate::remote::client::prefetch::Prefetcher;
use crate::remote::{RemoteStore, base_matches};
use crate::scope::SyncScope;

/// An Appwrite database (one collection per scope name) as a [`RemoteStore`]. Cheap to clone.
/// See the [module docs](super) for the mapping, pulls and pushes.
pub struct AppwriteRemoteStore<T> {
    client: Arc<Client>,
    database: String,
    config: AppwriteConfig,
    /// Next pages being fetched in the background (shared by clones).
    prefetch: Arc<Prefetcher<T>>,
}

impl<T> Clone for AppwriteRemoteStore<T> {
    fn clone(&self) -> Self {
        AppwriteRemoteStore {
            client: self.client.clone(),
            database: self.database.clone(),
            config: self.config.clone(),
            prefetch: self.prefetch.clone(),
        }
    }
}

impl<T> std::fmt::Debug for AppwriteRemoteStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppwriteRemoteStore")
            .field("client", &self.client)
            .field("database", &self.database)
            .field("config", &self.config)
            .finish()
    }
}

#[derive(Deserialize)]
struct DocumentList {
    documents: Vec<Map<String, Value>>,
}

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
    /// A builder for the server at `endpoint` (`http(s)://HOST[:PORT][/v1]`), project `project`
    /// and database `database`.
    pub fn builder(endpoint: &str, project: &str, database: &str) -> AppwriteBuilder<T> {
        AppwriteBuilder::new(endpoint, project, database)
    }

    pub(crate) fn from_parts(
        client: Arc<Client>,
        database: String,
        config: AppwriteConfig,
    ) -> Self {
        AppwriteRemoteStore {
            client,
            database,
            config,
            prefetch: Arc::default(),
        }
    }

    /// The tunables.
    pub fn config(&self) -> &AppwriteConfig {
        &self.config
    }

    /// The API endpoint (ending in `/v1`).
    pub fn endpoint(&self) -> &str {
        self.client.base.as_str()
    }

    /// Replaces the credential with a fresh user JWT (Appwrite JWTs expire after 15 minutes);
    /// clones of this store share it.
    pub fn set_jwt(&self, jwt: impl Into<String>) {
        self.client.set_credential(Credential::jwt(jwt));
    }

    fn docs_url(&self, collection: &str) -> Result<Url> {
        self.client.url(&[
            "databases",
            &self.database,
            "collections",
            collection,
            "documents",
        ])
    }

    /// A 404 naming the database or collection: the scope cannot sync until the guide is applied.
    fn missing(&self, collection: &str, reply: &super::client::Reply) -> Error {
        Error::NotFound {
            what: format!(
                "appwrite database {:?} / collection {collection:?} ({}; see docs/backends/appwrite.md)",
                self.database,
                reply.message()
            ),
        }
    }

    /// One `listDocuments` request; returns the documents and the answer's `Date`.
    async fn list(
        &self,
        collection: &str,
        queries: &[Value],
    ) -> Result<(Vec<Map<String, Value>>, Option<Timestamp>)> {
        let params = query::list_params(queries);
        let reply = self
            .client
            .send(Method::GET, self.docs_url(collection)?, &params, None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(self.missing(collection, &reply));
        }
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let list: DocumentList = reply.json()?;
        Ok((list.documents, reply.date()))
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
                    Some(match decode_doc(c.raw.clone()) {
                        Ok(c) => PushOutcome::Conflict { current: Some(c) },
                        Err(e) => PushOutcome::undecodable_current(e),
                    })
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

    /// One `fetch_since` page.
    async fn fetch_page(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let mut state = CursorState::decode(since)?;
        let per_page = limit.clamp(1, self.config.max_page_size);
        let window = jiff::SignedDuration::try_from(self.config.overlap_window)
            .map_err(|e| Error::InvalidInput(format!("appwrite: overlap window: {e}")))?;
        let mut delta = Delta::empty(Timestamp::now(), None);
        loop {
            let start = state.begin_read();
            let mut queries = query::scope_queries(scope);
            match &start {
                Start::Beginning => {}
                Start::After(u, i) => queries.push(query::after(u, i)),
                Start::From(u) => queries.push(query::greater_than_equal("$updatedAt", u)),
            }
            queries.extend([
                query::order_asc("$updatedAt"),
                query::order_asc("$id"),
                query::limit(per_page),
            ]);
            let (docs, date) = self.list(scope.name(), &queries).await?;
            let date = date.ok_or_else(|| Error::MalformedResponse {
                backend: BACKEND,
                message: "list answer without a Date header".into(),
            })?;
            if docs.len() > per_page {
                return Err(Error::MalformedResponse {
                    backend: BACKEND,
                    message: format!("{} documents for limit {per_page}", docs.len()),
                });
            }
            // The Date header is truncated to the second: one more second of margin.
            let risk_low = format_stamp(date - window - jiff::SignedDuration::from_secs(1));
            let reached_end = docs.len() < per_page;
            let outside = |u: &str, i: &str| match &start {
                Start::Beginning => false,
                Start::After(su, si) => (u, i) <= (su.as_str(), si.as_str()),
                Start::From(su) => u < su.as_str(),
            };
            let mut last = None;
            for raw in docs {
                let (Some(updated), Some(id)) = (
                    raw.get("$updatedAt")
                        .and_then(Value::as_str)
                        .and_then(parse_stamp)
                        .map(format_stamp),
                    raw.get("$id").and_then(Value::as_str).map(str::to_owned),
                ) else {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a document lacks `$updatedAt`/`$id`".into(),
                    });
                };
                if outside(&updated, &id) {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a listed document is outside the requested keyset range".into(),
                    });
                }
                if !in_scope(&raw, scope) {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a listed document is outside the requested scope".into(),
                    });
                }
                if !state.was_seen(&updated, &id) {
                    let key = record_id(&raw).unwrap_or(&id).to_owned();
                    let text = Value::Object(raw.clone()).to_string();
                    match decode_doc::<T>(raw) {
                        Ok(Change::Upsert(r)) => delta.upserts.push(r),
                        Ok(Change::Delete(t)) => delta.deletes.push(t),
                        // One bad document never blocks the scope.
                        Err(e) => {
                            delta
                                .quarantined
                                .push(QuarantinedRow::new(key, text, e.to_string()))
                        }
                    }
                    state.mark_seen(&updated, &id, &risk_low);
                }
                last = Some((updated, id));
            }
            state.end_read(last, reached_end, risk_low);
            delta.server_time = date;
            delta.has_more = !reached_end;
            if !delta.is_empty() || reached_end {
                break;
            }
        }
        delta.cursor = Some(state.encode());
        Ok(delta)
    }
}

fn validate_scope(scope: &SyncScope) -> Result<()> {
    if !super::decode::fits_id_rules(scope.name()) {
        return Err(Error::InvalidInput(format!(
            "appwrite: scope name {:?} is not a valid collection id",
            scope.name()
        )));
    }
    for k in scope.keys().keys() {
        let ok = !k.is_empty()
            && k.len() <= 36
            && !k.starts_with('$')
            && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !ok || k == super::decode::RECORD_ID_ATTR {
            return Err(Error::InvalidInput(format!(
                "appwrite: scope key {k:?} is not a usable attribute name"
            )));
        }
    }
    Ok(())
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for AppwriteRemoteStore<T> {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// Realtime over Appwrite's WebSocket (module docs, "Realtime"; timings in
    /// [`AppwriteConfig::realtime`]). `None` (poll) with an API key or in the browser. A scope
    /// that fails validation is left out (its pulls report why).
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<crate::remote::RemoteEvents> {
        #[cfg(target_arch = "wasm32")]
        {
            let _ = scopes;
            None
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            if !self.client.has_jwt() {
                tracing::info!(
                    "appwrite realtime needs a user JWT (it ignores API keys): polling instead"
                );
                return None;
            }
            let scopes: Vec<SyncScope> = scopes
                .iter()
                .filter(|s| match validate_scope(s) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(scope = %s, error = %e, "scope left out of the realtime subscription");
                        false
                    }
                })
                .cloned()
                .collect();
            match super::realtime::spawn(
                self.client.clone(),
                &self.database,
                scopes,
                self.config.realtime,
            ) {
                Ok(events) => Some(events),
                Err(e) => {
                    tracing::warn!(error = %e, "appwrite realtime unavailable: polling instead");
                    None
                }
            }
        }
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        validate_scope(scope)?;
        if id.is_empty() {
            return Ok(None);
        }
        let doc_id = document_id(scope, id);
        let url = self.client.url(&[
            "databases",
            &self.database,
            "collections",
            scope.name(),
            "documents",
            &doc_id,
        ])?;
        let reply = self.client.send(Method::GET, url, &[], None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return match reply.detail().code.as_deref() {
                Some("collection_not_found" | "database_not_found") => {
                    Err(self.missing(scope.name(), &reply))
                }
                _ => Ok(None),
            };
        }
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let raw: Map<String, Value> = reply.json()?;
        if !in_scope(&raw, scope) || record_id(&raw) != Some(id) {
            return Ok(None);
        }
        Ok(match decode_doc::<T>(raw)? {
            Change::Upsert(r) if r.deleted_at().is_none() => Some(r),
            _ => None,
        })
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        validate_scope(scope)?;
        if !self.config.prefetch {
            return self.fetch_page(scope, since, limit).await;
        }
        self.prefetch
            .fetch(scope, since, limit, |since| {
                let (this, scope) = (self.clone(), scope.clone());
                async move { this.fetch_page(&scope, since.as_ref(), limit).await }
            })
            .await
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        validate_scope(scope)?;
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        let mut outcomes: Vec<Option<PushOutcome<T>>> = vec![None; ops.len()];
        let mut todo = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            match op_data(scope, op) {
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

    async fn server_time(&self) -> Result<Timestamp> {
        self.client.server_time().await
    }
}
