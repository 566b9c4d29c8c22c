//! [`PocketBaseRemoteStore`]: a [`RemoteStore`] over a PocketBase server (0.23+ API, verified
//! against 0.40.6). Schema, rules and set-up are in `docs/backends/pocketbase.md`.
//!
//! # Mapping
//! - A [`SyncScope`] is a collection (the scope name) plus equality filters on fields (the
//!   scope keys, e.g. `owner = "u1"`). Names must be plain identifiers; values are always quoted
//!   and escaped. Pushed records get the scope key fields set; a record whose field disagrees is
//!   rejected.
//! - A record's top-level JSON fields are PocketBase fields of the same name. `updated_at` (the
//!   record's version) and `deleted_at` (the tombstone) are `text` fields holding RFC 3339
//!   strings exactly as written, so versions round-trip without loss. A delete writes
//!   `deleted_at` (a tombstone row) instead of removing the row, so pulls see it.
//! - PocketBase's own autodate `updated` (server clock, milliseconds) drives the pull cursor; the
//!   client `updated_at` never does. See [`cursor`] for the keyset + overlap window.
//!
//! # Conflict detection
//! `updated` is server-owned, so versions are the records' own `updated_at`/`deleted_at`. A push
//! first reads the current rows of all its ids (chunked `id = …` filters) and applies
//! [`base_matches`] to each op. Writes then go through `/api/batch` (PUT = upsert); every
//! conditional write carries the versions it was checked against in the `X-Rcs-If-Updated` /
//! `X-Rcs-If-Deleted` sub-request headers, and PocketBase re-checks them inside the write
//! transaction: the guide's `updateRule` does it for user tokens, the guide's
//! `onRecordUpdateRequest` hook for every writer (superusers bypass rules). A write that changed
//! the row between pre-read and commit makes that sub-request fail (404 from the rule, 409 from
//! the hook); the adapter re-reads the row and answers [`PushOutcome::Conflict`]: no lost update.
//! Without the hook, a superuser write landing in the few milliseconds between pre-read and
//! commit is overwritten (measured: 26 of 30 deliberately raced rounds).
//!
//! # Failures
//! A batch is all-or-nothing and names only its first failing sub-request: that op becomes
//! `Rejected` (400/403/404) or `Conflict` (its CAS failed) and the batch is retried without it,
//! so one poison op never blocks the others: a sub-request's status is a verdict on its op.
//! Statuses of a whole request go through the status table every HTTP adapter shares: 401 →
//! unauthorized, 403 (a rule, the batch API disabled) and 404 → refused, both pausing the scope
//! without charging any op; 429 → rate limited (`Retry-After` in seconds or as an HTTP-date),
//! 408, 5xx and network → unavailable, other 4xx → rejected. One exception: a 404 on a list
//! (a pull, a push's pre-read) means the scope's collection is missing and is
//! [`Error::NotFound`] naming it (it pauses the scope too); a 404 on a record read is `None`. A row that does not decode is
//! quarantined ([`Delta::quarantined`]); an op whose record's row does not decode is rejected. An empty list is only trusted once the
//! token is known valid: tokens are refreshed before their `exp`, and an expired token that
//! cannot be renewed fails with [`Error::Unauthorized`] before any list is sent.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::delta::{Cursor, Delta, QuarantinedRow};
use crate::error::{Error, Result};
use crate::json_record::JsonRecord;
use crate::op::{OpKind, PendingOp, PushOutcome};
use crate::record::{Change, Record, Tombstone};
use crate::remote::{RemoteStore, base_matches};
use crate::scope::SyncScope;

mod auth;
mod client;
pub mod cursor;
mod filter;
mod realtime;

pub use auth::Credentials;

use client::{BACKEND, Client, status_error};
use cursor::{CursorState, Start};
use filter::{format_date, parse_date, quote, scope_filter, validate_scope};

/// Fields PocketBase adds to every record, removed before decoding into `T`.
const SYSTEM_FIELDS: &[&str] = &[
    "collectionId",
    "collectionName",
    "expand",
    "created",
    "updated",
];

/// The field holding the record's own id (PocketBase's `id` is derived, see [`pocketbase_id`]).
pub const RECORD_ID_FIELD: &str = "record_id";

