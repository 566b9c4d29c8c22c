//! [`AppwriteRemoteStore`]: the [`RemoteStore`] implementation (pulls, pushes, reads).

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::builder::{AppwriteBuilder, AppwriteConfig};
use super::client::{BACKEND, Client};
use super::credential::Credential;
use super::cursor::{CursorState, Start};
use super::decode::{decode_doc, document_id, format_stamp, in_scope, parse_stamp, record_id};
use super::query;
use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record};
use crate::remote::RemoteStore;
use crate::remote::client::keyset::{self, Page};
use crate::remote::client::prefetch::Prefetcher;
use crate::scope::SyncScope;

/// An Appwrite database (one collection per scope name) as a [`RemoteStore`]. Cheap to clone.
/// See the [module docs](super) for the mapping, pulls and pushes.
pub struct AppwriteRemoteStore<T> {
    pub(super) client: Arc<Client>,
    pub(super) database: String,
    pub(super) config: AppwriteConfig,
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

/// A `listDocuments` answer's body.
#[derive(Deserialize)]
struct DocumentList {
    documents: Vec<Map<String, Value>>,
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

    pub(super) fn docs_url(&self, collection: &str) -> Result<Url> {
        self.client.url(&[
            "databases",
            &self.database,
            "collections",
            collection,
            "documents",
        ])
    }

    /// A 404 naming the database or collection: the scope cannot sync until the guide is applied.
    pub(super) fn missing(&self, collection: &str, reply: &super::client::Reply) -> Error {
        Error::NotFound {
            what: format!(
                "appwrite database {:?} / collection {collection:?} ({}; see docs/backends/appwrite.md)",
                self.database,
                reply.message()
            ),
        }
    }

    /// [`validate_scope`], and no scope key is a JSON attribute (its value is compared as a
    /// plain string).
    pub(super) fn validate(&self, scope: &SyncScope) -> Result<()> {
        validate_scope(scope)?;
        if let Some(k) = scope
            .keys()
            .keys()
            .find(|k| self.config.json_attributes.contains(k))
        {
            return Err(Error::InvalidInput(format!(
                "appwrite: scope key {k:?} is a JSON attribute"
            )));
        }
        Ok(())
    }

    /// One `listDocuments` request: the answer, whatever its status but 401 and 404 (a missing
    /// collection or database is `NotFound`, naming the guide).
    pub(super) async fn list_reply(
        &self,
        collection: &str,
        queries: &[Value],
    ) -> Result<super::client::Reply> {
        let params = query::list_params(queries);
        let reply = self
            .client
            .send(Method::GET, self.docs_url(collection)?, &params, None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(self.missing(collection, &reply));
        }
        Ok(reply)
    }

    /// Every document of the scope passing `filters`, in `$id` order, page by page with a `$id`
    /// keyset, only the `select`ed attributes when given; `visit` sees each document of the
    /// scope (`equal` on a scope key folds case on Appwrite, MariaDB's default collation: another
    /// scope's documents are skipped) with its `$id`, and its error ends the listing. A query
    /// Appwrite refuses (`400 general_query_invalid`/`general_argument_invalid`: an unknown
    /// attribute, `equal` on an array attribute, a value of another type) is
    /// [`Error::Unsupported`]. Returns the bytes listed.
    pub(super) async fn list_by_id(
        &self,
        scope: &SyncScope,
        filters: &[Value],
        select: Option<&[&str]>,
        mut visit: impl FnMut(&str, Map<String, Value>) -> Result<()>,
    ) -> Result<u64> {
        let per_page = self.config.max_page_size;
        keyset::list_by_id(
            BACKEND,
            "$id",
            per_page,
            |after| {
                let mut queries = filters.to_vec();
                queries.extend(after.map(|a| query::greater_than("$id", &a)));
                queries.extend(select.map(query::select));
                queries.extend([query::order_asc("$id"), query::limit(per_page)]);
                async move {
                    let reply = self.list_reply(scope.name(), &queries).await?;
                    if reply.status == StatusCode::BAD_REQUEST {
                        let detail = reply.detail();
                        if matches!(
                            detail.code.as_deref(),
                            Some("general_query_invalid" | "general_argument_invalid")
                        ) {
                            return Err(Error::Unsupported {
                                backend: BACKEND,
                                message: format!(
                                    "a query Appwrite refuses ({})",
                                    detail.message.unwrap_or_default()
                                ),
                            });
                        }
                    }
                    if !reply.status.is_success() {
                        return Err(reply.error());
                    }
                    let page: DocumentList = reply.json()?;
                    Ok(Page {
                        rows: page.documents,
                        bytes: reply.body.len() as u64,
                    })
                }
            },
            |id, raw| {
                if in_scope(&raw, scope) {
                    visit(id, raw)?;
                }
                Ok(())
            },
        )
        .await
    }

    /// One `listDocuments` request; returns the documents and the answer's `Date`.
    pub(super) async fn list(
        &self,
        collection: &str,
        queries: &[Value],
    ) -> Result<(Vec<Map<String, Value>>, Option<Timestamp>)> {
        let reply = self.list_reply(collection, queries).await?;
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let list: DocumentList = reply.json()?;
        Ok((list.documents, reply.date()))
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
                // Appwrite's `equal` compares with the column's collation (MariaDB's default
                // for utf8mb4, `utf8mb4_general_ci`, folds case): a scope key may list another
                // scope's documents (`owner=Bob` next to `owner=bob`). They are not ours.
                if in_scope(&raw, scope) && !state.was_seen(&updated, &id) {
                    let key = record_id(&raw).unwrap_or(&id).to_owned();
                    let text = Value::Object(raw.clone()).to_string();
                    match decode_doc::<T>(raw, &self.config.json_attributes) {
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

/// Whether `k` can name an attribute: 1 to 36 characters of `a-zA-Z0-9_`, not starting with `$`
/// (Appwrite's attribute `key` rule).
pub(super) fn attribute_name_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= 36 && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub(super) fn validate_scope(scope: &SyncScope) -> Result<()> {
    if !super::decode::fits_id_rules(scope.name()) {
        return Err(Error::InvalidInput(format!(
            "appwrite: scope name {:?} is not a valid collection id",
            scope.name()
        )));
    }
    for k in scope.keys().keys() {
        if !attribute_name_ok(k) || k == super::decode::RECORD_ID_ATTR {
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
        self.validate(scope)?;
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
        Ok(match decode_doc::<T>(raw, &self.config.json_attributes)? {
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
        self.validate(scope)?;
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
        self.push_ops(scope, ops).await
    }

    async fn server_time(&self) -> Result<Timestamp> {
        self.client.server_time().await
    }

    /// Listed with `select` (ids and versions only) and digested here (see `digest.rs`).
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &crate::reconcile::DigestRequest,
    ) -> Result<Option<crate::reconcile::DigestResponse>> {
        self.digest_by_listing(scope, request).await.map(Some)
    }

    /// Appwrite narrows, the client decides (see `search.rs`).
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        self.query_remote(scope, query).await.map(Some)
    }
}
