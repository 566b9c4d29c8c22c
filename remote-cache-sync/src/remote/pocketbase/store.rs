//! [`PocketBaseRemoteStore`]: list requests, the windowed pull (with the shared prefetch of the
//! next page), record reads and the [`RemoteStore`] impl.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::builder::PocketBaseConfig;
use super::client::{BACKEND, Client, Reply};
use super::credential::Credentials;
use super::cursor::{CursorState, Start};
use super::decode::{decode_row, in_scope, text_field};
use super::filter::{self, format_date, quote, scope_filter, validate_scope};
use super::{RECORD_ID_FIELD, pocketbase_id, realtime};
use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::{Change, Record};
use crate::remote::RemoteStore;
use crate::remote::client::keyset::{self, Page};
use crate::remote::client::prefetch::Prefetcher;
use crate::scope::SyncScope;

/// A PocketBase collection set (one per scope name) as a [`RemoteStore`]. Cheap to clone.
pub struct PocketBaseRemoteStore<T> {
    pub(super) client: Arc<Client>,
    pub(super) config: PocketBaseConfig,
    /// The next page, requested while the caller applies the current one (`None`: off).
    prefetch: Option<Arc<Prefetcher<T>>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for PocketBaseRemoteStore<T> {
    fn clone(&self) -> Self {
        PocketBaseRemoteStore {
            client: self.client.clone(),
            config: self.config.clone(),
            prefetch: self.prefetch.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for PocketBaseRemoteStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketBaseRemoteStore")
            .field("client", &self.client)
            .field("config", &self.config)
            .finish()
    }
}

/// A list answer's body.
#[derive(Deserialize)]
struct ListPage {
    pub(super) items: Vec<Map<String, Value>>,
}

impl<T: Record> PocketBaseRemoteStore<T> {
    /// A store for the server at `url` (e.g. `http://127.0.0.1:8090`).
    pub fn new(url: &str, credentials: Credentials) -> Result<Self> {
        Self::with_config(url, credentials, PocketBaseConfig::default())
    }

    /// A store with explicit tunables.
    pub fn with_config(
        url: &str,
        credentials: Credentials,
        config: PocketBaseConfig,
    ) -> Result<Self> {
        let base = crate::remote::client::url::parse_base(
            url,
            "pocketbase URL",
            "put credentials in `Credentials`",
        )?;
        if config.batch_size == 0 || config.max_page_size == 0 {
            return Err(Error::InvalidInput(
                "pocketbase: batch_size and max_page_size must be > 0".into(),
            ));
        }
        Ok(PocketBaseRemoteStore {
            client: Arc::new(Client::new(base, credentials, config.request_timeout)?),
            prefetch: config.prefetch.then(Arc::default),
            config,
            _t: PhantomData,
        })
    }

    /// The tunables.
    pub fn config(&self) -> &PocketBaseConfig {
        &self.config
    }

    /// Logs in (or validates the token) now, so bad credentials fail early with
    /// [`Error::Unauthorized`].
    pub async fn authenticate(&self) -> Result<()> {
        self.client.tokens.get().await.map(|_| ())
    }

    pub(super) fn records_url(&self, collection: &str) -> Result<Url> {
        self.client
            .url(&["api", "collections", collection, "records"])
    }

    /// One list request with `query` (filter, sort, page size, fields): the successful answer,
    /// or the typed error (a missing collection is `NotFound`, naming the guide).
    pub(super) async fn list_request(
        &self,
        collection: &str,
        query: &[(&str, &str)],
    ) -> Result<Reply> {
        let reply = self
            .client
            .send(Method::GET, self.records_url(collection)?, query, None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!(
                    "pocketbase collection {collection:?} (see docs/backends/pocketbase.md)"
                ),
            });
        }
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        Ok(reply)
    }