/// Namespace of the derived ids (a fixed random UUID).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1c_0f53_9a3e_4d2b_8f61_3c5e_2a70_d94e);

/// PocketBase's `id` for record `id` in `scope`: a UUID v5 of the scope's canonical form and the
/// id. PocketBase ids are unique per collection and compared case-insensitively, while record ids
/// are unique per scope and case-sensitive; the derived id keeps equal ids of different scopes
/// (and `A` vs `a`) apart. The record's own id lives in the `record_id` field.
pub fn pocketbase_id(scope: &SyncScope, id: &str) -> String {
    let mut name = scope.canonical().into_bytes();
    name.push(0);
    name.extend_from_slice(id.as_bytes());
    uuid::Uuid::new_v5(&ID_NAMESPACE, &name).to_string()
}

/// Tunables of a [`PocketBaseRemoteStore`].
#[derive(Debug, Clone)]
pub struct PocketBaseConfig {
    /// Look-back for late-committing writes: must exceed the longest write transaction (the
    /// server's batch timeout; the guide sets 10 s). Default 15 s.
    pub overlap_window: Duration,
    /// Sub-requests per `/api/batch` call (≤ the server's `batch.maxRequests`). Default 100.
    pub batch_size: usize,
    /// Largest page asked for (PocketBase clamps at 1000). Default 1000.
    pub max_page_size: usize,
    /// Request the next page in the background as soon as a page with `has_more` is returned,
    /// so the network overlaps the caller's work on the current page. Default true.
    pub prefetch: bool,
    /// An empty list page is trusted only from a token the server accepted within this long
    /// (else the token is refreshed first): PocketBase answers a revoked token's list as a
    /// guest's, with no rows. Default 60 s; zero re-checks on every empty page.
    pub auth_recheck: Duration,
    /// Per-request timeout. Default 30 s.
    pub request_timeout: Duration,
    /// Timings of [`subscribe`](RemoteStore::subscribe)'s event stream. PocketBase sends no
    /// heartbeat and drops clients idle for 5 minutes, so the default stall timeout is 330 s.
    pub realtime: crate::remote::RealtimeOptions,
}

impl Default for PocketBaseConfig {
    fn default() -> Self {
        PocketBaseConfig {
            overlap_window: Duration::from_secs(15),
            batch_size: 100,
            max_page_size: 1000,
            prefetch: true,
            auth_recheck: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            realtime: crate::remote::RealtimeOptions::default().stall_timeout(realtime::IDLE_LIMIT),
        }
    }
}

/// A PocketBase collection set (one per scope name) as a [`RemoteStore`]. Cheap to clone.
pub struct PocketBaseRemoteStore<T> {
    client: Arc<Client>,
    config: PocketBaseConfig,
    prefetch: Arc<std::sync::Mutex<Option<Prefetch<T>>>>,
    _t: PhantomData<fn() -> T>,
}

/// The next page, requested while the caller applies the current one.
struct Prefetch<T> {
    key: (String, String, usize),
    task: crate::rt::JoinHandle<Result<Delta<T>>>,
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

#[derive(Deserialize)]
struct ListPage {
    items: Vec<Map<String, Value>>,
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
            config,
            prefetch: Arc::default(),
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
        self.client.authorization(false).await.map(|_| ())
    }

    fn records_url(&self, collection: &str) -> Result<Url> {
        self.client
            .url(&["api", "collections", collection, "records"])
    }

    /// One list request: `filter`, sorted by `(updated, id)`, no total count.
    async fn list(
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
        let reply = self
            .client
            .send(Method::GET, self.records_url(collection)?, &query, None)
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
        let date = reply.date().ok_or_else(|| Error::MalformedResponse {
            backend: BACKEND,
            message: "list answer without a Date header".into(),
        })?;
        let page: ListPage = reply.json()?;
        Ok((page.items, date))
    }

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
    fn decode_change(&self, raw: Map<String, Value>) -> Result<Change<T>> {
        decode_row(raw)
    }
}

/// Whether the stored row has every field of `body` with the same value.
fn holds(raw: &Map<String, Value>, body: &Value) -> bool {
    body.as_object()
        .is_some_and(|b| b.iter().all(|(k, v)| raw.get(k) == Some(v)))
}

/// Fields of a written body that the saved record (a batch sub-response) does not have.
fn dropped_fields(body: &Value, answer: &Value) -> Option<String> {
    let (Some(sent), Some(saved)) = (
        body.as_object(),
        answer.get("body").and_then(Value::as_object),
    ) else {
        return None;
    };
    let missing: Vec<&str> = sent
        .keys()
        .filter(|k| !saved.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The first failing sub-request of a failed batch.
struct BatchFailure {
    index: usize,
    status: u16,
    reason: String,
    /// The sub-response named no field: a rule refusal or a server-side error (a busy database
    /// surfaces as a bare `400 "Failed to create record."`), not a validation error.
    bare: bool,
}

/// Parses a failed batch answer.
fn batch_failure(v: &Value) -> Option<BatchFailure> {
    let requests = v.get("data")?.get("requests")?.as_object()?;
    let (k, detail) = requests
        .iter()
        .filter_map(|(k, d)| Some((k.parse::<usize>().ok()?, d)))
        .min_by_key(|(k, _)| *k)?;
    let resp = detail.get("response");
    let status = resp
        .and_then(|r| r.get("status"))
        .and_then(Value::as_u64)
        .unwrap_or(400) as u16;
    let message = resp
        .and_then(|r| r.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("batch request failed");
    let fields = resp
        .and_then(|r| r.get("data"))
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(f, e)| {
                    let code = e.get("code").and_then(Value::as_str).unwrap_or("invalid");
                    format!("{f}: {code}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let bare = fields.is_empty();
    let reason = if bare {
        format!("{status}: {message}")
    } else {
        format!("{status}: {message} ({fields})")
    };
    Some(BatchFailure {
        index: k,
        status,
        reason,
        bare,
    })
}

fn text_field<'a>(raw: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    raw.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `(version, is_tombstone)` of a row: `deleted_at` when set, else `updated_at`.
fn row_version(raw: &Map<String, Value>) -> Result<(Timestamp, bool)> {
    let bad = |f: &str| {
        Error::Codec(format!(
            "pocketbase: row {:?} has an invalid {f}",
            raw.get("id")
        ))
    };
    if let Some(d) = text_field(raw, "deleted_at") {
        return Ok((parse_date(d).ok_or_else(|| bad("deleted_at"))?, true));
    }
    // A row written by another client without `updated_at`: its server stamp is the version.
    let u = text_field(raw, "updated_at")
        .or_else(|| text_field(raw, "updated"))
        .ok_or_else(|| bad("updated_at"))?;
    Ok((parse_date(u).ok_or_else(|| bad("updated_at"))?, false))
}

/// Whether a row's scope key fields equal the scope's values.
fn in_scope(raw: &Map<String, Value>, scope: &SyncScope) -> bool {
    scope
        .keys()
        .iter()
        .all(|(k, v)| raw.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// Decodes a row: system fields dropped, empty `deleted_at` removed, PocketBase-style dates in
/// `updated_at`/`deleted_at` turned into RFC 3339; a set `deleted_at` is a tombstone.
fn decode_row<T: Record>(mut raw: Map<String, Value>) -> Result<Change<T>> {
    if text_field(&raw, "updated_at").is_none()
        && let Some(stamp) = text_field(&raw, "updated").map(str::to_owned)
    {
        // A row written by another client without `updated_at`: its server stamp is the version.
        raw.insert("updated_at".into(), Value::String(stamp));
    }
    for f in SYSTEM_FIELDS {
        raw.remove(*f);
    }
    let Some(Value::String(id)) = raw.remove(RECORD_ID_FIELD) else {
        return Err(Error::Codec(format!(
            "pocketbase: row {:?} has no `{RECORD_ID_FIELD}` field (see the guide)",
            raw.get("id")
        )));
    };
    raw.insert("id".into(), Value::String(id.clone()));
    if let Some(d) = text_field(&raw, "deleted_at") {
        let deleted_at = parse_date(d).ok_or_else(|| {
            Error::Codec(format!("pocketbase: row {id:?} has an invalid deleted_at"))
        })?;
        return Ok(Change::Delete(Tombstone { id, deleted_at }));
    }
    raw.remove("deleted_at");
    if let Some(Value::String(u)) = raw.get_mut("updated_at")
        && u.len() > 10
        && u.as_bytes()[10] == b' '
    {
        u.replace_range(10..11, "T");
    }
    serde_json::from_value(Value::Object(raw))
        .map(Change::Upsert)
        .map_err(|e| Error::Codec(format!("pocketbase: row {id:?} does not decode: {e}")))
}

/// The JSON body written for an op (scope keys set, `deleted_at` explicit).
fn op_body<T: Record>(
    scope: &SyncScope,
    op: &PendingOp<T>,
    exists: bool,
) -> std::result::Result<Value, String> {
    let mut body = match (&op.payload, op.kind) {
        (Some(p), OpKind::Create | OpKind::Update) => {
            let Value::Object(mut m) =
                serde_json::to_value(p).map_err(|e| format!("record does not encode: {e}"))?
            else {
                return Err("record does not encode as a JSON object".into());
            };
            if m.get("id").and_then(Value::as_str) != Some(op.id.as_str()) {
                return Err("record id differs from the op id".into());
            }
            for f in SYSTEM_FIELDS.iter().chain(&[RECORD_ID_FIELD]) {
                if m.remove(*f).is_some() {
                    return Err(format!("record field {f:?} is reserved by PocketBase"));
                }
            }
            match m.get("deleted_at") {
                None | Some(Value::Null) => {
                    m.insert("deleted_at".into(), Value::String(String::new()));
                }
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                Some(_) => return Err("deleted_at must be an RFC 3339 timestamp or null".into()),
            }
            match m.get("updated_at") {
                Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => {}
                _ => return Err("updated_at must serialize as an RFC 3339 string".into()),
            }
            m
        }
        _ => {
            let mut m = Map::new();
            m.insert(
                "deleted_at".into(),
                Value::String(op.updated_at.to_string()),
            );
            if !exists {
                m.insert(
                    "updated_at".into(),
                    Value::String(op.updated_at.to_string()),
                );
            }
            m
        }
    };
    body.insert("id".into(), Value::String(pocketbase_id(scope, &op.id)));
    body.insert(RECORD_ID_FIELD.into(), Value::String(op.id.clone()));
    for (k, v) in scope.keys() {
        match body.get(k) {
            None | Some(Value::Null) => {
                body.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::String(s)) if s == v => {}
            Some(_) => return Err(format!("record field {k:?} disagrees with the scope")),
        }
    }
    Ok(Value::Object(body))
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
        let key = |c: Option<&Cursor>| {
            (
                scope.canonical(),
                c.map(|c| c.0.clone()).unwrap_or_default(),
                limit,
            )
        };
        let prefetched = {
            let mut slot = self.prefetch.lock().unwrap_or_else(|e| e.into_inner());
            match slot.take() {
                Some(p) if p.key == key(since) => Some(p.task),
                Some(p) => {
                    p.task.abort();
                    None
                }
                None => None,
            }
        };
        let delta = match prefetched {
            // A failed prefetch is simply redone now.
            Some(task) => match task.await {
                Ok(Ok(d)) => d,
                _ => self.fetch_page(scope, since, limit).await?,
            },
            None => self.fetch_page(scope, since, limit).await?,
        };
        if self.config.prefetch
            && delta.has_more
            && let Some(next) = delta.cursor.clone()
        {
            let this = self.clone();
            let scope = scope.clone();
            let k = key(Some(&next));
            let task =
                crate::rt::spawn(async move { this.fetch_page(&scope, Some(&next), limit).await });
            let old = self
                .prefetch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(Prefetch { key: k, task });
            if let Some(old) = old {
                old.task.abort();
            }
        }
        Ok(delta)
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
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

    async fn server_time(&self) -> Result<Timestamp> {
        self.client.server_time().await
    }
}

/// Builds a store of [`JsonRecord`]s from a URL, for tools such as `rcs`:
///
/// `pocketbase://HOST:PORT[/PATH]?auth=superuser|<auth collection>|token|none[&tls=true]`
/// (also `pocketbase+http://…` and `pocketbase+https://…`).
///
/// Credentials never go in the URL. They come from the environment: `RCS_POCKETBASE_IDENTITY` and
/// `RCS_POCKETBASE_PASSWORD` (superuser email, or user identity for `auth=<collection>`), or
/// `RCS_POCKETBASE_TOKEN` for `auth=token`. `auth` defaults to `superuser` when the identity
/// variable is set, else `token` when the token variable is set, else `none`.
pub fn from_url(url: &str) -> Result<PocketBaseRemoteStore<JsonRecord>> {
    from_url_with(url, |k| std::env::var(k).ok())
}

/// [`from_url`] with an explicit variable lookup (for tests and embedding).
pub fn from_url_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PocketBaseRemoteStore<JsonRecord>> {
    from_url_config(url, env, |_| {})
}

/// [`from_url_with`] for any record type, with a last word on the tunables (used by
/// [`remote::from_url`](crate::remote::from_url)).
pub(crate) fn from_url_config<T: Record>(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
    adjust: impl FnOnce(&mut PocketBaseConfig),
) -> Result<PocketBaseRemoteStore<T>> {
    let bad = |m: &str| Error::InvalidInput(format!("pocketbase URL: {m}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    let parsed = Url::parse(&format!("http://{rest}")).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; use RCS_POCKETBASE_* variables",
        ));
    }
    let mut tls = match scheme {
        "pocketbase" | "pocketbase+http" | "http+pocketbase" => false,
        "pocketbase+https" | "https+pocketbase" => true,
        _ => {
            return Err(bad(
                "scheme must be pocketbase://, pocketbase+http:// or pocketbase+https://",
            ));
        }
    };
    let mut auth: Option<String> = None;
    let mut config = PocketBaseConfig::default();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "auth" => auth = Some(v.into_owned()),
            "tls" => tls = matches!(v.as_ref(), "1" | "true" | "yes"),
            "batch_size" => {
                config.batch_size = v.parse().map_err(|_| bad("batch_size must be a number"))?
            }
            "window_s" => {
                config.overlap_window =
                    Duration::from_secs(v.parse().map_err(|_| bad("window_s must be a number"))?)
            }
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let mut http = parsed.clone();
    http.set_query(None);
    http.set_scheme(if tls { "https" } else { "http" })
        .map_err(|_| bad("cannot set scheme"))?;
    let identity = env("RCS_POCKETBASE_IDENTITY");
    let password = env("RCS_POCKETBASE_PASSWORD");
    let token = env("RCS_POCKETBASE_TOKEN");
    let auth = auth.unwrap_or_else(|| {
        if identity.is_some() {
            "superuser".into()
        } else if token.is_some() {
            "token".into()
        } else {
            "none".into()
        }
    });
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| bad(&format!("auth needs the {name} variable")))
    };
    let credentials = match auth.as_str() {
        "none" => Credentials::Anonymous,
        "token" => Credentials::token(need(token, "RCS_POCKETBASE_TOKEN")?),
        "superuser" => Credentials::superuser(
            need(identity, "RCS_POCKETBASE_IDENTITY")?,
            need(password, "RCS_POCKETBASE_PASSWORD")?,
        ),
        collection if filter::is_identifier(collection) => Credentials::user(
            collection,
            need(identity, "RCS_POCKETBASE_IDENTITY")?,
            need(password, "RCS_POCKETBASE_PASSWORD")?,
        ),
        _ => {
            return Err(bad(
                "auth must be superuser, token, none or an auth collection name",
            ));
        }
    };
    adjust(&mut config);
    PocketBaseRemoteStore::with_config(http.as_str(), credentials, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestRecord, ts};

    #[test]
    fn decodes_rows() {
        let row = serde_json::json!({"collectionId":"c","collectionName":"records","created":"2026-11-22 01:30:20.840Z",
            "updated":"2026-11-22 01:30:20.840Z","deleted_at":"","id":"0000","record_id":"a","title":"t","n":3,"owner":"u1",
            "updated_at":"2026-01-01T00:00:00.001Z"});
        let Value::Object(raw) = row else {
            unreachable!()
        };
        assert_eq!(row_version(&raw).unwrap(), (ts(1), false));
        match decode_row::<TestRecord>(raw.clone()).unwrap() {
            Change::Upsert(r) => assert_eq!(r, TestRecord::new("a", "t", ts(1)).with_n(3)),
            other => panic!("{other:?}"),
        }
        let mut tomb = raw;
        tomb.insert("deleted_at".into(), "2026-01-01 00:00:00.002Z".into());
        assert_eq!(row_version(&tomb).unwrap(), (ts(2), true));
        assert!(
            matches!(decode_row::<TestRecord>(tomb).unwrap(), Change::Delete(t) if t.deleted_at == ts(2))
        );
    }

    #[test]
    fn op_bodies_set_scope_and_refuse_mismatches() {
        let scope = SyncScope::new("records", [("owner", "u\"1")]).unwrap();
        let op = PendingOp::upsert(
            scope.clone(),
            OpKind::Create,
            TestRecord::new("a", "t", ts(0)),
        );
        let b = op_body(&scope, &op, false).unwrap();
        assert_eq!(b["owner"], "u\"1");
        assert_eq!(b["deleted_at"], "");
        let del = PendingOp::<TestRecord>::delete(scope.clone(), "a", ts(5));
        let b = op_body(&scope, &del, false).unwrap();
        assert_eq!(b["deleted_at"], ts(5).to_string());
        assert_eq!(b["updated_at"], ts(5).to_string());
        assert_eq!(b["record_id"], "a");
        assert_eq!(b["id"], pocketbase_id(&scope, "a"));
        let other = SyncScope::new("records", [("owner", "u2")]).unwrap();
        assert_ne!(pocketbase_id(&other, "a"), pocketbase_id(&scope, "a"));
        assert_ne!(pocketbase_id(&scope, "A"), pocketbase_id(&scope, "a"));
        assert_eq!(pocketbase_id(&scope, "a").len(), 36);
        let json_op = PendingOp::upsert(
            other.clone(),
            OpKind::Create,
            JsonRecord::from_value(
                serde_json::json!({"id":"a","updated_at":"2026-01-01T00:00:00Z","owner":"u1"}),
            )
            .unwrap(),
        );
        assert!(
            op_body(&other, &json_op, false)
                .unwrap_err()
                .contains("disagrees")
        );
    }

    #[test]
    fn parses_batch_failures() {
        let v = serde_json::json!({"data":{"requests":{"1":{"code":"batch_request_failed","message":"Batch request failed.",
            "response":{"data":{"id":{"code":"validation_pk_invalid","message":"…"}},"message":"Failed to create record.","status":400}}}},
            "message":"Batch transaction failed.","status":400});
        let f = batch_failure(&v).unwrap();
        assert_eq!((f.index, f.status, f.bare), (1, 400, false));
        assert!(f.reason.contains("validation_pk_invalid"), "{}", f.reason);
        assert!(batch_failure(&serde_json::json!({"message":"x"})).is_none());
    }

    #[test]
    fn urls() {
        let env = |k: &str| match k {
            "RCS_POCKETBASE_IDENTITY" => Some("a@b.c".to_owned()),
            "RCS_POCKETBASE_PASSWORD" => Some("pw-secret".to_owned()),
            _ => None,
        };
        let s = from_url_with("pocketbase://127.0.0.1:8090?batch_size=50", env).unwrap();
        assert_eq!(s.client.base.as_str(), "http://127.0.0.1:8090/");
        assert_eq!(s.config.batch_size, 50);
        assert!(!format!("{s:?}").contains("pw-secret"));
        let s = from_url_with("pocketbase+https://example.invalid/pb?auth=users", env).unwrap();
        assert_eq!(s.client.base.as_str(), "https://example.invalid/pb");
        assert!(from_url_with("pocketbase://u:p@h:1", env).is_err());
        assert!(from_url_with("postgres://h", env).is_err());
        assert!(from_url_with("pocketbase://h?auth=token", |_| None).is_err());
        assert!(from_url_with("pocketbase://h?what=1", env).is_err());
    }
}