    /// Every row of the collection passing `base` (and in the scope: the scope's keys are
    /// checked on each row too), in `id` order, page by page with an `id` keyset, `fields`
    /// only when given; `visit` sees each with its PocketBase id, and its error ends the
    /// listing. Returns the bytes listed.
    pub(super) async fn list_by_id(
        &self,
        scope: &SyncScope,
        base: Option<String>,
        fields: Option<&str>,
        mut visit: impl FnMut(&str, Map<String, Value>) -> Result<()>,
    ) -> Result<u64> {
        let per_page = self.config.max_page_size.to_string();
        keyset::list_by_id(
            BACKEND,
            "id",
            self.config.max_page_size,
            |after| {
                let keyset = after.map(|id| format!("id > {}", quote(&id)));
                let f = filter::and([base.clone(), keyset]);
                let per_page = per_page.clone();
                async move {
                    let mut query = vec![
                        ("filter", f.as_str()),
                        ("sort", "id"),
                        ("perPage", per_page.as_str()),
                        ("skipTotal", "1"),
                    ];
                    query.extend(fields.map(|f| ("fields", f)));
                    let reply = self.list_request(scope.name(), &query).await?;
                    let page: ListPage = reply.json()?;
                    Ok(Page {
                        rows: page.items,
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

    /// One list request: `filter`, sorted by `(updated, id)`, no total count.
    pub(super) async fn list(
        &self,
        collection: &str,
        filter: &str,
        per_page: usize,
    ) -> Result<(Vec<Map<String, Value>>, Timestamp)> {
        let per_page = per_page.to_string();
        let query = [
            ("filter", filter),
            ("sort", "updated,id"),
            ("perPage", per_page.as_str()),
            ("skipTotal", "1"),
        ];
        let reply = self.list_request(collection, &query).await?;
        let date = reply.date().ok_or_else(|| Error::MalformedResponse {
            backend: BACKEND,
            message: "list answer without a Date header".into(),
        })?;
        let page: ListPage = reply.json()?;
        Ok((page.items, date))
    }

    /// One `fetch_since` page, read now.
    async fn fetch_page(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        let mut state = CursorState::decode(since)?;
        let per_page = limit.clamp(1, self.config.max_page_size);
        let window = jiff::SignedDuration::try_from(self.config.overlap_window)
            .map_err(|e| Error::InvalidInput(format!("pocketbase: overlap window: {e}")))?;
        let base = scope_filter(scope);
        let mut delta = Delta::empty(Timestamp::now(), None);
        loop {
            let start = state.begin_read();
            let keyset = match &start {
                Start::Beginning => None,
                Start::After(u, i) => {
                    let (u, i) = (quote(u), quote(i));
                    Some(format!("updated >= {u} && (updated > {u} || id > {i})"))
                }
                Start::From(u) => Some(format!("updated >= {}", quote(u))),
            };
            let f = filter::and([base.clone(), keyset]);
            let (items, date) = self.list(scope.name(), &f, per_page).await?;
            // A server that ignores perPage or the keyset filter would break the page contract or
            // make this loop re-read the same rows forever.
            let outside = |u: &str, i: &str| match &start {
                Start::Beginning => false,
                Start::After(su, si) => (u, i) <= (su.as_str(), si.as_str()),
                Start::From(su) => u < su.as_str(),
            };
            if items.len() > per_page {
                return Err(Error::MalformedResponse {
                    backend: BACKEND,
                    message: format!("{} rows for perPage {per_page}", items.len()),
                });
            }
            // The Date header is truncated to the second: one more second of margin.
            let risk_low = format_date(date - window - jiff::SignedDuration::from_secs(1));
            let reached_end = items.len() < per_page;
            if items.is_empty() {
                // PocketBase lists a revoked token's request as a guest's, empty: only trust
                // "no rows" from a token the server accepted within the last minute.
                let max_age = i64::try_from(self.config.auth_recheck.as_secs()).unwrap_or(i64::MAX);
                self.client.ensure_valid(max_age).await?;
            }
            let mut last = None;
            for raw in items {
                let (Some(updated), Some(id)) = (
                    raw.get("updated")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    raw.get("id").and_then(Value::as_str).map(str::to_owned),
                ) else {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: format!(
                            "collection {:?} rows lack `updated`/`id`: add the autodate fields (see the guide)",
                            scope.name()
                        ),
                    });
                };
                if outside(&updated, &id) {
                    return Err(Error::MalformedResponse {
                        backend: BACKEND,
                        message: "a listed row is outside the requested keyset range".into(),
                    });
                }
                if !state.was_seen(&updated, &id) {
                    let key = text_field(&raw, RECORD_ID_FIELD).unwrap_or(&id).to_owned();
                    let text = Value::Object(raw.clone()).to_string();
                    match decode_row::<T>(raw) {
                        Ok(Change::Upsert(r)) => delta.upserts.push(r),
                        Ok(Change::Delete(t)) => delta.deletes.push(t),
                        // One bad row never blocks the scope: handed over raw, retried when
                        // it changes (a new `updated` brings it back into the keyset).
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
            // A page made only of already-delivered rows: keep scanning rather than return nothing.
            if !delta.is_empty() || reached_end {
                break;
            }
        }
        delta.cursor = Some(state.encode());
        Ok(delta)
    }

    /// Turns a PocketBase row into a change of `T`.
    pub(super) fn decode_change(&self, raw: Map<String, Value>) -> Result<Change<T>> {
        decode_row(raw)
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for PocketBaseRemoteStore<T> {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// Realtime over PocketBase's SSE endpoint (`docs/backends/pocketbase.md`, "Realtime"; timings
    /// in [`PocketBaseConfig::realtime`]). A scope that
    /// fails validation is left out (its pulls report why).
    fn subscribe(&self, scopes: &[SyncScope]) -> Option<crate::remote::RemoteEvents> {
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
        Some(realtime::spawn(
            self.client.clone(),
            scopes,
            self.config.realtime,
        ))
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        validate_scope(scope)?;
        if id.is_empty() {
            return Ok(None);
        }
        let pb_id = pocketbase_id(scope, id);
        let url = self
            .client
            .url(&["api", "collections", scope.name(), "records", &pb_id])?;
        let reply = self.client.send(Method::GET, url, &[], None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let raw: Map<String, Value> = reply.json()?;
        if !in_scope(&raw, scope) || raw.get(RECORD_ID_FIELD).and_then(Value::as_str) != Some(id) {
            return Ok(None);
        }
        Ok(match decode_row::<T>(raw)? {
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
        let Some(prefetch) = &self.prefetch else {
            return self.fetch_page(scope, since, limit).await;
        };
        prefetch
            .fetch(scope, since, limit, |since| {
                let (this, scope) = (self.clone(), scope.clone());
                async move { this.fetch_page(&scope, since.as_ref(), limit).await }
            })
            .await
    }

    /// Listed without record data and digested here (see `digest.rs`).
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &crate::reconcile::DigestRequest,
    ) -> Result<Option<crate::reconcile::DigestResponse>> {
        self.digest_by_listing(scope, request).await.map(Some)
    }

    /// Narrowed by a filter, decided here (see `query.rs`).
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        self.query_narrowed(scope, query).await.map(Some)
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        self.push_ops(scope, ops).await
    }

    async fn server_time(&self) -> Result<Timestamp> {
        self.client.server_time().await
    }
}
